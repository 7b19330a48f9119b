// Package update is the supervisor's one update: verify → check disk → pull → back up → migrate
// the config on a copy → swap each service (start-first where two copies may run) with a health
// gate → commit. Any failure after the first change rolls back to the previous images, config
// (and, after a migration, volumes). A journal on the supervisor's volume records each step, so a
// supervisor killed at any point finishes (after the gate) or rolls back (before it) when it
// starts again: never a stack with a service missing.
//
// The stages are small functions that return errors saying whether a retry helps (alertmanager's
// pipeline); the swap and the rollback are one idempotent operation, converge, that makes the
// containers match a State (balena's target-state model), so recovering from a crash is the same
// code as a rollback.
package update

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

// Engine is what an update does with the Docker Engine; *docker.Engine has it.
type Engine interface {
	Pull(ctx context.Context, ref name.Digest, progress func(docker.PullProgress)) (docker.ImageInfo, error)
	Image(ctx context.Context, ref string) (docker.ImageInfo, error)
	Create(ctx context.Context, spec docker.Spec) (string, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	Rename(ctx context.Context, id, newName string) error
	List(ctx context.Context) ([]docker.Container, error)
	Inspect(ctx context.Context, id string) (docker.Container, error)
	WaitHealthy(ctx context.Context, id string, timeout, settle time.Duration) error
	BackupVolume(ctx context.Context, vol, image string, w io.Writer) (int64, error)
	RestoreVolume(ctx context.Context, vol, image string, r io.Reader) error
	RunJob(ctx context.Context, job docker.Job) (docker.JobResult, error)
	Install() string
}

// Verifier checks an image's signature; *sign.Verifier has it.
type Verifier interface {
	VerifyImage(ctx context.Context, ref name.Digest) (*sign.Verified, error)
}

// Sizer returns how many bytes pulling an image downloads (RegistrySizer asks the registry).
type Sizer func(ctx context.Context, ref name.Digest) (int64, error)

// Service is how one service of the stack runs on this install.
type Service struct {
	Name string
	// StartFirst: the new copy starts and passes its health gate while the old one still runs
	// (services that may run twice: connectors; ami-gateway, whose events are deduplicated
	// downstream). Otherwise the old copy stops first.
	StartFirst bool
	Cmd        []string
	Env        []string
	Mounts     []docker.Mount
	Network    string
	// Volumes are the named volumes backed up before an update, and restored when an update that
	// migrated is rolled back.
	Volumes []string
}

// Config is an updater's setup.
type Config struct {
	// DataDir holds state.json, journal.json and backups/.
	DataDir string
	// ConfigPath is the install's config file as the supervisor sees it ("" when it has none).
	ConfigPath string
	// Services are the services of this install, in the order they are swapped.
	Services []Service
	// HealthTimeout bounds each service's health gate.
	HealthTimeout time.Duration
	// Settle is how long a container without HEALTHCHECK must keep running to pass the gate.
	Settle time.Duration
	// HealthInterval, when set, replaces the images' HEALTHCHECK interval (a faster gate).
	HealthInterval time.Duration
	StopTimeout    time.Duration
	// MinFreeBytes is the free space the data disk must keep once the new images are in.
	MinFreeBytes int64
	// BackupKeep is how many backups are kept.
	BackupKeep int
}

// Updater runs updates of one install, one at a time.
type Updater struct {
	cfg      Config
	engine   Engine
	verifier Verifier
	sizer    Sizer
	events   Events
	log      logrus.FieldLogger
	mu       sync.Mutex
	now      func() time.Time
	// crashAfter, set by tests, makes the update stop dead after the named step, journal and all,
	// as a killed supervisor would.
	crashAfter string
}

// ErrBusy is returned when an update, rollback or recovery is already running.
var ErrBusy = errors.New("an update is already running")

// errCrash is the test hook's simulated death.
var errCrash = errors.New("simulated crash")

// New returns an updater. sizer may be nil (the disk check then counts only what is on disk).
func New(cfg Config, engine Engine, verifier Verifier, sizer Sizer, events Events, log logrus.FieldLogger) (*Updater, error) {
	if cfg.DataDir == "" || len(cfg.Services) == 0 {
		return nil, errors.New("update: a data dir and at least one service are required")
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 90 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.BackupKeep < 1 {
		cfg.BackupKeep = 10
	}
	if events == nil {
		events = EventsFunc(func(Event) {})
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, backupsDir), 0o700); err != nil {
		return nil, fmt.Errorf("update: data dir: %w", err)
	}
	return &Updater{cfg: cfg, engine: engine, verifier: verifier, sizer: sizer, events: events, log: log, now: time.Now}, nil
}

// Installed returns the installed state (zero when nothing is).
func (u *Updater) Installed() (State, error) { return LoadState(u.cfg.DataDir) }

// Report says what an update did and how long each part took.
type Report struct {
	From, To   release.Version
	Took       time.Duration
	Stages     map[string]time.Duration
	Services   []ServiceReport
	RolledBack bool
	// RollbackTook is from the failure to the old version serving again.
	RollbackTook time.Duration
}

// ServiceReport is one service's swap.
type ServiceReport struct {
	Service    string
	StartFirst bool
	// Unavailable is how long no copy of the service ran: 0 for a start-first swap, from the old
	// copy's stop to the new one's healthy report for a stop-first one.
	Unavailable time.Duration
	// Healthy is from the new container's start to its healthy report.
	Healthy time.Duration
}

func (u *Updater) emit(j *Journal, stage, service, msg string) {
	ev := Event{Time: u.now(), To: "", Stage: stage, Service: service, Message: msg}
	if j != nil {
		ev.Update, ev.To = j.ID, j.To.Version.String()
	}
	u.events.Emit(ev)
	u.log.WithFields(logrus.Fields{"stage": stage, "service": service}).Info(msg)
}

// desired is the state that installing rel makes, from the services of this install.
func (u *Updater) desired(rel *release.Release) (State, error) {
	to := State{Version: rel.Version, ConfigSchema: rel.ConfigSchema, Services: map[string]ServiceState{}}
	local, err := localImages(u.cfg.DataDir)
	if err != nil {
		return to, err
	}
	var missing []string
	for _, s := range u.cfg.Services {
		ref, ok := rel.Images[s.Name]
		if !ok {
			missing = append(missing, s.Name)
			continue
		}
		to.Services[s.Name] = ServiceState{Image: ref, ImageID: local[ref]}
	}
	if len(missing) > 0 {
		return to, fmt.Errorf("release %s has no image for %s, which this install runs", rel.Version, strings.Join(missing, ", "))
	}
	return to, nil
}

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Walk installs each release of chain in order, each one committed before the next starts (a
// failure keeps the hops already done and rolls back only the failing one).
func (u *Updater) Walk(ctx context.Context, chain release.Chain) ([]*Report, error) {
	var reports []*Report
	for _, step := range chain.Steps {
		rep, err := u.Update(ctx, step.Release)
		if rep != nil {
			reports = append(reports, rep)
		}
		if err != nil {
			return reports, err
		}
	}
	return reports, nil
}

// Update installs rel in place of what is installed. Before anything changes it verifies every
// image's signature, checks the disk and pulls; a failure there changes nothing. From the backup
// on, a failure rolls back, and the error says so.
func (u *Updater) Update(ctx context.Context, rel *release.Release) (*Report, error) {
	unlock, err := u.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if j, err := LoadJournal(u.cfg.DataDir); err != nil || j != nil {
		if err != nil {
			return nil, fmt.Errorf("reading the journal: %w", err)
		}
		return nil, fmt.Errorf("update %s to %s is unfinished: the supervisor finishes it when it starts (Recover) before another begins", j.ID, j.To.Version)
	}
	from, err := LoadState(u.cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("reading the installed state: %w", err)
	}
	to, err := u.desired(rel)
	if err != nil {
		return nil, err
	}
	start := u.now()
	rep := &Report{From: from.Version, To: rel.Version, Stages: map[string]time.Duration{}}
	j := &Journal{ID: newID(), Phase: PhaseApplying, From: from, To: to, Started: start}
	stage := func(name string, f func() error) error {
		t0 := u.now()
		err := f()
		rep.Stages[name] = u.now().Sub(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}

	// Nothing changes before the images are verified and present.
	u.emit(j, "verify", "", fmt.Sprintf("verifying the signatures of %s's images", rel.Version))
	if err := stage("verify", func() error { return u.verify(ctx, to) }); err != nil {
		u.emit(j, "verify", "", "refused: "+err.Error())
		return rep, fmt.Errorf("update to %s refused, nothing changed: %w", rel.Version, err)
	}
	if err := stage("disk", func() error { return u.checkDisk(ctx, to) }); err != nil {
		return rep, fmt.Errorf("update to %s not started, nothing changed: %w", rel.Version, err)
	}
	if err := stage("pull", func() error { return u.pull(ctx, j, to) }); err != nil {
		return rep, fmt.Errorf("update to %s not started, nothing changed: %w", rel.Version, err)
	}

	// From here on, every change is journaled and a failure rolls back.
	if err := u.writeJournal(j); err != nil {
		return rep, err
	}
	var migrated []byte
	steps := []step{
		{"backup", func() error { return u.backupStep(ctx, j) }},
		{"migrate", func() error {
			var err error
			migrated, err = u.migrateStep(ctx, j, rel)
			return err
		}},
		{"config", func() error { return u.configStep(j, migrated) }},
		{"swap", func() error { return u.converge(ctx, j, to, rep, false) }},
	}
	if err := u.runSteps(ctx, j, rep, stage, steps); err != nil {
		return rep, err
	}
	if err := u.commit(ctx, j); err != nil {
		return rep, err
	}
	rep.Took = u.now().Sub(start)
	u.emit(j, "commit", "", fmt.Sprintf("%s installed in %s", rel.Version, rep.Took.Round(time.Millisecond)))
	return rep, nil
}

// step is one journaled stage of an update.
type step struct {
	name string
	run  func() error
}

// runSteps runs steps in order, journaling each one done; the first failure rolls back.
func (u *Updater) runSteps(ctx context.Context, j *Journal, rep *Report, stage func(string, func() error) error, steps []step) error {
	for _, s := range steps {
		err := stage(s.name, s.run)
		if err == nil {
			j.Steps = append(j.Steps, s.name)
			err = u.writeJournal(j)
		}
		if err == nil {
			err = u.crash(s.name)
		}
		if errors.Is(err, errCrash) {
			return err
		}
		if err != nil {
			return u.rollback(ctx, j, rep, err)
		}
	}
	return nil
}

// crash returns errCrash when a test asked the update to die at point.
func (u *Updater) crash(point string) error {
	if u.crashAfter == point {
		return errCrash
	}
	return nil
}

func (u *Updater) writeJournal(j *Journal) error {
	j.Updated = u.now()
	if err := writeJSON(filepath.Join(u.cfg.DataDir, journalFile), j); err != nil {
		return fmt.Errorf("writing the update journal: %w", err)
	}
	return nil
}

// verify checks every image of to before anything is pulled: an unsigned image never reaches the
// Engine. Pulling by the same digest afterwards is safe, since the Engine checks what it pulls
// against the digest.
func (u *Updater) verify(ctx context.Context, to State) error {
	for _, svc := range sortedServices(to) {
		ref, err := name.NewDigest(to.Services[svc].Image)
		if err != nil {
			return fmt.Errorf("%s: %w", svc, err)
		}
		if _, err := u.verifier.VerifyImage(ctx, ref); err != nil {
			return fmt.Errorf("%s: %w", svc, err)
		}
	}
	return nil
}

func sortedServices(st State) []string {
	out := make([]string, 0, len(st.Services))
	for s := range st.Services {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// checkDisk refuses an update that would leave less than MinFreeBytes on the data disk once the
// missing images are in. Extracted layers take more room than their download, hence the factor.
func (u *Updater) checkDisk(ctx context.Context, to State) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(u.cfg.DataDir, &st); err != nil {
		return fmt.Errorf("free disk space of %s: %w", u.cfg.DataDir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	var download int64
	if u.sizer != nil {
		for _, svc := range sortedServices(to) {
			if _, err := u.engine.Image(ctx, imageOf(to, svc)); err == nil {
				continue
			}
			img := to.Services[svc].Image
			ref, _ := name.NewDigest(img)
			n, err := u.sizer(ctx, ref)
			if err != nil {
				return fmt.Errorf("size of %s: %w", img, err)
			}
			download += n
		}
	}
	need := u.cfg.MinFreeBytes + download*5/2
	if free < need {
		return fmt.Errorf("%d MB free on the data disk, %d MB needed (%d MB of images to pull, %d MB to keep free): free some space (docker image prune) and try again",
			free>>20, need>>20, download>>20, u.cfg.MinFreeBytes>>20)
	}
	return nil
}

// pull pulls every image of to at once (one shared pull per image), reporting progress.
func (u *Updater) pull(ctx context.Context, j *Journal, to State) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(to.Services))
	for _, svc := range sortedServices(to) {
		ref, err := name.NewDigest(to.Services[svc].Image)
		if err != nil {
			return err
		}
		if id := to.Services[svc].ImageID; id != "" {
			// Loaded from an offline bundle: there is nothing to pull, and nowhere to pull from.
			if _, err := u.engine.Image(ctx, id); err != nil {
				return fmt.Errorf("%s: the image imported as %s is gone from the Engine: import the bundle again: %w", svc, id, err)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := u.engine.Pull(ctx, ref, func(p docker.PullProgress) {
				u.events.Emit(Event{Update: j.ID, To: j.To.Version.String(), Time: u.now(), Stage: "pull", Service: svc,
					Message: p.String(), Pull: &p})
			})
			if err != nil {
				errs <- fmt.Errorf("%s: %w", svc, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// commit records the new state and ends the journal. It is also what Recover finishes.
func (u *Updater) commit(ctx context.Context, j *Journal) error {
	j.Phase = PhaseCommitting
	if err := u.writeJournal(j); err != nil {
		return err
	}
	if err := u.crash("committing"); err != nil {
		return err
	}
	j.To.Committed = u.now()
	if err := writeJSON(filepath.Join(u.cfg.DataDir, stateFile), j.To); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := u.recordPrevious(j); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := os.Remove(filepath.Join(u.cfg.DataDir, journalFile)); err != nil {
		return fmt.Errorf("commit: ending the journal: %w", err)
	}
	if err := u.pruneBackups(); err != nil {
		u.log.WithError(err).Warn("old backups not pruned")
	}
	return nil
}

// rollback undoes j after cause: the config (and, after a migration, the volumes) from the
// backup, then the containers of the previous state. It runs to the end even when ctx is done: a
// half rollback is the one state worse than either release.
func (u *Updater) rollback(ctx context.Context, j *Journal, rep *Report, cause error) error {
	t0 := u.now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	j.Phase, j.Error = PhaseRollingBack, cause.Error()
	u.emit(j, "rollback", "", fmt.Sprintf("update to %s failed (%v): rolling back to %s", j.To.Version, cause, versionOrNothing(j.From.Version)))
	if err := u.writeJournal(j); err != nil {
		return fmt.Errorf("%w; and the rollback could not start: %v", cause, err)
	}
	if err := u.undo(ctx, j); err != nil {
		return &RollbackError{To: j.To.Version, Cause: cause, Err: err}
	}
	if rep != nil {
		rep.RolledBack, rep.RollbackTook = true, u.now().Sub(t0)
	}
	u.emit(j, "rollback", "", fmt.Sprintf("rolled back to %s in %s", versionOrNothing(j.From.Version), u.now().Sub(t0).Round(time.Millisecond)))
	return fmt.Errorf("update to %s failed and was rolled back to %s: %w", j.To.Version, versionOrNothing(j.From.Version), cause)
}

// RollbackError says an update failed and undoing it failed too: the install may be between the
// two releases. The journal is kept, and the supervisor tries the rollback again when it starts.
type RollbackError struct {
	To    release.Version
	Cause error // why the update failed
	Err   error // why the rollback failed
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("update to %s failed: %v; the rollback failed too: %v (the journal is kept and the supervisor retries the rollback when it starts)",
		e.To, e.Cause, e.Err)
}

func (e *RollbackError) Unwrap() error { return e.Cause }

// undo puts the previous release back and ends the journal.
func (u *Updater) undo(ctx context.Context, j *Journal) error {
	if j.Migrated && j.Backup != "" {
		if err := u.restoreVolumes(ctx, j, j.Backup); err != nil {
			return err
		}
	}
	if j.ConfigWritten && j.Backup != "" {
		if err := u.restoreConfig(j.Backup); err != nil {
			return err
		}
	}
	if err := u.converge(ctx, j, j.From, nil, false); err != nil {
		return err
	}
	return os.Remove(filepath.Join(u.cfg.DataDir, journalFile))
}

func versionOrNothing(v release.Version) string {
	if v.IsZero() {
		return "nothing installed"
	}
	return v.String()
}

// Recover finishes what a previous supervisor left: an update past its health gate is committed,
// anything earlier is rolled back. Call it at start, before anything else touches the containers.
func (u *Updater) Recover(ctx context.Context) (*Journal, error) {
	unlock, err := u.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	j, err := LoadJournal(u.cfg.DataDir)
	if err != nil || j == nil {
		return nil, err
	}
	u.log.WithFields(logrus.Fields{"update": j.ID, "phase": j.Phase, "steps": j.Steps}).Warn("an update was interrupted: finishing it")
	if j.Phase == PhaseCommitting {
		if err := u.converge(ctx, j, j.To, nil, false); err != nil {
			return j, fmt.Errorf("finishing the commit of %s: %w", j.To.Version, err)
		}
		return j, u.commit(ctx, j)
	}
	err = u.rollback(ctx, j, nil, errors.New("the supervisor stopped during the update"))
	var rbErr *RollbackError
	if errors.As(err, &rbErr) {
		return j, err
	}
	return j, nil
}
