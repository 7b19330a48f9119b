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

func TestRPC(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	name := uniqueName(t)
	key := "originate." + name
	spec := QueueSpec{Name: name, Exchange: ExchangeCommands, Keys: []string{key}, Workers: 2}
	// The server side: declared by Serve itself; the test waits for its binding before calling.
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- b.Serve(serveCtx, spec, func(ctx context.Context, req Delivery) ([]byte, error) {
			switch {
			case bytes.HasPrefix(req.Body, []byte("sleep")):
				select {
				case <-time.After(2 * time.Second):
				case <-ctx.Done():
				}
				return []byte("late"), nil
			case bytes.Equal(req.Body, []byte("fail")):
				return nil, errors.New("pbx refused the originate")
			case bytes.Equal(req.Body, []byte("panic")):
				panic("boom")
			}
			return bytes.ToUpper(req.Body), nil
		})
	}()
	t.Cleanup(func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.withChannel(ctx, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err })
	})
	eventually(t, 5*time.Second, "the server's binding", func() bool {
		_, err := b.Call(ctxTimeout(t, time.Second), ExchangeCommands, key, []byte("ping"))
		return !errors.Is(err, ErrUnroutable)
	})

	cases := []struct {
		name    string
		key     string
		body    string
		timeout time.Duration
		want    string
		wantErr func(error) bool
	}{
		{name: "round trip", key: key, body: "hello", timeout: 5 * time.Second, want: "HELLO"},
		{name: "handler error comes back as RemoteError", key: key, body: "fail", timeout: 5 * time.Second,
			wantErr: func(err error) bool {
				var re *RemoteError
				return errors.As(err, &re) && re.Message == "pbx refused the originate"
			}},
		{name: "handler panic comes back as an error", key: key, body: "panic", timeout: 5 * time.Second,
			wantErr: func(err error) bool {
				var re *RemoteError
				return errors.As(err, &re) && strings.Contains(re.Message, "panic: boom")
			}},
		{name: "timeout via ctx", key: key, body: "sleep", timeout: 300 * time.Millisecond,
			wantErr: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{name: "nobody serves the key", key: "originate.nobody-" + name, body: "x", timeout: 5 * time.Second,
			wantErr: func(err error) bool { return errors.Is(err, ErrUnroutable) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			reply, err := b.Call(ctxTimeout(t, tc.timeout), ExchangeCommands, tc.key, []byte(tc.body))
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("Call error %v (reply %q)", err, reply)
				}
				if time.Since(start) > tc.timeout+time.Second {
					t.Errorf("Call took %s with a %s timeout", time.Since(start), tc.timeout)
				}
				return
			}
			if err != nil || string(reply) != tc.want {
				t.Fatalf("Call = %q, %v; want %q", reply, err, tc.want)
			}
		})
	}
}

// Many concurrent calls share one reply channel; each gets its own reply.
func TestRPCConcurrentCalls(t *testing.T) {
	t.Parallel()
	b, hook := newTestBus(t)
	name := uniqueName(t)
	spec := QueueSpec{Name: name, Workers: 4} // addressed by queue name through the default exchange
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- b.Serve(ctx, spec, func(ctx context.Context, req Delivery) ([]byte, error) {
			return append([]byte("re:"), req.Body...), nil
		})
	}()
	t.Cleanup(func() {
		stop()
		<-served
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.withChannel(ctx, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err })
	})
	eventually(t, 5*time.Second, "the server's queue", func() bool {
		_, err := b.Call(ctxTimeout(t, time.Second), "", name, []byte("ping"))
		return err == nil
	})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprint(i)
			reply, err := b.Call(ctxTimeout(t, 5*time.Second), "", name, []byte(body))
			if err != nil || string(reply) != "re:"+body {
				t.Errorf("call %d: %q, %v", i, reply, err)
			}
		}()
	}
	wg.Wait()
	// Replies to direct reply-to must not be mandatory (RabbitMQ would return them although it
	// delivered them); the server would log the caller as gone.
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "caller is gone") {
			t.Errorf("reply reported undeliverable: %s", e.Message)
			break
		}
	}
}
