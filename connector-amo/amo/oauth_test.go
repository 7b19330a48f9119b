package amo

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	amosim "github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

// account is one simulated amoCRM account with its Redis database.
type account struct {
	t      *testing.T
	sim    *amosim.Server
	base   string
	redis  config.Redis
	prefix string
	logs   *strings.Builder
	logMu  *sync.Mutex
}

func newAccount(t *testing.T, opts amosim.Options) *account {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := amosim.New(opts)
	base, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &account{t: t, sim: s, base: base, redis: testenv.RedisDB(t), prefix: "ringbridge:connector-amo:test", logs: &strings.Builder{}, logMu: &sync.Mutex{}}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (a *account) logger() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(lockedWriter{a.logMu, a.logs})
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

func (a *account) store() *store.Store {
	a.t.Helper()
	st, err := store.New(context.Background(), a.redis, a.logger())
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { st.Close() })
	return st
}

func (a *account) integration() Integration {
	in := a.sim.Integration()
	return Integration{BaseURL: a.base, ClientID: in.ClientID, ClientSecret: config.Secret(in.ClientSecret), RedirectURI: in.RedirectURI}
}

// replica is one connector process: its own Redis connection, token source and client.
func (a *account) replica(code config.Secret) (*OAuth, *Client) {
	a.t.Helper()
	st := a.store()
	o := NewOAuth(st, NewExchanger(a.integration(), nil, 5*time.Second), a.logger(), OAuthOptions{Prefix: a.prefix, AuthorizationCode: code})
	c, err := New(Options{BaseURL: a.base, Tokens: o, Limiter: NewRedisLimiter(st.Client(), a.prefix+":rate", 50), Logger: a.logger()})
	if err != nil {
		a.t.Fatal(err)
	}
	return o, c
}

// install stores the simulator's first pair as the install redirect would.
func (a *account) install(o *OAuth) {
	a.t.Helper()
	if _, err := o.Install(context.Background(), a.sim.AuthorizationCode()); err != nil {
		a.t.Fatal(err)
	}
}

func (a *account) tokenRequests() int {
	n := 0
	for _, r := range a.sim.Requests(0) {
		if r.Method == "POST /oauth2/access_token" {
			n++
		}
	}
	return n
}

func (a *account) requests(method string) []crmsim.Request {
	var out []crmsim.Request
	for _, r := range a.sim.Requests(0) {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// TestOAuth: the install never dies, whatever the replicas do at once.
func TestOAuth(t *testing.T) {
	ctx := context.Background()

	t.Run("install-then-calls", func(t *testing.T) {
		a := newAccount(t, amosim.Options{})
		o, c := a.replica("")
		if _, err := c.Account(ctx); err == nil {
			t.Fatal("a request before the install worked")
		} else if k, _ := KindOf(err); k != KindNotConnected {
			t.Fatalf("before the install: %v, want not connected", err)
		}
		a.install(o)
		info, err := c.Account(ctx)
		if err != nil || info.ID != a.sim.Account().ID {
			t.Fatalf("account %+v, err %v", info, err)
		}
	})

	t.Run("authorization-code-from-config", func(t *testing.T) {
		a := newAccount(t, amosim.Options{})
		code := config.Secret(a.sim.AuthorizationCode())
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			_, c := a.replica(code)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Account(ctx)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := a.tokenRequests(); n != 1 {
			t.Fatalf("the code was exchanged %d times, want once", n)
		}
	})

	t.Run("expired-authorization-code", func(t *testing.T) {
		a := newAccount(t, amosim.Options{CodeTTL: time.Millisecond})
		code := config.Secret(a.sim.AuthorizationCode())
		time.Sleep(5 * time.Millisecond)
		_, c := a.replica(code)
		_, err := c.Account(ctx)
		if k, _ := KindOf(err); k != KindNotConnected || !strings.Contains(err.Error(), "authorization_code was refused") {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("token-rotation-race", func(t *testing.T) {
		// Every replica finds the access token refused at the same moment (another process
		// rotated it, or it expired): exactly one refresh, and all of them go on with its pair.
		a := newAccount(t, amosim.Options{})
		const replicas = 8
		var clients []*Client
		for i := range replicas {
			o, c := a.replica("")
			if i == 0 {
				a.install(o)
			}
			clients = append(clients, c)
		}
		before := a.tokenRequests()
		for round := 0; round < 3; round++ {
			a.sim.ExpireAccessTokens()
			var wg sync.WaitGroup
			errs := make(chan error, replicas)
			start := make(chan struct{})
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := c.Account(ctx)
					errs <- err
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if n := a.tokenRequests() - before; n != round+1 {
				t.Fatalf("round %d: %d refreshes in all, want %d (one per round)", round, n, round+1)
			}
		}
		if strings.Contains(a.logs.String(), "revoked") {
			t.Fatalf("a replica used a revoked refresh token:\n%s", a.logs.String())
		}
	})

	t.Run("proactive-refresh-race", func(t *testing.T) {
		// The pair is due (under an hour left): replicas asking for a token at once refresh once.
		a := newAccount(t, amosim.Options{})
		const replicas = 6
		var sources []*OAuth
		for i := range replicas {
			o, _ := a.replica("")
			if i == 0 {
				a.install(o)
				// 23.5 hours later: half an hour left.
				p, _, _ := o.Load(ctx)
				p.ObtainedAt, p.ExpiresAt = time.Now().Add(-23*time.Hour-30*time.Minute), time.Now().Add(30*time.Minute)
				if err := o.st.SetJSON(ctx, o.key, p, 0); err != nil {
					t.Fatal(err)
				}
			}
			sources = append(sources, o)
		}
		before := a.tokenRequests()
		var wg sync.WaitGroup
		tokens := make(chan string, replicas)
		for _, o := range sources {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := o.Token(ctx)
				if err != nil {
					t.Error(err)
				}
				tokens <- tok
			}()
		}
		wg.Wait()
		close(tokens)
		if n := a.tokenRequests() - before; n != 1 {
			t.Fatalf("%d refreshes, want 1", n)
		}
		seen := map[string]bool{}
		for tok := range tokens {
			seen[tok] = true
		}
		// Each replica got a token amoCRM accepts; the one that refreshed may have returned the
		// new one before the others read it, but no old (revoked) one is handed out after that.
		p, _, _ := sources[0].Load(ctx)
		if !seen[p.AccessToken] || p.Generation != 2 {
			t.Fatalf("stored %v; tokens handed out %d", p, len(seen))
		}
	})

	t.Run("revoked-install", func(t *testing.T) {
		a := newAccount(t, amosim.Options{})
		o, c := a.replica("")
		a.install(o)
		a.sim.RevokeTokens() // the integration was uninstalled in amoCRM
		_, err := c.Account(ctx)
		if k, _ := KindOf(err); k != KindUnauthorized || !strings.Contains(err.Error(), "install the integration again") {
			t.Fatalf("err %v", err)
		}
		p, _, _ := o.Load(ctx)
		if p.Dead != "Token has been revoked" {
			t.Fatalf("pair %#v dead %q", p, p.Dead)
		}
		n := a.tokenRequests()
		if _, err := c.Account(ctx); err == nil {
			t.Fatal("a dead install worked")
		}
		if a.tokenRequests() != n {
			t.Fatal("a dead refresh token was tried again")
		}
		// A new install brings it back.
		a.install(o)
		if _, err := c.Account(ctx); err != nil {
			t.Fatalf("after a new install: %v", err)
		}
	})

	t.Run("refresh-token-expired", func(t *testing.T) {
		a := newAccount(t, amosim.Options{})
		o, c := a.replica("")
		a.install(o)
		a.sim.ExpireAccessTokens()
		a.sim.ExpireRefreshTokens()
		_, err := c.Account(ctx)
		if k, _ := KindOf(err); k != KindUnauthorized || !strings.Contains(err.Error(), "Token has expired") {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("wrong-client-secret-is-not-dead", func(t *testing.T) {
		a := newAccount(t, amosim.Options{})
		o, _ := a.replica("")
		a.install(o)
		in := a.integration()
		in.ClientSecret = "wrong"
		st := a.store()
		bad := NewOAuth(st, NewExchanger(in, nil, 5*time.Second), a.logger(), OAuthOptions{Prefix: a.prefix})
		c, _ := New(Options{BaseURL: a.base, Tokens: bad})
		a.sim.ExpireAccessTokens()
		_, err := c.Account(ctx)
		if k, _ := KindOf(err); k != KindUnauthorized || !strings.Contains(err.Error(), "client_secret") {
			t.Fatalf("err %v", err)
		}
		if p, _, _ := o.Load(ctx); p.Dead != "" {
			t.Fatal("a config mistake killed the install")
		}
		_, good := a.replica("")
		if _, err := good.Account(ctx); err != nil {
			t.Fatalf("with the right secret: %v", err)
		}
	})

	t.Run("long-lived-token", func(t *testing.T) {
		a := newAccount(t, amosim.Options{})
		c, err := New(Options{BaseURL: a.base, Tokens: NewLongLived(config.Secret(a.sim.LongLivedToken()))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Account(ctx); err != nil {
			t.Fatal(err)
		}
		a.sim.RevokeTokens()
		_, err = c.Account(ctx)
		if k, _ := KindOf(err); k != KindUnauthorized || !strings.Contains(err.Error(), "long-lived") {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("tokens-never-logged", func(t *testing.T) {
		a := newAccount(t, amosim.Options{})
		o, c := a.replica("")
		a.install(o)
		a.sim.ExpireAccessTokens()
		if _, err := c.Account(ctx); err != nil {
			t.Fatal(err)
		}
		p, _, _ := o.Load(ctx)
		logs := a.logs.String()
		for _, s := range []string{p.AccessToken, p.RefreshToken, a.sim.Integration().ClientSecret} {
			if strings.Contains(logs, s) {
				t.Fatalf("a secret is in the logs:\n%s", logs)
			}
		}
	})
}

// TestRedisLimiter: replicas sharing the limit never exceed the simulator's 7 per second.
func TestRedisLimiter(t *testing.T) {
	a := newAccount(t, amosim.Options{})
	o, _ := a.replica("")
	a.install(o)
	const replicas, each = 3, 10
	start := time.Now()
	var wg sync.WaitGroup
	for range replicas {
		st := a.store()
		c, err := New(Options{BaseURL: a.base, Tokens: o, Limiter: NewRedisLimiter(st.Client(), a.prefix+":rate7", 7), Logger: a.logger()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := c.Account(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := len(a.requests("GET /api/v4/account")); n != replicas*each {
		t.Fatalf("%d requests reached the account, want %d (a 429 was retried?)", n, replicas*each)
	}
	for _, r := range a.sim.Requests(0) {
		if r.Method == "GET /api/v4/account" && r.Status == 429 {
			t.Fatalf("429 with the shared limiter: %+v", r)
		}
	}
	rate := float64(replicas*each-1) / elapsed.Seconds()
	t.Logf("%d requests from %d replicas in %s: %.2f/s", replicas*each, replicas, elapsed.Round(time.Millisecond), rate)
	if rate > 7 {
		t.Fatalf("%.2f requests/s is over the limit", rate)
	}
	_ = io.Discard
}
