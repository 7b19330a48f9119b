package bus

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		{"amqp://u:p%40ss@host/vhost", "amqp://u:xxxxx@host/vhost"},
		{"amqp://u:p@ss@host:5672/", "amqp://u:xxxxx@host:5672/"},
		{"amqps://user@host", "amqps://user@host"},
		{"amqp://host:5672/", "amqp://host:5672/"},
		{"amqp://u:secret@host:bad port", "amqp://u:xxxxx@host:bad port"},
		{"not a url", "not a url"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := RedactURL(tc.in); got != tc.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRedactorInFreeText(t *testing.T) {
	r := newRedactor("amqp://svc:s3cr%2Ft@host/")
	cases := []struct{ name, in string }{
		{"url in text", `parse "amqp://svc:s3cr%2Ft@host/": bad`},
		{"raw password", "auth with s3cr%2Ft failed"},
		{"decoded password", "auth with s3cr/t failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := r.String(tc.in)
			if strings.Contains(got, "s3cr") {
				t.Errorf("String(%q) = %q", tc.in, got)
			}
		})
	}
	base := errors.New("wrapped s3cr/t")
	err := r.Err(base)
	if strings.Contains(err.Error(), "s3cr") || !errors.Is(err, base) {
		t.Errorf("Err: %q, is %v", err, errors.Is(err, base))
	}
}

func TestBackoff(t *testing.T) {
	min, max := 100*time.Millisecond, 2*time.Second
	cases := []struct {
		attempt  int
		low, top time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, time.Second, 2 * time.Second}, // capped
		{100, time.Second, 2 * time.Second},
	}
	for _, tc := range cases {
		for range 200 {
			if d := backoff(min, max, tc.attempt); d < tc.low || d > tc.top {
				t.Fatalf("backoff(attempt %d) = %s, want within [%s, %s]", tc.attempt, d, tc.low, tc.top)
			}
		}
	}
}

func TestPermanent(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", Permanent(nil), false},
		{"plain", errors.New("x"), false},
		{"permanent", Permanent(errors.New("x")), true},
		{"wrapped permanent", errors.Join(errors.New("ctx"), Permanent(errors.New("x"))), true},
		{"panic", &PanicError{Value: 1}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPermanent(tc.err); got != tc.want {
				t.Errorf("IsPermanent = %v", got)
			}
		})
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
}
