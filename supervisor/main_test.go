package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

const testIndex = `{"schema":1,"releases":[
 {"version":"1.0.0","channel":"stable","images":{"ami-gateway":"127.0.0.1:5000/ringbridge/ami-gateway@sha256:1111111111111111111111111111111111111111111111111111111111111111"},"changelog":"First"},
 {"version":"1.1.0","channel":"stable","config_migration":true,"images":{"ami-gateway":"127.0.0.1:5000/ringbridge/ami-gateway@sha256:2222222222222222222222222222222222222222222222222222222222222222"},"changelog":"Schema 2"},
 {"version":"1.2.0","channel":"stable","images":{"ami-gateway":"127.0.0.1:5000/ringbridge/ami-gateway@sha256:3333333333333333333333333333333333333333333333333333333333333333"},"changelog":"Faster"}
]}`

func TestPlanCommand(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "rel")
	t.Setenv("COSIGN_PASSWORD", "")
	t.Setenv("RINGBRIDGE_CONFIG", filepath.Join(dir, "absent.yaml"))
	if rc, _, errs := runCLI(t, "keygen", "--out", prefix); rc != 0 {
		t.Fatalf("keygen: %d %s", rc, errs)
	}
	if rc, _, _ := runCLI(t, "keygen", "--out", prefix); rc == 0 {
		t.Fatal("keygen overwrote a key")
	}
	index := filepath.Join(dir, "index.json")
	if err := os.WriteFile(index, []byte(testIndex), 0o644); err != nil {
		t.Fatal(err)
	}
	if rc, _, errs := runCLI(t, "sign-index", "--key", prefix+".key", index); rc != 0 {
		t.Fatalf("sign-index: %d %s", rc, errs)
	}
	cases := []struct {
		name    string
		args    []string
		rc      int
		wantOut string
		wantErr string
	}{
		{"chain through the migration", []string{"--to", "1.2.0", "--installed", "1.0.0"}, 0, "1.0.0 -> 1.1.0 -> 1.2.0", ""},
		{"newest by default", []string{"--installed", "1.1.0"}, 0, "1.1.0 -> 1.2.0", ""},
		{"fresh install", nil, 0, "(nothing installed) -> 1.2.0", ""},
		{"downgrade", []string{"--to", "1.0.0", "--installed", "1.2.0"}, 1, "", "downgrade refused"},
		{"unknown", []string{"--to", "3.0.0", "--installed", "1.2.0"}, 1, "", "offers 1.0.0, 1.1.0, 1.2.0"},
		{"bad channel", []string{"--channel", "nightly"}, 2, "", "write stable, beta or dev"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"plan", "--index", index, "--key", prefix + ".pub"}, c.args...)
			rc, out, errs := runCLI(t, args...)
			if rc != c.rc || !strings.Contains(out, c.wantOut) || !strings.Contains(errs, c.wantErr) {
				t.Fatalf("rc %d (want %d)\nstdout: %s\nstderr: %s", rc, c.rc, out, errs)
			}
		})
	}
	t.Run("index signature bad", func(t *testing.T) {
		tampered := strings.Replace(testIndex, `"config_migration":true,`, "", 1)
		if err := os.WriteFile(index, []byte(tampered), 0o644); err != nil {
			t.Fatal(err)
		}
		rc, out, errs := runCLI(t, "plan", "--index", index, "--key", prefix+".pub", "--to", "1.2.0", "--installed", "1.0.0")
		if rc != 1 || out != "" || !strings.Contains(errs, "signature does not verify") {
			t.Fatalf("rc %d\nstdout: %s\nstderr: %s", rc, out, errs)
		}
	})
}
