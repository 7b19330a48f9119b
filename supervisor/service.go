package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/health"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/supervisor/control"
	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/retry"
	"github.com/ringbridge/ringbridge/supervisor/sign"
	"github.com/ringbridge/ringbridge/supervisor/update"
)

// bundledRelease is the offline bundle the supervisor image carries: the release it was built
// with, installed on the first start when nothing is installed yet (so a new server needs no
// registry to come up).
const bundledRelease = "/usr/local/share/ringbridge/release.tar"

// configMountTarget is where every service container finds the install's config (its volume,
// read-only; the supervisor mounts it read-write to migrate and restore it).
const configMountTarget = "/etc/ringbridge"

// stack is the services this install runs, in swap order, from the config: the gateway, the
// configured connector, admin. The gateway and connectors may run twice (events are deduplicated
// downstream), so they start first; admin stops first.
func stack(cfg *config.Config) []update.Service {
	s := cfg.Supervisor
	mounts := []docker.Mount{{Volume: s.Install + "-config", Target: configMountTarget, ReadOnly: true}}
	out := []update.Service{{Name: "ami-gateway", StartFirst: true, Mounts: mounts, Network: s.Network}}
	switch cfg.CRM {
	case "bitrix":
		out = append(out, update.Service{Name: "connector-bx", StartFirst: true, Mounts: mounts, Network: s.Network})
	case "amo":
		out = append(out, update.Service{Name: "connector-amo", StartFirst: true, Mounts: mounts, Network: s.Network})
	}
	return append(out, update.Service{Name: "admin", Mounts: mounts, Network: s.Network})
}

// supervisor is the running supervisor: what the RPC verbs and the CLI do.
type supervisor struct {
	cfg      *config.Config
	cfgPath  string
	log      logrus.FieldLogger
	engine   *docker.Engine
	loader   *release.Loader
	updater  *update.Updater
	verifier *sign.Verifier
	ucfg     update.Config
	events   update.Events
	channel  release.Channel
	updating atomic.Bool
	// ctx is the service's lifetime: an update started over RPC outlives the request.
	ctx     context.Context
	wg      sync.WaitGroup
	mu      sync.Mutex
	lastErr string
}

// newSupervisor connects to the Engine and sets up the verifier, loader and updater from the
// config at cfgPath. events may be nil.
func newSupervisor(ctx context.Context, cfg *config.Config, cfgPath string, events update.Events, log logrus.FieldLogger) (*supervisor, error) {
	s := cfg.Supervisor
	pub, err := readPublicKey(s.PublicKey)
	if err != nil {
		return nil, err
	}
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	verifier, err := sign.NewVerifier([]*ecdsa.PublicKey{pub}, sign.WithRemote(auth))
	if err != nil {
		return nil, err
	}
	cli, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	engine := docker.New(cli, s.Install, log, docker.WithStallTimeout(s.PullStallTimeout))
	ucfg := update.Config{
		DataDir:       s.DataDir,
		ConfigPath:    cfgPath,
		Services:      stack(cfg),
		HealthTimeout: s.HealthTimeout,
		// The images check every 10s (compose/Dockerfile), which would make every health gate,
		// and so a stop-first service's downtime, at least 10s. The containers the supervisor
		// creates check every second instead: one "service healthcheck" exec per second, a few
		// milliseconds of CPU.
		HealthInterval: time.Second,
		MinFreeBytes:   int64(s.MinFreeDiskMB) << 20,
		BackupKeep:     s.BackupKeep,
	}
	u, err := update.New(ucfg, engine, verifier, update.RegistrySizer(auth), events, log)
	if err != nil {
		return nil, err
	}
	return &supervisor{cfg: cfg, cfgPath: cfgPath, log: log, engine: engine, updater: u, ctx: ctx, verifier: verifier,
		ucfg: ucfg, events: events,
		loader: release.NewLoader(verifier, &http.Client{Timeout: time.Minute}), channel: release.Channel(s.Channel)}, nil
}

func (sv *supervisor) index(ctx context.Context) (*release.Index, error) {
	if sv.cfg.Supervisor.Index == "" {
		return nil, errors.New("no release source: supervisor.index is empty; import an offline bundle, or set it to the release index URL")
	}
	return sv.loader.Load(ctx, sv.cfg.Supervisor.Index)
}

// chain plans from the installed version to `to` (the newest on the channel when empty).
func (sv *supervisor) chain(ctx context.Context, to string) (release.Chain, error) {
	ix, err := sv.index(ctx)
	if err != nil {
		return release.Chain{}, err
	}
	st, err := sv.updater.Installed()
	if err != nil {
		return release.Chain{}, err
	}
	var target release.Version
	if to == "" {
		latest := ix.Latest(sv.channel)
		if latest == nil {
			return release.Chain{}, fmt.Errorf("channel %s has no release", sv.channel)
		}
		target = latest.Version
	} else if target, err = release.ParseVersion(to); err != nil {
		return release.Chain{}, err
	}
	return ix.Plan(sv.channel, st.Version, target)
}

// Plan implements control.Supervisor.
func (sv *supervisor) Plan(ctx context.Context, to string) (*control.Plan, error) {
	chain, err := sv.chain(ctx, to)
	if err != nil {
		return nil, err
	}
	p := &control.Plan{From: chain.From.String(), Steps: []control.Step{}}
	for _, s := range chain.Steps {
		p.Steps = append(p.Steps, control.Step{Version: s.Release.Version.String(), Why: s.Why,
			Migration: s.Release.ConfigMigration, Changelog: s.Release.Changelog})
	}
	return p, nil
}

// Status implements control.Supervisor.
func (sv *supervisor) Status(ctx context.Context) (*control.Status, error) {
	st, err := sv.updater.Installed()
	if err != nil {
		return nil, err
	}
	cs, err := sv.engine.List(ctx)
	if err != nil {
		return nil, err
	}
	out := &control.Status{Channel: string(sv.channel), Updating: sv.updating.Load(), Services: []control.Container{}}
	if !st.Version.IsZero() {
		out.Installed = st.Version.String()
	}
	for _, c := range cs {
		if c.Role == docker.RoleService {
			out.Services = append(out.Services, control.Container{Service: c.Service, Version: c.Version, State: c.State, Health: c.Health})
		}
	}
	sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Service < out.Services[j].Service })
	sv.mu.Lock()
	out.LastError = sv.lastErr
	sv.mu.Unlock()
	return out, nil
}

// StartUpdate implements control.Supervisor: the update runs in the background, reporting on the
// events; the reply only says it started.
func (sv *supervisor) StartUpdate(ctx context.Context, to string) (string, error) {
	chain, err := sv.chain(ctx, to)
	if err != nil {
		return "", err
	}
	if chain.Target() == nil {
		return "", fmt.Errorf("%s is installed already", chain.From)
	}
	if !sv.updating.CompareAndSwap(false, true) {
		return "", retry.Temporary(update.ErrBusy)
	}
	sv.wg.Add(1)
	go func() {
		defer sv.wg.Done()
		defer sv.updating.Store(false)
		_, err := sv.updater.Walk(sv.ctx, chain)
		sv.setLastErr(err)
		if err != nil {
			sv.log.WithError(err).Error("update failed")
			return
		}
		// A release that passed its gate and then crash-loops is reverted.
		reverted, err := sv.updater.Watch(sv.ctx, sv.cfg.Supervisor.Watch, 5*time.Second, 3)
		if reverted {
			sv.setLastErr(fmt.Errorf("%s crash-looped after the update and was reverted (%v)", chain.Target().Version, err))
		}
	}()
	return chain.Target().Version.String(), nil
}

// StartRollback implements control.Supervisor: revert the last committed update, in the background.
func (sv *supervisor) StartRollback(ctx context.Context) error {
	if !sv.updating.CompareAndSwap(false, true) {
		return retry.Temporary(update.ErrBusy)
	}
	sv.wg.Add(1)
	go func() {
		defer sv.wg.Done()
		defer sv.updating.Store(false)
		_, err := sv.updater.Revert(sv.ctx, "asked by admin")
		sv.setLastErr(err)
		if err != nil {
			sv.log.WithError(err).Error("rollback failed")
		}
	}()
	return nil
}

// Backup implements control.Supervisor.
func (sv *supervisor) Backup(ctx context.Context) (string, error) {
	if sv.updating.Load() {
		return "", retry.Temporary(update.ErrBusy)
	}
	m, err := sv.updater.Backup(ctx, "asked by admin")
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

// StartRestore implements control.Supervisor: restore a backup, in the background.
func (sv *supervisor) StartRestore(ctx context.Context, id string) error {
	if !sv.updating.CompareAndSwap(false, true) {
		return retry.Temporary(update.ErrBusy)
	}
	sv.wg.Add(1)
	go func() {
		defer sv.wg.Done()
		defer sv.updating.Store(false)
		_, err := sv.updater.Restore(sv.ctx, id)
		sv.setLastErr(err)
		if err != nil {
			sv.log.WithError(err).Error("restore failed")
		}
	}()
	return nil
}

func (sv *supervisor) setLastErr(err error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.lastErr = ""
	if err != nil {
		sv.lastErr = err.Error()
	}
}

// loadFull reads the whole config without requiring the services' sections to be complete: the
// supervisor must install and run before the PBX and CRM are set up. Only its own section is
// validated.
func loadFull(path string) (*config.Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := config.Decode(raw, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Supervisor.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func runService(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	bundled := fs.String("bundle", bundledRelease, "offline bundle installed when nothing is installed yet")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadFull(config.Path(*path))
	if err != nil {
		fmt.Fprintf(stderr, "supervisor: %v\n", err)
		return 1
	}
	redactor := logging.NewRedactor(cfg.Secrets()...)
	log := logging.New("supervisor", cfg.Log, stderr, logging.WithRedactor(redactor))
	if err := serve(ctx, cfg, config.Path(*path), *bundled, log, redactor); err != nil {
		log.WithError(err).Error("supervisor stopped")
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg *config.Config, cfgPath, bundled string, log *logrus.Entry, redactor *logging.Redactor) error {
	log.WithFields(logrus.Fields{"version": version, "install": cfg.Supervisor.Install, "channel": cfg.Supervisor.Channel}).Info("supervisor starting")
	reg := prometheus.NewRegistry()
	b, err := bus.New(bus.Config{URL: cfg.RabbitMQ.URL.Reveal(), Name: "supervisor", Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(cctx)
	}()
	sv, err := newSupervisor(ctx, cfg, cfgPath, control.NewPublisher(b, log), log)
	if err != nil {
		return err
	}
	defer sv.wg.Wait()
	// An update a previous supervisor left half done is finished or rolled back before anything
	// else touches the containers.
	if j, err := sv.updater.Recover(ctx); err != nil {
		log.WithError(err).Error("the interrupted update could not be finished; the next start tries again")
	} else if j != nil {
		log.WithFields(logrus.Fields{"update": j.ID, "to": j.To.Version.String()}).Warn("interrupted update recovered")
	}

	if err := firstInstall(ctx, sv, bundled); err != nil {
		log.WithError(err).Error("installing the bundled release failed; admin can start an update")
	}

	hs := health.New(log, reg, health.WithRedactor(redactor))
	hs.AddCheck("docker", func(ctx context.Context) error { _, err := sv.engine.List(ctx); return err })
	hs.AddCheck("rabbitmq", func(context.Context) error { return b.Ready() })
	listen := defaultListen
	if h, ok := cfg.HTTP["supervisor"]; ok && h.Listen != "" {
		listen = h.Listen
	}
	errs := make(chan error, 2)
	go func() { errs <- hs.Serve(ctx, listen) }()
	go func() { errs <- b.Serve(ctx, bus.QueueSpec{Name: control.Queue}, control.Handler(sv, log)) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

// firstInstall installs the bundle at path when nothing is installed and the file exists; it does
// nothing otherwise.
func firstInstall(ctx context.Context, sv *supervisor, path string) error {
	st, err := sv.updater.Installed()
	if err != nil || !st.Version.IsZero() {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			sv.log.WithField("bundle", path).Info("nothing installed and no bundled release: waiting for an update or an import")
			return nil
		}
		return err
	}
	sv.log.WithField("bundle", path).Info("nothing installed: installing the bundled release")
	return importBundle(ctx, sv, path, "", io.Discard)
}
