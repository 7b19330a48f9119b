package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestPublishConsumeRoundTrip(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	spec, key := testQueue(t, b)
	rec := newRecorder()
	startConsumer(t, b, spec, func(ctx context.Context, d Delivery) error { rec.add(d); return nil })

	ts := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		msg  Message
		want func(t *testing.T, d Delivery)
	}{
		{
			name: "json with headers, id and type",
			msg: Message{ID: "ev-1", Type: "call.started", Body: []byte(`{"pbx":"a"}`), Timestamp: ts,
				Headers: map[string]any{"schema": int64(1), "pbx": "a", "nested": map[string]any{"k": "v"}}},
			want: func(t *testing.T, d Delivery) {
				if d.MessageID != "ev-1" || d.Type != "call.started" || d.ContentType != "application/json" {
					t.Errorf("properties: id %q type %q content type %q", d.MessageID, d.Type, d.ContentType)
				}
				if !d.Timestamp.Equal(ts) {
					t.Errorf("timestamp %v, want %v", d.Timestamp, ts)
				}
				if d.Headers["pbx"] != "a" || headerInt(d.Headers["schema"]) != 1 {
					t.Errorf("headers %v", d.Headers)
				}
				if nested, ok := d.Headers["nested"].(amqp.Table); !ok || nested["k"] != "v" {
					t.Errorf("nested header %#v", d.Headers["nested"])
				}
			},
		},
		{
			name: "defaults: generated id, content type, timestamp",
			msg:  Message{Body: []byte(`{}`)},
			want: func(t *testing.T, d Delivery) {
				if len(d.MessageID) != 32 {
					t.Errorf("generated id %q", d.MessageID)
				}
				if d.ContentType != "application/json" {
					t.Errorf("content type %q", d.ContentType)
				}
				if time.Since(d.Timestamp) > time.Minute {
					t.Errorf("timestamp %v not set to now", d.Timestamp)
				}
			},
		},
		{
			name: "empty body, other content type",
			msg:  Message{ID: "ev-3", ContentType: "text/plain"},
			want: func(t *testing.T, d Delivery) {
				if len(d.Body) != 0 || d.ContentType != "text/plain" {
					t.Errorf("body %q content type %q", d.Body, d.ContentType)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, tc.msg); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			var got Delivery
			rec.waitFor(t, 5*time.Second, "the delivery", func() bool {
				all, _ := rec.snapshot()
				for _, d := range all {
					if bytes.Equal(d.Body, tc.msg.Body) && (tc.msg.ID == "" || d.MessageID == tc.msg.ID) {
						got = d
						return true
					}
				}
				return false
			})
			if got.Exchange != ExchangeCalls || got.RoutingKey != key || got.Queue != spec.Name || got.Attempt != 0 || got.Redelivered {
				t.Errorf("delivery info: exchange %q key %q queue %q attempt %d redelivered %v",
					got.Exchange, got.RoutingKey, got.Queue, got.Attempt, got.Redelivered)
			}
			tc.want(t, got)
		})
	}
	if n := queueDepth(t, b, spec.Name); n != 0 {
		t.Errorf("%d messages left in the queue: acks missing", n)
	}
}

// The wire format: persistent, app id, what a non-Go consumer sees.
func TestPublishWireProperties(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t, func(c *Config) { c.Name = "wire-test" })
	spec, key := testQueue(t, b)
	if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, Message{ID: "w1", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	err := b.withChannel(ctxTimeout(t, 5*time.Second), func(ch *amqp.Channel) error {
		d, ok, err := ch.Get(spec.Name, true)
		if err != nil || !ok {
			return fmt.Errorf("get: ok=%v err=%v", ok, err)
		}
		if d.DeliveryMode != amqp.Persistent || d.MessageId != "w1" || d.AppId != "wire-test" || d.Timestamp.IsZero() {
			t.Errorf("delivery mode %d id %q app id %q timestamp %v", d.DeliveryMode, d.MessageId, d.AppId, d.Timestamp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPublishErrors(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	_, key := testQueue(t, b)
	cases := []struct {
		name     string
		exchange string
		key      string
		msg      Message
		check    func(err error) bool
		want     string
	}{
		{"unroutable key", ExchangeCalls, "call." + uniqueName(t) + ".nobody", Message{ID: "u1"},
			func(err error) bool { return errors.Is(err, ErrUnroutable) }, "ErrUnroutable"},
		{"missing exchange", "no-such-exchange-" + uniqueName(t), "x", Message{ID: "m1"},
			func(err error) bool {
				var ae *amqp.Error
				return errors.As(err, &ae) && ae.Code == amqp.NotFound
			}, "an amqp 404"},
		{"unsupported header type", ExchangeCalls, key, Message{Headers: map[string]any{"bad": struct{}{}}},
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "headers") }, "a header error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Publish(ctxTimeout(t, 5*time.Second), tc.exchange, tc.key, tc.msg)
			if !tc.check(err) {
				t.Fatalf("Publish error %v, want %s", err, tc.want)
			}
			// The publisher survives the error: a good publish right after is confirmed.
			if err := b.Publish(ctxTimeout(t, 5*time.Second), ExchangeCalls, key, Message{}); err != nil {
				t.Fatalf("Publish after %s: %v", tc.name, err)
			}
		})
	}
}

// One bad message among many in flight: only it fails, the others are confirmed.
func TestPublishBadMessageAmongMany(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	spec, key := testQueue(t, b)
	ctx := ctxTimeout(t, 10*time.Second)
	var confs []*Confirmation
	for i := range 100 {
		ex := ExchangeCalls
		if i == 50 {
			ex = "no-such-exchange-" + uniqueName(t)
		}
		c, err := b.PublishAsync(ctx, ex, key, Message{ID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, c)
	}
	for i, c := range confs {
		err := c.Wait(ctx)
		if (i == 50) != (err != nil) {
			t.Errorf("message %d: err %v", i, err)
		}
	}
	// At least once: a message in flight with the bad one may have been sent twice.
	if n := queueDepth(t, b, spec.Name); n < 99 {
		t.Errorf("queue has %d messages, want at least 99", n)
	}
}

func TestPublishAsyncManyInFlight(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t, func(c *Config) { c.MaxInFlight = 64; c.PublishBuffer = 16 })
	spec, key := testQueue(t, b)
	rec := newRecorder()
	startConsumer(t, b, spec, func(ctx context.Context, d Delivery) error { rec.add(d); return nil })
	ctx := ctxTimeout(t, 20*time.Second)

	const n = 1000
	confs := make([]*Confirmation, 0, n)
	for i := range n {
		c, err := b.PublishAsync(ctx, ExchangeCalls, key, Message{ID: fmt.Sprintf("a-%d", i), Body: []byte(`{}`)})
		if err != nil {
			t.Fatalf("PublishAsync %d: %v", i, err)
		}
		confs = append(confs, c)
	}
	for i, c := range confs {
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("confirmation %d: %v", i, err)
		}
	}
	rec.waitFor(t, 10*time.Second, "all messages", func() bool { return rec.distinct() == n })
	if got := b.bufferedCount(); got != 0 {
		t.Errorf("buffered gauge %v after all confirmed", got)
	}
}

// The broker unreachable: publishes wait in the buffer, a full buffer blocks until ctx is done,
// and everything buffered is sent and confirmed once the broker is back.
func TestPublishBufferedWhileBrokerDown(t *testing.T) {
	t.Parallel()
	direct, _ := newTestBus(t)
	spec, key := testQueue(t, direct)
	rec := newRecorder()
	startConsumer(t, direct, spec, func(ctx context.Context, d Delivery) error { rec.add(d); return nil })

	p := newProxy(t, direct.addr)
	p.up()
	b, _ := newTestBus(t, func(c *Config) { c.URL = p.url(c.URL); c.PublishBuffer = 20 })
	p.down()
	eventually(t, 5*time.Second, "the bus to notice the broker is gone", func() bool { return b.Ready() != nil })

	ctx := ctxTimeout(t, 20*time.Second)
	var confs []*Confirmation
	for i := range 20 {
		c, err := b.PublishAsync(ctx, ExchangeCalls, key, Message{ID: fmt.Sprintf("buf-%d", i)})
		if err != nil {
			t.Fatalf("PublishAsync %d into the buffer: %v", i, err)
		}
		confs = append(confs, c)
	}
	if got := b.bufferedCount(); got != 20 {
		t.Errorf("buffered gauge = %v, want 20", got)
	}

	t.Run("full buffer blocks until ctx is done", func(t *testing.T) {
		short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.PublishAsync(short, ExchangeCalls, key, Message{ID: "one-too-many"})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 150*time.Millisecond {
			t.Fatalf("PublishAsync on a full buffer: %v after %s", err, time.Since(start))
		}
		if !strings.Contains(err.Error(), "buffer full") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error does not say why: %v", err)
		}
	})
	t.Run("Publish gives up with ctx, saying why", func(t *testing.T) {
		short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := b.Publish(short, ExchangeCalls, key, Message{ID: "gives-up"})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Fatalf("Publish with the broker down: %v", err)
		}
	})

	p.up()
	for i, c := range confs {
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("buffered message %d: %v", i, err)
		}
	}
	rec.waitFor(t, 10*time.Second, "the 20 buffered messages", func() bool { return rec.distinct() == 20 })
	all, _ := rec.snapshot()
	for _, d := range all {
		if d.MessageID == "one-too-many" || d.MessageID == "gives-up" {
			t.Errorf("message %s was given up by its caller but sent anyway", d.MessageID)
		}
	}
}

// Publish from many goroutines at once: all confirmed, each exactly once in the queue.
func TestPublishConcurrent(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	spec, key := testQueue(t, b)
	ctx := ctxTimeout(t, 20*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 800)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := b.Publish(ctx, ExchangeCalls, key, Message{ID: fmt.Sprintf("%d-%d", g, i)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := queueDepth(t, b, spec.Name); n != 800 {
		t.Errorf("queue has %d messages, want 800", n)
	}
}

func TestCloseDrainsPublishes(t *testing.T) {
	t.Parallel()
	t.Run("broker up: Close waits for the confirms", func(t *testing.T) {
		t.Parallel()
		observer, _ := newTestBus(t)
		spec, key := testQueue(t, observer)
		b, _ := newTestBus(t)
		var confs []*Confirmation
		for i := range 200 {
			c, err := b.PublishAsync(context.Background(), ExchangeCalls, key, Message{ID: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			confs = append(confs, c)
		}
		if err := b.Close(ctxTimeout(t, 10*time.Second)); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for i, c := range confs {
			if err := c.Err(); err != nil {
				t.Fatalf("message %d after Close: %v", i, err)
			}
		}
		if n := queueDepth(t, observer, spec.Name); n != 200 {
			t.Errorf("queue holds %d, want 200", n)
		}
	})
	t.Run("broker down: Close gives up when ctx ends", func(t *testing.T) {
		t.Parallel()
		p := newProxy(t, "127.0.0.1:5672")
		p.up()
		b, _ := newTestBus(t, func(c *Config) { c.URL = p.url(c.URL) })
		p.down()
		eventually(t, 5*time.Second, "not ready", func() bool { return b.Ready() != nil })
		c, err := b.PublishAsync(context.Background(), ExchangeCalls, "call.x.y", Message{})
		if err != nil {
			t.Fatal(err)
		}
		err = b.Close(ctxTimeout(t, 200*time.Millisecond))
		if err == nil || !strings.Contains(err.Error(), "1 publishes not confirmed") {
			t.Errorf("Close = %v", err)
		}
		if err := c.Err(); !errors.Is(err, ErrClosed) {
			t.Errorf("unconfirmed message after Close: %v", err)
		}
	})
}
