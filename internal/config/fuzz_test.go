package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzLoad: the config file comes from outside (an operator's editor, an upload to admin), so any
// bytes must give a config or an error, never a panic; a config that loads must also survive
// Dump, migration and a save/load round trip.
func FuzzLoad(f *testing.F) {
	seeds := []string{
		minimal,
		v0File,
		"",
		"schema: 7\n",
		"- a\n",
		"a: &a [*a]\n",
		"x: &x {<<: *x}\n",
		"schema: 1\npbx: p\nami: {username: u, secret: s, <<: [{auth: plain}]}\n",
		"schema: 1\npbx: p\nami:\n  username: u\n  secret: s\nhttp:\n  admin: {listen: ':1'}\n",
		"schema: 1\nclassify:\n  extension_channels: ['(?P<num>']\n",
		"schema: !!binary aGVsbG8=\n",
		"? [a]\n: b\n",
		"---\n---\n",
		"pbx: \"\\u0000\"\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "ringbridge.yaml")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Load gave config %v and error %v: want exactly one", cfg != nil, err)
		}
		if _, _, _, err := Migrate(raw); err != nil && cfg != nil {
			t.Fatalf("Load accepted what Migrate refuses: %v", err)
		}
		if cfg == nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load returned a config that does not validate: %v", err)
		}
		dump, err := cfg.Dump()
		if err != nil {
			t.Fatalf("Dump: %v", err)
		}
		for _, s := range cfg.Secrets() {
			if len(s) > len("<secret>") && strings.Contains(string(dump), s) {
				t.Fatalf("Dump shows secret %q", s)
			}
		}
		// What Save would write must load back to the same config.
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := Parse(out, nil)
		if err != nil {
			t.Fatalf("saved config does not load: %v\n%s", err, out)
		}
		back.Source, cfg.Source = Source{}, Source{}
		if !reflect.DeepEqual(back, cfg) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, back)
		}
	})
}
