package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ringbridge/ringbridge/supervisor/bundle"
	"github.com/ringbridge/ringbridge/supervisor/docker/dockertest"
	"github.com/ringbridge/ringbridge/supervisor/registrytest"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

// TestImportBundle installs from an offline bundle on the real Engine: no registry at all, the
// images' repository host does not even exist.
func TestImportBundle(t *testing.T) {
	cli := dockertest.Client(t)
	rb := make([]byte, 4)
	rand.Read(rb)
	host := "rbimport-" + hex.EncodeToString(rb) + ".invalid"
	install := dockertest.Install(t, cli, host)
	bin := registrytest.FakeServiceBinary(t)
	dir := t.TempDir()
	key, _ := sign.GenerateKey()
	signer := sign.NewSigner(key)
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	keyPath := filepath.Join(dir, "release.pub")
	os.WriteFile(keyPath, pub, 0o600)

	// makeBundle writes a bundle of one release; unsigned names a service left without signature.
	makeBundle := func(version, unsigned string) (string, []string) {
		var ids []string
		r := release.Release{Version: release.MustVersion(version), Channel: release.Stable, Images: map[string]string{}}
		var entries []bundle.Entry
		for _, svc := range []string{"ami-gateway", "admin"} {
			img, err := registrytest.FakeServiceImage(bin, registrytest.FakeService{Service: svc, Version: version})
			if err != nil {
				t.Fatal(err)
			}
			h, _ := img.Digest()
			cfgName, _ := img.ConfigName()
			ids = append(ids, cfgName.String())
			ref, err := name.NewDigest(host + "/ringbridge/" + svc + "@" + h.String())
			if err != nil {
				t.Fatal(err)
			}
			e := bundle.Entry{Ref: ref, Image: img}
			if svc != unsigned {
				payload, sig, err := signer.SignatureLayer(ref, nil)
				if err != nil {
					t.Fatal(err)
				}
				if e.Signatures, err = sign.AppendSignature(nil, payload, sig); err != nil {
					t.Fatal(err)
				}
			}
			entries = append(entries, e)
			r.Images[svc] = ref.String()
		}
		raw, _ := json.Marshal(release.Index{Schema: 1, Releases: []release.Release{r}})
		sig, _ := signer.SignBlob(raw)
		var buf bytes.Buffer
		if err := bundle.Write(&buf, raw, sig, entries); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "ringbridge-"+version+".tar")
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p, ids
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("pbx: pbx1\nlog:\n  level: warn\nsupervisor:\n  public_key: %s\n  data_dir: %s\n  install: %s\n  network: none\n  health_timeout: 20s\n",
		keyPath, filepath.Join(dir, "data"), install)), 0o600)

	good, _ := makeBundle("1.0.0", "")
	// The first start of the service installs its bundled release; here through firstInstall,
	// which run calls (the rest of run needs RabbitMQ).
	cfg, err := loadFull(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := newSupervisor(context.Background(), cfg, cfgPath, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := firstInstall(context.Background(), sv, filepath.Join(dir, "absent.tar")); err != nil {
		t.Fatalf("first start without a bundle: %v", err)
	}
	if err := firstInstall(context.Background(), sv, good); err != nil {
		t.Fatalf("first start with the bundled release: %v", err)
	}
	rc, out, errs := runCLI(t, "import", "--config", cfgPath, good)
	if rc != 0 || !strings.Contains(out, "1.0.0 is installed: nothing to do") {
		t.Fatalf("import of what is installed: rc %d\n%s\n%s", rc, out, errs)
	}
	rc, out, errs = runCLI(t, "status", "--config", cfgPath)
	if rc != 0 || !strings.Contains(out, "installed: 1.0.0") || strings.Count(out, "1.0.0      running  healthy") != 2 {
		t.Fatalf("status: rc %d\n%s\n%s", rc, out, errs)
	}

	bad, badIDs := makeBundle("1.1.0", "admin")
	rc, out, errs = runCLI(t, "import", "--config", cfgPath, bad)
	if rc != 1 || !strings.Contains(errs, "has no signature in the bundle") {
		t.Fatalf("import of an unsigned image: rc %d\n%s\n%s", rc, out, errs)
	}
	t.Logf("refused: %s", strings.TrimSpace(errs))
	for _, id := range badIDs {
		if _, err := cli.ImageInspect(context.Background(), id); err == nil {
			t.Fatalf("image %s of the refused bundle reached the Engine", id)
		}
	}
	rc, out, _ = runCLI(t, "status", "--config", cfgPath)
	if rc != 0 || !strings.Contains(out, "installed: 1.0.0") {
		t.Fatalf("status after the refused import:\n%s", out)
	}
}
