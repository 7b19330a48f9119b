package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/supervisor/retry"
)

// fakeAPI answers ImagePull with pull() and ImageInspect from present; any other call panics
// (the embedded nil API), so a test sees exactly which calls a path makes.
type fakeAPI struct {
	API
	pulls   atomic.Int32
	pull    func(ctx context.Context) (io.ReadCloser, error)
	mu      sync.Mutex
	present bool
}

func (f *fakeAPI) ImagePull(ctx context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	f.pulls.Add(1)
	return f.pull(ctx)
}

func (f *fakeAPI) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.present {
		return image.InspectResponse{}, fmt.Errorf("no such image %s: %w", ref, cerrdefs.ErrNotFound)
	}
	return image.InspectResponse{ID: "sha256:" + strings.Repeat("c", 64), RepoDigests: []string{ref}}, nil
}

func quietLogger() logrus.FieldLogger {
	l, _ := test.NewNullLogger()
	return l
}

var testRef = mustDigest("127.0.0.1:5000/ringbridge/svc@sha256:" + strings.Repeat("a", 64))

func mustDigest(s string) name.Digest {
	d, err := name.NewDigest(s)
	if err != nil {
		panic(err)
	}
	return d
}

// stream is a pull stream as dockerd 20.10 writes it for a two-layer image.
func stream(t *testing.T) string {
	t.Helper()
	msgs := []map[string]any{
		{"status": "Pulling from ringbridge/svc", "id": "sha256:aaaa"},
		{"status": "Pulling fs layer", "id": "l1"},
		{"status": "Pulling fs layer", "id": "l2"},
		{"status": "Waiting", "id": "l2"},
		{"status": "Downloading", "id": "l1", "progressDetail": map[string]int{"current": 500, "total": 1000}},
		{"status": "Downloading", "id": "l1", "progressDetail": map[string]int{"current": 1000, "total": 1000}},
		{"status": "Verifying Checksum", "id": "l1"},
		{"status": "Download complete", "id": "l1"},
		{"status": "Downloading", "id": "l2", "progressDetail": map[string]int{"current": 100, "total": 3000}},
		{"status": "Extracting", "id": "l1", "progressDetail": map[string]int{"current": 1000, "total": 1000}},
		{"status": "Pull complete", "id": "l1"},
		{"status": "Download complete", "id": "l2"},
		{"status": "Pull complete", "id": "l2"},
		{"status": "Digest: sha256:aaaa"},
		{"status": "Status: Downloaded newer image for 127.0.0.1:5000/ringbridge/svc@sha256:aaaa"},
	}
	var b strings.Builder
	for _, m := range msgs {
		line, _ := json.Marshal(m)
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.String()
}

func TestPullProgressFromStream(t *testing.T) {
	api := &fakeAPI{}
	api.pull = func(ctx context.Context) (io.ReadCloser, error) {
		api.mu.Lock()
		api.present = true
		api.mu.Unlock()
		return io.NopCloser(strings.NewReader(stream(t))), nil
	}
	e := New(api, "t", quietLogger())
	e.pulls.throttle = 0
	var seen []PullProgress
	if _, err := e.Pull(context.Background(), testRef, func(p PullProgress) { seen = append(seen, p) }); err != nil {
		t.Fatal(err)
	}
	last := seen[len(seen)-1]
	if !last.Finished || last.Count != 2 || last.Done != 2 || last.Current != 4000 || last.Total != 4000 {
		t.Fatalf("final progress %+v", last)
	}
	// Midway, l1 was half down and l2's size unknown.
	mid := seen[3]
	if mid.Current != 500 || mid.Total != 1000 || mid.Layers[0].Status != "Downloading" {
		t.Fatalf("progress after the first bytes: %+v", mid)
	}
	// A second Pull finds the image present and pulls nothing.
	if _, err := e.Pull(context.Background(), testRef, nil); err != nil || api.pulls.Load() != 1 {
		t.Fatalf("second pull: err %v, %d pulls", err, api.pulls.Load())
	}
}

func TestPullStallCancels(t *testing.T) {
	api := &fakeAPI{}
	cancelled := make(chan struct{})
	api.pull = func(ctx context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			fmt.Fprintln(pw, `{"status":"Pulling fs layer","id":"l1"}`)
			fmt.Fprintln(pw, `{"status":"Downloading","id":"l1","progressDetail":{"current":10,"total":100}}`)
			<-ctx.Done() // the registry hangs; only the stall detection ends it
			close(cancelled)
			pw.CloseWithError(ctx.Err())
		}()
		return pr, nil
	}
	e := New(api, "t", quietLogger(), WithStallTimeout(300*time.Millisecond))
	start := time.Now()
	_, err := e.Pull(context.Background(), testRef, nil)
	if !errors.Is(err, ErrStalled) || !retry.Helps(err) {
		t.Fatalf("err = %v (retry helps %v), want a stall worth a retry", err, retry.Helps(err))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stall noticed after %s", d)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the Engine request was not cancelled")
	}
	if !strings.Contains(err.Error(), "0/1 layers, 0.0/0.0 MB") {
		t.Fatalf("error does not say how far it got: %v", err)
	}
}

// blockingAPI pulls only when release is closed; reqDone gets a value when the Engine request is
// cancelled instead.
func blockingAPI(t *testing.T) (api *fakeAPI, release chan struct{}, reqDone chan struct{}) {
	api = &fakeAPI{}
	release = make(chan struct{})
	reqDone = make(chan struct{}, 1)
	api.pull = func(ctx context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			select {
			case <-release:
				api.mu.Lock()
				api.present = true
				api.mu.Unlock()
				io.WriteString(pw, stream(t))
				pw.Close()
			case <-ctx.Done():
				reqDone <- struct{}{}
				pw.CloseWithError(ctx.Err())
			}
		}()
		return pr, nil
	}
	return api, release, reqDone
}

func TestPullSharedAndCancelledWhenAllLeave(t *testing.T) {
	t.Run("three callers, one pull", func(t *testing.T) {
		api, release, _ := blockingAPI(t)
		e := New(api, "t", quietLogger(), WithStallTimeout(0))
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		var progress atomic.Int32
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.Pull(context.Background(), testRef, func(PullProgress) { progress.Add(1) })
				errs <- err
			}()
		}
		waitFor(t, func() bool {
			e.pulls.mu.Lock()
			defer e.pulls.mu.Unlock()
			f := e.pulls.active[testRef.String()]
			return f != nil && f.waiters == 3
		})
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := api.pulls.Load(); n != 1 {
			t.Fatalf("%d pulls for three callers", n)
		}
		if progress.Load() < 3 {
			t.Fatalf("only %d progress reports reached the callers", progress.Load())
		}
	})

	t.Run("cancelled when every caller leaves", func(t *testing.T) {
		api, _, reqDone := blockingAPI(t)
		e := New(api, "t", quietLogger(), WithStallTimeout(0))
		ctx1, cancel1 := context.WithCancel(context.Background())
		ctx2, cancel2 := context.WithCancel(context.Background())
		errs := make(chan error, 2)
		go func() { _, err := e.Pull(ctx1, testRef, nil); errs <- err }()
		go func() { _, err := e.Pull(ctx2, testRef, nil); errs <- err }()
		waitFor(t, func() bool {
			e.pulls.mu.Lock()
			defer e.pulls.mu.Unlock()
			f := e.pulls.active[testRef.String()]
			return f != nil && f.waiters == 2
		})
		cancel1()
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("first caller: %v", err)
		}
		select {
		case <-reqDone:
			t.Fatal("the pull was cancelled while a caller still waited")
		case <-time.After(200 * time.Millisecond):
		}
		cancel2()
		<-errs
		select {
		case <-reqDone:
		case <-time.After(2 * time.Second):
			t.Fatal("the pull went on after every caller left")
		}
	})
}

func TestPullErrorsClassified(t *testing.T) {
	cases := []struct {
		name  string
		msg   string
		retry bool
	}{
		{"unknown manifest", "manifest unknown: manifest unknown", false},
		{"not found", "manifest for 127.0.0.1:5000/x@sha256:aa not found: manifest unknown", false},
		{"denied", "pull access denied for x, repository does not exist or may require 'docker login'", false},
		{"network", "Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := &fakeAPI{pull: func(ctx context.Context) (io.ReadCloser, error) {
				line, _ := json.Marshal(map[string]any{"errorDetail": map[string]string{"message": c.msg}, "error": c.msg})
				return io.NopCloser(strings.NewReader(string(line) + "\n")), nil
			}}
			_, err := New(api, "t", quietLogger()).Pull(context.Background(), testRef, nil)
			if err == nil || retry.Helps(err) != c.retry || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, retry helps %v, want %v", err, retry.Helps(err), c.retry)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
