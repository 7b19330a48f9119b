package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
	"github.com/ringbridge/ringbridge/connector-amo/internal/amotest"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/command"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	amosim "github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

// stack is one test's amoCRM account, Redis database, broker queue and config.
type stack struct {
	t    *testing.T
	pbx  string
	acct *amotest.Account
	cfg  *config.Config
	b    *bus.Bus // the test's own connection: publishes events, plays the gateway
	spec bus.QueueSpec
	logs *testenv.Buffer
	recs string // recordings folder
}

func newStack(t *testing.T, opts amosim.Options, edit func(*config.Config)) *stack {
	t.Helper()
	pbx := fmt.Sprintf("amo%d", time.Now().UnixNano()%1e9)
	acct := amotest.NewAccount(t, opts)
	cfg := config.Defaults()
	cfg.PBX = pbx
	cfg.CRM = "amo"
	cfg.AMI.Username, cfg.AMI.Secret = "crm", "ami-secret" // the file is shared; connector-amo does not use them
	cfg.Amo = acct.AmoConfig()
	recs := t.TempDir()
	cfg.Amo.Recordings = config.AmoRecordings{PublicURL: "https://pbx.example.com/amo", Dir: recs, LinkTTL: 24 * time.Hour, SigningKey: "0123456789abcdef0123456789abcdef"}
	cfg.RabbitMQ.URL = config.Secret(testenv.RabbitURL(t))
	cfg.Redis = testenv.RedisDB(t)
	cfg.Log = config.Log{Level: "debug", Format: "json"}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	b, err := bus.Dial(context.Background(), bus.Config{URL: cfg.RabbitMQ.URL.Reveal(), Name: "test-" + pbx})
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, pbx: pbx, acct: acct, cfg: cfg, b: b, logs: &testenv.Buffer{}, recs: recs,
		spec: bus.QueueSpec{Name: "test." + pbx + ".connector-amo.calls", Exchange: bus.ExchangeCalls, Keys: []string{"call." + pbx + ".*"}}}
	// The queue exists before anything is published, so nothing published before a connector
	// starts is unroutable.
	if err := b.DeclareQueue(context.Background(), s.spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.DeleteQueue(ctx, s.spec)
		b.Close(ctx)
		if t.Failed() {
			t.Logf("connector log:\n%s", tail(s.logs.String(), 80))
		}
	})
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// replica is one running connector process.
type replica struct {
	svc    *service
	health string // http://host:port
	public string
	stop   func()
}

// start runs a connector in this process until the test ends (or stop).
func (s *stack) start() *replica {
	s.t.Helper()
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	r := &replica{health: "http://" + hl.Addr().String(), public: "http://" + pl.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started := make(chan *service, 1)
	redactor := logging.NewRedactor(s.cfg.Secrets()...)
	log := logging.New(serviceName, s.cfg.Log, s.logs, logging.WithRedactor(redactor))
	go func() {
		defer close(done)
		err := serve(ctx, s.cfg, log, redactor, options{queue: s.spec.Name, keys: s.spec.Keys, health: hl, public: pl,
			started: func(svc *service) { started <- svc }})
		if err != nil {
			s.t.Errorf("serve: %v", err)
		}
	}()
	select {
	case r.svc = <-started:
	case <-done:
		s.t.Fatal("the connector stopped at start")
	}
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); <-done }) }
	s.t.Cleanup(r.stop)
	return r
}

// install opens the install redirect as amoCRM sends the admin to it.
func (s *stack) install(r *replica) {
	s.t.Helper()
	code, body := get(s.t, r.public+"/oauth?code="+url.QueryEscape(s.acct.AuthorizationCode())+"&referer="+url.QueryEscape(hostOf(s.cfg.Amo.Account))+"&client_id="+s.cfg.Amo.ClientID)
	if code != 200 || !strings.Contains(body, "Connected") {
		s.t.Fatalf("install redirect: %d %s", code, body)
	}
}

func hostOf(u string) string {
	p, _ := url.Parse(u)
	return p.Host
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// events are the fixtures' call events, moved to this test's PBX.
func (s *stack) events() []amotest.Recording {
	recs := amotest.Recordings(s.t)
	for i := range recs {
		for j := range recs[i].Events {
			e := &recs[i].Events[j]
			e.ID = strings.Replace(e.ID, e.PBX+"/", s.pbx+"/", 1)
			e.PBX = s.pbx
		}
	}
	return recs
}

func (s *stack) publish(evs ...callevent.Event) {
	s.t.Helper()
	for i := range evs {
		body, err := callevent.Marshal(&evs[i])
		if err != nil {
			s.t.Fatal(err)
		}
		if err := s.b.Publish(context.Background(), bus.ExchangeCalls, evs[i].RoutingKey(), bus.Message{ID: evs[i].ID, Type: "call." + string(evs[i].Kind), Body: body}); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *stack) waitFor(what string, d time.Duration, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *stack) parked() int {
	s.t.Helper()
	ps, err := s.b.Parked(context.Background(), s.spec.Name, 100)
	if err != nil {
		s.t.Fatal(err)
	}
	return len(ps)
}

// wantCalls is how many calls the fixtures put into amoCRM: 15 recordings less the internal call
// and the outbound call to an unknown number.
const wantCalls = 13

// TestService runs the connector as the binary does, against RabbitMQ, Redis and the simulator.
func TestService(t *testing.T) {
	t.Run("fixtures-redelivered-two-replicas", func(t *testing.T) {
		s := newStack(t, amosim.Options{}, nil)
		a, b := s.start(), s.start()
		s.install(a)
		recs := s.events()
		var all []callevent.Event
		for _, r := range recs {
			all = append(all, r.Events...)
		}
		s.publish(all...)
		s.publish(all...) // every event twice: a gateway republishing after a reconnection
		s.waitFor("every call in amoCRM", 30*time.Second, func() bool { return len(s.acct.Calls()) >= wantCalls })
		time.Sleep(500 * time.Millisecond) // let any duplicate arrive
		for _, r := range recs {
			end := r.Ended()
			if n := len(s.acct.CallsByUniq(end.CallID)); n > 1 {
				t.Errorf("%s: %d calls", r.Name, n)
			}
		}
		if n := len(s.acct.Calls()); n != wantCalls {
			t.Fatalf("%d calls, want %d", n, wantCalls)
		}
		if s.parked() != 0 {
			t.Fatal("messages were parked")
		}
		_ = b
	})

	t.Run("not-connected-holds-then-install", func(t *testing.T) {
		s := newStack(t, amosim.Options{}, nil)
		r := s.start()
		recs := s.events()
		s.publish(recs[5].Events...) // inbound-answered
		s.waitFor("readiness to say not connected", 10*time.Second, func() bool {
			code, body := get(t, r.health+"/readyz")
			return code == 503 && strings.Contains(body, "not connected")
		})
		time.Sleep(300 * time.Millisecond)
		if len(s.acct.Calls()) != 0 || s.parked() != 0 {
			t.Fatal("a call went somewhere before the install")
		}
		s.install(r)
		s.waitFor("the held call", 10*time.Second, func() bool { return len(s.acct.Calls()) == 1 })
		if code, body := get(t, r.health+"/readyz"); code != 200 {
			t.Fatalf("readyz after install: %d %s", code, body)
		}
	})

	t.Run("error-402-holds-then-paid", func(t *testing.T) {
		s := newStack(t, amosim.Options{}, nil)
		r := s.start()
		s.install(r)
		s.acct.SetAccountState(amosim.Unpaid)
		recs := s.events()
		for _, rec := range recs {
			s.publish(rec.Events...)
		}
		s.waitFor("readiness to say not paid", 10*time.Second, func() bool {
			code, body := get(t, r.health+"/readyz")
			return code == 503 && strings.Contains(body, "not paid")
		})
		st, err := r.svc.status.Get(context.Background())
		if err != nil || st.State != amo.StateUnpaid || !strings.Contains(st.Message, "kept in the queue") {
			t.Fatalf("status in Redis %+v %v", st, err)
		}
		time.Sleep(time.Second)
		if len(s.acct.Calls()) != 0 || s.parked() != 0 {
			t.Fatalf("%d calls, %d parked while unpaid", len(s.acct.Calls()), s.parked())
		}
		s.acct.SetAccountState(amosim.Active)
		s.waitFor("the held calls", 30*time.Second, func() bool { return len(s.acct.Calls()) == wantCalls })
		if s.parked() != 0 {
			t.Fatal("messages were parked")
		}
	})

	t.Run("error-403-blocked", func(t *testing.T) {
		s := newStack(t, amosim.Options{}, nil)
		r := s.start()
		s.install(r)
		s.acct.SetAccountState(amosim.Blocked)
		s.publish(s.events()[5].Events...)
		s.waitFor("readiness to say blocked", 10*time.Second, func() bool {
			_, body := get(t, r.health+"/readyz")
			return strings.Contains(body, "403 Forbidden")
		})
		s.acct.SetAccountState(amosim.Active)
		s.waitFor("the held call", 10*time.Second, func() bool { return len(s.acct.Calls()) == 1 })
	})

	t.Run("token-rotation-two-replicas-mid-stream", func(t *testing.T) {
		s := newStack(t, amosim.Options{}, nil)
		a, b := s.start(), s.start()
		s.install(a)
		recs := s.events()
		for i, rec := range recs {
			s.publish(rec.Events...)
			if i%3 == 2 {
				// Mid-stream: once this call is in, every token expires; the replicas find it
				// refused at the same moment and must refresh once between them.
				s.waitFor("the call", 10*time.Second, func() bool {
					st, _, _ := a.svc.handler.States().Get(context.Background(), s.pbx, rec.Ended().CallID)
					return st.Done
				})
				s.acct.ExpireAccessTokens()
			}
		}
		s.waitFor("every call", 30*time.Second, func() bool { return len(s.acct.Calls()) >= wantCalls })
		refreshes := 0
		for _, r := range s.acct.Requests(0) {
			if r.Method == "POST /oauth2/access_token" {
				refreshes++
			}
		}
		t.Logf("%d token requests (install included) for %d expiries", refreshes, len(recs)/3)
		if strings.Contains(s.logs.String(), "Token has been revoked") {
			t.Fatal("a replica used a revoked refresh token")
		}
		p, _, _ := b.svc.oauth.Load(context.Background())
		if p.Dead != "" {
			t.Fatalf("the install died: %s", p.Dead)
		}
	})

	t.Run("rate-limit-429-storm", func(t *testing.T) {
		s := newStack(t, amosim.Options{RateLimit: amosim.RateLimit{PerSecond: 7}}, func(c *config.Config) {
			c.Amo.RateLimit = 20 // misconfigured above the account's real limit: 429s must not lose calls
		})
		a, _ := s.start(), s.start()
		s.install(a)
		for _, rec := range s.events() {
			s.publish(rec.Events...)
		}
		s.waitFor("every call", 60*time.Second, func() bool { return len(s.acct.Calls()) >= wantCalls })
		time.Sleep(300 * time.Millisecond)
		if n := len(s.acct.Calls()); n != wantCalls || s.parked() != 0 {
			t.Fatalf("%d calls, %d parked", n, s.parked())
		}
	})

	t.Run("no-answer-retried-not-resent", func(t *testing.T) {
		// amoCRM logs the call but its answer comes after the connector gave up: the message goes
		// through the retry queue, and the retry finds the call instead of sending it again.
		s := newStack(t, amosim.Options{}, nil)
		r := s.start()
		s.install(r)
		s.acct.AddFault(crmsim.Fault{Method: "POST /api/v4/calls", Delay: 3 * s.cfg.Amo.RequestTimeout / 2, Count: 1})
		rec := s.events()[5] // inbound-answered
		s.publish(rec.Events...)
		s.waitFor("the call handled", 30*time.Second, func() bool {
			st, _, _ := r.svc.handler.States().Get(context.Background(), s.pbx, rec.Ended().CallID)
			return st.Done
		})
		if n := len(s.acct.CallsByUniq(rec.Ended().CallID)); n != 1 {
			t.Fatalf("%d calls, want 1", n)
		}
		sent := 0
		for _, q := range s.acct.Requests(0) {
			if q.Method == "POST /api/v4/calls" {
				sent++
			}
		}
		if sent != 1 || s.parked() != 0 {
			t.Fatalf("the call was sent %d times, %d parked", sent, s.parked())
		}
	})

	t.Run("recording-link-plays", func(t *testing.T) {
		s := newStack(t, amosim.Options{}, nil)
		r := s.start()
		s.install(r)
		var rec amotest.Recording
		for _, x := range s.events() {
			if x.Name == "inbound-with-recording" {
				rec = x
			}
		}
		os.WriteFile(filepath.Join(s.recs, rec.Ended().Recording), []byte("RIFF-recording"), 0o644)
		s.publish(rec.Events...)
		s.waitFor("the call", 10*time.Second, func() bool { return len(s.acct.Calls()) == 1 })
		link := s.acct.Calls()[0].Link
		u, _ := url.Parse(link)
		local := r.public + strings.TrimPrefix(u.RequestURI(), "/amo")
		if code, body := get(t, local); code != 200 || body != "RIFF-recording" {
			t.Fatalf("%s: %d %s", local, code, body)
		}
		// The same path under the public URL's prefix (a proxy that does not strip it).
		if code, _ := get(t, r.public+u.RequestURI()); code != 200 {
			t.Fatalf("prefixed path: %d", code)
		}
		tampered := strings.Replace(local, "sig=", "sig=A", 1)
		if code, _ := get(t, tampered); code != 403 {
			t.Fatalf("tampered link: %d", code)
		}
		if strings.Contains(s.logs.String(), u.Query().Get("sig")) {
			t.Fatal("a link's signature is in the log")
		}
	})

	t.Run("health-and-metrics", func(t *testing.T) {
		s := newStack(t, amosim.Options{}, nil)
		r := s.start()
		s.install(r)
		s.waitFor("ready", 10*time.Second, func() bool { code, _ := get(t, r.health+"/readyz"); return code == 200 })
		if code, _ := get(t, r.health+"/healthz"); code != 200 {
			t.Fatal("healthz")
		}
		s.publish(s.events()[5].Events...)
		s.waitFor("the call", 10*time.Second, func() bool { return len(s.acct.Calls()) == 1 })
		_, m := get(t, r.health+"/metrics")
		for _, want := range []string{`ringbridge_amo_requests_total{route="POST /api/v4/calls",status="200"} 1`, `ringbridge_amo_calls_total{outcome="logged"} 1`, "ringbridge_bus_"} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics do not have %s", want)
			}
		}
		for _, secret := range []string{s.acct.Integration().ClientSecret} {
			if strings.Contains(s.logs.String(), secret) {
				t.Fatal("the client secret is in the log")
			}
		}
	})
}

// gateway answers originate commands for the test's PBX as ami-gateway would.
func (s *stack) gateway(reply command.OriginateReply) *[]command.Originate {
	s.t.Helper()
	var mu sync.Mutex
	got := &[]command.Originate{}
	spec := bus.QueueSpec{Name: "test." + s.pbx + ".commands", Exchange: bus.ExchangeCommands, Keys: []string{command.OriginateKey(s.pbx)}}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.b.DeclareRPCQueue(ctx, spec); err != nil {
		s.t.Fatal(err)
	}
	go s.b.Serve(ctx, spec, func(_ context.Context, d bus.Delivery) ([]byte, error) {
		var o command.Originate
		if err := json.Unmarshal(d.Body, &o); err != nil {
			return nil, err
		}
		mu.Lock()
		*got = append(*got, o)
		mu.Unlock()
		return json.Marshal(reply)
	})
	s.t.Cleanup(func() {
		cancel()
		s.b.DeleteQueue(context.Background(), spec)
	})
	return got
}

// TestClickToCall: the widget's click rings the employee's phone only with a valid disposable
// token of this account.
func TestClickToCall(t *testing.T) {
	s := newStack(t, amosim.Options{}, nil)
	r := s.start()
	s.install(r)
	got := s.gateway(command.OriginateReply{Result: command.ResultAnswered, CallID: "1795635265.86"})
	target := r.public + "/click-to-call"
	cases := []struct {
		name   string
		call   amosim.WidgetCall
		status int
		want   string
	}{
		{"valid", amosim.WidgetCall{Phone: "8 (916) 111-22-33", UserID: amotest.User101}, 200, `"result":"answered"`},
		{"valid-bearer-header", amosim.WidgetCall{Phone: "+79161112234", UserID: amotest.User102, Header: "Authorization"}, 200, `"result":"answered"`},
		{"expired", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User101, Token: s.acct.DisposableToken(amotest.User101, -time.Minute)}, 401, "expired"},
		{"tampered-signature", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User101, Token: s.acct.DisposableToken(amotest.User101, time.Minute, amosim.SignedWith("not-the-secret"))}, 401, "signature"},
		{"tampered-payload", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User101, Token: tamper(s.acct.DisposableToken(amotest.User101, time.Minute))}, 401, "signature"},
		{"wrong-account", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User101, Token: s.acct.DisposableToken(amotest.User101, time.Minute, amosim.ForAccount(99999, "other"))}, 403, "another amoCRM account"},
		{"wrong-audience", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User101, Token: s.acct.DisposableToken(amotest.User101, time.Minute, amosim.WithClaims(func(c *amosim.DisposableClaims) { c.Aud = "https://evil.example" }))}, 403, "another integration"},
		{"alg-none", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User101, Token: algNone(s.acct.DisposableToken(amotest.User101, time.Minute))}, 401, "signature"},
		{"no-token", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User101, Token: " "}, 401, "X-Auth-Token"},
		{"user-without-extension", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.Admin}, 403, "no extension"},
		{"other-user-in-body", amosim.WidgetCall{Phone: "+79161112233", UserID: amotest.User102, Token: s.acct.DisposableToken(amotest.User101, time.Minute)}, 403, "not the token's user"},
		{"bad-phone", amosim.WidgetCall{Phone: "call me maybe", UserID: amotest.User101}, 400, "phone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(*got)
			resp, err := s.acct.ClickToCall(context.Background(), target, c.call)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, body, c.status, c.want)
			}
			if c.status == 200 {
				if len(*got) != before+1 {
					t.Fatal("no originate reached the gateway")
				}
				o := (*got)[len(*got)-1]
				if o.Extension == "" || !strings.HasPrefix(o.Number, "+7916111223") || o.TimeoutSeconds != 30 {
					t.Fatalf("originate %+v", o)
				}
			} else if len(*got) != before {
				t.Fatal("a refused click rang a phone")
			}
		})
	}
	t.Run("cors-preflight", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, target, nil)
		req.Header.Set("Origin", hostOrigin(s.cfg.Amo.Account))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Auth-Token") {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})
}

func hostOrigin(u string) string {
	p, _ := url.Parse(u)
	return p.Scheme + "://" + p.Host
}

// tamper changes the token's payload (user 502 → 503) and keeps its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	raw, _ := decodeSeg(parts[1])
	raw = bytes.Replace(raw, []byte(`"user_id":502`), []byte(`"user_id":503`), 1)
	parts[1] = encodeSeg(raw)
	return strings.Join(parts, ".")
}

// algNone rewrites the header to alg none and drops the signature.
func algNone(tok string) string {
	parts := strings.Split(tok, ".")
	return encodeSeg([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

func encodeSeg(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func decodeSeg(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestRun covers the command line.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	cases := []struct {
		name string
		args []string
		code int
		out  string
		err  string
	}{
		{"no-args", nil, 2, "", "usage"},
		{"version", []string{"version"}, 0, "dev", ""},
		{"unknown", []string{"frobnicate"}, 2, "", "unknown command"},
		{"migrate-config", []string{"migrate-config", write("m.yaml", "schema: 1\npbx: p\n")}, 0, "pbx: p", ""},
		{"run-not-amo", []string{"run", "--config", write("none.yaml", "schema: 1\npbx: p\nami: {username: u, secret: s}\n")}, 1, "", "runs for crm: amo"},
		{"run-bad-amo", []string{"run", "--config", write("bad.yaml", "schema: 1\npbx: p\nami: {username: u, secret: s}\ncrm: amo\namo: {account: 'x', unknown_numbers: maybe}\n")}, 1, "", "amo.unknown_numbers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, &out, &errb); code != c.code {
				t.Fatalf("exit %d, want %d: %s %s", code, c.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.err) {
				t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
			}
		})
	}
}
