package config

import (
	"fmt"
	"net/url"
	"reflect"

	"gopkg.in/yaml.v3"
)

// Redacted returns a deep copy of c with every Secret (found by type, so a secret field added later
// is covered) replaced by <secret>; an empty secret stays empty, so "not set" stays visible.
func (c *Config) Redacted() *Config {
	r := c.clone()
	eachSecret(reflect.ValueOf(r).Elem(), func(s reflect.Value) {
		if s.String() != "" {
			s.SetString(redacted)
		}
	})
	return r
}

// Dump renders the config as YAML with every secret replaced by <secret>, for a bug report or a
// status page.
func (c *Config) Dump() ([]byte, error) {
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return nil, fmt.Errorf("rendering config: %w", err)
	}
	return out, nil
}

// Secrets returns the values of every non-empty Secret in c, and the password inside any secret
// that is a URL (the amqp URL), for the logging redactor: an error message may quote the password
// alone.
func (c *Config) Secrets() []string {
	var out []string
	seen := map[string]bool{}
	addOne := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	eachSecret(reflect.ValueOf(c).Elem(), func(s reflect.Value) {
		v := s.String()
		addOne(v)
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				addOne(p)
				addOne(url.QueryEscape(p))
				addOne(url.PathEscape(p))
			}
		}
	})
	return out
}

// eachSecret calls fn with every settable Secret inside v.
func eachSecret(v reflect.Value, fn func(reflect.Value)) {
	if v.Type() == secretType {
		fn(v)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				eachSecret(v.Field(i), fn)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			eachSecret(v.Index(i), fn)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			// Map values are not addressable: change a copy and put it back.
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			eachSecret(e, fn)
			v.SetMapIndex(k, e)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			eachSecret(v.Elem(), fn)
		}
	}
}

// clone deep-copies c, so a redacted or saved copy never shares a slice or map with the original.
func (c *Config) clone() *Config {
	out := reflect.New(reflect.TypeOf(*c)).Elem()
	deepCopy(out, reflect.ValueOf(*c))
	cp := out.Interface().(Config)
	return &cp
}

func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		for _, k := range src.MapKeys() {
			e := reflect.New(src.Type().Elem()).Elem()
			deepCopy(e, src.MapIndex(k))
			m.SetMapIndex(k, e)
		}
		dst.Set(m)
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		deepCopy(p.Elem(), src.Elem())
		dst.Set(p)
	default:
		dst.Set(src)
	}
}
