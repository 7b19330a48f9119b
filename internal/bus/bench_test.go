package bus

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/internal/testenv"
)

// BenchmarkPublishConfirmed measures confirmed publishes of a 256-byte persistent message to a
// durable queue on the local broker (so every confirm waits for the broker's fsync):
//
//	sync-1-goroutine   Publish in a loop: one round trip per message, the latency bound
//	sync-64-goroutines Publish from 64 goroutines: confirms pipelined on one channel
//	async-window       PublishAsync from one goroutine, waiting every 256 messages
//	baseline-raw-...   the same window on a bare amqp091-go channel, for scale
//
// Messages per second = 1e9 / (ns/op).
func BenchmarkPublishConfirmed(b *testing.B) {
	logger, _ := logtest.NewNullLogger()
	logger.SetLevel(logrus.WarnLevel)
	ctx := context.Background()
	bus, err := Dial(ctx, Config{URL: testenv.RabbitURL(b), Name: "bus-bench", Logger: logger, MaxInFlight: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	name := "bench-" + newID()[:8]
	spec := QueueSpec{Name: name, Exchange: ExchangeCalls, Keys: []string{"call." + name + ".#"}}
	if err := bus.DeclareQueue(ctx, spec); err != nil {
		b.Fatal(err)
	}
	defer bus.DeleteQueue(ctx, spec)
	key := "call." + name + ".started"
	body := make([]byte, 256)
	purge := func() {
		if err := bus.withChannel(ctx, func(ch *amqp.Channel) error { _, err := ch.QueuePurge(name, false); return err }); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("sync-1-goroutine", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := bus.Publish(ctx, ExchangeCalls, key, Message{Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		purge()
	})
	b.Run("sync-64-goroutines", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.SetParallelism(32) // × GOMAXPROCS 2
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := bus.Publish(ctx, ExchangeCalls, key, Message{Body: body}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		purge()
	})
	// The same window with amqp091-go alone, for scale: what the broker and library give
	// without this package's buffering, bookkeeping and reconnection.
	b.Run("baseline-raw-amqp091-window", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		conn, err := amqp.Dial(testenv.RabbitURL(b))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		window := make([]*amqp.DeferredConfirmation, 0, 256)
		flush := func() {
			for _, dc := range window {
				if !dc.Wait() {
					b.Fatal("nack")
				}
			}
			window = window[:0]
		}
		for b.Loop() {
			dc, err := ch.PublishWithDeferredConfirm(ExchangeCalls, key, true, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, ContentType: "application/json", MessageId: newID(),
				Timestamp: time.Now(), AppId: "bus-bench", Body: body,
			})
			if err != nil {
				b.Fatal(err)
			}
			if window = append(window, dc); len(window) == cap(window) {
				flush()
			}
		}
		flush()
		purge()
	})
	b.Run("async-window", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		window := make([]*Confirmation, 0, 256)
		flush := func() {
			for _, c := range window {
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			window = window[:0]
		}
		for b.Loop() {
			c, err := bus.PublishAsync(ctx, ExchangeCalls, key, Message{Body: body})
			if err != nil {
				b.Fatal(err)
			}
			if window = append(window, c); len(window) == cap(window) {
				flush()
			}
		}
		flush()
		purge()
	})
}
