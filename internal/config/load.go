package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
)

// Load reads the config file at path: strict YAML (an unknown key is a problem, named with its
// path and line and a "did you mean"), defaults for what the file leaves out, then the
// RINGBRIDGE_* environment overrides (env is os.Getenv in a service; nil means none), then
// Validate. It returns every problem at once as a Problems under the error.
//
// A file at an older schema is migrated in memory and loads; the file itself is left as it is
// (Source.FileSchema tells, so the service can log that migrate-config should be run). Services
// never write the config, and rewriting it with a backup is the job of the supervisor's update or
// of "migrate-config --in-place"; refusing to start would only turn a pending migration into an
// outage. A file at a newer schema than this build is refused (NewerSchemaError).
//
// A Config loaded with env overrides holds those values: code that saves the config back (admin)
// must load with a nil env, or it would write secrets from the environment into the file.
func Load(path string, env func(string) string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := parse(raw, env, true)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.Source.Path = path
	return cfg, nil
}

// Parse is Load from bytes: for a config uploaded to admin, or a test.
func Parse(raw []byte, env func(string) string) (*Config, error) {
	return parse(raw, env, true)
}

// Decode is Parse without Validate, for a tool that reads one section and validates only that one
// (ami-gateway replay --config reads classify and calls Classify.Validate). Problems in reading the
// file (unknown keys, wrong types) are still errors.
func Decode(raw []byte, env func(string) string) (*Config, error) {
	return parse(raw, env, false)
}

func parse(raw []byte, env func(string) string, validate bool) (*Config, error) {
	doc, err := parseDocument(raw)
	if err != nil {
		return nil, err
	}
	from, err := migrateDocument(doc)
	if err != nil {
		return nil, err
	}
	cfg := Defaults()
	d := newDecoder()
	d.decode(doc, reflect.ValueOf(cfg).Elem(), "", 0)
	cfg.Schema = Version
	ps := d.problems
	used, byPath, envProblems := applyEnv(cfg, env)
	ps = append(ps, envProblems...)
	if validate && !d.exhausted {
		if verr, ok := cfg.Validate().(Problems); ok {
			for _, p := range verr {
				if d.failed[p.Path] {
					continue // already reported as unreadable
				}
				if name := envSource(byPath, p.Path); name != "" {
					p.Path += " (set by " + name + ")"
				} else {
					p.Line = d.lines[p.Path]
				}
				ps = append(ps, p)
			}
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	cfg.Source = Source{FileSchema: from, Env: used}
	return cfg, nil
}

// envSource names the variable that set path (or the list or section path is in), if any.
func envSource(byPath map[string]string, path string) string {
	for p, name := range byPath {
		if path == p || strings.HasPrefix(path, p+"[") || strings.HasPrefix(path, p+".") {
			return name
		}
	}
	return ""
}
