package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

func testLogger(buf *bytes.Buffer) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(buf)
	l.SetFormatter(&logrus.JSONFormatter{})
	return l.WithField("service", "test")
}

func get(t *testing.T, h http.Handler, target, accept string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
}

func TestHealthz(t *testing.T) {
	var logs bytes.Buffer
	s := New(testLogger(&logs), nil)
	s.AddCheck("broken", func(context.Context) error { return errors.New("down") })
	code, _, body := get(t, s.Handler(), "/healthz", "")
	if code != http.StatusOK || body != "ok\n" {
		t.Fatalf("got %d %q: /healthz must not depend on checks", code, body)
	}
}

func TestReadyz(t *testing.T) {
	amiErr := errors.New("login as crm rejected: wrong username or secret")
	cases := []struct {
		name     string
		checks   map[string]CheckFunc
		order    []string
		accept   string
		target   string
		wantCode int
		wantBody []string
	}{
		{
			name:     "no checks is ready",
			target:   "/readyz",
			wantCode: http.StatusOK,
			wantBody: []string{"ready\n"},
		},
		{
			name:     "all pass",
			checks:   map[string]CheckFunc{"redis": ok, "rabbitmq": ok},
			order:    []string{"redis", "rabbitmq"},
			target:   "/readyz",
			wantCode: http.StatusOK,
			wantBody: []string{"ready\n", "redis: ok", "rabbitmq: ok"},
		},
		{
			name:     "one fails, said in words",
			checks:   map[string]CheckFunc{"redis": ok, "ami": func(context.Context) error { return amiErr }},
			order:    []string{"redis", "ami"},
			target:   "/readyz",
			wantCode: http.StatusServiceUnavailable,
			wantBody: []string{"not ready: 1 of 2 checks failing", "ami: login as crm rejected: wrong username or secret", "redis: ok"},
		},
		{
			name:     "json by accept header",
			checks:   map[string]CheckFunc{"ami": func(context.Context) error { return amiErr }},
			order:    []string{"ami"},
			target:   "/readyz",
			accept:   "application/json",
			wantCode: http.StatusServiceUnavailable,
			wantBody: []string{`"ready":false`, `"status":"ami: login as crm rejected: wrong username or secret"`, `"name":"ami"`},
		},
		{
			name:     "json by query",
			checks:   map[string]CheckFunc{"redis": ok},
			order:    []string{"redis"},
			target:   "/readyz?format=json",
			wantCode: http.StatusOK,
			wantBody: []string{`"ready":true`, `"ok":true`},
		},
		{
			name: "slow check times out",
			checks: map[string]CheckFunc{"slow": func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}},
			order:    []string{"slow"},
			target:   "/readyz",
			wantCode: http.StatusServiceUnavailable,
			wantBody: []string{"slow: no answer within 50ms"},
		},
		{
			name: "check ignoring its context still times out",
			checks: map[string]CheckFunc{"stuck": func(context.Context) error {
				time.Sleep(time.Second)
				return nil
			}},
			order:    []string{"stuck"},
			target:   "/readyz",
			wantCode: http.StatusServiceUnavailable,
			wantBody: []string{"stuck: no answer within 50ms"},
		},
		{
			name:     "panicking check fails, server lives",
			checks:   map[string]CheckFunc{"bad": func(context.Context) error { panic("boom") }},
			order:    []string{"bad"},
			target:   "/readyz",
			wantCode: http.StatusServiceUnavailable,
			wantBody: []string{"bad: the check crashed: boom"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := New(testLogger(&logs), nil, WithCheckTimeout(50*time.Millisecond))
			for _, name := range tc.order {
				s.AddCheck(name, tc.checks[name])
			}
			start := time.Now()
			code, ctype, body := get(t, s.Handler(), tc.target, tc.accept)
			if time.Since(start) > 500*time.Millisecond {
				t.Errorf("readyz took %s", time.Since(start))
			}
			if code != tc.wantCode {
				t.Errorf("code %d, want %d; body:\n%s", code, tc.wantCode, body)
			}
			for _, w := range tc.wantBody {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			if strings.Contains(tc.accept+tc.target, "json") {
				var r Report
				if err := json.Unmarshal([]byte(body), &r); err != nil || !strings.HasPrefix(ctype, "application/json") {
					t.Errorf("not JSON (%s): %v", ctype, err)
				}
			}
		})
	}
}

func ok(context.Context) error { return nil }

func TestChecksRunConcurrently(t *testing.T) {
	var logs bytes.Buffer
	s := New(testLogger(&logs), nil, WithCheckTimeout(time.Second))
	for _, n := range []string{"a", "b", "c"} {
		s.AddCheck(n, func(context.Context) error { time.Sleep(100 * time.Millisecond); return nil })
	}
	start := time.Now()
	rep := s.Check(context.Background())
	if !rep.Ready || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("ready %v after %s: checks ran one after another", rep.Ready, time.Since(start))
	}
}

func TestAddCheckReplacesSameName(t *testing.T) {
	var logs bytes.Buffer
	s := New(testLogger(&logs), nil)
	s.AddCheck("x", func(context.Context) error { return errors.New("old") })
	s.AddCheck("x", ok)
	if rep := s.Check(context.Background()); !rep.Ready || len(rep.Checks) != 1 {
		t.Fatalf("report %+v", rep)
	}
}

type fakeRedactor struct{}

func (fakeRedactor) Redact(s string) string { return strings.ReplaceAll(s, "hunter2", "<secret>") }

func TestRedactorScrubsCheckErrors(t *testing.T) {
	var logs bytes.Buffer
	s := New(testLogger(&logs), nil, WithRedactor(fakeRedactor{}))
	s.AddCheck("rabbitmq", func(context.Context) error { return errors.New("dial amqp://u:hunter2@mq/: refused") })
	_, _, body := get(t, s.Handler(), "/readyz", "")
	if strings.Contains(body, "hunter2") || strings.Contains(logs.String(), "hunter2") {
		t.Fatalf("secret leaked:\n%s\n%s", body, &logs)
	}
}

func TestReadinessChangesAreLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	s := New(testLogger(&logs), nil)
	fail := true
	s.AddCheck("redis", func(context.Context) error {
		if fail {
			return errors.New("connection refused")
		}
		return nil
	})
	h := s.Handler()
	for range 3 {
		get(t, h, "/readyz", "")
	}
	fail = false
	for range 3 {
		get(t, h, "/readyz", "")
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"not ready"`); n != 1 {
		t.Errorf("%d 'not ready' lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `"msg":"ready"`); n != 1 {
		t.Errorf("%d 'ready' lines, want 1:\n%s", n, out)
	}
}

func TestMetrics(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounter(prometheus.CounterOpts{Name: "ringbridge_test_calls_total", Help: "test"})
	reg.MustRegister(calls)
	calls.Add(3)
	s := New(testLogger(&logs), reg)
	_ = New(testLogger(&logs), reg) // a second server on the same registry must not fail
	code, _, body := get(t, s.Handler(), "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("code %d", code)
	}
	for _, w := range []string{"ringbridge_test_calls_total 3", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	if strings.Contains(logs.String(), "registering runtime metrics") {
		t.Errorf("second New logged an error:\n%s", &logs)
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	var logs bytes.Buffer
	s := New(testLogger(&logs), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Fatalf("body %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after a clean shutdown", err)
		}
	case <-time.After(ShutdownTimeout + time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestServeBadAddress(t *testing.T) {
	var logs bytes.Buffer
	s := New(testLogger(&logs), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = s.Serve(context.Background(), ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "listening on "+ln.Addr().String()) {
		t.Fatalf("err = %v", err)
	}
}
