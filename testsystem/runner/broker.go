package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// DefaultAMQPURL is the host's broker with a virtual host of the system test's own. The services
// under test bind their queues to every PBX's calls (call.*.*); in their own vhost they see only
// the calls the runner plays, not those of Go tests running beside them, and nothing they leave
// behind reaches a developer's other work on the same broker.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/ringbridge-testsystem"

// ensureVhost makes sure the URL's virtual host exists and its user may use it, creating it with
// rabbitmqctl (as root, or through sudo -n) when it does not.
func ensureVhost(ctx context.Context, rawURL string, log logrus.FieldLogger) error {
	uri, err := amqp.ParseURI(rawURL)
	if err != nil {
		return fmt.Errorf("--amqp: %w", err)
	}
	dial := func() error {
		conn, err := amqp.DialConfig(rawURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			return err
		}
		return conn.Close()
	}
	err = dial()
	if err == nil {
		return nil
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) && !strings.Contains(err.Error(), "vhost") && !strings.Contains(err.Error(), "403") {
		return fmt.Errorf("RabbitMQ at %s:%d does not answer (%v): start it (bash .ci/run services)", uri.Host, uri.Port, err)
	}
	vhost := uri.Vhost
	log.WithField("vhost", vhost).Info("creating the RabbitMQ virtual host of the system test")
	steps := [][]string{
		{"rabbitmqctl", "-q", "add_vhost", vhost},
		{"rabbitmqctl", "-q", "set_permissions", "-p", vhost, uri.Username, ".*", ".*", ".*"},
	}
	for _, step := range steps {
		if out, err := rabbitmqctl(ctx, step); err != nil && !strings.Contains(string(out), "already exists") {
			return fmt.Errorf("RabbitMQ has no virtual host %q and `%s` failed (%v: %s): run as root, or create it once: rabbitmqctl add_vhost %s && rabbitmqctl set_permissions -p %s %s '.*' '.*' '.*'",
				vhost, strings.Join(step, " "), err, strings.TrimSpace(string(out)), vhost, vhost, uri.Username)
		}
	}
	if err := dial(); err != nil {
		return fmt.Errorf("RabbitMQ virtual host %q: still refused after creating it: %w", vhost, err)
	}
	return nil
}

func rabbitmqctl(ctx context.Context, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("sudo"); err == nil {
			args = append([]string{"sudo", "-n"}, args...)
		}
	}
	return exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
}

// resetQueues deletes the queues the services of a suite consume, with their retry and parking
// queues: what an earlier, interrupted suite left in them must not reach this one's CRM.
func resetQueues(ctx context.Context, rawURL string, queues []string) error {
	b, err := bus.Dial(ctx, bus.Config{URL: rawURL, Name: "testsystem.run"})
	if err != nil {
		return fmt.Errorf("connecting to RabbitMQ: %w", err)
	}
	defer b.Close(context.WithoutCancel(ctx))
	for _, q := range queues {
		if err := b.DeleteQueue(ctx, bus.QueueSpec{Name: q}); err != nil {
			return fmt.Errorf("emptying queue %s: %w", q, err)
		}
	}
	return nil
}

// brokerLock takes part in internal/testenv's coordination of broker restarts: Go tests that
// restart RabbitMQ (testenv.RestartRabbit) wait while a user holds $TMPDIR/ringbridge-rabbitmq.lock
// shared, and give up after 90 s. The runner holds it for one suite at a time (well under 90 s), so
// a restart in a Go test running beside it happens between suites, not under a call.
type brokerLock struct {
	main, gate *os.File
}

func openBrokerLock() (*brokerLock, error) {
	dir := os.TempDir()
	main, err := os.OpenFile(filepath.Join(dir, "ringbridge-rabbitmq.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("broker lock: %w", err)
	}
	gate, err := os.OpenFile(filepath.Join(dir, "ringbridge-rabbitmq.gate"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		main.Close()
		return nil, fmt.Errorf("broker lock: %w", err)
	}
	return &brokerLock{main: main, gate: gate}, nil
}

// hold takes the lock shared, through the gate (a restart waiting there goes first), and returns
// its release.
func (l *brokerLock) hold(ctx context.Context) (func(), error) {
	if err := flockWait(ctx, l.gate, syscall.LOCK_SH); err != nil {
		return nil, err
	}
	err := flockWait(ctx, l.main, syscall.LOCK_SH)
	_ = syscall.Flock(int(l.gate.Fd()), syscall.LOCK_UN)
	if err != nil {
		return nil, err
	}
	return func() { _ = syscall.Flock(int(l.main.Fd()), syscall.LOCK_UN) }, nil
}

func (l *brokerLock) close() {
	l.main.Close()
	l.gate.Close()
}

// flockWait takes a lock, polling so that ctx can end the wait.
func flockWait(ctx context.Context, f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			return fmt.Errorf("broker lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", f.Name(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// watcher receives the call events of one PBX, to learn when ami-gateway has published a call's
// end (the connector gets it at the same moment) and what the call became (its id, start time,
// recording) for the expectations' placeholders. Its queue is durable and reconnected, so a
// broker restart (another test's, or a person's) loses no event; RabbitMQ deletes it 10 minutes
// after its last consumer left, should the runner die without deleting it.
type watcher struct {
	url, queue, pbx string
	log             logrus.FieldLogger

	mu      sync.Mutex
	conn    *amqp.Connection
	ended   map[string]*callevent.Event
	changed chan struct{}
	closed  bool
}

// watchCalls binds the queue to call.<pbx>.* and starts consuming it.
func watchCalls(ctx context.Context, rawURL, pbx, queue string, log logrus.FieldLogger) (*watcher, error) {
	w := &watcher{url: rawURL, queue: queue, pbx: pbx, log: log, ended: map[string]*callevent.Event{}, changed: make(chan struct{})}
	deliveries, err := w.connect()
	if err != nil {
		return nil, fmt.Errorf("watching call events: %w", err)
	}
	go w.run(deliveries)
	return w, nil
}

func (w *watcher) connect() (<-chan amqp.Delivery, error) {
	conn, err := amqp.DialConfig(w.url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), Properties: amqp.Table{"connection_name": "testsystem.run.watch"}})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (<-chan amqp.Delivery, error) {
		conn.Close()
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	// The same declaration as every service's (bus.StandardExchanges), so whoever comes first
	// makes it.
	if err := ch.ExchangeDeclare(bus.ExchangeCalls, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fail(err)
	}
	if _, err := ch.QueueDeclare(w.queue, true, false, false, false, amqp.Table{"x-expires": int32(10 * 60 * 1000)}); err != nil {
		return fail(err)
	}
	if err := ch.QueueBind(w.queue, "call."+w.pbx+".*", bus.ExchangeCalls, false, nil); err != nil {
		return fail(err)
	}
	deliveries, err := ch.Consume(w.queue, "", true, false, false, false, nil)
	if err != nil {
		return fail(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fail(errors.New("closed"))
	}
	w.conn = conn
	return deliveries, nil
}

// run reads events, and reconnects when the broker goes away.
func (w *watcher) run(deliveries <-chan amqp.Delivery) {
	for {
		for d := range deliveries {
			ev, err := callevent.Unmarshal(d.Body)
			if err != nil {
				w.log.WithError(err).Warn("a call event the runner cannot read")
				continue
			}
			if ev.Kind == callevent.Ended {
				w.mu.Lock()
				w.ended[ev.CallID] = ev
				close(w.changed)
				w.changed = make(chan struct{})
				w.mu.Unlock()
			}
		}
		for delay := 250 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			var err error
			if deliveries, err = w.connect(); err == nil {
				w.log.Info("call events: reconnected to RabbitMQ")
				break
			}
			w.log.WithError(err).Warn("call events: RabbitMQ is away, reconnecting")
			time.Sleep(delay)
		}
	}
}

// waitEnded waits for the ended event of a call.
func (w *watcher) waitEnded(ctx context.Context, callID string) (*callevent.Event, error) {
	for {
		w.mu.Lock()
		ev, ch := w.ended[callID], w.changed
		w.mu.Unlock()
		if ev != nil {
			return ev, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// close stops the watcher and deletes its queue.
func (w *watcher) close() {
	w.mu.Lock()
	w.closed = true
	conn := w.conn
	w.mu.Unlock()
	if conn == nil {
		return
	}
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(w.queue, false, false, false)
	}
	conn.Close()
}
