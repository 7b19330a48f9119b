package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/docker/dockertest"
	"github.com/ringbridge/ringbridge/supervisor/registrytest"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

// TestBugreportHasNoSecret makes a service log every configured secret and carry one in its
// environment, takes a bug report, and greps the whole archive for each secret.
func TestBugreportHasNoSecret(t *testing.T) {
	cli := dockertest.Client(t)
	reg := registrytest.Start(t)
	install := dockertest.Install(t, cli, reg.Host)
	dir := t.TempDir()
	key, _ := sign.GenerateKey()
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o600)
	cfgBody := fmt.Sprintf(`pbx: pbx1
ami:
  username: ringbridge
  secret: Ami-S3cret-Value
rabbitmq:
  url: amqp://ringbridge:Rabbit-Passw0rd@rabbitmq:5672/
redis:
  password: Redis-Passw0rd
crm: bitrix
bitrix:
  portal: https://example.bitrix24.ru
  mode: webhook
  webhook:
    url: https://example.bitrix24.ru/rest/1/WebhookTok3n42/
    application_token: AppTok3n-Bitrix
log:
  level: warn
supervisor:
  public_key: %s
  data_dir: %s
  install: %s
  network: none
`, filepath.Join(dir, "release.pub"), filepath.Join(dir, "data"), install)
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(cfgBody), 0o600)
	cfg, err := config.Decode([]byte(cfgBody), nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets := cfg.Secrets()
	if len(secrets) < 5 {
		t.Fatalf("secrets %d: the test config should hold several", len(secrets))
	}

	img, err := registrytest.FakeServiceImage(registrytest.FakeServiceBinary(t), registrytest.FakeService{Service: "connector-bx", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "ringbridge/connector-bx", "1.0.0")
	ctx := context.Background()
	e := docker.New(cli, install, quietLog(), docker.WithPollInterval(100*time.Millisecond))
	if _, err := e.Pull(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	// A careless service: it logs every secret and has one in its environment.
	id, err := e.Create(ctx, docker.Spec{Service: "connector-bx", Version: "1.0.0", Image: ref, Network: "none",
		Env: []string{"FAKESVC_SAY=calling with " + strings.Join(secrets, " and "), "RINGBRIDGE_AMI_SECRET=Ami-S3cret-Value"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitHealthy(ctx, id, 20*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "report.tar.gz")
	rc, stdout, stderr := runCLI(t, "bugreport", "--config", cfgPath, "--out", out)
	if rc != 0 {
		t.Fatalf("bugreport: rc %d\n%s\n%s", rc, stdout, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		files[h.Name] = string(body)
	}
	name := docker.ContainerName(install, "connector-bx")
	for _, want := range []string{"versions.json", "config.yaml", "containers.json", "containers/" + name + "/inspect.json", "containers/" + name + "/logs.txt"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the report lacks %s (has %v)", want, keys(files))
		}
	}
	for fname, body := range files {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s holds the secret %q", fname, s[:3]+"…")
			}
		}
	}
	logs := files["containers/"+name+"/logs.txt"]
	if !strings.Contains(logs, "calling with <secret>") || !strings.Contains(files["config.yaml"], "<secret>") {
		t.Fatalf("the secrets were not replaced but dropped?\nlogs: %s\nconfig: %s", logs, files["config.yaml"])
	}
	t.Logf("report of %d files, no secret found; logs: %s", len(files), strings.TrimSpace(logs))
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
