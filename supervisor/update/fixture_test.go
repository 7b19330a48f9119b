package update

import (
	"context"
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/docker/dockertest"
	"github.com/ringbridge/ringbridge/supervisor/registrytest"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

const initialConfig = "schema: 1\npbx: pbx1\n"

// fixture is an install on the real Engine: two fake services (ami-gateway start-first with a
// volume, admin stop-first), releases signed into an in-process registry, and an updater.
type fixture struct {
	cli        *client.Client
	reg        *registrytest.Registry
	engine     *docker.Engine
	install    string
	dataDir    string
	configPath string
	signer     *sign.Signer
	attacker   *sign.Signer
	verifier   *sign.Verifier
	services   []Service
	bin        []byte
	mu         sync.Mutex
	events     []Event
}

var (
	binOnce sync.Once
	fakeBin []byte
)

func quiet() logrus.FieldLogger {
	l, _ := test.NewNullLogger()
	return l
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cli := dockertest.Client(t)
	reg := registrytest.Start(t)
	install := dockertest.Install(t, cli, reg.Host)
	binOnce.Do(func() { fakeBin = registrytest.FakeServiceBinary(t) })
	key, _ := sign.GenerateKey()
	other, _ := sign.GenerateKey()
	v, err := sign.NewVerifier([]*ecdsa.PublicKey{&key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &fixture{cli: cli, reg: reg, install: install, dataDir: filepath.Join(dir, "data"),
		configPath: filepath.Join(dir, "config.yaml"), signer: sign.NewSigner(key), attacker: sign.NewSigner(other),
		verifier: v, bin: fakeBin,
		engine: docker.New(cli, install, quiet(), docker.WithPollInterval(100*time.Millisecond), docker.WithStallTimeout(30*time.Second))}
	if err := os.WriteFile(f.configPath, []byte(initialConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	f.services = []Service{
		{Name: "ami-gateway", StartFirst: true, Network: "none", Volumes: []string{install + "-gw"},
			Mounts: []docker.Mount{{Volume: install + "-gw", Target: "/data"}}},
		{Name: "admin", Network: "none"},
	}
	return f
}

func (f *fixture) updater(t *testing.T) *Updater {
	t.Helper()
	u, err := New(Config{DataDir: f.dataDir, ConfigPath: f.configPath, Services: f.services, HealthTimeout: 15 * time.Second,
		Settle: time.Second, StopTimeout: 5 * time.Second, BackupKeep: 3},
		f.engine, f.verifier, RegistrySizer(), EventsFunc(func(e Event) {
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
		}), quiet())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// relOpts says how a test release is made.
type relOpts struct {
	modes    map[string]string // service -> fakesvc mode (healthy by default)
	migrate  string            // what the release's migration appends to the config ("" none)
	signer   *sign.Signer      // who signs (the release key by default)
	unsigned bool
	// crashAfter makes each service of the release exit this long after becoming healthy.
	crashAfter time.Duration
}

// rel builds, pushes and signs the images of one release.
func (f *fixture) rel(t *testing.T, version string, o relOpts) *release.Release {
	t.Helper()
	r := &release.Release{Version: release.MustVersion(version), Channel: release.Stable, Images: map[string]string{},
		ConfigMigration: o.migrate != ""}
	signer := f.signer
	if o.signer != nil {
		signer = o.signer
	}
	for _, svc := range f.services {
		mode := o.modes[svc.Name]
		if mode == "" {
			mode = "healthy"
		}
		img, err := registrytest.FakeServiceImage(f.bin, registrytest.FakeService{Service: svc.Name, Version: version, Mode: mode,
			Migrate: o.migrate, StartPeriod: 3 * time.Second, CrashAfter: o.crashAfter})
		if err != nil {
			t.Fatal(err)
		}
		ref := f.reg.Push(t, img, "ringbridge/"+svc.Name, version)
		if !o.unsigned {
			if err := signer.SignImage(context.Background(), ref, nil); err != nil {
				t.Fatal(err)
			}
		}
		r.Images[svc.Name] = ref.String()
	}
	return r
}

// running returns service -> its owned container, failing on duplicates or leftover helpers.
func (f *fixture) running(t *testing.T) map[string]docker.Container {
	t.Helper()
	cs, err := f.engine.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docker.Container{}
	for _, c := range cs {
		if c.Role != docker.RoleService {
			t.Fatalf("a %s container is left: %+v", c.Role, c)
		}
		if _, dup := out[c.Service]; dup {
			t.Fatalf("two containers of %s: %+v", c.Service, cs)
		}
		out[c.Service] = c
	}
	return out
}

// expectRelease checks that every service runs from r's image under its canonical name, that the
// state says r and that no journal is left.
func (f *fixture) expectRelease(t *testing.T, r *release.Release) {
	t.Helper()
	got := f.running(t)
	if len(got) != len(f.services) {
		t.Fatalf("running %+v, want every service of %s", got, r.Version)
	}
	for _, svc := range f.services {
		c := got[svc.Name]
		if c.Image != r.Images[svc.Name] || c.State != "running" || c.Name != docker.ContainerName(f.install, svc.Name) {
			t.Fatalf("%s: %+v, want it running from %s", svc.Name, c, r.Images[svc.Name])
		}
	}
	st, err := LoadState(f.dataDir)
	if err != nil || st.Version != r.Version {
		t.Fatalf("state %+v (err %v), want %s", st, err, r.Version)
	}
	if j, _ := LoadJournal(f.dataDir); j != nil {
		t.Fatalf("journal left: %+v", j)
	}
}

func (f *fixture) config(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.configPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// watchAvailability samples the containers of service every 25ms until stop is closed and
// reports the longest stretch with no running, healthy copy.
func (f *fixture) watchAvailability(service string, stop <-chan struct{}) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		var worst time.Duration
		var downSince time.Time
		for {
			up := false
			if cs, err := f.engine.List(context.Background()); err == nil {
				for _, c := range cs {
					up = up || (c.Service == service && c.State == "running" && c.Health == "healthy")
				}
			}
			now := time.Now()
			switch {
			case !up && downSince.IsZero():
				downSince = now
			case up && !downSince.IsZero():
				worst = max(worst, now.Sub(downSince))
				downSince = time.Time{}
			}
			select {
			case <-stop:
				if !downSince.IsZero() {
					worst = max(worst, time.Since(downSince))
				}
				out <- worst
				return
			case <-time.After(25 * time.Millisecond):
			}
		}
	}()
	return out
}

func rounded(m map[string]time.Duration) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.Round(time.Millisecond).String()
	}
	return out
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
