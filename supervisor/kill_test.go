package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/docker/dockertest"
	"github.com/ringbridge/ringbridge/supervisor/registrytest"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
	"github.com/ringbridge/ringbridge/supervisor/update"
)

// TestKilledMidSwap kills a real supervisor process with SIGKILL while its new ami-gateway copy
// is starting beside the old one, then checks that the next supervisor command finds the journal
// and rolls the install back to a whole 1.0.0: one container per service, the old version, the
// state and config as before.
func TestKilledMidSwap(t *testing.T) {
	cli := dockertest.Client(t)
	reg := registrytest.Start(t)
	install := dockertest.Install(t, cli, reg.Host)
	fakeBin := registrytest.FakeServiceBinary(t)
	dir := t.TempDir()
	supBin := filepath.Join(dir, "supervisor")
	build := exec.Command("go", "build", "-o", supBin, "github.com/ringbridge/ringbridge/supervisor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the supervisor: %v\n%s", err, msg)
	}

	key, _ := sign.GenerateKey()
	signer := sign.NewSigner(key)
	ix := release.Index{Schema: 1}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		r := release.Release{Version: release.MustVersion(v), Channel: release.Stable, Images: map[string]string{}}
		for _, svc := range []string{"ami-gateway", "admin"} {
			fs := registrytest.FakeService{Service: svc, Version: v}
			if v == "1.1.0" {
				// A slow start gives the test time to kill the supervisor mid-swap.
				fs.Delay, fs.StartPeriod = 20*time.Second, 30*time.Second
			}
			img, err := registrytest.FakeServiceImage(fakeBin, fs)
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
	raw, _ := json.Marshal(ix)
	sig, _ := signer.SignBlob(raw)
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	os.WriteFile(filepath.Join(dir, "index.json"), raw, 0o600)
	os.WriteFile(filepath.Join(dir, "index.json.sig"), sig, 0o600)
	os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o600)
	dataDir := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "config.yaml")
	cfgBody := fmt.Sprintf("pbx: pbx1\nlog:\n  level: warn\nsupervisor:\n  index: %s\n  public_key: %s\n  data_dir: %s\n  install: %s\n  network: none\n  health_timeout: 60s\n",
		filepath.Join(dir, "index.json"), filepath.Join(dir, "release.pub"), dataDir, install)
	os.WriteFile(cfgPath, []byte(cfgBody), 0o600)

	if rc, out, errs := runCLI(t, "update", "--config", cfgPath, "--to", "1.0.0"); rc != 0 {
		t.Fatalf("install 1.0.0: %d\n%s\n%s", rc, out, errs)
	}

	var out bytes.Buffer
	proc := exec.Command(supBin, "update", "--config", cfgPath)
	proc.Stdout, proc.Stderr = &out, &out
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	engine := docker.New(cli, install, quietLog())
	next := docker.ContainerName(install, "ami-gateway") + "-next"
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, _ := engine.List(context.Background())
		started := false
		for _, c := range cs {
			started = started || (c.Name == next && c.State == "running")
		}
		if started {
			break
		}
		if time.Now().After(deadline) {
			proc.Process.Kill()
			proc.Wait()
			t.Fatalf("the new copy never started:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := proc.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
		t.Fatal(err)
	}
	proc.Wait()
	j, err := update.LoadJournal(dataDir)
	if err != nil || j == nil || j.Phase != update.PhaseApplying {
		t.Fatalf("journal after the kill: %+v, %v\n%s", j, err, out.String())
	}
	t.Logf("killed during %v; steps done %v", j.To.Version, j.Steps)

	rc, status, _ := runCLI(t, "status", "--config", cfgPath)
	if rc != 0 || !strings.Contains(status, "unfinished update") {
		t.Fatalf("status after the kill:\n%s", status)
	}
	start := time.Now()
	rc, rec, errs := runCLI(t, "update", "--config", cfgPath, "--to", "1.0.0")
	if rc != 0 || !strings.Contains(rec, "finished the interrupted update") {
		t.Fatalf("next start: rc %d\n%s\n%s", rc, rec, errs)
	}
	t.Logf("recovered in %s:\n%s", time.Since(start).Round(time.Millisecond), rec)
	cs, err := engine.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("containers after recovery: %+v", cs)
	}
	for _, c := range cs {
		if c.Version != "1.0.0" || c.State != "running" || c.Name != docker.ContainerName(install, c.Service) {
			t.Fatalf("after recovery: %+v", c)
		}
	}
	if st, _ := update.LoadState(dataDir); st.Version.String() != "1.0.0" {
		t.Fatalf("state %+v", st)
	}
	if j, _ := update.LoadJournal(dataDir); j != nil {
		t.Fatalf("journal left: %+v", j)
	}
	if body, _ := os.ReadFile(cfgPath); string(body) != cfgBody {
		t.Fatalf("config changed:\n%s", body)
	}
}

func quietLog() logrus.FieldLogger {
	l, _ := test.NewNullLogger()
	return l
}
