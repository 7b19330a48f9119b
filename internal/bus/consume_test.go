package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
)

// A transient failure goes through Q.retry.1 (100ms) and Q.retry.2 (300ms), then to Q.parked with
// its story in the headers; Requeue brings it back with a fresh attempt count.
func TestRetryWithGrowingDelayThenParkThenRequeue(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b, _ := newTestBus(t, func(c *Config) { c.Registerer = reg }) // retry delays 100ms, 300ms
	spec, key := testQueue(t, b)
	rec := newRecorder()
	var succeed atomic.Bool
	startConsumer(t, b, spec, func(ctx context.Context, d Delivery) error {
		rec.add(d)
		if succeed.Load() {
			return nil
		}
		return fmt.Errorf("crm unavailable (attempt %d)", d.Attempt)
	})

	if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, Message{ID: "r1", Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 5*time.Second, "three attempts", func() bool { all, _ := rec.snapshot(); return len(all) >= 3 })
	eventually(t, 5*time.Second, "the message in the parking queue", func() bool {
		return queueDepth(t, b, ParkedQueueName(spec.Name)) == 1
	})

	all, at := rec.snapshot()
	if len(all) != 3 {
		t.Fatalf("%d deliveries, want 3 (first + 2 retries)", len(all))
	}
	for i, d := range all {
		if d.Attempt != i {
			t.Errorf("delivery %d has attempt %d", i, d.Attempt)
		}
		// A retried message physically comes back through the default exchange; the handler
		// still sees where it was published.
		if d.Exchange != ExchangeCalls || d.RoutingKey != key {
			t.Errorf("delivery %d: exchange %q key %q, want the original", i, d.Exchange, d.RoutingKey)
		}
	}
	gap1, gap2 := at[1].Sub(at[0]), at[2].Sub(at[1])
	if gap1 < 90*time.Millisecond || gap2 < 280*time.Millisecond || gap2 <= gap1 {
		t.Errorf("retry delays %s, %s: want about 100ms then 300ms", gap1, gap2)
	}
	for i := 1; i <= 2; i++ {
		if n := queueDepth(t, b, RetryQueueName(spec.Name, i)); n != 0 {
			t.Errorf("retry queue %d holds %d messages", i, n)
		}
	}

	parked, err := b.Parked(ctxTimeout(t, 5*time.Second), spec.Name, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 {
		t.Fatalf("Parked returned %d messages", len(parked))
	}
	p := parked[0]
	if p.MessageID != "r1" || p.Reason != "retries exhausted" || p.Attempt != 3 ||
		!strings.Contains(p.LastError, "crm unavailable (attempt 2)") || p.RoutingKey != key || p.Exchange != ExchangeCalls ||
		time.Since(p.ParkedAt) > time.Minute || string(p.Body) != `{"n":1}` {
		t.Errorf("parked message: %+v", p)
	}
	if n := queueDepth(t, b, ParkedQueueName(spec.Name)); n != 1 {
		t.Fatalf("Parked must not remove messages: %d left", n)
	}

	succeed.Store(true)
	moved, err := b.Requeue(ctxTimeout(t, 5*time.Second), spec.Name, "r1")
	if err != nil || moved != 1 {
		t.Fatalf("Requeue: moved %d, %v", moved, err)
	}
	rec.waitFor(t, 5*time.Second, "the requeued delivery", func() bool { all, _ := rec.snapshot(); return len(all) == 4 })
	all, _ = rec.snapshot()
	last := all[3]
	if last.Attempt != 0 || headerInt(last.Headers[HeaderRequeued]) != 1 || last.RoutingKey != key {
		t.Errorf("requeued delivery: attempt %d, requeued %v, key %q", last.Attempt, last.Headers[HeaderRequeued], last.RoutingKey)
	}
	eventually(t, 5*time.Second, "empty queues", func() bool {
		return queueDepth(t, b, ParkedQueueName(spec.Name)) == 0 && queueDepth(t, b, spec.Name) == 0
	})

	eventually(t, 5*time.Second, "the consumed counter", func() bool {
		return counterValue(t, reg, "ringbridge_bus_consumed_total") == 1
	})
	for name, want := range map[string]float64{
		"ringbridge_bus_retried_total":  2,
		"ringbridge_bus_parked_total":   1,
		"ringbridge_bus_requeued_total": 1,
		"ringbridge_bus_buffered":       0,
	} {
		if got := counterValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// 1 publish by the test, 2 to retry queues, 1 to the parking queue.
	if got := counterValue(t, reg, "ringbridge_bus_confirmed_total"); got != 4 {
		t.Errorf("confirmed_total = %v, want 4", got)
	}
}

// Failures that retrying cannot fix are parked at once, and the consumer keeps going.
func TestFailuresThatParkAtOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		handler    func() error
		wantReason string
		wantError  string
	}{
		{"permanent error", func() error { return Permanent(errors.New("unknown schema version 9")) }, "permanent", "unknown schema version 9"},
		{"wrapped permanent error", func() error { return fmt.Errorf("decode: %w", Permanent(errors.New("bad json"))) }, "permanent", "decode: bad json"},
		{"handler panic", func() error { panic("nil map in handler") }, "panic", "handler panic: nil map in handler"},
	}
	b, _ := newTestBus(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec, key := testQueue(t, b)
			rec := newRecorder()
			startConsumer(t, b, spec, func(ctx context.Context, d Delivery) error {
				rec.add(d)
				if d.MessageID == "bad" {
					return tc.handler()
				}
				return nil
			})
			ctx := ctxTimeout(t, 5*time.Second)
			for _, id := range []string{"bad", "good"} {
				if err := b.Publish(ctx, ExchangeCalls, key, Message{ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			rec.waitFor(t, 5*time.Second, "both messages", func() bool { return rec.distinct() == 2 })
			eventually(t, 5*time.Second, "the bad message parked", func() bool {
				return queueDepth(t, b, ParkedQueueName(spec.Name)) == 1
			})
			time.Sleep(150 * time.Millisecond) // longer than the first retry delay: no retry must come
			all, _ := rec.snapshot()
			if len(all) != 2 {
				t.Errorf("%d deliveries, want 2: a parked message must not be retried", len(all))
			}
			parked, err := b.Parked(ctx, spec.Name, 10)
			if err != nil || len(parked) != 1 {
				t.Fatalf("Parked: %d messages, %v", len(parked), err)
			}
			if p := parked[0]; p.MessageID != "bad" || p.Reason != tc.wantReason || p.LastError != tc.wantError || p.Attempt != 1 {
				t.Errorf("parked: id %q reason %q error %q attempt %d", p.MessageID, p.Reason, p.LastError, p.Attempt)
			}
		})
	}
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	spec, key := testQueue(t, b)
	ctx := ctxTimeout(t, 10*time.Second)
	// Park three messages directly, as a consumer would have.
	for _, id := range []string{"p1", "p2", "p3"} {
		err := b.Publish(ctx, "", ParkedQueueName(spec.Name), Message{ID: id, Headers: map[string]any{
			HeaderAttempt: int64(3), HeaderParkedReason: "permanent", HeaderOriginalExchange: ExchangeCalls, HeaderOriginalRoutingKey: key,
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name      string
		id        string
		wantMoved int
		wantErr   bool
		wantLeft  []string
	}{
		{"empty id is refused", "", 0, true, []string{"p1", "p2", "p3"}},
		{"unknown id moves nothing", "nope", 0, false, []string{"p1", "p2", "p3"}},
		{"one by id, the others keep their order", "p2", 1, false, []string{"p1", "p3"}},
		{"all", AllParked, 2, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			moved, err := b.Requeue(ctx, spec.Name, tc.id)
			if (err != nil) != tc.wantErr || moved != tc.wantMoved {
				t.Fatalf("Requeue(%q) = %d, %v", tc.id, moved, err)
			}
			parked, err := b.Parked(ctx, spec.Name, 10)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, p := range parked {
				left = append(left, p.MessageID)
			}
			if fmt.Sprint(left) != fmt.Sprint(tc.wantLeft) {
				t.Errorf("left parked %v, want %v", left, tc.wantLeft)
			}
		})
	}
	if n := queueDepth(t, b, spec.Name); n != 3 {
		t.Errorf("queue holds %d requeued messages, want 3", n)
	}
}

// The consumer's channel dies while a handler holds a message: the ack is lost, the broker
// redelivers, the consumer comes back on a new channel and the message is handled again.
func TestRedeliveryAfterConsumerChannelDies(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	spec, key := testQueue(t, b)
	var channel atomic.Pointer[amqp.Channel]
	b.testHookDelivery = func(d amqp.Delivery) {
		if ch, ok := d.Acknowledger.(*amqp.Channel); ok {
			channel.CompareAndSwap(nil, ch)
		}
	}
	inHandler := make(chan struct{})
	release := make(chan struct{})
	rec := newRecorder()
	var calls atomic.Int32
	startConsumer(t, b, spec, func(ctx context.Context, d Delivery) error {
		rec.add(d)
		if calls.Add(1) == 1 {
			close(inHandler)
			<-release
		}
		return nil
	})
	if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, Message{ID: "x1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inHandler:
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	// Acknowledging an unknown delivery tag is a channel error: the broker closes the channel
	// (406 PRECONDITION_FAILED), as it would for any protocol error, with our message unacked.
	ch := channel.Load()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	_ = ch.Ack(1<<40, false)
	select {
	case e := <-closed:
		t.Logf("consumer channel closed: %v", e)
	case <-time.After(5 * time.Second):
		t.Fatal("the broker did not close the channel")
	}
	close(release)

	rec.waitFor(t, 10*time.Second, "the redelivery", func() bool { all, _ := rec.snapshot(); return len(all) >= 2 })
	all, _ := rec.snapshot()
	if all[1].MessageID != "x1" || !all[1].Redelivered {
		t.Errorf("second delivery: id %q redelivered %v", all[1].MessageID, all[1].Redelivered)
	}
	eventually(t, 5*time.Second, "the redelivered message acked", func() bool { return queueDepth(t, b, spec.Name) == 0 })
	time.Sleep(100 * time.Millisecond)
	if all, _ := rec.snapshot(); len(all) != 2 {
		t.Errorf("%d deliveries, want 2", len(all))
	}
	// And the consumer still consumes.
	if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, Message{ID: "x2"}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 5*time.Second, "a new message after the channel loss", func() bool { return rec.distinct() == 2 })
}

// Workers handle deliveries concurrently, up to spec.Workers at once.
func TestConsumeWorkers(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	spec, key := testQueue(t, b, func(s *QueueSpec) { s.Workers = 4 })
	var running, peak atomic.Int32
	rec := newRecorder()
	startConsumer(t, b, spec, func(ctx context.Context, d Delivery) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		running.Add(-1)
		rec.add(d)
		return nil
	})
	for i := range 16 {
		if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, Message{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, 5*time.Second, "16 messages", func() bool { return rec.distinct() == 16 })
	if p := peak.Load(); p != 4 {
		t.Errorf("peak concurrency %d, want 4", p)
	}
}

// Stopping a consumer mid-handler: the handler finishes, its message is acked; nothing is lost.
func TestConsumeStopsCleanly(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	spec, key := testQueue(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 10)
	var handled atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, spec, func(hctx context.Context, d Delivery) error {
			started <- struct{}{}
			time.Sleep(200 * time.Millisecond)
			handled.Add(1)
			return nil
		})
	}()
	for i := range 5 {
		if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, Message{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Consume did not return")
	}
	h := int(handled.Load())
	if h < 1 {
		t.Fatal("the handler in progress was not let finish")
	}
	eventually(t, 5*time.Second, "unhandled messages back in the queue", func() bool {
		return queueDepth(t, b, spec.Name) == 5-h
	})
}

func TestConsumeRejectsBadSpec(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	cases := []struct {
		name string
		spec QueueSpec
	}{
		{"no name", QueueSpec{}},
		{"reserved prefix", QueueSpec{Name: "amq.mine"}},
		{"exchange without keys", QueueSpec{Name: "x", Exchange: ExchangeCalls}},
		{"tiny retry delay", QueueSpec{Name: "x", RetryDelays: []time.Duration{time.Microsecond}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Consume(ctxTimeout(t, time.Second), tc.spec, func(context.Context, Delivery) error { return nil }); err == nil {
				t.Error("Consume accepted the spec")
			}
		})
	}
	// A queue that exists with other arguments cannot ever be consumed: Consume says so.
	t.Run("existing queue with other retry delays", func(t *testing.T) {
		spec, _ := testQueue(t, b)
		spec.RetryDelays = []time.Duration{7 * time.Second}
		err := b.Consume(ctxTimeout(t, 5*time.Second), spec, func(context.Context, Delivery) error { return nil })
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
			t.Errorf("Consume = %v, want PRECONDITION_FAILED", err)
		}
	})
}
