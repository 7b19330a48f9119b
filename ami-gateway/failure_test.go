package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/amisim"
)

// proxy stands between the gateway and a server so a test can take the server away from this
// gateway alone (the shared Redis keeps serving the other test processes).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() { io.Copy(c, s); c.Close() }()
	}
}

// cut closes every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// waitLog waits until the gateway's log holds a message n times.
func (s *stack) waitLog(msg string, n int, d time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for strings.Count(s.logs.String(), `"msg":"`+msg+`"`) < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("the gateway did not log %q %d times within %s", msg, n, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func load(t *testing.T, file string, n int) *amisim.Recording {
	t.Helper()
	raw, err := amisim.LoadRecording(filepath.Join(fixtures, "ami-asterisk22", file+".ami"))
	if err != nil {
		t.Fatal(err)
	}
	return raw.Fresh(n).Retime(time.Now().UTC().Truncate(time.Second))
}

// TestRedisDown: with Redis gone the gateway goes on publishing calls, says in /readyz that calls
// in progress are not saved, and saves them again once Redis is back.
func TestRedisDown(t *testing.T) {
	s := newStack(t)
	px := newProxy(t, s.cfg.Redis.Address)
	s.cfg.Redis.Address = px.addr()
	stop := s.start()
	defer stop()
	s.waitReady(10 * time.Second)

	px.cut()
	// Many calls, many batches: far more save points than the saver's queue holds, so a saver
	// that waited for Redis would stall the gateway.
	recs := recordings(t, 4, 100*time.Millisecond)
	want := expected(t, s.cfg, recs)
	if err := s.sim.PlayAll(context.Background(), recs, 20); err != nil {
		t.Fatal(err)
	}
	check(t, s.collect(len(want), 60*time.Second), want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := s.readyz()
		if code == 503 && strings.Contains(body, "redis") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz does not report Redis down: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	px.restore()
	s.waitReady(20 * time.Second)
}

// TestAMIDroppedMidCall: Asterisk drops the connection mid-call and events are lost while it is
// down; the gateway reconnects, resyncs with CoreShowChannels, and the call still ends once,
// answered by the right extension.
func TestAMIDroppedMidCall(t *testing.T) {
	s := newStack(t)
	stop := s.start()
	defer stop()
	s.waitReady(10 * time.Second)
	rec := load(t, "ringgroup-answered-by-second", 3002)
	want := expected(t, s.cfg, []amisim.Scheduled{{Rec: rec}})
	p := s.sim.NewPlayer(rec, 0)
	cut := answeredAt(rec)
	if err := p.Step(context.Background(), cut-3); err != nil {
		t.Fatal(err)
	}
	if err := s.sim.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.sim.DropConnections(); n == 0 {
		t.Fatal("no connection to drop")
	}
	// These events (the answer) go to nobody: the gateway learns of them from CoreShowChannels.
	if err := p.Step(context.Background(), 6); err != nil {
		t.Fatal(err)
	}
	// Readiness alone may still be the old connection's: wait for the resync of the new one.
	s.waitLog("resynced with CoreShowChannels", 2, 10*time.Second)
	s.waitReady(10 * time.Second)
	if err := p.Rest(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := s.collect(1, 20*time.Second)
	var ended []callevent.Event
	for _, evs := range got {
		for _, e := range evs {
			if e.Kind == callevent.Ended {
				ended = append(ended, e)
			}
		}
	}
	if len(ended) != 1 {
		t.Fatalf("%d ended events", len(ended))
	}
	for _, w := range want {
		e := ended[0]
		if e.AnsweredBy != w.AnsweredBy || e.Disposition != w.Disposition || e.External != w.External ||
			strings.Join(e.ExtensionsRang, ",") != strings.Join(w.ExtensionsRang, ",") {
			t.Errorf("got %s\nwant %s", summary(e), summary(w))
		}
	}
	if !strings.Contains(s.logs.String(), "resynced with CoreShowChannels") {
		t.Error("no resync in the log")
	}
}

// TestRecord: `ami-gateway record` saves the raw stream as the PBX sent it, and the recording
// replays to the same calls.
func TestRecord(t *testing.T) {
	s := newStack(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := config.Save(path, s.cfg); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "pbx.ami")
	done := make(chan int, 1)
	var stdout, stderr testenv.Buffer
	go func() {
		done <- run([]string{"record", "--config", path, "--out", out, "--for", "3s"}, nil, &stdout, &stderr)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.sim.WaitSessions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rec := load(t, "blind-transfer", 3003)
	want := expected(t, s.cfg, []amisim.Scheduled{{Rec: rec}})
	if err := s.sim.Play(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("record exit %d: %s", code, stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "Asterisk Call Manager/") {
		t.Errorf("the recording does not start with the banner: %q", raw[:min(len(raw), 60)])
	}
	if strings.Contains(string(raw), "crm-test-secret") {
		t.Error("the secret is in the recording")
	}
	var replayed, errb bytes.Buffer
	if code := run([]string{"replay", "--config", path, out}, nil, &replayed, &errb); code != 0 {
		t.Fatalf("replay exit %d: %s", code, errb.String())
	}
	got := map[string][]callevent.Event{}
	for _, line := range strings.Split(strings.TrimSpace(replayed.String()), "\n") {
		e, err := callevent.Unmarshal([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		got[e.CallID] = append(got[e.CallID], *e)
	}
	check(t, got, want)
	if !strings.Contains(stdout.String(), "recorded") {
		t.Errorf("stdout: %q", stdout.String())
	}
}
