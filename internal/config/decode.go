package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The decoder walks the YAML node tree against the Go types itself rather than using
// yaml.Decoder.KnownFields: that stops at the first unknown key and names it by Go type
// ("field adress not found in type config.AMI"); an operator needs every problem at once, named by
// key path, with a suggestion.

// Bounds on what a config file may expand to: aliases can make a small file huge (billion laughs),
// and a self-referencing alias would never end.
const (
	maxNodes = 100_000
	maxDepth = 64
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
)

type decoder struct {
	problems Problems
	budget   int
	// failed holds the paths that could not be decoded, so validation does not report them twice.
	failed map[string]bool
	// lines holds the line of each key path, to point validation messages at the file.
	lines map[string]int
	// exhausted is set once the budget ran out, to report it once.
	exhausted bool
}

func newDecoder() *decoder {
	return &decoder{budget: maxNodes, failed: map[string]bool{}, lines: map[string]int{}}
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.failed[path] = true
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems.addAt(line, path, format, args...)
}

// decode sets v (addressable) from n. A null node leaves v as it is, so an empty key keeps its
// default.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if d.exhausted {
		return
	}
	d.budget--
	if d.budget < 0 || depth > maxDepth {
		d.exhausted = true
		d.fail(n, rootPath(path), "the file is too large or nests too deep (aliases that expand too far?): write the values out plainly")
		return
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(n, rootPath(path), "alias %q refers to nothing", n.Value)
			return
		}
		n = n.Alias
		d.budget--
		if d.budget < 0 {
			d.exhausted = true
			d.fail(n, rootPath(path), "the file is too large or its aliases expand too far: write the values out plainly")
			return
		}
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.decode(n.Content[0], v, path, depth+1)
		return
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if isNull(n) {
		return
	}

	switch {
	case v.Type() == durationType:
		d.decodeDuration(n, v, path)
	case v.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case v.Kind() == reflect.Map:
		d.decodeMap(n, v, path, depth)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path, depth)
	default:
		d.decodeLeaf(n, v, path)
	}
}

func rootPath(path string) string {
	if path == "" {
		return "(file)"
	}
	return path
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindWord(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value lines)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps a struct's yaml keys to field indexes, skipping `yaml:"-"` fields.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	idx := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := yamlName(f)
		if name == "" {
			continue
		}
		idx[name] = i
		names = append(names, name)
	}
	return idx, names
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if tag == "-" {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, rootPath(path), "expected a mapping of keys (key: value lines), got %s", kindWord(n))
		return
	}
	fields, names := yamlFields(v.Type())
	// Merge keys (<<: *base) first, so the keys written beside them win, as YAML says.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.decodeMerge(n.Content[i+1], v, path, depth)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, rootPath(path), "a key must be a plain word, got %s", kindWord(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "appears twice (lines %d and %d): keep one", first, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		fi, ok := fields[k.Value]
		if !ok {
			if to, renamed := renamedKeys()[p]; renamed {
				d.fail(k, p, "unknown key: it is now %s", to)
			} else if s := suggest(k.Value, names); s != "" {
				d.fail(k, p, "unknown key (did you mean %q?)", s)
			} else {
				sorted := append([]string(nil), names...)
				sort.Strings(sorted)
				d.fail(k, p, "unknown key (known here: %s)", strings.Join(sorted, ", "))
			}
			continue
		}
		d.decode(val, v.Field(fi), p, depth+1)
	}
}

func (d *decoder) decodeMerge(n *yaml.Node, v reflect.Value, path string, depth int) {
	d.budget--
	if d.exhausted || d.budget < 0 || depth > maxDepth {
		if !d.exhausted {
			d.exhausted = true
			d.fail(n, rootPath(path), "the file is too large or nests too deep (aliases that expand too far?): write the values out plainly")
		}
		return
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		d.decode(n, v, path, depth+1)
	case yaml.SequenceNode:
		// In a list of merged mappings the first one wins, so apply them last to first.
		for i := len(n.Content) - 1; i >= 0; i-- {
			d.decodeMerge(n.Content[i], v, path, depth+1)
		}
	default:
		d.fail(n, rootPath(path), "<< must merge a mapping or a list of mappings, got %s", kindWord(n))
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, rootPath(path), "expected a mapping of names to settings, got %s", kindWord(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.fail(n, rootPath(path), "this build cannot read this map (key type %s)", v.Type().Key())
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, rootPath(path), "a key must be a plain word, got %s", kindWord(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "appears twice (lines %d and %d): keep one", first, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		key := reflect.New(v.Type().Key()).Elem()
		key.SetString(k.Value)
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		d.decode(val, elem, p, depth+1)
		v.SetMapIndex(key, elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		example := "[a, b]"
		if n.Kind == yaml.ScalarNode {
			example = fmt.Sprintf("[%s]", n.Value)
		}
		d.fail(n, rootPath(path), "expected a list, got %s: write a list, e.g. %s", kindWord(n), example)
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
	}
	v.Set(out)
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, rootPath(path), "expected a duration, got %s: write e.g. 10s", kindWord(n))
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
			d.fail(n, path, "%q has no unit: write e.g. %ss", n.Value, n.Value)
		} else {
			d.fail(n, path, "%q is not a duration: write e.g. 10s, 500ms or 1m30s", n.Value)
		}
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeLeaf(n *yaml.Node, v reflect.Value, path string) {
	secret := v.Type() == secretType
	if n.Kind != yaml.ScalarNode {
		d.fail(n, rootPath(path), "expected a single value, got %s", kindWord(n))
		return
	}
	// What an error may show of the value: never a secret's.
	shown := fmt.Sprintf("%q", n.Value)
	if secret {
		shown = "the value"
	}
	switch v.Kind() {
	case reflect.String:
		// Any scalar is taken as its text, so "secret: 0123" keeps its leading zero.
		v.SetString(n.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "%s is not a whole number: write e.g. 50", shown)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.ShortTag() != "!!int" || n.Decode(&u) != nil || v.OverflowUint(u) {
			d.fail(n, path, "%s is not a whole number of 0 or more: write e.g. 50", shown)
			return
		}
		v.SetUint(u)
	case reflect.Bool:
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "%s is not true or false", shown)
			return
		}
		v.SetBool(b)
	case reflect.Float32, reflect.Float64:
		var f float64
		if (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || n.Decode(&f) != nil {
			d.fail(n, path, "%s is not a number", shown)
			return
		}
		v.SetFloat(f)
	default:
		// A type added later that the walker does not know: let yaml.v3 try, with the path.
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n, path, "cannot read %s as %s", shown, v.Type())
		}
	}
}
