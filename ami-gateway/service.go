package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/ami-gateway/calls"
	"github.com/ringbridge/ringbridge/ami-gateway/gateway"
	"github.com/ringbridge/ringbridge/ami-gateway/livestate"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/health"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/internal/store"
)

// defaultListen is where /healthz, /readyz and /metrics are served unless http.ami-gateway.listen
// says otherwise (each service has its own port so a test stack can run them all on one host).
const defaultListen = ":9101"

func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "ami-gateway: %v\n", err)
		return nil, false
	}
	if cfg.PBX == "" {
		fmt.Fprintf(stderr, "ami-gateway: config %s: pbx is empty: name the PBX this gateway follows, e.g. pbx: office1\n", path)
		return nil, false
	}
	return cfg, true
}

func amiConfig(cfg *config.Config, log logrus.FieldLogger, reg prometheus.Registerer) ami.Config {
	return ami.Config{
		Address:        cfg.AMI.Address,
		Username:       cfg.AMI.Username,
		Secret:         cfg.AMI.Secret,
		Auth:           cfg.AMI.Auth,
		Events:         cfg.AMI.Events,
		PingInterval:   cfg.AMI.PingInterval,
		PingTimeout:    cfg.AMI.PingTimeout,
		ReconnectMin:   cfg.AMI.ReconnectMin,
		ReconnectMax:   cfg.AMI.ReconnectMax,
		ConnectTimeout: cfg.AMI.ConnectTimeout,
		// 10,000 events is several seconds of a busy PBX: enough to ride out a pause of the
		// consumer, and a bound on memory (a full queue drops the connection and resyncs).
		EventBuffer: 10000,
		Logger:      log,
		Registerer:  reg,
	}
}

func runService(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or /etc/ringbridge/config.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, ok := loadConfig(config.Path(*path), stderr)
	if !ok {
		return 1
	}
	redactor := logging.NewRedactor(cfg.Secrets()...)
	log := logging.New("ami-gateway", cfg.Log, stderr, logging.WithRedactor(redactor)).WithField("pbx", cfg.PBX)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	if err := serve(ctx, cfg, log, redactor); err != nil {
		log.WithError(err).Error("ami-gateway stopped")
		return 1
	}
	return 0
}

// memoryLimit is the gateway's soft memory limit unless GOMEMLIMIT says otherwise: its live data
// is small (1,000 calls in progress take about 2 MB), so a bound keeps a burst of events from
// leaving the process tens of megabytes larger than it needs to be.
const memoryLimit = 16 << 20

func serve(ctx context.Context, cfg *config.Config, log *logrus.Entry, redactor *logging.Redactor) error {
	log.WithField("version", version).Info("ami-gateway starting")
	if cfg.Source.FileSchema < config.Version {
		log.WithField("file_schema", cfg.Source.FileSchema).Warn("config file is at an older schema; it was migrated in memory: run `ami-gateway migrate-config --in-place FILE`")
	}
	reg := prometheus.NewRegistry()
	hs := health.New(log, reg, health.WithRedactor(redactor))

	cl, err := calls.NewClassifier(cfg.Classify)
	if err != nil {
		return err
	}
	loc := time.UTC
	if tz := os.Getenv("TZ"); tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	corr := calls.New(calls.Options{PBX: cfg.PBX, Location: loc}, cl)

	st, err := store.New(ctx, cfg.Redis, log)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := bus.New(bus.Config{
		URL:           cfg.RabbitMQ.URL.Reveal(),
		Name:          "ami-gateway." + cfg.PBX,
		Prefetch:      cfg.RabbitMQ.Prefetch,
		Logger:        log,
		Registerer:    reg,
		PublishBuffer: 4096,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(cctx)
	}()
	client, err := ami.New(amiConfig(cfg, log, reg))
	if err != nil {
		return err
	}
	defer client.Close()

	g, err := gateway.New(gateway.Options{
		PBX: cfg.PBX,
		Originate: gateway.OriginateOptions{
			Normalize: cl.Number,
		},
	}, log, reg, client, b, livestate.New(st.Client(), cfg.PBX), corr)
	if err != nil {
		return err
	}
	hs.AddCheck("ami", func(context.Context) error { return client.Ready() })
	hs.AddCheck("rabbitmq", func(context.Context) error { return b.Ready() })
	hs.AddCheck("redis", st.Ping)
	hs.AddCheck("calls", func(context.Context) error { return g.Ready() })

	listen := defaultListen
	if h, ok := cfg.HTTP["ami-gateway"]; ok && h.Listen != "" {
		listen = h.Listen
	}
	errc := make(chan error, 3)
	go func() { errc <- hs.Serve(ctx, listen) }()
	// Ready only once the command queue exists: a click-to-call sent before would be unroutable.
	var commandsReady atomic.Bool
	hs.AddCheck("commands", func(context.Context) error {
		if !commandsReady.Load() {
			return errors.New("the originate command queue is not declared yet")
		}
		return nil
	})
	go func() {
		spec := gateway.CommandQueue(cfg.PBX)
		for attempt := 0; ; attempt++ {
			err := b.DeclareRPCQueue(ctx, spec)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			log.WithError(err).Warn("cannot declare the originate command queue, retrying")
			time.Sleep(min(time.Duration(attempt+1)*500*time.Millisecond, 10*time.Second))
		}
		commandsReady.Store(true)
		err := b.Serve(ctx, spec, g.HandleOriginate(st))
		if err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("originate commands: %w", err)
		}
	}()
	go func() { errc <- g.Run(ctx) }()
	select {
	case <-ctx.Done():
		log.Info("ami-gateway stopping")
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

func runRecord(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file with the ami section (default $RINGBRIDGE_CONFIG or /etc/ringbridge/config.yaml)")
	out := fs.String("out", "", "file to write the raw AMI stream to (required)")
	dur := fs.Duration("for", 0, "stop after this long (default: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "usage: ami-gateway record --out FILE [--config FILE] [--for DURATION]")
		return 2
	}
	cfg, ok := loadConfig(config.Path(*path), stderr)
	if !ok {
		return 1
	}
	redactor := logging.NewRedactor(cfg.Secrets()...)
	log := logging.New("ami-gateway", cfg.Log, stderr, logging.WithRedactor(redactor))
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintf(stderr, "ami-gateway record: %v\n", err)
		return 1
	}
	defer f.Close()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	acfg := amiConfig(cfg, log, nil)
	acfg.RawTap = f // every byte as the PBX sent it; what we send (the secret) is not in it
	dctx, cancel := context.WithTimeout(ctx, acfg.ConnectTimeout+5*time.Second)
	client, err := ami.Dial(dctx, acfg)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "ami-gateway record: %v\n", err)
		return 1
	}
	n := 0
	for {
		select {
		case <-ctx.Done():
			client.Close()
			fmt.Fprintf(stdout, "recorded %d events to %s\n", n, *out)
			if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
				fmt.Fprintf(stderr, "ami-gateway record: %v\n", err)
				return 1
			}
			return 0
		case ev, ok := <-client.Events():
			if !ok {
				fmt.Fprintf(stdout, "recorded %d events to %s\n", n, *out)
				return 0
			}
			if ev.Msg != nil {
				n++
			}
		}
	}
}
