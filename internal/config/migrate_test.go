package config

import (
	"errors"
	"strings"
	"testing"
)

const v0File = `# ringbridge config for the office

# which PBX this is
pbx: pbx1 # routing key word
ami:
  address: pbx:5038
  username: crm
  # the manager.conf secret
  password: old-secret # keep it safe
  auth: md5
`

func TestMigrateV0ToV1(t *testing.T) {
	out, from, to, err := Migrate([]byte(v0File))
	if err != nil {
		t.Fatal(err)
	}
	if from != 0 || to != 1 {
		t.Fatalf("from %d to %d", from, to)
	}
	got := string(out)
	want := `# ringbridge config for the office

schema: 1
# which PBX this is
pbx: pbx1 # routing key word
ami:
  address: pbx:5038
  username: crm
  # the manager.conf secret
  secret: old-secret # keep it safe
  auth: md5
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	cfg, err := Parse(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AMI.Secret.Reveal() != "old-secret" || cfg.Source.FileSchema != 1 {
		t.Fatalf("migrated config: secret %q, file schema %d", cfg.AMI.Secret.Reveal(), cfg.Source.FileSchema)
	}
}

func TestMigrate(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		from, to int
		want     string // substring of the output, or of the error when wantErr
		wantErr  bool
	}{
		{name: "current file is returned untouched", in: "schema: 1\npbx:   p   # odd spacing\n", from: 1, to: 1, want: "pbx:   p   # odd spacing"},
		{name: "empty file gets a schema", in: "", from: 0, to: 1, want: "schema: 1\n"},
		{name: "comments only", in: "# nothing yet\n", from: 0, to: 1, want: "schema: 1"},
		{name: "v0 without ami", in: "pbx: p\n", from: 0, to: 1, want: "schema: 1\npbx: p\n"},
		{name: "v0 with secret already", in: "ami:\n  secret: s\n", from: 0, to: 1, want: "  secret: s"},
		{name: "v0 with both, same value", in: "ami:\n  password: s\n  secret: s\n", from: 0, to: 1, want: "ami:\n  secret: s\n"},
		{name: "v0 with both, different values", in: "ami:\n  password: a\n  secret: b\n", wantErr: true, want: "ami has both password (the old name) and secret"},
		{name: "v0 ami behind an alias", in: "base: &b {password: x}\nami: *b\n", from: 0, to: 1, want: "base: &b {secret: x}"},
		{name: "explicit schema 0", in: "schema: 0\nami:\n  password: x\n", from: 0, to: 1, want: "schema: 1\nami:\n  secret: x\n"},
		{name: "newer schema", in: "schema: 7\n", wantErr: true, want: "config schema 7 is newer than this build knows (1): update ringbridge, or restore the backup the update made"},
		{name: "negative schema", in: "schema: -1\n", wantErr: true, want: "is not a schema version"},
		{name: "schema as text", in: "schema: '1'\n", wantErr: true, want: "is not a schema version"},
		{name: "not a mapping", in: "just text\n", wantErr: true, want: "config must be a mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, from, to, err := Migrate([]byte(tc.in))
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if from != tc.from || to != tc.to {
				t.Fatalf("from %d to %d, want %d to %d", from, to, tc.from, tc.to)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestMigrateNewerIsTyped(t *testing.T) {
	_, _, _, err := Migrate([]byte("schema: 9\n"))
	var ne *NewerSchemaError
	if !errors.As(err, &ne) || ne.Schema != 9 {
		t.Fatalf("err = %v", err)
	}
}

func TestMigrationsCoverEveryVersion(t *testing.T) {
	steps := migrations()
	if len(steps) != Version {
		t.Fatalf("%d migrations for schema %d: want one per version step", len(steps), Version)
	}
	for i, s := range steps {
		if s.from != i || s.apply == nil || s.what == "" {
			t.Fatalf("step %d: from %d, apply set %v, what %q", i, s.from, s.apply != nil, s.what)
		}
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	once, _, _, err := Migrate([]byte(v0File))
	if err != nil {
		t.Fatal(err)
	}
	twice, from, to, err := Migrate(once)
	if err != nil {
		t.Fatal(err)
	}
	if from != Version || to != Version || string(twice) != string(once) {
		t.Fatalf("second run changed the file (from %d to %d):\n%s", from, to, twice)
	}
}
