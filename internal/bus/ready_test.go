package bus

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/internal/testenv"
)

func TestReadyReportsReasonInWords(t *testing.T) {
	t.Parallel()
	t.Run("connected", func(t *testing.T) {
		b, _ := newTestBus(t)
		if err := b.Ready(); err != nil {
			t.Errorf("Ready() = %v on a connected bus", err)
		}
	})
	t.Run("broker unreachable", func(t *testing.T) {
		port := closedPort(t)
		b, err := New(Config{URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), ReconnectMin: 200 * time.Millisecond, ReconnectMax: 4 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(context.Background())
		want := regexp.MustCompile(fmt.Sprintf(`^rabbitmq 127\.0\.0\.1:%d: connection refused, retrying in [0-9.]+m?s$`, port))
		eventually(t, 5*time.Second, "a reason", func() bool { err := b.Ready(); return err != nil && want.MatchString(err.Error()) })
		var nre *NotReadyError
		if err := b.Ready(); !errors.As(err, &nre) || nre.RetryIn <= 0 {
			t.Errorf("Ready() = %#v, want a *NotReadyError with RetryIn", err)
		}
		t.Logf("Ready() = %v", b.Ready())
		// Backoff grows: after a few attempts the announced delay exceeds the minimum.
		eventually(t, 5*time.Second, "a grown delay", func() bool {
			var nre *NotReadyError
			return errors.As(b.Ready(), &nre) && nre.RetryIn > 400*time.Millisecond
		})
	})
	t.Run("Dial gives up with the reason", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := Dial(ctx, Config{URL: fmt.Sprintf("amqp://127.0.0.1:%d/", closedPort(t))})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Dial = %v", err)
		}
	})
	t.Run("connection lost, then back", func(t *testing.T) {
		p := newProxy(t, "127.0.0.1:5672")
		p.up()
		b, _ := newTestBus(t, func(c *Config) { c.URL = p.url(c.URL) })
		p.down()
		eventually(t, 5*time.Second, "not ready", func() bool { return b.Ready() != nil })
		t.Logf("Ready() = %v", b.Ready())
		p.up()
		eventually(t, 5*time.Second, "ready again", func() bool { return b.Ready() == nil })
	})
	t.Run("closed", func(t *testing.T) {
		b, _ := newTestBus(t)
		_ = b.Close(context.Background())
		if err := b.Ready(); err == nil || !errors.Is(err, ErrClosed) {
			t.Errorf("Ready() after Close = %v", err)
		}
		if err := b.Publish(context.Background(), ExchangeCalls, "x", Message{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Publish after Close = %v", err)
		}
	})
}

// The password of the URL must not appear in any error or log line, whatever goes wrong.
func TestPasswordNeverLeaks(t *testing.T) {
	t.Parallel()
	const secret = "Sup3r-Secret-Pa55"
	good := testenv.RabbitURL(t)
	port := closedPort(t)
	cases := []struct {
		name string
		url  string
	}{
		{"broker unreachable", fmt.Sprintf("amqp://guest:%s@127.0.0.1:%d/", secret, port)},
		{"wrong password", strings.Replace(good, "guest:guest@", "guest:"+secret+"@", 1)},
		{"percent-encoded password", fmt.Sprintf("amqp://guest:%s%%21@127.0.0.1:%d/", secret, port)},
		{"invalid port", fmt.Sprintf("amqp://guest:%s@127.0.0.1:notaport/", secret)},
		{"invalid scheme", fmt.Sprintf("http://guest:%s@127.0.0.1:%d/", secret, port)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var texts []string
			check := func(what string, err error) {
				if err != nil {
					texts = append(texts, what+": "+err.Error()+" | "+fmt.Sprintf("%+v %#v", err, err))
				}
			}
			logger, hook := logtest.NewNullLogger()
			logger.SetLevel(logrus.DebugLevel)
			cfg := Config{URL: tc.url, Logger: logger, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}

			b, err := New(cfg)
			check("New", err)
			if b != nil {
				// The broker answers a wrong password after about 3s.
				eventually(t, 10*time.Second, "a failed attempt", func() bool { return len(hook.AllEntries()) >= 1 })
				check("Ready", b.Ready())
				short := func() context.Context { return ctxTimeout(t, 100*time.Millisecond) }
				check("Publish", b.Publish(short(), ExchangeCalls, "k", Message{}))
				check("WaitReady", b.WaitReady(short()))
				_, err := b.Call(short(), ExchangeCommands, "k", nil)
				check("Call", err)
				check("Consume", b.Consume(short(), QueueSpec{Name: "q"}, func(context.Context, Delivery) error { return nil }))
				_, err = b.Parked(short(), "q", 1)
				check("Parked", err)
				check("Close", b.Close(short()))
			}
			_, err = Dial(ctxTimeout(t, 200*time.Millisecond), cfg)
			check("Dial", err)

			for _, e := range hook.AllEntries() {
				line, _ := e.String()
				texts = append(texts, "log: "+line+fmt.Sprintf(" %+v", e.Data))
			}
			if len(texts) < 2 {
				t.Fatalf("too little to check: %q", texts)
			}
			for _, s := range texts {
				if strings.Contains(s, secret) || strings.Contains(s, "Sup3r") {
					t.Errorf("password leaked: %s", s)
				}
			}
			t.Logf("checked %d texts, e.g. %s", len(texts), texts[0])
		})
	}
}
