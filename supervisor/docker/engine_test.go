package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/docker/dockertest"
	"github.com/ringbridge/ringbridge/supervisor/registrytest"
	"github.com/ringbridge/ringbridge/supervisor/retry"
)

var (
	binOnce sync.Once
	bin     []byte
)

func fakeBinary(t *testing.T) []byte {
	binOnce.Do(func() { bin = registrytest.FakeServiceBinary(t) })
	if bin == nil {
		t.Fatal("fakesvc did not build")
	}
	return bin
}

// fakeImage is a fakesvc image, plus a layer of extra random bytes when extra > 0 (a layer big
// enough to watch downloading).
func fakeImage(t *testing.T, f registrytest.FakeService, extra int) v1.Image {
	t.Helper()
	img, err := registrytest.FakeServiceImage(fakeBinary(t), f)
	if err != nil {
		t.Fatal(err)
	}
	if extra > 0 {
		blob := make([]byte, extra)
		rand.Read(blob)
		l, err := registrytest.Layer(map[string]registrytest.File{"blob": {Mode: 0o644, Body: blob}})
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func quiet() logrus.FieldLogger {
	l, _ := test.NewNullLogger()
	return l
}

// countingAPI counts ImagePull calls on the real client.
type countingAPI struct {
	*client.Client
	pulls atomic.Int32
}

func (c *countingAPI) ImagePull(ctx context.Context, ref string, o image.PullOptions) (io.ReadCloser, error) {
	c.pulls.Add(1)
	return c.Client.ImagePull(ctx, ref, o)
}

func TestPullFromRegistry(t *testing.T) {
	cli := dockertest.Client(t)
	reg := registrytest.Start(t)
	install := dockertest.Install(t, cli, reg.Host)
	api := &countingAPI{Client: cli}
	e := docker.New(api, install, quiet())
	ref := reg.Push(t, fakeImage(t, registrytest.FakeService{Service: "svc", Version: "1.0.0"}, 8<<20), "ringbridge/svc", "1.0.0")

	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last []docker.PullProgress
	start := time.Now()
	errs := make([]error, 4)
	infos := make([]docker.ImageInfo, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i], errs[i] = e.Pull(ctx, ref, func(p docker.PullProgress) {
				mu.Lock()
				last = append(last, p)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if n := api.pulls.Load(); n != 1 {
		t.Fatalf("%d Engine pulls for four concurrent callers, want 1", n)
	}
	if infos[0].ID == "" || infos[0].ID != infos[3].ID || infos[0].Healthcheck == nil {
		t.Fatalf("image info %+v", infos[0])
	}
	found := false
	for _, d := range infos[0].RepoDigests {
		found = found || d == ref.String()
	}
	if !found {
		t.Fatalf("RepoDigests %v lack %s", infos[0].RepoDigests, ref)
	}
	final := last[len(last)-1]
	if !final.Finished || final.Count != 2 || final.Done != 2 || final.Total < 8<<20 || final.Current != final.Total {
		t.Fatalf("final progress %+v", final)
	}
	t.Logf("pulled %s (%s) in %s with %d progress reports", ref.DigestStr()[:19], final, took.Round(time.Millisecond), len(last))

	// Present now: no second Engine pull.
	if _, err := e.Pull(ctx, ref, nil); err != nil || api.pulls.Load() != 1 {
		t.Fatalf("pull of a present image: err %v, %d Engine pulls", err, api.pulls.Load())
	}

	t.Run("unknown digest is permanent", func(t *testing.T) {
		missing := reg.Repo("ringbridge/svc").Digest("sha256:" + strings.Repeat("0", 64))
		_, err := e.Pull(ctx, missing, nil)
		if err == nil || retry.Helps(err) {
			t.Fatalf("err = %v, retry helps %v", err, retry.Helps(err))
		}
		t.Logf("refused: %v", err)
	})
}

func TestPullStallsOnHungRegistry(t *testing.T) {
	cli := dockertest.Client(t)
	img := fakeImage(t, registrytest.FakeService{Service: "svc", Version: "stall"}, 4<<20)
	layers, _ := img.Layers()
	big, _ := layers[len(layers)-1].Digest()
	hang := make(chan struct{})
	reg := registrytest.StartWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+big.String()) {
				// A registry that starts the blob and then goes silent.
				w.Header().Set("Content-Length", "4194304")
				w.WriteHeader(http.StatusOK)
				w.Write(make([]byte, 32<<10))
				w.(http.Flusher).Flush()
				select {
				case <-hang:
				case <-r.Context().Done():
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(func() { close(hang) }) // before the registry closes (cleanups run last-first)
	install := dockertest.Install(t, cli, reg.Host)
	ref := reg.Push(t, img, "ringbridge/svc", "stall")
	e := docker.New(cli, install, quiet(), docker.WithStallTimeout(2*time.Second))
	start := time.Now()
	_, err := e.Pull(context.Background(), ref, nil)
	if !errors.Is(err, docker.ErrStalled) || !retry.Helps(err) {
		t.Fatalf("err = %v, want a stall worth a retry", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("stall noticed after %s", d)
	}
	t.Logf("stalled pull cancelled after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// engineFixture is an engine on a test install with its registry.
type engineFixture struct {
	cli     *client.Client
	reg     *registrytest.Registry
	install string
	e       *docker.Engine
}

func newFixture(t *testing.T) *engineFixture {
	cli := dockertest.Client(t)
	reg := registrytest.Start(t)
	install := dockertest.Install(t, cli, reg.Host)
	return &engineFixture{cli: cli, reg: reg, install: install, e: docker.New(cli, install, quiet(), docker.WithPollInterval(100*time.Millisecond))}
}

func (f *engineFixture) image(t *testing.T, s registrytest.FakeService) name.Digest {
	t.Helper()
	ref := f.reg.Push(t, fakeImage(t, s, 0), "ringbridge/"+s.Service, s.Version+"-"+s.Mode)
	if _, err := f.e.Pull(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestContainerLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ref := f.image(t, registrytest.FakeService{Service: "ami-gateway", Version: "1.0.0", Mode: "healthy"})
	vol := f.install + "-data"
	if err := f.e.CreateVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	id, err := f.e.Create(ctx, docker.Spec{Service: "ami-gateway", Version: "1.0.0", Image: ref, Network: "none",
		Mounts: []docker.Mount{{Volume: vol, Target: "/data"}}, Labels: map[string]string{docker.LabelOwner: "someone-else", "x": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.e.WaitHealthy(ctx, id, 20*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("healthy %s after start", time.Since(start).Round(time.Millisecond))

	cs, err := f.e.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("owned containers: %+v", cs)
	}
	c := cs[0]
	if c.Name != f.install+"-ami-gateway" || c.Service != "ami-gateway" || c.Version != "1.0.0" || c.Image != ref.String() ||
		c.Role != docker.RoleService || c.State != "running" || c.Health != "healthy" {
		t.Fatalf("listed %+v", c)
	}
	ins, _ := f.cli.ContainerInspect(ctx, id)
	if ins.Config.Labels[docker.LabelOwner] != docker.OwnerValue || ins.Config.Labels["x"] != "y" {
		t.Fatalf("labels %v: the ownership label must win", ins.Config.Labels)
	}
	if ins.Config.Image != ref.String() {
		t.Fatalf("created from %q, want the digest reference %s", ins.Config.Image, ref)
	}
	logs, err := f.e.Logs(ctx, id, 20)
	if err != nil || !strings.Contains(string(logs), "fakesvc healthy") {
		t.Fatalf("logs %q, err %v", logs, err)
	}
	if err := f.e.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.e.Inspect(ctx, id); got.State != "exited" || got.ExitCode != 0 {
		t.Fatalf("after stop: %+v", got)
	}
	if err := f.e.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Remove(ctx, id); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if cs, _ := f.e.List(ctx); len(cs) != 0 {
		t.Fatalf("left: %+v", cs)
	}

	t.Run("image ID must be one", func(t *testing.T) {
		if _, err := f.e.Create(ctx, docker.Spec{Service: "x", Image: ref, ImageID: "latest"}); err == nil {
			t.Fatal("created from a non-ID")
		}
	})
}

func TestWaitHealthy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name    string
		svc     registrytest.FakeService
		timeout time.Duration
		want    string // "" healthy
	}{
		{"healthy", registrytest.FakeService{Mode: "healthy"}, 20 * time.Second, ""},
		{"healthy after a delay in the start period", registrytest.FakeService{Mode: "healthy", Delay: time.Second, StartPeriod: 5 * time.Second}, 20 * time.Second, ""},
		{"slower than the start period", registrytest.FakeService{Mode: "healthy", Delay: 3 * time.Second}, 20 * time.Second, "reports unhealthy"},
		{"never healthy", registrytest.FakeService{Mode: "unhealthy"}, 20 * time.Second, "its HEALTHCHECK reports unhealthy (last output: not healthy yet"},
		{"crashes", registrytest.FakeService{Mode: "crash", Delay: 300 * time.Millisecond}, 20 * time.Second, "exited with code 3"},
		{"too slow", registrytest.FakeService{Mode: "healthy", Delay: time.Minute, HealthInterval: 5 * time.Second}, 1500 * time.Millisecond, "no healthy report within 1.5s"},
		{"no healthcheck", registrytest.FakeService{Mode: "unhealthy", NoHealthcheck: true}, 20 * time.Second, ""},
	}
	for i, c := range cases {
		c.svc.Service, c.svc.Version = "svc", string(rune('a'+i))
		ref := f.image(t, c.svc)
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			id, err := f.e.Create(ctx, docker.Spec{Name: f.install + "-" + strings.ReplaceAll(c.name, " ", "-"), Service: "svc",
				Version: c.svc.Version, Image: ref, Network: "none", Restart: "no"})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.e.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = f.e.WaitHealthy(ctx, id, c.timeout, 500*time.Millisecond)
			t.Logf("%s after %s: %v", c.name, time.Since(start).Round(time.Millisecond), err)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ue *docker.UnhealthyError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) || retry.Helps(err) {
				t.Fatalf("err = %v, want an UnhealthyError saying %q", err, c.want)
			}
		})
	}
}

func tarEntries(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = string(body)
	}
}

func TestVolumeBackupRestore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ref := f.image(t, registrytest.FakeService{Service: "svc", Version: "1.0.0", Mode: "healthy"})
	vol := f.install + "-state"
	if err := f.e.CreateVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	runOnce := func(version string) {
		t.Helper()
		id, err := f.e.Create(ctx, docker.Spec{Service: "svc", Version: version, Image: ref, Network: "none",
			Mounts: []docker.Mount{{Volume: vol, Target: "/data"}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.e.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := f.e.WaitHealthy(ctx, id, 20*time.Second, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := f.e.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	runOnce("1.0.0") // fakesvc appends a line to /data/starts

	var backup bytes.Buffer
	start := time.Now()
	n, err := f.e.BackupVolume(ctx, vol, ref.String(), &backup)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backed up %d bytes in %s", n, time.Since(start).Round(time.Millisecond))
	if got := tarEntries(t, backup.Bytes())["data/starts"]; got != "1.0.0\n" {
		t.Fatalf("backup holds starts %q", got)
	}

	// Change the volume: another start, and a file the backup does not have.
	runOnce("1.0.0")
	extra := new(bytes.Buffer)
	tw := tar.NewWriter(extra)
	tw.WriteHeader(&tar.Header{Name: "data/extra", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("x\n"))
	tw.Close()
	if err := f.e.RestoreVolume(ctx, vol, ref.String(), extra); err != nil {
		t.Fatal(err)
	}

	t.Run("refused while a container uses the volume", func(t *testing.T) {
		id, err := f.e.Create(ctx, docker.Spec{Name: f.install + "-user", Service: "svc", Image: ref, Network: "none",
			Mounts: []docker.Mount{{Volume: vol, Target: "/data"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer f.e.Remove(ctx, id)
		err = f.e.RestoreVolume(ctx, vol, ref.String(), bytes.NewReader(backup.Bytes()))
		var inUse *docker.VolumeInUseError
		if !errors.As(err, &inUse) || !strings.Contains(err.Error(), f.install+"-user") {
			t.Fatalf("err = %v", err)
		}
	})

	start = time.Now()
	if err := f.e.RestoreVolume(ctx, vol, ref.String(), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	t.Logf("restored in %s", time.Since(start).Round(time.Millisecond))
	var after bytes.Buffer
	if _, err := f.e.BackupVolume(ctx, vol, ref.String(), &after); err != nil {
		t.Fatal(err)
	}
	got := tarEntries(t, after.Bytes())
	if got["data/starts"] != "1.0.0\n" {
		t.Fatalf("restored starts %q, want the backup's", got["data/starts"])
	}
	if _, ok := got["data/extra"]; ok {
		t.Fatal("a file written after the backup survived the restore")
	}
	// No helper is left behind.
	if cs, _ := f.e.List(ctx); len(cs) != 0 {
		t.Fatalf("left: %+v", cs)
	}
}

func TestRunJob(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name     string
		migrate  string
		wantExit int
		wantFile string
	}{
		{"migrates", "schema: 2", 0, "schema: 1\nschema: 2\n"},
		{"nothing to do", "", 0, "schema: 1\n"},
		{"fails", "fail", 1, "schema: 1\n"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := f.image(t, registrytest.FakeService{Service: "svc", Version: string(rune('a' + i)), Migrate: c.migrate})
			res, err := f.e.RunJob(ctx, docker.Job{
				Image:   ref.String(),
				Cmd:     []string{"migrate-config", "--in-place", "/tmp/config.yaml"},
				Inputs:  map[string]docker.InputFile{"/tmp/config.yaml": {Body: []byte("schema: 1\n"), Mode: 0o600}},
				Outputs: []string{"/tmp/config.yaml"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != c.wantExit || string(res.Outputs["/tmp/config.yaml"]) != c.wantFile {
				t.Fatalf("exit %d, file %q, logs %s", res.ExitCode, res.Outputs["/tmp/config.yaml"], res.Logs)
			}
		})
	}
	if cs, _ := f.e.List(ctx); len(cs) != 0 {
		t.Fatalf("job containers left: %+v", cs)
	}
}
