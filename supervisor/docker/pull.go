package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/supervisor/retry"
)

// ErrStalled is under the error of a pull that moved no byte for the stall timeout. A retry may
// help (the registry or the link recovers); the pull is cancelled rather than left hanging, the
// most common complaint about unattended updaters.
var ErrStalled = errors.New("image pull stalled")

// LayerProgress is one layer of a pull.
type LayerProgress struct {
	ID      string // the layer's short digest, as the Engine names it
	Status  string // the Engine's last word on it: Waiting, Downloading, Extracting, Pull complete...
	Current int64  // bytes downloaded
	Total   int64  // layer size, 0 while unknown
	Done    bool
}

// PullProgress is the state of one pull, sent to progress callbacks as it changes.
type PullProgress struct {
	Image  string // the reference being pulled
	Layers []LayerProgress
	// Current and Total are bytes downloaded and to download, over the layers whose size is known
	// (the Engine learns a layer's size when its download starts).
	Current, Total int64
	Done, Count    int  // layers finished / seen
	Finished       bool // the pull ended (successfully or not)
}

// String is a one-line summary for logs: "3/5 layers, 12.5/40.0 MB".
func (p PullProgress) String() string {
	return fmt.Sprintf("%d/%d layers, %.1f/%.1f MB", p.Done, p.Count, float64(p.Current)/1e6, float64(p.Total)/1e6)
}

// ImageInfo is what the supervisor needs to know of a local image.
type ImageInfo struct {
	ID          string // sha256:<config digest>
	RepoDigests []string
	Size        int64
	Labels      map[string]string
	Healthcheck *container.HealthConfig
	User        string
}

// Image inspects a local image by reference (repo@sha256:... or an image ID).
func (e *Engine) Image(ctx context.Context, ref string) (ImageInfo, error) {
	ins, err := e.api.ImageInspect(ctx, ref)
	if err != nil {
		return ImageInfo{}, engineError("inspecting image "+ref, err)
	}
	info := ImageInfo{ID: ins.ID, RepoDigests: ins.RepoDigests, Size: ins.Size}
	if ins.Config != nil {
		info.Labels, info.User = ins.Config.Labels, ins.Config.User
		if hc := ins.Config.Healthcheck; hc != nil {
			info.Healthcheck = &container.HealthConfig{Test: hc.Test, Interval: hc.Interval, Timeout: hc.Timeout,
				StartPeriod: hc.StartPeriod, Retries: hc.Retries}
		}
	}
	return info, nil
}

// RemoveImage deletes a local image (an old release's, after a commit). An image still used by a
// container is left (a conflict) and reported as such.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	_, err := e.api.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	if IsNotFound(err) {
		return nil
	}
	return engineError("removing image "+ref, err)
}

// Pull makes the image ref names present locally, pulling it by digest when it is not, and
// returns its local description. progress (may be nil) gets the pull's state as it changes.
// Concurrent calls for one image share one pull; it is cancelled when every caller has gone, or
// when it stalls.
func (e *Engine) Pull(ctx context.Context, ref name.Digest, progress func(PullProgress)) (ImageInfo, error) {
	if info, err := e.Image(ctx, ref.String()); err == nil {
		return info, nil
	}
	start := time.Now()
	if err := e.pulls.pull(ctx, ref.String(), progress); err != nil {
		return ImageInfo{}, err
	}
	info, err := e.Image(ctx, ref.String())
	if err != nil {
		return ImageInfo{}, fmt.Errorf("after pulling %s: %w", ref, err)
	}
	e.log.WithFields(logrus.Fields{"image": ref.String(), "size_mb": float64(info.Size) / 1e6,
		"seconds": time.Since(start).Seconds()}).Info("image pulled")
	return info, nil
}

// pulls runs one pull per reference at a time and lets every caller wait on it (Nomad's
// coordinator pattern).
type pulls struct {
	api      API
	log      logrus.FieldLogger
	stall    time.Duration
	throttle time.Duration
	mu       sync.Mutex
	active   map[string]*pullFuture
}

type pullFuture struct {
	done    chan struct{}
	err     error
	cancel  context.CancelCauseFunc
	waiters int
	subs    map[int]func(PullProgress)
	nextSub int
}

func newPulls(api API, log logrus.FieldLogger) *pulls {
	return &pulls{api: api, log: log, stall: 2 * time.Minute, throttle: 250 * time.Millisecond, active: map[string]*pullFuture{}}
}

// WithStallTimeout cancels a pull that moved no byte for d (default 2 minutes; 0 never).
func WithStallTimeout(d time.Duration) Option { return func(e *Engine) { e.pulls.stall = d } }

func (p *pulls) pull(ctx context.Context, ref string, progress func(PullProgress)) error {
	p.mu.Lock()
	f := p.active[ref]
	if f == nil {
		// The pull outlives the caller that started it: another may be waiting on it.
		pctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		f = &pullFuture{done: make(chan struct{}), cancel: cancel, subs: map[int]func(PullProgress){}}
		p.active[ref] = f
		go p.run(pctx, ref, f)
	} else {
		p.log.WithField("image", ref).Debug("joining a pull already running")
	}
	f.waiters++
	id := f.nextSub
	f.nextSub++
	if progress != nil {
		f.subs[id] = progress
	}
	p.mu.Unlock()

	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		p.mu.Lock()
		delete(f.subs, id)
		f.waiters--
		if f.waiters == 0 {
			f.cancel(fmt.Errorf("every caller gave up: %w", context.Cause(ctx)))
		}
		p.mu.Unlock()
		return fmt.Errorf("pulling %s: %w", ref, ctx.Err())
	}
}

func (p *pulls) run(ctx context.Context, ref string, f *pullFuture) {
	err := p.do(ctx, ref, f)
	p.mu.Lock()
	delete(p.active, ref)
	f.err = err
	p.mu.Unlock()
	f.cancel(nil)
	close(f.done)
}

func (p *pulls) emit(f *pullFuture, st PullProgress) {
	p.mu.Lock()
	subs := make([]func(PullProgress), 0, len(f.subs))
	for _, s := range f.subs {
		subs = append(subs, s)
	}
	p.mu.Unlock()
	st.Layers = append([]LayerProgress(nil), st.Layers...)
	for _, s := range subs {
		s(st)
	}
}

func (p *pulls) do(ctx context.Context, ref string, f *pullFuture) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rc, err := p.api.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return pullError(ref, err.Error(), err)
	}
	defer rc.Close()

	tr := &tracker{p: PullProgress{Image: ref}, idx: map[string]int{}}
	activity := make(chan struct{}, 1)
	if p.stall > 0 {
		go func() {
			t := time.NewTimer(p.stall)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-activity:
					if !t.Stop() {
						<-t.C
					}
					t.Reset(p.stall)
				case <-t.C:
					cancel(fmt.Errorf("%w: %s moved no byte for %s", ErrStalled, ref, p.stall))
					return
				}
			}
		}()
	}

	var lastEmit time.Time
	dec := json.NewDecoder(rc)
	for {
		var m jsonmessage.JSONMessage
		err := dec.Decode(&m)
		if err == io.EOF {
			break
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return retry.Temporary(fmt.Errorf("pulling %s: %w (at %s)", ref, cause, tr.p))
			}
			if cause := context.Cause(ctx); cause != nil {
				return fmt.Errorf("pulling %s: %w", ref, cause)
			}
			return retry.Temporary(fmt.Errorf("pulling %s: reading the Engine's progress: %w", ref, err))
		}
		if m.Error != nil {
			return pullError(ref, m.Error.Message, nil)
		}
		if !tr.apply(m) {
			continue
		}
		select {
		case activity <- struct{}{}:
		default:
		}
		if time.Since(lastEmit) >= p.throttle {
			lastEmit = time.Now()
			p.emit(f, tr.p)
		}
	}
	if cause := context.Cause(ctx); cause != nil {
		return retry.Temporary(fmt.Errorf("pulling %s: %w", ref, cause))
	}
	tr.p.Finished = true
	p.emit(f, tr.p)
	return nil
}

// pullError classifies a failed pull from the Engine's message: an image or repository the
// registry does not have, or credentials it refuses, need a person; anything else (a network or
// registry hiccup) may pass.
func pullError(ref, msg string, err error) error {
	e := fmt.Errorf("pulling %s: %s", ref, msg)
	if err != nil {
		e = fmt.Errorf("pulling %s: %w", ref, err)
	}
	low := strings.ToLower(msg)
	for _, permanent := range []string{"not found", "manifest unknown", "unauthorized", "denied", "invalid reference", "no matching manifest"} {
		if strings.Contains(low, permanent) {
			return e
		}
	}
	if err != nil {
		return engineError("pulling "+ref, err)
	}
	return retry.Temporary(e)
}

// layerStatuses are the Engine's progress words for a layer; messages with other words (Pulling
// from, Digest, Status) are about the whole image.
var layerStatuses = map[string]bool{
	"Pulling fs layer": true, "Waiting": true, "Downloading": true, "Verifying Checksum": true,
	"Download complete": true, "Extracting": true, "Pull complete": true, "Already exists": true,
}

// tracker folds the Engine's jsonmessage stream into a PullProgress.
type tracker struct {
	p   PullProgress
	idx map[string]int
}

// apply records m and reports whether anything moved (bytes, or a layer's status).
func (t *tracker) apply(m jsonmessage.JSONMessage) bool {
	status := m.Status
	if strings.HasPrefix(status, "Retrying in") {
		status = "Retrying"
	} else if !layerStatuses[status] || m.ID == "" {
		return false
	}
	i, ok := t.idx[m.ID]
	if !ok {
		i = len(t.p.Layers)
		t.idx[m.ID] = i
		t.p.Layers = append(t.p.Layers, LayerProgress{ID: m.ID})
	}
	l := &t.p.Layers[i]
	before := *l
	l.Status = status
	switch status {
	case "Downloading":
		if m.Progress != nil {
			l.Current = m.Progress.Current
			if m.Progress.Total > 0 {
				l.Total = m.Progress.Total
			}
		}
	case "Verifying Checksum", "Download complete", "Extracting":
		if l.Total > 0 {
			l.Current = l.Total
		}
	case "Pull complete", "Already exists":
		if l.Total > 0 {
			l.Current = l.Total
		}
		l.Done = true
	}
	t.sum()
	return *l != before
}

func (t *tracker) sum() {
	t.p.Current, t.p.Total, t.p.Done = 0, 0, 0
	for _, l := range t.p.Layers {
		t.p.Current += l.Current
		t.p.Total += l.Total
		if l.Done {
			t.p.Done++
		}
	}
	t.p.Count = len(t.p.Layers)
}
