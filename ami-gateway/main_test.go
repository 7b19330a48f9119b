package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/ami-gateway/calls"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/command"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/amisim"
)

const fixtures = "../../shared/fixtures"

// TestReplayCLI: every recording in shared/fixtures replays through the CLI to valid JSON lines,
// one ended event per call, none left open.
func TestReplayCLI(t *testing.T) {
	cases := []struct{ dir, config string }{
		{"ami-asterisk22", filepath.Join(fixtures, "ami-asterisk22", "replay.yaml")},
		{"ami-public", "calls/testdata/public.yaml"},
	}
	for _, c := range cases {
		files, _ := filepath.Glob(filepath.Join(fixtures, c.dir, "*.ami"))
		if len(files) == 0 {
			t.Fatalf("no recordings in %s", c.dir)
		}
		for _, f := range files {
			t.Run(c.dir+"/"+filepath.Base(f), func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := run([]string{"replay", "--config", c.config, f}, nil, &out, &errb); code != 0 {
					t.Fatalf("exit %d: %s", code, errb.String())
				}
				if errb.Len() > 0 {
					t.Errorf("stderr: %s", errb.String())
				}
				started, ended := map[string]int{}, map[string]int{}
				sc := bufio.NewScanner(&out)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					e, err := callevent.Unmarshal(sc.Bytes())
					if err != nil {
						t.Fatalf("line %q: %v", sc.Text(), err)
					}
					switch e.Kind {
					case callevent.Started:
						started[e.CallID]++
					case callevent.Ended:
						ended[e.CallID]++
					}
				}
				if len(ended) == 0 {
					t.Fatal("no call ended")
				}
				for id, n := range ended {
					if n != 1 || started[id] != 1 {
						t.Errorf("call %s: %d started, %d ended events", id, started[id], n)
					}
				}
			})
		}
	}
}

func TestReplayCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("classify:\n  extension_channels: ['^(PJSIP']\n"), 0o600)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no-file", []string{"replay"}, "usage"},
		{"missing-file", []string{"replay", filepath.Join(dir, "nope.ami")}, "no such file"},
		{"bad-regexp", []string{"replay", "--config", bad, filepath.Join(fixtures, "ami-asterisk22", "inbound-busy.ami")}, "classify.extension_channels[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, nil, &out, &errb); code == 0 {
				t.Fatal("exit 0")
			}
			if !strings.Contains(errb.String(), c.want) {
				t.Errorf("stderr %q does not say %q", errb.String(), c.want)
			}
		})
	}
	t.Run("garbage-stream", func(t *testing.T) {
		var out, errb bytes.Buffer
		in := strings.NewReader("Event: Newchannel\r\nno colon here\r\n\r\n\x00\x01\x02\r\n\r\n")
		if code := run([]string{"replay", "-"}, in, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(errb.String(), "bad packets skipped") {
			t.Errorf("stderr %q does not count the bad packets", errb.String())
		}
	})
}

// stack is one test's PBX simulator, broker queue and gateway config.
type stack struct {
	t      *testing.T
	pbx    string
	sim    *amisim.Server
	cfg    *config.Config
	b      *bus.Bus
	events chan callevent.Event
	logs   *testenv.Buffer
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newStack(t *testing.T) *stack {
	t.Helper()
	pbx := fmt.Sprintf("it%d", time.Now().UnixNano()%1e9)
	sim := amisim.New(amisim.Config{
		Users:         map[string]amisim.User{"crm": {Secret: "crm-test-secret"}},
		AuthFailDelay: 50 * time.Millisecond,
		// Asterisk's 100 ms is for a healthy gateway; -race slows it several times over, and these
		// tests cut connections on purpose, not by a slow reader (ami's tests cover that).
		WriteTimeout: 2 * time.Second,
	})
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	raw, err := os.ReadFile(filepath.Join(fixtures, "ami-asterisk22", "replay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Decode(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PBX = pbx
	cfg.AMI.Address = sim.Addr()
	cfg.AMI.Username = "crm"
	cfg.AMI.Secret = "crm-test-secret"
	cfg.AMI.ReconnectMin = 50 * time.Millisecond
	cfg.AMI.ReconnectMax = 500 * time.Millisecond
	cfg.AMI.PingInterval = time.Second
	cfg.AMI.PingTimeout = time.Second
	cfg.RabbitMQ.URL = config.Secret(testenv.RabbitURL(t))
	cfg.Redis = testenv.RedisDB(t)
	cfg.Log = config.Log{Level: "debug", Format: "json"}
	cfg.HTTP = map[string]config.HTTP{"ami-gateway": {Listen: freeAddr(t)}}

	b, err := bus.Dial(context.Background(), bus.Config{URL: cfg.RabbitMQ.URL.Reveal(), Name: "test-consumer"})
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, pbx: pbx, sim: sim, cfg: cfg, b: b, events: make(chan callevent.Event, 10000), logs: &testenv.Buffer{}}
	spec := bus.QueueSpec{Name: "test." + pbx + ".calls", Exchange: bus.ExchangeCalls, Keys: []string{"call." + pbx + ".*"}}
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.DeclareQueue(ctx, spec); err != nil {
		t.Fatal(err)
	}
	go b.Consume(ctx, spec, func(_ context.Context, d bus.Delivery) error {
		e, err := callevent.Unmarshal(d.Body)
		if err != nil {
			return bus.Permanent(err)
		}
		if e.ID != d.MessageID {
			return bus.Permanent(fmt.Errorf("message id %s, event id %s", d.MessageID, e.ID))
		}
		s.events <- *e
		return nil
	})
	t.Cleanup(func() {
		cancel()
		b.DeleteQueue(context.Background(), spec)
		b.Close(context.Background())
		if t.Failed() {
			t.Logf("gateway log:\n%s", tail(s.logs.String(), 60))
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

// start runs the gateway in this process until the returned stop is called.
func (s *stack) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	redactor := logging.NewRedactor(s.cfg.Secrets()...)
	log := logging.New("ami-gateway", s.cfg.Log, s.logs, logging.WithRedactor(redactor))
	go func() {
		defer close(done)
		if err := serve(ctx, s.cfg, log, redactor); err != nil {
			s.t.Errorf("serve: %v", err)
		}
	}()
	return func() { cancel(); <-done }
}

func (s *stack) readyz() (int, string) {
	resp, err := http.Get("http://" + s.cfg.HTTP["ami-gateway"].Listen + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *stack) waitReady(d time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, body := s.readyz()
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("gateway not ready after %s: %d %s", d, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// collect reads call events until every call in want has ended, or the deadline.
func (s *stack) collect(want int, d time.Duration) map[string][]callevent.Event {
	s.t.Helper()
	got := map[string][]callevent.Event{}
	ended := map[string]bool{}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for len(ended) < want {
		select {
		case e := <-s.events:
			got[e.CallID] = append(got[e.CallID], e)
			if e.Kind == callevent.Ended {
				ended[e.CallID] = true
			}
		case <-timer.C:
			s.t.Fatalf("%d of %d calls ended within %s", len(ended), want, d)
		}
	}
	// Late duplicates would show up right after.
	for {
		select {
		case e := <-s.events:
			got[e.CallID] = append(got[e.CallID], e)
		case <-time.After(300 * time.Millisecond):
			return got
		}
	}
}

// recordings loads every Asterisk 22 recording, copies times over with fresh ids, each retimed
// to start gap after the previous one, so that they overlap on one timeline as on a busy PBX.
func recordings(t *testing.T, copies int, gap time.Duration) []amisim.Scheduled {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(fixtures, "ami-asterisk22", "*.ami"))
	base := time.Now().UTC().Truncate(time.Second)
	var out []amisim.Scheduled
	for fi, f := range files {
		rec, err := amisim.LoadRecording(f)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < copies; n++ {
			at := time.Duration(len(out)) * gap
			out = append(out, amisim.Scheduled{Rec: rec.Fresh(1000 + fi*copies + n).Retime(base.Add(at)), At: at})
		}
	}
	return out
}

// newCorrelatorFor makes fresh correlators with the config's classification.
func newCorrelatorFor(cfg *config.Config) (func() *calls.Correlator, error) {
	cl, err := calls.NewClassifier(cfg.Classify)
	if err != nil {
		return nil, err
	}
	return func() *calls.Correlator { return calls.New(calls.Options{PBX: cfg.PBX}, cl) }, nil
}

// expected is what the correlator makes of each recording alone: ended event per call id.
func expected(t *testing.T, cfg *config.Config, recs []amisim.Scheduled) map[string]callevent.Event {
	t.Helper()
	newCorr, err := newCorrelatorFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]callevent.Event{}
	for _, rec := range recs {
		c := newCorr()
		for _, m := range rec.Rec.Messages() {
			for _, e := range c.Handle(m) {
				if e.Kind == callevent.Ended {
					want[e.CallID] = e
				}
			}
		}
	}
	return want
}

func summary(e callevent.Event) string {
	var tr []string
	for _, x := range e.Transfers {
		tr = append(tr, string(x.Kind)+":"+x.From+">"+x.To)
	}
	return strings.Join([]string{string(e.Direction), e.External, e.Line, e.Extension,
		strings.Join(e.ExtensionsRang, ","), e.AnsweredBy, string(e.Disposition), e.Recording,
		fmt.Sprint(e.RingSeconds, "/", e.TalkSeconds), strings.Join(tr, ",")}, "|")
}

// check compares what the consumer got with what the recordings make alone: every call, each
// event id once (duplicates of one id are allowed: at-least-once), one ended event per call.
func check(t *testing.T, got map[string][]callevent.Event, want map[string]callevent.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("events for %d calls, want %d", len(got), len(want))
	}
	for id, w := range want {
		var ended []callevent.Event
		byID := map[string]callevent.Event{}
		for _, e := range got[id] {
			if prev, dup := byID[e.ID]; dup && summary(prev) != summary(e) {
				t.Errorf("event %s published twice with different content", e.ID)
			}
			if _, dup := byID[e.ID]; !dup && e.Kind == callevent.Ended {
				ended = append(ended, e)
			}
			byID[e.ID] = e
		}
		if len(ended) != 1 {
			t.Errorf("call %s: %d distinct ended events", id, len(ended))
			continue
		}
		if summary(ended[0]) != summary(w) {
			t.Errorf("call %s:\n got %s\nwant %s", id, summary(ended[0]), summary(w))
		}
	}
}

// TestServiceEndToEnd: a PBX simulator plays every recording (overlapping, fresh ids) over real
// AMI TCP; the gateway publishes to the real RabbitMQ; a consumer checks every call.
func TestServiceEndToEnd(t *testing.T) {
	s := newStack(t)
	stop := s.start()
	defer stop()
	s.waitReady(10 * time.Second)
	recs := recordings(t, 3, 700*time.Millisecond)
	want := expected(t, s.cfg, recs)
	if err := s.sim.PlayAll(context.Background(), recs, 0); err != nil {
		t.Fatal(err)
	}
	check(t, s.collect(len(want), 30*time.Second), want)
}

// TestServiceWrongSecret: /readyz says in words that the login was rejected, the gateway keeps
// retrying with backoff, and comes up once the secret is right.
func TestServiceWrongSecret(t *testing.T) {
	s := newStack(t)
	s.sim.SetSecret("crm", "another-secret")
	stop := s.start()
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		var code int
		code, body = s.readyz()
		if code == http.StatusServiceUnavailable && strings.Contains(body, "wrong username or secret") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, "wrong username or secret") {
		t.Fatalf("/readyz does not say why: %q", body)
	}
	if strings.Contains(body, "crm-test-secret") || strings.Contains(s.logs.String(), "crm-test-secret") {
		t.Fatal("the secret reached /readyz or the log")
	}
	// The image's HEALTHCHECK: alive, but not ready.
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := config.Save(cfgPath, s.cfg); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"healthcheck", "--config", cfgPath}, nil, &out, &errb); code != 0 {
		t.Errorf("healthcheck: exit %d: %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"healthcheck", "--ready", "--config", cfgPath}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "wrong username or secret") {
		t.Errorf("healthcheck --ready: exit %d: %s", code, errb.String())
	}
	logins := func() int {
		n := 0
		for _, a := range s.sim.Actions() {
			if a.Get("Action") == "Login" {
				n++
			}
		}
		return n
	}
	time.Sleep(1500 * time.Millisecond)
	if n := logins(); n < 3 {
		t.Errorf("%d login attempts in 1.5 s: the gateway does not retry", n)
	} else if n > 40 {
		t.Errorf("%d login attempts in 1.5 s: no backoff", n)
	}
	s.sim.SetSecret("crm", "crm-test-secret")
	s.waitReady(10 * time.Second)
}

// TestServiceOriginate: a click-to-call command over RabbitMQ RPC becomes an AMI Originate; the
// call it makes carries the CRM's call id.
func TestServiceOriginate(t *testing.T) {
	s := newStack(t)
	rec, err := amisim.LoadRecording(filepath.Join(fixtures, "ami-asterisk22", "click-to-call-originate.ami"))
	if err != nil {
		t.Fatal(err)
	}
	var orig atomicMsg
	s.sim.OnOriginate(func(action *ami.Message) ([]*ami.Message, bool) {
		orig.set(action)
		// Asterisk gives the first channel the ChannelId the Originate asked for, and the
		// variables it set.
		msgs := rec.Fresh(7).Retime(time.Now().UTC().Truncate(time.Second)).Messages()
		first := ""
		for _, m := range msgs {
			if m.Event() == "Newchannel" {
				first = m.Get("Uniqueid")
				break
			}
		}
		var text strings.Builder
		for _, m := range msgs {
			text.WriteString(m.String())
		}
		out := strings.ReplaceAll(text.String(), first, action.Get("ChannelId"))
		out = strings.ReplaceAll(out, "c2c-000123", strings.TrimPrefix(action.Get("Variable"), "CRM_CALL_ID="))
		return parse(t, out), true
	})
	stop := s.start()
	defer stop()
	s.waitReady(10 * time.Second)
	req := `{"request_id":"crm-42","crm_call_id":"crm-42","extension":"101","number":"89161112233"}`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := s.b.Call(ctx, bus.ExchangeCommands, "originate."+s.pbx, []byte(req))
	if err != nil {
		t.Fatal(err)
	}
	var reply command.OriginateReply
	json.Unmarshal(raw, &reply)
	if reply.Result != "answered" {
		t.Fatalf("reply %s", raw)
	}
	a := orig.get()
	if a.Get("Channel") != "PJSIP/101" || a.Get("Exten") != "89161112233" || a.Get("Context") != "from-internal" {
		t.Errorf("originate action: %s", a.String())
	}
	got := s.collect(1, 20*time.Second)
	evs := got[reply.CallID]
	if len(evs) == 0 {
		t.Fatalf("no events for call %s: %v", reply.CallID, got)
	}
	last := evs[len(evs)-1]
	if last.Kind != callevent.Ended || last.CRMCallID != "crm-42" || last.External != "+79161112233" ||
		last.Direction != callevent.Outbound || last.AnsweredBy != "101" || last.TalkSeconds < 9 || last.TalkSeconds > 11 {
		t.Errorf("ended: %+v", last)
	}
	// The same request again (a redelivery) does not ring the phone twice.
	raw, err = s.b.Call(ctx, bus.ExchangeCommands, "originate."+s.pbx, []byte(req))
	if err != nil || !strings.Contains(string(raw), "duplicate") {
		t.Errorf("second request: %s %v", raw, err)
	}
}

type atomicMsg struct {
	mu sync.Mutex
	m  *ami.Message
}

func (a *atomicMsg) set(m *ami.Message) { a.mu.Lock(); a.m = m; a.mu.Unlock() }
func (a *atomicMsg) get() *ami.Message  { a.mu.Lock(); defer a.mu.Unlock(); return a.m }

func parse(t *testing.T, text string) []*ami.Message {
	r := ami.NewReader(strings.NewReader(text), ami.ReaderOptions{})
	var out []*ami.Message
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}
