package config

import (
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override: RINGBRIDGE_<SECTION>_<KEY>, from the yaml keys.
const EnvPrefix = "RINGBRIDGE_"

// The overrides are derived from the yaml tags by reflection, so a field added to the schema gets
// its variable without anyone writing it down:
//
//	pbx                        RINGBRIDGE_PBX
//	ami.secret                 RINGBRIDGE_AMI_SECRET
//	ami.ping_interval          RINGBRIDGE_AMI_PING_INTERVAL=10s
//	classify.inbound_contexts  RINGBRIDGE_CLASSIFY_INBOUND_CONTEXTS='[from-trunk, from-pstn]'
//	http.ami-gateway.listen    RINGBRIDGE_HTTP_AMI_GATEWAY_LISTEN=:9101
//
// A text value is taken verbatim (a secret may hold any character); numbers, booleans and
// durations are read as in the file; a list must be written as a YAML flow list, because a comma
// may belong to a value (\d{2,6}). An empty variable counts as unset. Map entries get variables for
// the keys the file has and for every name in Services().

// envName turns a key path element into its variable part: ami-gateway -> AMI_GATEWAY.
func envName(key string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(key))
}

// envLeaf is called for each overridable value: its variable name, key path and the value. It
// returns whether it changed the value.
type envLeaf func(name, path string, v reflect.Value) bool

func walkEnv(v reflect.Value, name, path string, fn envLeaf) bool {
	if v.Type() == durationType {
		return fn(name, path, v)
	}
	switch v.Kind() {
	case reflect.Struct:
		changed := false
		for i := range v.NumField() {
			f := v.Type().Field(i)
			key := yamlName(f)
			if !f.IsExported() || key == "" || f.Tag.Get("env") == "-" {
				continue
			}
			if walkEnv(v.Field(i), name+"_"+envName(key), join(path, key), fn) {
				changed = true
			}
		}
		return changed
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return false
		}
		keys := map[string]bool{}
		for _, k := range v.MapKeys() {
			keys[k.String()] = true
		}
		for _, s := range Services() {
			keys[s] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		changed := false
		for _, k := range sorted {
			key := reflect.New(v.Type().Key()).Elem()
			key.SetString(k)
			elem := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(key); old.IsValid() {
				elem.Set(old)
			}
			if walkEnv(elem, name+"_"+envName(k), join(path, k), fn) {
				if v.IsNil() {
					v.Set(reflect.MakeMap(v.Type()))
				}
				v.SetMapIndex(key, elem)
				changed = true
			}
		}
		return changed
	default:
		return fn(name, path, v)
	}
}

// EnvVars lists every environment variable that overrides a value of cfg (nil: of the defaults),
// with the key path it sets, for --help output and docs.
func EnvVars(cfg *Config) map[string]string {
	if cfg == nil {
		cfg = Defaults()
	}
	c := cfg.clone()
	out := map[string]string{}
	walkEnv(reflect.ValueOf(c).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", func(name, path string, _ reflect.Value) bool {
		out[name] = path
		return false
	})
	return out
}

// applyEnv sets every value whose variable is set. It returns the variables used, the key paths
// they set (for naming the variable in a validation message) and problems with their values.
func applyEnv(cfg *Config, env func(string) string) (used []string, byPath map[string]string, problems Problems) {
	byPath = map[string]string{}
	if env == nil {
		return nil, byPath, nil
	}
	walkEnv(reflect.ValueOf(cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), "", func(name, path string, v reflect.Value) bool {
		val := env(name)
		if val == "" {
			return false
		}
		if !setFromEnv(name, val, v, &problems) {
			return false
		}
		used = append(used, name)
		byPath[path] = name
		return true
	})
	return used, byPath, problems
}

func setFromEnv(name, val string, v reflect.Value, problems *Problems) bool {
	if v.Kind() == reflect.String {
		v.SetString(val)
		return true
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(val), &n); err != nil || len(n.Content) == 0 {
		if v.Kind() == reflect.Slice {
			problems.add(name, "cannot be read as a list: write a YAML list, e.g. '[a, b]'")
		} else {
			problems.add(name, "%q cannot be read: write it as in the config file", val)
		}
		return false
	}
	d := newDecoder()
	tmp := reflect.New(v.Type()).Elem()
	tmp.Set(v)
	d.decode(&n, tmp, name, 0)
	if len(d.problems) > 0 {
		for _, p := range d.problems {
			p.Line = 0 // a line of the variable's value means nothing to the reader
			*problems = append(*problems, p)
		}
		return false
	}
	v.Set(tmp)
	return true
}
