package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// watcher receives the call events of one PBX, to learn when ami-gateway has published a call's
// end (the connector gets it at the same moment) and what the call became (its id, start time,
// recording) for the expectations' placeholders.
type watcher struct {
	conn *amqp.Connection
	ch   *amqp.Channel

	mu      sync.Mutex
	ended   map[string]*callevent.Event
	changed chan struct{}
	err     error
}

// watchCalls binds a queue of its own (exclusive, deleted when the runner disconnects) to
// call.<pbx>.*.
func watchCalls(ctx context.Context, rawURL, pbx string, log logrus.FieldLogger) (*watcher, error) {
	conn, err := amqp.DialConfig(rawURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), Properties: amqp.Table{"connection_name": "testsystem.run.watch"}})
	if err != nil {
		return nil, fmt.Errorf("watching call events: %w", err)
	}
	w := &watcher{conn: conn, ended: map[string]*callevent.Event{}, changed: make(chan struct{})}
	fail := func(err error) (*watcher, error) {
		conn.Close()
		return nil, fmt.Errorf("watching call events: %w", err)
	}
	if w.ch, err = conn.Channel(); err != nil {
		return fail(err)
	}
	// The same declaration as every service's (bus.StandardExchanges), so whoever comes first
	// makes it.
	if err := w.ch.ExchangeDeclare(bus.ExchangeCalls, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fail(err)
	}
	q, err := w.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fail(err)
	}
	if err := w.ch.QueueBind(q.Name, "call."+pbx+".*", bus.ExchangeCalls, false, nil); err != nil {
		return fail(err)
	}
	deliveries, err := w.ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fail(err)
	}
	go func() {
		for d := range deliveries {
			ev, err := callevent.Unmarshal(d.Body)
			if err != nil {
				log.WithError(err).Warn("a call event the runner cannot read")
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
		w.mu.Lock()
		if w.err == nil {
			w.err = errors.New("the connection to RabbitMQ closed")
		}
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}()
	return w, nil
}

// waitEnded waits for the ended event of a call.
func (w *watcher) waitEnded(ctx context.Context, callID string) (*callevent.Event, error) {
	for {
		w.mu.Lock()
		ev, ch, err := w.ended[callID], w.changed, w.err
		w.mu.Unlock()
		if ev != nil {
			return ev, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (w *watcher) close() {
	w.mu.Lock()
	w.err = errors.New("closed")
	w.mu.Unlock()
	w.conn.Close()
}
