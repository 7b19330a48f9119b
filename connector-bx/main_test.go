package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ringbridge/ringbridge/ami-gateway/replay"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/command"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	bxsim "github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

const fixtures = "../../shared/fixtures/ami-asterisk22"

// stack is one test's portal, broker queue, Redis database and connector config.
type stack struct {
	t     testing.TB
	pbx   string
	sim   *bxsim.Server
	inst  bxsim.Install
	cfg   *config.Config
	b     *bus.Bus
	queue string
	logs  *testenv.Buffer
	so    serviceOptions
}

func newStack(t testing.TB, simOpts bxsim.Options, mod func(*config.Config)) *stack {
	t.Helper()
	if simOpts.Users == nil {
		for i := 1; i <= 8; i++ {
			simOpts.Users = append(simOpts.Users, bxsim.User{ID: i, Name: fmt.Sprint("User", i), PhoneInner: fmt.Sprint(100 + i), Admin: i == 1})
		}
	}
	sim := bxsim.New(simOpts)
	if err := sim.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	inst, err := sim.IssueInstall(bxsim.InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pbx := fmt.Sprintf("bx%d", time.Now().UnixNano()%1e9)
	cfg := config.Defaults()
	cfg.PBX = pbx
	cfg.CRM = "bitrix"
	cfg.RabbitMQ.URL = config.Secret(testenv.RabbitURL(t))
	cfg.Redis = testenv.RedisDB(t)
	cfg.Log = config.Log{Level: "debug", Format: "json"}
	cfg.HTTP = map[string]config.HTTP{"connector-bx": {Listen: "127.0.0.1:0"}}
	cfg.Bitrix.Portal = sim.URL()
	cfg.Bitrix.App = config.BitrixApp{ClientID: inst.ClientID, ClientSecret: config.Secret(inst.ClientSecret), OAuthServer: sim.URL()}
	cfg.Bitrix.Listen = "127.0.0.1:0"
	cfg.Bitrix.Workers = 16
	cfg.Bitrix.ClickToCall.RingTimeout = 5 * time.Second
	if mod != nil {
		mod(cfg)
	}
	b, err := bus.Dial(context.Background(), bus.Config{URL: cfg.RabbitMQ.URL.Reveal(), Name: "test-" + pbx})
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, pbx: pbx, sim: sim, inst: inst, cfg: cfg, b: b, queue: "test." + pbx + ".connector-bx", logs: &testenv.Buffer{}}
	s.so = serviceOptions{Queue: s.queue, BindingKeys: []string{"call." + pbx + ".*"},
		RetryDelays: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, Prefix: "test:" + pbx}
	// Declared before any event is published, so none is unroutable.
	spec := bus.QueueSpec{Name: s.queue, Exchange: bus.ExchangeCalls, Keys: s.so.BindingKeys, RetryDelays: s.so.RetryDelays}
	if err := b.DeclareQueue(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.DeleteQueue(context.Background(), spec)
		b.Close(context.Background())
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

// instance is one running connector.
type instance struct {
	health, handlers string
	stop             func()
}

// start runs a connector in this process until stop (or the test's end).
func (s *stack) start() *instance {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{}
	ready := make(chan struct{})
	so := s.so
	so.Ready = func(h, hd string) { in.health, in.handlers = h, hd; close(ready) }
	done := make(chan struct{})
	redactor := logging.NewRedactor(s.cfg.Secrets()...)
	log := logging.New("connector-bx", s.cfg.Log, s.logs, logging.WithRedactor(redactor))
	go func() {
		defer close(done)
		if err := serve(ctx, s.cfg, log, redactor, so); err != nil {
			s.t.Errorf("serve: %v", err)
		}
	}()
	select {
	case <-ready:
	case <-done:
		s.t.Fatal("the connector stopped at once")
	case <-time.After(10 * time.Second):
		s.t.Fatal("the connector did not listen within 10s")
	}
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				s.t.Error("the connector did not stop within 30s")
			}
		})
	}
	s.t.Cleanup(in.stop)
	return in
}

// install posts ONAPPINSTALL the way the portal does.
func (s *stack) install(in *instance) {
	s.t.Helper()
	if err := s.sim.SendAppInstall(context.Background(), "http://"+in.handlers+"/bitrix/install", s.inst); err != nil {
		s.t.Fatalf("install: %v", err)
	}
}

// events are the call events of a recording, as this stack's PBX.
func (s *stack) events(name string) []*callevent.Event {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, "replay.yaml"))
	if err != nil {
		s.t.Fatal(err)
	}
	var rc struct {
		Classify config.Classify `yaml:"classify"`
	}
	if err := yaml.Unmarshal(raw, &rc); err != nil {
		s.t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(fixtures, name+".ami"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if _, err := replay.Run(f, &out, replay.Options{PBX: s.pbx, Classify: rc.Classify}); err != nil {
		s.t.Fatal(err)
	}
	var evs []*callevent.Event
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ev, err := callevent.Unmarshal(sc.Bytes())
		if err != nil {
			s.t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func (s *stack) publish(evs ...*callevent.Event) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var confs []*bus.Confirmation
	for _, ev := range evs {
		body, err := callevent.Marshal(ev)
		if err != nil {
			s.t.Fatal(err)
		}
		c, err := s.b.PublishAsync(ctx, bus.ExchangeCalls, ev.RoutingKey(), bus.Message{ID: ev.ID, Type: "call." + string(ev.Kind), Body: body})
		if err != nil {
			s.t.Fatal(err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if err := c.Wait(ctx); err != nil {
			s.t.Fatal(err)
		}
	}
}

// waitFinished waits until n calls are finished in the portal.
func (s *stack) waitFinished(n int, within time.Duration) []bxsim.Call {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var done []bxsim.Call
		for _, c := range s.sim.Calls() {
			if c.Finish != nil {
				done = append(done, c)
			}
		}
		if len(done) >= n {
			return done
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d calls finished after %s", len(done), n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// commands are the telephony requests the portal received, batches expanded.
func (s *stack) commands(method string) []crmsim.Request {
	var out []crmsim.Request
	for _, r := range bxsim.ExpandBatch(s.sim.Requests(0)) {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// finishWant is each recording's finish (extension 10N is user N); internal calls never reach
// the portal.
var finishWant = map[string]string{
	"inbound-answered":             "1/200/12",
	"inbound-missed":               "1/304/0",
	"inbound-abandoned-ringing":    "1/304/0",
	"inbound-busy":                 "3/486/0",
	"inbound-with-recording":       "2/200/10",
	"ringgroup-answered-by-second": "2/200/11",
	"queue-answered":               "2/200/13",
	"queue-abandoned":              "1/304/0",
	"blind-transfer":               "2/200/20",
	"blind-transfer-redirect":      "2/200/21",
	"attended-transfer":            "2/200/31",
	"outbound-answered":            "1/200/16",
	"outbound-noanswer":            "2/603-S/0",
}

// TestService: every Asterisk 22 recording's events through RabbitMQ, each published twice (the
// gateway's at-least-once), consumed by one connector and by two at once: each call registered
// once, its card hidden everywhere at the end, finished once for who answered with the right
// status; the internal call never reaches the portal.
func TestService(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas-%d", replicas), func(t *testing.T) {
			s := newStack(t, bxsim.Options{}, nil)
			var ins []*instance
			for range replicas {
				ins = append(ins, s.start())
			}
			s.install(ins[0])
			byCall := map[string]string{}
			var all []*callevent.Event
			for name := range finishWant {
				evs := s.events(name)
				byCall[evs[0].CallID] = name
				all = append(all, evs...)
			}
			internal := s.events("internal-call")
			all = append(all, internal...)
			s.publish(all...)
			s.publish(all...) // every event again
			calls := s.waitFinished(len(finishWant), 60*time.Second)
			time.Sleep(300 * time.Millisecond) // anything late would show now
			calls = s.sim.Calls()
			if len(calls) != len(finishWant) {
				t.Errorf("%d calls in the portal, want %d", len(calls), len(finishWant))
			}
			regs := map[string]int{}
			for _, r := range s.commands("telephony.externalcall.register") {
				if r.Status == http.StatusOK {
					regs[r.Param("EXTERNAL_CALL_ID")]++
				}
			}
			for _, c := range calls {
				name := byCall[c.ExternalCallID]
				if name == "" {
					t.Errorf("call %s registered for an unknown call %q", c.CallID, c.ExternalCallID)
					continue
				}
				if regs[c.ExternalCallID] != 1 {
					t.Errorf("%s: registered %d times", name, regs[c.ExternalCallID])
				}
				if c.Show {
					t.Errorf("%s: registered with SHOW=1", name)
				}
				if c.Finish == nil {
					t.Errorf("%s: not finished", name)
					continue
				}
				got := fmt.Sprintf("%d/%s/%d", c.Finish.UserID, c.Finish.StatusCode, c.Finish.Duration)
				if got != finishWant[name] || !c.Finish.StatusSent {
					t.Errorf("%s: finished %s (status sent %v), want %s", name, got, c.Finish.StatusSent, finishWant[name])
				}
				if len(c.ShownTo) != 0 {
					t.Errorf("%s: card still shown to %v", name, c.ShownTo)
				}
				finishes := 0
				for _, h := range c.History {
					if h.Action == "finish" {
						finishes++
					}
				}
				if finishes != 1 {
					t.Errorf("%s: %d finish requests", name, finishes)
				}
			}
			if regs[internal[0].CallID] != 0 {
				t.Error("the internal call reached the portal")
			}
		})
	}
}

// fakeGateway answers originate commands for the stack's PBX, as ami-gateway would.
type fakeGateway struct {
	mu   sync.Mutex
	reqs []command.Originate
	got  chan command.Originate
}

func (s *stack) gateway(result command.Result) *fakeGateway {
	g := &fakeGateway{got: make(chan command.Originate, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	spec := bus.QueueSpec{Name: "test." + s.pbx + ".originate", Exchange: bus.ExchangeCommands, Keys: []string{command.OriginateKey(s.pbx)}}
	if err := s.b.DeclareRPCQueue(ctx, spec); err != nil {
		s.t.Fatal(err)
	}
	go s.b.Serve(ctx, spec, func(_ context.Context, d bus.Delivery) ([]byte, error) {
		var req command.Originate
		if err := json.Unmarshal(d.Body, &req); err != nil {
			return nil, err
		}
		g.mu.Lock()
		g.reqs = append(g.reqs, req)
		g.mu.Unlock()
		g.got <- req
		return json.Marshal(command.OriginateReply{Result: result, CallID: "1795635265.86"})
	})
	s.t.Cleanup(func() {
		cancel()
		s.b.DeleteQueue(context.Background(), spec)
	})
	return g
}

// TestServiceClickToCall: a click in Bitrix24 → ONEXTERNALCALLSTART → an originate command to the
// PBX's gateway over RabbitMQ → the call's events → the call finished with Bitrix24's CALL_ID,
// never registered again. A forged event rings nothing.
func TestServiceClickToCall(t *testing.T) {
	s := newStack(t, bxsim.Options{}, nil)
	g := s.gateway(command.ResultAnswered)
	in := s.start()
	s.install(in)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("forged-event", func(t *testing.T) {
		form := url.Values{"event": {"ONEXTERNALCALLSTART"}, "data[CALL_ID]": {"externalCall.x"}, "data[USER_ID]": {"1"},
			"data[PHONE_NUMBER]": {"+79161112233"}, "auth[application_token]": {"forged"}}
		resp, err := http.PostForm("http://"+in.handlers+"/bitrix/event", form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "application_token") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	start := time.Now()
	callID, err := s.sim.SendExternalCallStart(ctx, "http://"+in.handlers+"/bitrix/event",
		bxsim.CallStartFields{UserID: 1, PhoneNumber: "+79161112233", LineNumber: "+74951234567"})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the event handler took %s to answer", d)
	}
	var req command.Originate
	select {
	case req = <-g.got:
	case <-ctx.Done():
		t.Fatal("no originate command reached the gateway")
	}
	if req.CRMCallID != callID || req.Extension != "101" || req.Number != "+79161112233" || req.RequestID == "" {
		t.Errorf("originate %+v", req)
	}
	evs := s.events("click-to-call-originate")
	for _, ev := range evs {
		ev.CRMCallID = callID
	}
	s.publish(evs...)
	s.publish(evs...)
	calls := s.waitFinished(1, 30*time.Second)
	c := calls[0]
	if c.CallID != callID || !c.ByPortal || c.Finish.UserID != 1 || c.Finish.StatusCode != "200" || c.Finish.Duration != 10 {
		t.Errorf("call %+v finish %+v", c, c.Finish)
	}
	if n := len(s.commands("telephony.externalcall.register")); n != 0 {
		t.Errorf("%d registers: a click-to-call must not be registered again", n)
	}
	if n := len(s.sim.Calls()); n != 1 {
		t.Errorf("%d calls in the portal", n)
	}
	// The same event again (the portal's offline queue) rings nothing.
	if _, err := s.sim.SendExternalCallStart(ctx, "http://"+in.handlers+"/bitrix/event", bxsim.CallStartFields{UserID: 1, PhoneNumber: "+79161112233"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.got:
	case <-time.After(5 * time.Second):
		t.Error("a second click (a new CALL_ID) did not ring")
	}
	g.mu.Lock()
	n := len(g.reqs)
	g.mu.Unlock()
	if n != 2 {
		t.Errorf("%d originates for two clicks", n)
	}
}

// TestServiceExpiredTokenMidCall: the access token expires between a call's ringing and its end;
// one refresh, and the call is finished once.
func TestServiceExpiredTokenMidCall(t *testing.T) {
	s := newStack(t, bxsim.Options{}, nil)
	in := s.start()
	s.install(in)
	evs := s.events("queue-answered")
	s.publish(evs[:2]...)
	waitFor(t, 20*time.Second, "the card shown", func() bool { return len(s.commands("telephony.externalcall.show")) > 0 })
	s.sim.ExpireTokens()
	s.publish(evs[2:]...)
	calls := s.waitFinished(1, 30*time.Second)
	if calls[0].Finish.UserID != 2 || calls[0].Finish.StatusCode != "200" {
		t.Errorf("finish %+v", calls[0].Finish)
	}
	if n := len(s.commands("oauth.token")); n != 1 {
		t.Errorf("%d refreshes", n)
	}
	if n := len(s.commands("telephony.externalcall.register")); n != 1 {
		t.Errorf("%d registers", n)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServiceRateLimitStorm: 100 calls at once against the cloud's limit (2/s, burst 50): every
// call registered and finished once, the limit never overrun for long, and far fewer HTTP requests
// than commands (batches).
func TestServiceRateLimitStorm(t *testing.T) {
	s := newStack(t, bxsim.Options{}, func(c *config.Config) { c.Bitrix.Workers = 64 })
	in := s.start()
	s.install(in)
	base := s.events("inbound-answered")
	const n = 100
	var all []*callevent.Event
	for i := range n {
		callID := fmt.Sprintf("1795700000.%d", i)
		for _, ev := range base {
			e := *ev
			e.CallID = callID
			e.ID = callevent.EventID(e.PBX, callID, e.Kind, e.Extension)
			e.External = fmt.Sprintf("+7916%07d", i)
			e.ExtensionsRang = append([]string(nil), ev.ExtensionsRang...)
			all = append(all, &e)
		}
	}
	start := time.Now()
	s.publish(all...)
	calls := s.waitFinished(n, 120*time.Second)
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	if got := len(s.sim.Calls()); got != n {
		t.Errorf("%d calls in the portal, want %d", got, n)
	}
	seen := map[string]bool{}
	for _, c := range calls {
		if seen[c.ExternalCallID] {
			t.Errorf("call %s registered twice", c.ExternalCallID)
		}
		seen[c.ExternalCallID] = true
		if c.Finish.UserID != 1 || c.Finish.StatusCode != "200" {
			t.Errorf("finish %+v", c.Finish)
		}
	}
	httpReqs, refused := 0, 0
	for _, r := range s.sim.Requests(0) {
		if strings.HasPrefix(r.Path, "/rest/") {
			httpReqs++
			if r.Status == http.StatusServiceUnavailable {
				refused++
			}
		}
	}
	cmds := len(s.commands("telephony.externalcall.register")) + len(s.commands("telephony.externalcall.show")) +
		len(s.commands("telephony.externalcall.finish"))
	t.Logf("100 calls: %d commands in %d HTTP requests (%d refused by the limit) in %s", cmds, httpReqs, refused, took.Round(time.Millisecond))
	if httpReqs >= cmds/2 {
		t.Errorf("%d requests for %d commands: not coalesced", httpReqs, cmds)
	}
}

// TestService5xxThenParking: the portal fails every finish with 500: the event is retried, then
// parked with the reason; once the portal is fine and the operator requeues it, the call is
// finished once.
func TestService5xxThenParking(t *testing.T) {
	s := newStack(t, bxsim.Options{}, nil)
	in := s.start()
	s.install(in)
	s.sim.AddFault(crmsim.Fault{Method: "telephony.externalcall.finish", Status: 500})
	evs := s.events("inbound-answered")
	s.publish(evs...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var parked []bus.ParkedMessage
	waitFor(t, 45*time.Second, "the ended event parked", func() bool {
		var err error
		parked, err = s.b.Parked(ctx, s.queue, 10)
		return err == nil && len(parked) > 0
	})
	p := parked[0]
	if p.Reason != "retries exhausted" || !strings.Contains(p.LastError, "HTTP 500") || p.MessageID != evs[len(evs)-1].ID {
		t.Errorf("parked %s: reason %q, error %q", p.MessageID, p.Reason, p.LastError)
	}
	if n := len(s.commands("telephony.externalcall.finish")); n < 4 {
		t.Errorf("%d finish attempts before parking", n)
	}
	s.sim.ClearFaults()
	if moved, err := s.b.Requeue(ctx, s.queue, bus.AllParked); err != nil || moved != 1 {
		t.Fatalf("requeue: %d %v", moved, err)
	}
	calls := s.waitFinished(1, 30*time.Second)
	if calls[0].Finish.StatusCode != "200" || len(s.commands("telephony.externalcall.register")) != 1 {
		t.Errorf("finish %+v", calls[0].Finish)
	}
}

// TestServiceWebhookWrongAuthType: in webhook mode the portal refuses register; the event is parked
// at once with words the admin can act on, and /readyz says the same.
func TestServiceWebhookWrongAuthType(t *testing.T) {
	s := newStack(t, bxsim.Options{Webhooks: []bxsim.Webhook{{UserID: 1, Secret: "hooksecret42"}}}, func(c *config.Config) {
		c.Bitrix.Mode = "webhook"
		c.Bitrix.App = config.BitrixApp{}
		c.Bitrix.Webhook.URL = config.Secret(c.Bitrix.Portal + "/rest/1/hooksecret42/")
	})
	in := s.start()
	s.publish(s.events("inbound-answered")...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var parked []bus.ParkedMessage
	waitFor(t, 20*time.Second, "an event parked", func() bool {
		var err error
		parked, err = s.b.Parked(ctx, s.queue, 10)
		return err == nil && len(parked) > 0
	})
	p := parked[0]
	if p.Reason != "permanent" || !strings.Contains(p.LastError, "WRONG_AUTH_TYPE") || !strings.Contains(p.LastError, "bitrix.mode: app") {
		t.Errorf("parked: reason %q, error %q", p.Reason, p.LastError)
	}
	resp, err := http.Get("http://" + in.health + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "WRONG_AUTH_TYPE") {
		t.Errorf("/readyz %d: %s", resp.StatusCode, body)
	}
	if strings.Contains(s.logs.String(), "hooksecret42") || strings.Contains(string(body), "hooksecret42") || strings.Contains(p.LastError, "hooksecret42") {
		t.Error("the webhook's secret leaked")
	}
}

// TestServiceInstall: the install handler stores only tokens that work on the portal; no token,
// refresh token or secret reaches a log line.
func TestServiceInstall(t *testing.T) {
	s := newStack(t, bxsim.Options{}, nil)
	in := s.start()
	resp, err := http.Get("http://" + in.health + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "not installed") {
		t.Errorf("/readyz before install: %d %s", resp.StatusCode, body)
	}
	forged := url.Values{"event": {"ONAPPINSTALL"}, "auth[access_token]": {"forged-access"}, "auth[refresh_token]": {"forged-refresh"},
		"auth[application_token]": {"forged-app"}}
	r, err := http.PostForm("http://"+in.handlers+"/bitrix/install", forged)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("forged install: %d", r.StatusCode)
	}
	s.install(in)
	waitFor(t, 10*time.Second, "ready after install", func() bool {
		resp, err := http.Get("http://" + in.health + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	s.publish(s.events("inbound-missed")...)
	s.waitFinished(1, 20*time.Second)
	logs := s.logs.String()
	for _, secret := range []string{s.inst.AccessToken, s.inst.RefreshToken, s.inst.ApplicationToken, s.inst.ClientSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("a log line shows a secret")
		}
	}
}

// TestServiceRestarts: the connector stopped mid-call and another started, then RabbitMQ
// restarted mid-call: every call registered once and finished once, none lost.
func TestServiceRestarts(t *testing.T) {
	s := newStack(t, bxsim.Options{}, nil)
	first := s.start()
	s.install(first)
	a := s.events("ringgroup-answered-by-second")
	b := s.events("queue-answered")
	s.publish(a[:3]...) // started, ringing 101, ringing 102
	waitFor(t, 20*time.Second, "both cards shown", func() bool { return len(s.commands("telephony.externalcall.show")) == 2 })
	first.stop()
	second := s.start()
	s.publish(a[3:]...)
	s.waitFinished(1, 30*time.Second)

	s.publish(b[:2]...)
	waitFor(t, 20*time.Second, "the second call registered", func() bool { return len(s.commands("telephony.externalcall.register")) == 2 })
	testenv.RestartRabbit(t)
	s.publish(b[2:]...)
	s.publish(b...) // and everything again, as a gateway resending after the restart would
	s.waitFinished(2, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(s.commands("telephony.externalcall.register")); n != 2 {
		t.Errorf("%d registers for 2 calls", n)
	}
	finishes := 0
	for _, r := range s.commands("telephony.externalcall.finish") {
		if r.Status == http.StatusOK {
			finishes++
		}
	}
	if finishes != 2 {
		t.Errorf("%d finishes for 2 calls", finishes)
	}
	for _, c := range s.sim.Calls() {
		if c.Finish == nil || c.Finish.UserID != 2 || c.Finish.StatusCode != "200" || len(c.ShownTo) != 0 {
			t.Errorf("call %s: %+v shown to %v", c.ExternalCallID, c.Finish, c.ShownTo)
		}
	}
	_ = second
}

// TestServiceCallbackForm: a filled CRM callback form → registered once as a callback (TYPE 4)
// for the configured operator → an originate to the operator's phone → the call's events finish it.
// Without an operator configured, the form is reported, not silently dropped.
func TestServiceCallbackForm(t *testing.T) {
	t.Run("operator-set", func(t *testing.T) {
		s := newStack(t, bxsim.Options{}, func(c *config.Config) { c.Bitrix.ClickToCall.CallbackUserID = 2 })
		g := s.gateway(command.ResultAnswered)
		in := s.start()
		s.install(in)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := s.sim.SendExternalCallbackStart(ctx, "http://"+in.handlers+"/bitrix/event",
			bxsim.CallbackStartFields{PhoneNumber: "+79161112233", LineNumber: "+74951234567", Text: "Call me about the order"})
		if err != nil {
			t.Fatal(err)
		}
		var req command.Originate
		select {
		case req = <-g.got:
		case <-ctx.Done():
			t.Fatal("no originate")
		}
		calls := s.sim.Calls()
		if len(calls) != 1 || calls[0].Type != 4 || calls[0].UserID != 2 || req.CRMCallID != calls[0].CallID || req.Extension != "102" {
			t.Fatalf("calls %+v, originate %+v", calls, req)
		}
		evs := s.events("click-to-call-originate")
		for _, ev := range evs {
			ev.CRMCallID = req.CRMCallID
			for _, p := range []*string{&ev.Extension, &ev.AnsweredBy} {
				if *p == "101" {
					*p = "102"
				}
			}
			ev.ExtensionsRang = []string{"102"}
		}
		s.publish(evs...)
		done := s.waitFinished(1, 30*time.Second)
		if f := done[0].Finish; f.UserID != 2 || f.StatusCode != "200" {
			t.Errorf("finish %+v", f)
		}
		if n := len(s.commands("telephony.externalcall.register")); n != 1 {
			t.Errorf("%d registers", n)
		}
	})
	t.Run("no-operator", func(t *testing.T) {
		s := newStack(t, bxsim.Options{}, nil)
		in := s.start()
		s.install(in)
		err := s.sim.SendExternalCallbackStart(context.Background(), "http://"+in.handlers+"/bitrix/event",
			bxsim.CallbackStartFields{PhoneNumber: "+79161112233"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s.logs.String(), "callback_user_id") || len(s.sim.Calls()) != 0 {
			t.Errorf("not reported, or a call made: %d calls", len(s.sim.Calls()))
		}
	})
}
