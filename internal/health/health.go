// Package health is the small HTTP server each service runs beside its work: /healthz (the process
// answers), /readyz (its dependencies answer: named checks, with the failing ones said in words) and
// /metrics (Prometheus). Docker health checks, Kubernetes probes, the supervisor's health gate and
// an operator with curl read it.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// DefaultCheckTimeout bounds each readiness check: a probe must answer quickly, and a dependency
// that takes longer than this to say it is fine is not fine.
const DefaultCheckTimeout = 2 * time.Second

// CheckFunc reports whether one dependency works; its error says in words what is wrong, e.g.
// "login as crm rejected: wrong username or secret".
type CheckFunc func(ctx context.Context) error

// Redactor scrubs secrets from text; *logging.Redactor is one.
type Redactor interface{ Redact(string) string }

// Option changes a Server.
type Option func(*Server)

// WithCheckTimeout sets how long each check may take.
func WithCheckTimeout(d time.Duration) Option { return func(s *Server) { s.timeout = d } }

// WithRedactor scrubs secrets from check errors before they reach a response or a log line: a
// /readyz body can end up in a bug report.
func WithRedactor(r Redactor) Option { return func(s *Server) { s.redactor = r } }

// Server serves /healthz, /readyz and /metrics. Checks may be added at any time.
type Server struct {
	log      *logrus.Entry
	registry *prometheus.Registry
	timeout  time.Duration
	redactor Redactor

	mu     sync.Mutex
	checks []namedCheck
	// lastReady is the previous /readyz outcome, so a change is logged once rather than every probe.
	lastReady  *bool
	lastFailed string
}

type namedCheck struct {
	name string
	fn   CheckFunc
}

// New returns a Server whose /metrics serves registry (a fresh one when nil), with the Go runtime
// and process collectors registered on it.
func New(logger *logrus.Entry, registry *prometheus.Registry, opts ...Option) *Server {
	if registry == nil {
		registry = prometheus.NewRegistry()
	}
	s := &Server{log: logger, registry: registry, timeout: DefaultCheckTimeout}
	for _, o := range opts {
		o(s)
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		// Already registered by the caller is fine: the same collector twice is what we want once.
		var are prometheus.AlreadyRegisteredError
		if err := registry.Register(c); err != nil && !errors.As(err, &are) {
			logger.WithError(err).Warn("registering runtime metrics")
		}
	}
	return s
}

// Registry is the registry /metrics serves, for the service's own metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// AddCheck adds a readiness check; a check of the same name replaces the earlier one. Checks run
// in the order they were added and are reported in that order.
func (s *Server) AddCheck(name string, fn CheckFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.checks {
		if c.name == name {
			s.checks[i].fn = fn
			return
		}
	}
	s.checks = append(s.checks, namedCheck{name: name, fn: fn})
}

// Result is one check's outcome.
type Result struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"-"`
	Millis   int64         `json:"ms"`
}

// Report is a /readyz answer.
type Report struct {
	Ready  bool     `json:"ready"`
	Status string   `json:"status"` // "ready", or the failing checks in words
	Checks []Result `json:"checks"`
}

// Check runs every check at once, each under the check timeout, and reports them all. A check that
// ignores its context still cannot hold the answer past the timeout.
func (s *Server) Check(ctx context.Context) Report {
	s.mu.Lock()
	checks := append([]namedCheck(nil), s.checks...)
	s.mu.Unlock()

	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.runOne(ctx, c)
		}()
	}
	wg.Wait()

	r := Report{Ready: true, Checks: results}
	var failing []string
	for _, res := range results {
		if !res.OK {
			r.Ready = false
			failing = append(failing, res.Name+": "+res.Error)
		}
	}
	r.Status = "ready"
	if !r.Ready {
		r.Status = strings.Join(failing, "; ")
	}
	return r
}

func (s *Server) runOne(ctx context.Context, c namedCheck) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	done := make(chan error, 1) // buffered: a check that finishes after the timeout must not block
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("the check crashed: %v", p)
			}
		}()
		done <- c.fn(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within %s", s.timeout)
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s (%w)", s.timeout, err)
	}
	d := time.Since(start)
	res := Result{Name: c.name, OK: err == nil, Duration: d, Millis: d.Milliseconds()}
	if err != nil {
		res.Error = err.Error()
		if s.redactor != nil {
			res.Error = s.redactor.Redact(res.Error)
		}
	}
	return res
}

// Handler serves /healthz, /readyz and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:          errorLogger{s.log},
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          s.registry,
		EnableOpenMetrics: true,
	}))
	return mux
}

func (s *Server) serveReady(w http.ResponseWriter, req *http.Request) {
	rep := s.Check(req.Context())
	s.logChange(rep)
	code := http.StatusOK
	if !rep.Ready {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(req) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(rep)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, rep.Text())
}

// Text renders the report for a person: the verdict, then one line per check.
func (r Report) Text() string {
	var b strings.Builder
	if r.Ready {
		b.WriteString("ready\n")
	} else {
		n := 0
		for _, c := range r.Checks {
			if !c.OK {
				n++
			}
		}
		fmt.Fprintf(&b, "not ready: %d of %d checks failing\n", n, len(r.Checks))
	}
	for _, c := range r.Checks {
		if c.OK {
			fmt.Fprintf(&b, "%s: ok (%dms)\n", c.Name, c.Millis)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", c.Name, c.Error)
		}
	}
	return b.String()
}

// wantsJSON: JSON for programs that ask for it (Accept or ?format=json), words for everyone else.
func wantsJSON(req *http.Request) bool {
	return req.URL.Query().Get("format") == "json" || strings.Contains(req.Header.Get("Accept"), "application/json")
}

func (s *Server) logChange(rep Report) {
	s.mu.Lock()
	changed := s.lastReady == nil || *s.lastReady != rep.Ready || (!rep.Ready && s.lastFailed != rep.Status)
	ready := rep.Ready
	s.lastReady, s.lastFailed = &ready, rep.Status
	s.mu.Unlock()
	if !changed {
		return
	}
	if rep.Ready {
		s.log.Info("ready")
	} else {
		s.log.WithField("failing", rep.Status).Warn("not ready")
	}
}

// Serve listens on addr and serves until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health server: listening on %s: %w", addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// ShutdownTimeout is how long Serve waits for requests in flight when ctx ends.
const ShutdownTimeout = 5 * time.Second

// ServeListener is Serve on a listener the caller opened (port 0 in tests).
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      s.timeout + 10*time.Second,
		IdleTimeout:       60 * time.Second,
	}
	s.log.WithField("addr", ln.Addr().String()).Info("health server listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("health server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// The parent context is done; shutting down needs a fresh one to wait for requests in flight.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("health server on %s: shutting down: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health server on %s: %w", ln.Addr(), err)
	}
	return nil
}

// errorLogger sends promhttp's errors to the service's logger.
type errorLogger struct{ log *logrus.Entry }

func (e errorLogger) Println(v ...any) { e.log.Warn(fmt.Sprint(v...)) }
