package bitrix

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	bxsim "github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

// portal is one test's simulated portal, Redis database and installed application.
type portal struct {
	t    *testing.T
	sim  *bxsim.Server
	st   *store.Store
	inst bxsim.Install
	logs *testenv.Buffer
}

func testUsers() []bxsim.User {
	return []bxsim.User{
		{ID: 1, Name: "Anna", PhoneInner: "101", Admin: true},
		{ID: 2, Name: "Oleg", PhoneInner: "102"},
		{ID: 3, Name: "Gone", PhoneInner: "103", Inactive: true},
	}
}

func newPortal(t *testing.T, opts bxsim.Options) *portal {
	t.Helper()
	if opts.Users == nil {
		opts.Users = testUsers()
	}
	sim := bxsim.New(opts)
	if err := sim.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	logs := &testenv.Buffer{}
	l := logrus.New()
	l.SetOutput(logs)
	st, err := store.New(context.Background(), testenv.RedisDB(t), logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inst, err := sim.IssueInstall(bxsim.InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &portal{t: t, sim: sim, st: st, inst: inst, logs: logs}
}

// client is a replica of the connector's client, installed with the portal's tokens.
func (p *portal) client(mod func(*Options)) *Client {
	p.t.Helper()
	l := logrus.New()
	l.SetOutput(p.logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	opt := Options{
		Portal:       p.sim.URL(),
		Mode:         "app",
		ClientID:     p.inst.ClientID,
		ClientSecret: config.Secret(p.inst.ClientSecret),
		OAuthServer:  p.sim.URL(),
		Store:        p.st,
		Prefix:       "test",
		RetryBase:    10 * time.Millisecond,
		Logger:       logrus.NewEntry(l),
	}
	if mod != nil {
		mod(&opt)
	}
	c, err := New(opt)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(c.Close)
	return c
}

// install stores the portal's tokens as the install handler would.
func (p *portal) install() {
	p.t.Helper()
	ts := NewTokenStore(p.st, "test", p.sim.URL())
	err := ts.Save(context.Background(), Tokens{AccessToken: p.inst.AccessToken, RefreshToken: p.inst.RefreshToken,
		ApplicationToken: p.inst.ApplicationToken, Expires: p.inst.Expires, InstalledAt: time.Now()})
	if err != nil {
		p.t.Fatal(err)
	}
}

// requests are the REST commands the portal received, batches expanded, by method.
func (p *portal) commands(method string) []crmsim.Request {
	var out []crmsim.Request
	for _, r := range bxsim.ExpandBatch(p.sim.Requests(0)) {
		if method == "" || r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// httpRequests counts HTTP requests to the REST API (a batch is one).
func (p *portal) httpRequests() (n int, batches int) {
	for _, r := range p.sim.Requests(0) {
		if r.Method == "oauth.token" {
			continue
		}
		n++
		if r.Method == "batch" {
			batches++
		}
	}
	return n, batches
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not say %q", s, sub)
		}
	}
}
