package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func validConfig() *Config {
	c := Defaults()
	c.PBX = "pbx1"
	c.AMI.Username = "crm"
	c.AMI.Secret = "s3cr3t-ami"
	c.Redis.Password = "redis-pass"
	c.HTTP = map[string]HTTP{"admin": {Listen: ":8080"}}
	return c
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ringbridge.yaml")
	want := validConfig()
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got.Source = Source{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), "s3cr3t-ami") || !strings.HasPrefix(string(raw), "schema: 1\n") {
		t.Fatalf("file must hold the secret and start with the schema:\n%s", raw)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("new config file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestSaveRefusesInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ringbridge.yaml")
	c := validConfig()
	c.PBX = "a.b"
	err := Save(path, c)
	if err == nil || !strings.Contains(err.Error(), "pbx") {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Fatal("an invalid config was written")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	cases := []struct {
		name     string
		existing *os.FileMode // nil: no file before
		symlink  bool
		wantMode os.FileMode
	}{
		{name: "new file is private", wantMode: 0o600},
		{name: "existing mode kept", existing: ptr(os.FileMode(0o640)), wantMode: 0o640},
		{name: "symlink target replaced", existing: ptr(os.FileMode(0o644)), symlink: true, wantMode: 0o644},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.yaml")
			target := path
			if tc.symlink {
				target = filepath.Join(dir, "real.yaml")
			}
			if tc.existing != nil {
				if err := os.WriteFile(target, []byte("old"), *tc.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(target, *tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			if tc.symlink {
				if err := os.Symlink("real.yaml", path); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFileAtomic(path, []byte("new")); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, []byte("new")) {
				t.Fatalf("read %q, %v", got, err)
			}
			st, err := os.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.wantMode {
				t.Fatalf("mode %v, want %v", st.Mode().Perm(), tc.wantMode)
			}
			if tc.symlink {
				if fi, _ := os.Lstat(path); fi.Mode()&os.ModeSymlink == 0 {
					t.Fatal("the symlink was replaced by a file")
				}
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Fatalf("temp file left behind: %s", e.Name())
				}
			}
		})
	}
}

func TestWriteFileAtomicMissingDir(t *testing.T) {
	err := WriteFileAtomic(filepath.Join(t.TempDir(), "no", "such", "c.yaml"), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
