package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunMigrateCLI(t *testing.T) {
	const current = "schema: 1\npbx: pbx1\nami:\n  username: crm\n  secret: x\n"
	cases := []struct {
		name       string
		content    string
		args       func(path string) []string
		wantCode   int
		wantOut    []string
		wantErr    []string
		wantFile   string // "" means unchanged
		wantBackup bool
	}{
		{
			name: "prints migrated yaml, file unchanged", content: v0File,
			args:    func(p string) []string { return []string{p} },
			wantOut: []string{"schema: 1", "secret: old-secret # keep it safe"},
			wantErr: []string{"schema 0 -> 1"},
		},
		{
			name: "in place keeps a backup", content: v0File,
			args:       func(p string) []string { return []string{"--in-place", p} },
			wantOut:    []string{"migrated", "from schema 0 to 1", ".bak"},
			wantFile:   "secret: old-secret",
			wantBackup: true,
		},
		{
			name: "flag after the file", content: v0File,
			args:       func(p string) []string { return []string{p, "--in-place"} },
			wantFile:   "schema: 1",
			wantBackup: true,
		},
		{
			name: "dry run changes nothing", content: v0File,
			args:    func(p string) []string { return []string{"--in-place", "--dry-run", p} },
			wantOut: []string{"would migrate", "schema: 1"},
		},
		{
			name: "already current", content: current,
			args:    func(p string) []string { return []string{"--in-place", p} },
			wantOut: []string{"already at schema 1: nothing to do"},
		},
		{
			name: "newer schema refused", content: "schema: 7\n",
			args:     func(p string) []string { return []string{"--in-place", p} },
			wantCode: 1,
			wantErr:  []string{"config schema 7 is newer than this build knows (1)"},
		},
		{
			name: "migrated but invalid warns", content: "pbx: a.b\nami:\n  password: x\n",
			args:    func(p string) []string { return []string{p} },
			wantOut: []string{"secret: x"},
			wantErr: []string{"warning:", `"a.b" cannot be used in a routing key`},
		},
		{
			name: "no file", content: current,
			args:     func(string) []string { return nil },
			wantCode: 2,
			wantErr:  []string{"expected one FILE", "usage: migrate-config"},
		},
		{
			name: "unknown flag", content: current,
			args:     func(p string) []string { return []string{"--force", p} },
			wantCode: 2,
			wantErr:  []string{"unknown flag --force"},
		},
		{
			name: "missing file", content: current,
			args:     func(p string) []string { return []string{p + ".nope"} },
			wantCode: 1,
			wantErr:  []string{"no such file"},
		},
		{
			name: "help", content: current,
			args:    func(string) []string { return []string{"--help"} },
			wantOut: []string{"usage: migrate-config [--in-place] [--dry-run] FILE"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ringbridge.yaml")
			if err := os.WriteFile(path, []byte(tc.content), 0o640); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := RunMigrateCLI(tc.args(path), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &stdout, &stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &stdout)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &stderr)
				}
			}
			got, _ := os.ReadFile(path)
			if tc.wantFile == "" && string(got) != tc.content {
				t.Errorf("file changed:\n%s", got)
			}
			if tc.wantFile != "" && !strings.Contains(string(got), tc.wantFile) {
				t.Errorf("file lacks %q:\n%s", tc.wantFile, got)
			}
			bak, err := os.ReadFile(path + ".bak")
			if tc.wantBackup {
				if err != nil || string(bak) != tc.content {
					t.Errorf("backup %q, %v; want the original", bak, err)
				}
				if st, _ := os.Stat(path + ".bak"); st != nil && st.Mode().Perm() != 0o640 {
					t.Errorf("backup mode %v, want the file's 0640", st.Mode().Perm())
				}
			} else if err == nil {
				t.Errorf("unexpected backup written")
			}
		})
	}
}
