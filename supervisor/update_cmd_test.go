package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/supervisor/docker/dockertest"
	"github.com/ringbridge/ringbridge/supervisor/registrytest"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

// TestUpdateCommand drives the binary's update and status commands against the real Engine: a
// signed index on disk, fakesvc images for ami-gateway and admin in the in-process registry.
func TestUpdateCommand(t *testing.T) {
	cli := dockertest.Client(t)
	reg := registrytest.Start(t)
	install := dockertest.Install(t, cli, reg.Host)
	bin := registrytest.FakeServiceBinary(t)
	dir := t.TempDir()
	key, _ := sign.GenerateKey()
	signer := sign.NewSigner(key)

	ix := release.Index{Schema: 1}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		r := release.Release{Version: release.MustVersion(v), Channel: release.Stable, Images: map[string]string{}, Changelog: "release " + v}
		for _, svc := range []string{"ami-gateway", "admin"} {
			img, err := registrytest.FakeServiceImage(bin, registrytest.FakeService{Service: svc, Version: v})
			if err != nil {
				t.Fatal(err)
			}
			ref := reg.Push(t, img, "ringbridge/"+svc, v)
			if err := signer.SignImage(context.Background(), ref, nil); err != nil {
				t.Fatal(err)
			}
			r.Images[svc] = ref.String()
		}
		ix.Releases = append(ix.Releases, r)
	}
	raw, _ := json.MarshalIndent(ix, "", "  ")
	sig, _ := signer.SignBlob(raw)
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	write := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	indexPath := write("index.json", raw)
	write("index.json.sig", sig)
	keyPath := write("release.pub", pub)
	cfgPath := write("config.yaml", []byte(fmt.Sprintf(`pbx: pbx1
log:
  level: warn
supervisor:
  channel: stable
  index: %s
  public_key: %s
  data_dir: %s
  install: %s
  network: none
  health_timeout: 20s
`, indexPath, keyPath, filepath.Join(dir, "data"), install)))

	rc, out, errs := runCLI(t, "update", "--config", cfgPath, "--to", "1.0.0")
	if rc != 0 {
		t.Fatalf("update to 1.0.0: rc %d\n%s\n%s", rc, out, errs)
	}
	t.Logf("update --to 1.0.0:\n%s", out)
	start := time.Now()
	rc, out, errs = runCLI(t, "update", "--config", cfgPath)
	if rc != 0 || !strings.Contains(out, "1.0.0 -> 1.1.0") || !strings.Contains(out, "1.1.0 installed") {
		t.Fatalf("update to the newest: rc %d\n%s\n%s", rc, out, errs)
	}
	t.Logf("update to the newest in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	rc, out, errs = runCLI(t, "status", "--config", cfgPath)
	if rc != 0 || !strings.Contains(out, "installed: 1.1.0 (channel stable)") ||
		strings.Count(out, "1.1.0      running  healthy") != 2 {
		t.Fatalf("status: rc %d\n%s\n%s", rc, out, errs)
	}
	rc, out, _ = runCLI(t, "update", "--config", cfgPath)
	if rc != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("update when current: rc %d\n%s", rc, out)
	}

	rc, out, errs = runCLI(t, "backup", "--config", cfgPath)
	if rc != 0 || !strings.HasPrefix(out, "backup ") {
		t.Fatalf("backup: rc %d\n%s\n%s", rc, out, errs)
	}
	id := strings.TrimSuffix(strings.Fields(out)[1], ":")
	rc, out, _ = runCLI(t, "backup", "--list", "--config", cfgPath)
	if rc != 0 || !strings.Contains(out, id) || !strings.Contains(out, "asked by an operator") {
		t.Fatalf("backup --list:\n%s", out)
	}
	rc, out, errs = runCLI(t, "restore", "--config", cfgPath, id)
	if rc != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore: rc %d\n%s\n%s", rc, out, errs)
	}
	rc, _, errs = runCLI(t, "restore", "--config", cfgPath, "no-such-backup")
	if rc != 1 || !strings.Contains(errs, "incomplete or missing") {
		t.Fatalf("restore of an unknown backup: rc %d\n%s", rc, errs)
	}
}
