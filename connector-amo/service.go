package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
	"github.com/ringbridge/ringbridge/connector-amo/calls"
	"github.com/ringbridge/ringbridge/connector-amo/consumer"
	"github.com/ringbridge/ringbridge/connector-amo/recordings"
	"github.com/ringbridge/ringbridge/connector-amo/web"
	"github.com/ringbridge/ringbridge/connector-amo/widget"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/command"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/health"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/internal/store"
)

const serviceName = "connector-amo"

// defaultListen is where /healthz, /readyz and /metrics are served unless
// http.connector-amo.listen says otherwise.
const defaultListen = ":9103"

// tokenKeepEvery is how often the token keeper looks whether the pair is due: an install without
// calls for weeks must still refresh before its refresh token expires.
const tokenKeepEvery = 10 * time.Minute

func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, lookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "connector-amo: %v\n", err)
		return nil, false
	}
	if cfg.CRM != "amo" {
		fmt.Fprintf(stderr, "connector-amo: config %s: crm is %q: connector-amo runs for crm: amo (with an amo section)\n", path, cfg.CRM)
		return nil, false
	}
	if cfg.PBX == "" {
		fmt.Fprintf(stderr, "connector-amo: config %s: pbx is empty: name the PBX click-to-call rings through, e.g. pbx: office1\n", path)
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
	log := logging.New(serviceName, cfg.Log, stderr, logging.WithRedactor(redactor)).WithField("pbx", cfg.PBX)
	gin.SetMode(gin.ReleaseMode)
	if err := serve(ctx, cfg, log, redactor, options{}); err != nil {
		log.WithError(err).Error("connector-amo stopped")
		return 1
	}
	return 0
}

// options are what tests change: the queue and its bindings (a test binds only its own PBX), the
// listeners (port 0), and a hook with the service's parts.
type options struct {
	queue   string
	keys    []string
	health  net.Listener
	public  net.Listener
	started func(s *service)
}

// service is the running connector's parts, for tests.
type service struct {
	client   *amo.Client
	oauth    *amo.OAuth
	handler  *calls.Handler
	consumer *consumer.Consumer
	status   *amo.StatusStore
	health   *health.Server
	store    *store.Store
	prefix   string
}

// keyPrefix is the Redis key prefix of one account: replicas of the same account share it.
func keyPrefix(host string) string { return "ringbridge:connector-amo:" + host }

func serve(ctx context.Context, cfg *config.Config, log *logrus.Entry, redactor *logging.Redactor, ov options) error {
	log.WithField("version", version).Info("connector-amo starting")
	if cfg.Source.FileSchema > 0 && cfg.Source.FileSchema < config.Version {
		log.WithField("file_schema", cfg.Source.FileSchema).Warn("config file is at an older schema; it was migrated in memory: run `connector-amo migrate-config --in-place FILE`")
	}
	a := cfg.Amo
	acct, err := url.Parse(a.Account)
	if err != nil || acct.Host == "" {
		return fmt.Errorf("amo.account %q is not a URL", a.Account)
	}
	prefix := keyPrefix(acct.Host)
	reg := prometheus.NewRegistry()
	hs := health.New(log, reg, health.WithRedactor(redactor))

	st, err := store.New(ctx, cfg.Redis, log)
	if err != nil {
		return err
	}
	defer st.Close()

	var tokens amo.TokenSource
	var oauth *amo.OAuth
	if a.Auth == "long_lived" {
		tokens = amo.NewLongLived(a.LongLivedToken)
	} else {
		in := amo.Integration{BaseURL: a.Account, ClientID: a.ClientID, ClientSecret: a.ClientSecret, RedirectURI: a.RedirectURI}
		oauth = amo.NewOAuth(st, amo.NewExchanger(in, nil, a.RequestTimeout), log, amo.OAuthOptions{Prefix: prefix, AuthorizationCode: a.AuthorizationCode})
		tokens = oauth
	}
	client, err := amo.New(amo.Options{
		BaseURL:    a.Account,
		Tokens:     tokens,
		Limiter:    amo.NewRedisLimiter(st.Client(), prefix+":rate", a.RateLimit),
		Timeout:    a.RequestTimeout,
		UserAgent:  "ringbridge-connector-amo/" + version,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	status := amo.NewStatusStore(st, prefix)
	links := recordings.New(a.Recordings, nil)
	handler := calls.New(calls.Options{Amo: a, Country: cfg.Classify.Country, Prefix: prefix, Registerer: reg}, client, st, links, log)

	b, err := bus.New(bus.Config{
		URL:        cfg.RabbitMQ.URL.Reveal(),
		Name:       serviceName,
		Prefetch:   cfg.RabbitMQ.Prefetch,
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

	spec := consumer.Spec(a.Workers, cfg.RabbitMQ.Prefetch)
	if ov.queue != "" {
		spec.Name = ov.queue
	}
	if len(ov.keys) > 0 {
		spec.Keys = ov.keys
	}
	cons := consumer.New(consumer.Options{Spec: spec, Host: acct.Host, Prefix: prefix, CheckInterval: a.AccountCheckInterval},
		b, st, status, func(ctx context.Context) error { _, err := client.Account(ctx); return err }, handler.Handle, log)

	hs.AddCheck("rabbitmq", func(context.Context) error { return b.Ready() })
	hs.AddCheck("redis", st.Ping)
	hs.AddCheck("amo", cons.Ready)

	// The public server: install redirect, click-to-call, recordings.
	wopt := web.Options{AccountURL: a.Account, ClientID: a.ClientID, RedirectURI: a.RedirectURI, PublicURL: a.Recordings.PublicURL, Recordings: links}
	if oauth != nil {
		wopt.Installer = oauth
		wopt.Installed = cons.Check
	}
	if !a.ClientSecret.IsZero() {
		ids := &accountIDs{client: client, st: st, key: prefix + ":account-id"}
		v, err := widget.NewVerifier(a.ClientSecret.Reveal(), a.ClientID, a.RedirectURI, ids.get, nil)
		if err != nil {
			log.WithError(err).Warn("click-to-call is off")
		} else {
			wopt.ClickToCall = widget.NewHandler(v, originator{b: b, pbx: cfg.PBX}, a.ExtensionOf, cfg.Classify.Country, a.Widget.RingTimeout, log)
		}
	} else {
		log.Info("click-to-call is off: it needs amo.client_secret (it signs the widget's tokens)")
	}
	engine := web.New(wopt, log)

	errc := make(chan error, 4)
	var wg sync.WaitGroup
	start := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- err
			}
		}()
	}
	hl := ov.health
	if hl == nil {
		listen := defaultListen
		if h, ok := cfg.HTTP[serviceName]; ok && h.Listen != "" {
			listen = h.Listen
		}
		if hl, err = net.Listen("tcp", listen); err != nil {
			return fmt.Errorf("health server: %w", err)
		}
	}
	pl := ov.public
	if pl == nil {
		if pl, err = net.Listen("tcp", a.Listen); err != nil {
			return fmt.Errorf("public server (amo.listen): %w", err)
		}
	}
	start(func() error { return hs.ServeListener(ctx, hl) })
	start(func() error { return servePublic(ctx, pl, engine, log) })
	if oauth != nil {
		start(func() error { keepTokens(ctx, oauth, log); return nil })
	}
	start(func() error { return cons.Run(ctx) })
	if ov.started != nil {
		ov.started(&service{client: client, oauth: oauth, handler: handler, consumer: cons, status: status, health: hs, store: st, prefix: prefix})
	}
	log.WithFields(logrus.Fields{"account": acct.Host, "queue": spec.Name, "public": pl.Addr().String(), "health": hl.Addr().String()}).Info("connector-amo running")
	select {
	case <-ctx.Done():
		log.Info("connector-amo stopping")
		wg.Wait()
		return nil
	case err := <-errc:
		return err
	}
}

// servePublic serves the public server until ctx ends, then drains it.
func servePublic(ctx context.Context, ln net.Listener, h http.Handler, log logrus.FieldLogger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      10 * time.Minute, // a recording download; click-to-call waits for the ring
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("public server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		log.WithError(err).Warn("public server: requests cut at shutdown")
	}
	return nil
}

// keepTokens refreshes the OAuth pair when due, also while no call comes.
func keepTokens(ctx context.Context, o *amo.OAuth, log logrus.FieldLogger) {
	t := time.NewTicker(tokenKeepEvery)
	defer t.Stop()
	for {
		if err := o.Keep(ctx); err != nil && ctx.Err() == nil {
			log.WithError(err).Warn("keeping the amoCRM token fresh")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// originator sends click-to-call to ami-gateway over RabbitMQ RPC.
type originator struct {
	b   *bus.Bus
	pbx string
}

func (o originator) Originate(ctx context.Context, cmd command.Originate) (command.OriginateReply, error) {
	var rep command.OriginateReply
	body, err := json.Marshal(cmd)
	if err != nil {
		return rep, err
	}
	raw, err := o.b.Call(ctx, bus.ExchangeCommands, command.OriginateKey(o.pbx), body)
	if err != nil {
		if errors.Is(err, bus.ErrUnroutable) {
			return rep, fmt.Errorf("no ami-gateway serves pbx %q: %w", o.pbx, err)
		}
		return rep, err
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return rep, fmt.Errorf("ami-gateway's reply is not an originate reply: %w", err)
	}
	return rep, nil
}

// accountIDs is the account's id (for the widget's tokens), read once from amoCRM and kept in
// Redis: it never changes.
type accountIDs struct {
	client *amo.Client
	st     *store.Store
	key    string
	mu     sync.Mutex
	id     int
}

func (a *accountIDs) get(ctx context.Context) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.id > 0 {
		return a.id, nil
	}
	if v, err := a.st.Client().Get(ctx, a.key).Result(); err == nil {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			a.id = n
			return n, nil
		}
	}
	info, err := a.client.Account(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the amoCRM account's id: %w", err)
	}
	a.id = info.ID
	_ = a.st.Client().Set(ctx, a.key, strconv.Itoa(info.ID), 0).Err()
	return a.id, nil
}
