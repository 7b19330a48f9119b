package registrytest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FakeServiceBinary builds fakesvc (a static linux binary) into the test's temp dir and returns
// its bytes. The Go build cache makes repeated builds cheap.
func FakeServiceBinary(t testing.TB) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "fakesvc")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out,
		"github.com/ringbridge/ringbridge/supervisor/registrytest/fakesvc")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building fakesvc: %v\n%s", err, msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// FakeService describes one fakesvc image.
type FakeService struct {
	Service string // the io.ringbridge.service label
	Version string
	Mode    string // healthy, unhealthy, crash
	Delay   time.Duration
	Migrate string // what migrate-config appends ("" nothing, "fail" fails)
	// CrashAfter makes a healthy service exit this long after becoming healthy.
	CrashAfter time.Duration
	// HealthInterval is the HEALTHCHECK interval (default 200ms: tests wait for health often).
	HealthInterval time.Duration
	// StartPeriod is the HEALTHCHECK start period (failures in it do not count).
	StartPeriod time.Duration
	// NoHealthcheck leaves the HEALTHCHECK out.
	NoHealthcheck bool
}

// NonceLabel holds a random value in every test image, so that no two tests (in one process or in
// parallel packages) ever make the same image: the Engine would store it once, and one test's
// cleanup would remove the image another test still runs.
const NonceLabel = "io.ringbridge.test.nonce"

// Nonce returns a new random value for NonceLabel.
func Nonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FakeServiceImage is a FROM-scratch image of bin (FakeServiceBinary) behaving as f says, with
// /tmp and /data directories and a HEALTHCHECK running "fakesvc healthcheck".
func FakeServiceImage(bin []byte, f FakeService) (v1.Image, error) {
	layer, err := Layer(map[string]File{
		"app":  {Mode: 0o755, Body: bin},
		"tmp":  {Mode: 0o1777, Dir: true},
		"data": {Mode: 0o755, Dir: true},
	})
	if err != nil {
		return nil, err
	}
	interval := f.HealthInterval
	if interval == 0 {
		interval = 200 * time.Millisecond
	}
	cfg := v1.Config{
		Entrypoint: []string{"/app"},
		Cmd:        []string{"run"},
		Env: []string{
			"FAKESVC_MODE=" + f.Mode, "FAKESVC_VERSION=" + f.Version,
			"FAKESVC_DELAY=" + f.Delay.String(), "FAKESVC_MIGRATE=" + f.Migrate,
			"FAKESVC_CRASH_AFTER=" + f.CrashAfter.String(),
		},
		Labels: map[string]string{
			"io.ringbridge.service":            f.Service,
			"org.opencontainers.image.version": f.Version,
			NonceLabel:                         Nonce(),
		},
		StopSignal: "SIGTERM",
	}
	if !f.NoHealthcheck {
		cfg.Healthcheck = &v1.HealthConfig{
			Test:        []string{"CMD", "/app", "healthcheck"},
			Interval:    interval,
			StartPeriod: f.StartPeriod,
			Timeout:     5 * time.Second,
			Retries:     2,
		}
	}
	img, err := ScratchImage(cfg, layer)
	if err != nil {
		return nil, fmt.Errorf("fakesvc image: %w", err)
	}
	return img, nil
}
