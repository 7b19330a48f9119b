package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/connector-bx/callflow"
	"github.com/ringbridge/ringbridge/connector-bx/directory"
	"github.com/ringbridge/ringbridge/connector-bx/endpoint"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/health"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/internal/store"
)

// defaultListen is where /healthz, /readyz and /metrics are served unless http.connector-bx.listen
// says otherwise. The Bitrix24 handlers listen apart (bitrix.listen): they face the internet.
const defaultListen = ":9102"

// Queue is the consumer's queue, bound to every call event of every PBX.
const (
	Queue      = "connector-bx.calls"
	BindingKey = "call.*.*"
	keyPrefix  = "ringbridge:connector-bx"
)

func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "connector-bx: %v\n", err)
		return nil, false
	}
	if cfg.CRM != "bitrix" {
		fmt.Fprintf(stderr, "connector-bx: config %s: crm is %q: connector-bx runs for crm: bitrix (with a bitrix section)\n", path, cfg.CRM)
		return nil, false
	}
	return cfg, true
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
	log := logging.New("connector-bx", cfg.Log, stderr, logging.WithRedactor(redactor))
	redis.SetLogger(store.ClientLogger(log))
	if err := serve(ctx, cfg, log, redactor, serviceOptions{}); err != nil {
		log.WithError(err).Error("connector-bx stopped")
		return 1
	}
	return 0
}

// serviceOptions are what tests change: their own queue (tests run side by side on one broker)
// and quick retries.
type serviceOptions struct {
	Queue       string
	BindingKeys []string
	RetryDelays []time.Duration
	Prefix      string
	// Ready, when set, receives the addresses once the service listens.
	Ready func(health, handlers string)
	// Registry replaces the fresh metrics registry (tests read it).
	Registry *prometheus.Registry
}

func serve(ctx context.Context, cfg *config.Config, log *logrus.Entry, redactor *logging.Redactor, so serviceOptions) error {
	if so.Queue == "" {
		so.Queue = Queue
	}
	if len(so.BindingKeys) == 0 {
		so.BindingKeys = []string{BindingKey}
	}
	if so.Prefix == "" {
		so.Prefix = keyPrefix
	}
	bx := cfg.Bitrix
	log = log.WithField("portal", bx.Portal)
	log.WithFields(logrus.Fields{"version": version, "mode": bx.Mode}).Info("connector-bx starting")
	if cfg.Source.FileSchema < config.Version {
		log.WithField("file_schema", cfg.Source.FileSchema).Warn("config file is at an older schema; it was migrated in memory: run `connector-bx migrate-config --in-place FILE`")
	}
	reg := so.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	hs := health.New(log, reg, health.WithRedactor(redactor))

	st, err := store.New(ctx, cfg.Redis, log)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := bus.New(bus.Config{
		URL:        cfg.RabbitMQ.URL.Reveal(),
		Name:       "connector-bx",
		Prefetch:   max(cfg.RabbitMQ.Prefetch, 2*bx.Workers),
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(cctx)
	}()

	opt := bitrix.OptionsFrom(bx)
	opt.Store, opt.Prefix, opt.Logger, opt.Registerer = st, so.Prefix, log, reg
	opt.HTTPClient = &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
	client, err := bitrix.New(opt)
	if err != nil {
		return err
	}
	defer client.Close()

	overrides := make(map[string]int, len(bx.Users))
	for _, u := range bx.Users {
		overrides[u.Extension] = u.UserID
	}
	dir := directory.New(client, st, directory.Options{Key: so.Prefix + ":users", Overrides: overrides,
		Refresh: bx.UsersRefresh, Logger: log, Registerer: reg})
	flow := callflow.New(callflow.Options{Config: bx, Country: cfg.Classify.Country, Prefix: so.Prefix, Logger: log, Registerer: reg},
		client, dir, st)
	ep := endpoint.New(endpoint.Options{PublicURL: bx.PublicURL, WebhookToken: bx.Webhook.ApplicationToken,
		RingTimeout: bx.ClickToCall.RingTimeout, Logger: log, Registerer: reg},
		client, flow, callflow.BusOriginator{Bus: b, PBX: cfg.PBX})

	hs.AddCheck("rabbitmq", func(context.Context) error { return b.Ready() })
	hs.AddCheck("redis", st.Ping)
	hs.AddCheck("bitrix24", client.Ready)

	listen := defaultListen
	if h, ok := cfg.HTTP["connector-bx"]; ok && h.Listen != "" {
		listen = h.Listen
	}
	healthLn, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("health server: listening on %s: %w", listen, err)
	}
	handlersLn, err := net.Listen("tcp", bx.Listen)
	if err != nil {
		healthLn.Close()
		return fmt.Errorf("bitrix24 handlers: listening on %s (bitrix.listen): %w", bx.Listen, err)
	}
	if so.Ready != nil {
		so.Ready(healthLn.Addr().String(), handlersLn.Addr().String())
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	errc := make(chan error, 3)
	done := make(chan struct{}, 3)
	go func() { errc <- hs.ServeListener(runCtx, healthLn); done <- struct{}{} }()
	go func() {
		if err := ep.ServeListener(runCtx, handlersLn); err != nil {
			errc <- fmt.Errorf("bitrix24 handlers: %w", err)
		}
		done <- struct{}{}
	}()
	go func() {
		spec := bus.QueueSpec{Name: so.Queue, Exchange: bus.ExchangeCalls, Keys: so.BindingKeys,
			RetryDelays: so.RetryDelays, Workers: bx.Workers, Prefetch: 2 * bx.Workers}
		if err := b.Consume(runCtx, spec, flow.Consume); err != nil {
			errc <- fmt.Errorf("call events: %w", err)
		}
		done <- struct{}{}
	}()
	var result error
	select {
	case <-ctx.Done():
		log.Info("connector-bx stopping")
	case result = <-errc:
		if ctx.Err() != nil {
			result = nil
		}
	}
	stopRun()
	// The consumer lets its handlers finish (their messages are acked or requeued); the handlers
	// give the phones being rung their answer. Then the deferred closes run.
	for range 3 {
		select {
		case <-done:
		case <-time.After(bx.ClickToCall.RingTimeout + 20*time.Second):
			return errors.Join(result, errors.New("shutdown: a part did not stop in time"))
		}
	}
	return result
}
