package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/internal/testenv"
)

// newTestBus dials the test broker (or the URL set by a modifier) and closes the Bus when the test
// ends. Short reconnect delays keep the reconnection tests fast.
func newTestBus(t *testing.T, mods ...func(*Config)) (*Bus, *logtest.Hook) {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	cfg := Config{
		URL:          testenv.RabbitURL(t),
		Name:         "bus-test." + t.Name(),
		ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond,
		RetryDelays:  []time.Duration{100 * time.Millisecond, 300 * time.Millisecond},
		Logger:       logger,
	}
	for _, m := range mods {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		// The publisher's invariant: confirmations match the messages in flight one to one.
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "bus: confirm") {
				t.Errorf("publisher invariant broken: %s", e.Message)
			}
		}
		if t.Failed() || os.Getenv("BUS_TEST_LOG") != "" {
			for _, e := range hook.AllEntries() {
				line, _ := e.String()
				t.Log(strings.TrimSpace(line))
			}
		}
	})
	return b, hook
}

var nameSanitizer = regexp.MustCompile(`[^A-Za-z0-9]+`)

// uniqueName is a queue name / routing key segment no other test (or run) uses.
func uniqueName(t testing.TB) string {
	t.Helper()
	n := strings.Trim(nameSanitizer.ReplaceAllString(t.Name(), "-"), "-")
	if len(n) > 60 {
		n = n[:60]
	}
	return "test-" + n + "-" + newID()[:8]
}

// testQueue declares a queue bound to the calls exchange with its own routing key and deletes it
// (with its retry and parking queues) when the test ends. It returns the spec and a routing key
// that reaches it.
func testQueue(t *testing.T, b *Bus, mods ...func(*QueueSpec)) (QueueSpec, string) {
	t.Helper()
	name := uniqueName(t)
	key := "call." + name + ".started"
	spec := QueueSpec{Name: name, Exchange: ExchangeCalls, Keys: []string{"call." + name + ".#"}}
	for _, m := range mods {
		m(&spec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.DeclareQueue(ctx, spec); err != nil {
		t.Fatalf("DeclareQueue: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.DeleteQueue(ctx, spec); err != nil {
			t.Errorf("DeleteQueue: %v", err)
		}
	})
	return spec, key
}

// startConsumer runs Consume in the background until the test ends and checks it returned nil.
func startConsumer(t *testing.T, b *Bus, spec QueueSpec, h Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, spec, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Consume returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Consume did not return after its ctx was cancelled")
		}
	})
}

// recorder collects deliveries for assertions.
type recorder struct {
	mu   sync.Mutex
	all  []Delivery
	at   []time.Time
	ids  map[string]int
	more chan struct{}
}

func newRecorder() *recorder {
	return &recorder{ids: map[string]int{}, more: make(chan struct{}, 1)}
}

func (r *recorder) add(d Delivery) {
	r.mu.Lock()
	r.all = append(r.all, d)
	r.at = append(r.at, time.Now())
	r.ids[d.MessageID]++
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() ([]Delivery, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.all...), append([]time.Time(nil), r.at...)
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// waitFor waits until cond holds, failing the test after timeout.
func (r *recorder) waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-r.more:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queueDepth returns the number of ready messages in a queue.
func queueDepth(t *testing.T, b *Bus, name string) int {
	t.Helper()
	var n int
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.withChannel(ctx, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		n = q.Messages
		return err
	})
	if err != nil {
		t.Fatalf("inspect queue %s: %v", name, err)
	}
	return n
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// closedPort returns a 127.0.0.1 port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// proxy is a TCP proxy in front of the broker that a test can take down and bring back, to cut
// one Bus off the broker without disturbing any other test.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	p.addr = fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	t.Cleanup(p.down)
	return p
}

// url is the broker URL with the proxy's address.
func (p *proxy) url(brokerURL string) string {
	u, err := amqp.ParseURI(brokerURL)
	if err != nil {
		p.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(p.addr)
	u.Host = host
	_, _ = fmt.Sscan(port, &u.Port)
	return u.String()
}

func (p *proxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close(); _ = c.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = up.Close(); _ = c.Close() }()
		}
	}()
}

// down closes the listener and every proxied connection: for the client, the broker vanished.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
