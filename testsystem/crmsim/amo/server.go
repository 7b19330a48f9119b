// Package amo is an amoCRM (Kommo) account simulator for tests: an http.Handler that answers
// the API v4 methods a telephony connector uses the way the real cloud does (HAL+JSON bodies,
// problem+json errors, 204 for empty lists, OAuth 2.0 with rotating refresh tokens, the 7 rps
// limit), keeps the account's state (users, contacts, companies, leads, calls, notes, tasks,
// Unsorted, call pop-ups) and journals every request through crmsim.
//
// The facts come from ../shared/docs/reference/crm-apis.md §2 and the public amoCRM/Kommo
// developer pages; README.md lists each method with its source and what is not simulated.
package amo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

// Options configure a simulated account. The zero value is a working account with one admin,
// one pipeline, an integration with random keys and the real lifetimes and limits.
type Options struct {
	Seed
	// Token lifetimes (amoCRM: access 24 h; refresh 3 months, unused; authorization code 20
	// minutes, crm-apis.md §2.5). Tests shorten them.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	CodeTTL         time.Duration
	// KeepAccessTokenOnRefresh leaves the previous access token valid after a refresh. By
	// default a refresh revokes it, as league/oauth2-server (which the hints show amoCRM runs)
	// does: a replica still holding the old token gets 401.
	KeepAccessTokenOnRefresh bool
	RateLimit                RateLimit
	// Now is the clock of token expiry and timestamps (not of the rate limit); nil is time.Now.
	Now func() time.Time
}

// AccountState is whether the account may use the API.
type AccountState int

const (
	// Active accounts work.
	Active AccountState = iota
	// Unpaid accounts answer every API request with 402 Payment Required.
	Unpaid
	// Blocked accounts answer every API request with 403 Forbidden.
	Blocked
)

// Server is one simulated amoCRM account. It is an http.Handler serving the account's API at
// its root (the real one serves https://<subdomain>.amocrm.ru/...) and /_sim/ control
// endpoints.
type Server struct {
	opts    Options
	now     func() time.Time
	sim     *crmsim.Sim
	mux     *http.ServeMux
	handler http.Handler
	limiter *limiter

	mu     sync.Mutex
	st     state
	auth   tokens
	acct   AccountState
	srv    *http.Server
	ln     net.Listener
	closed bool
}

// hostParam is the pseudo-parameter the journal gets with each request's Host header (the
// real API is reached as <subdomain>.amocrm.ru, so the host is part of what a connector sends).
const hostParam = "_host"

// secretParams never reach the journal: OAuth request fields and tokens.
var secretParams = []string{"client_secret", "code", "refresh_token", "access_token", "token"}

// New builds the account from opts.
func New(opts Options) *Server {
	opts = withDefaults(opts)
	s := &Server{
		opts:    opts,
		now:     opts.Now,
		sim:     crmsim.New(secretParams...),
		mux:     http.NewServeMux(),
		limiter: newLimiter(opts.RateLimit),
	}
	s.st = newState(opts.Seed, s.now())
	s.auth = newTokens(opts.Seed.LongLivedTokens)
	s.routes()
	api := s.sim.Wrap(http.HandlerFunc(s.serveAPI), s.methodName, ErrorBody)
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The token endpoint writes tokens past the journal's recorder (see writeSecret).
		r = r.Clone(context.WithValue(r.Context(), rawWriterKey{}, w))
		if !strings.HasPrefix(r.URL.Path, "/_sim/") {
			add := hostParam + "=" + url.QueryEscape(r.Host)
			if r.URL.RawQuery == "" {
				r.URL.RawQuery = add
			} else {
				r.URL.RawQuery += "&" + add
			}
		}
		api.ServeHTTP(w, r)
	})
	return s
}

func withDefaults(o Options) Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AccessTokenTTL <= 0 {
		o.AccessTokenTTL = 24 * time.Hour
	}
	if o.RefreshTokenTTL <= 0 {
		o.RefreshTokenTTL = 90 * 24 * time.Hour
	}
	if o.CodeTTL <= 0 {
		o.CodeTTL = 20 * time.Minute
	}
	a := &o.Account
	if a.ID == 0 {
		a.ID = 31000001
	}
	if a.Subdomain == "" {
		a.Subdomain = "ringbridge"
	}
	if a.Domain == "" {
		a.Domain = "amocrm.ru"
	}
	if a.Name == "" {
		a.Name = a.Subdomain
	}
	if a.Country == "" {
		a.Country = "RU"
	}
	if a.Currency == "" {
		a.Currency = "RUB"
	}
	in := &o.Integration
	if in.ClientID == "" {
		in.ClientID = uuid()
	}
	if in.ClientSecret == "" {
		in.ClientSecret = randomString(32)
	}
	if in.RedirectURI == "" {
		in.RedirectURI = "https://ringbridge.example/amo/oauth"
	}
	return o
}

// ServeHTTP serves the API and the /_sim/ control endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Start serves the account on 127.0.0.1 (a free port) until ctx ends or Close, and returns its
// base URL.
func (s *Server) Start(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("amo: listen: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	if s.srv != nil || s.closed {
		s.mu.Unlock()
		ln.Close()
		return "", errors.New("amo: server already started or closed")
	}
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { s.Close() })
	return s.URL(), nil
}

// URL is the base URL of a started server ("" before Start).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops a started server.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.closed = true
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Account is the simulated account.
func (s *Server) Account() Account { return s.opts.Account }

// Integration is the installed integration's keys.
func (s *Server) Integration() Integration { return s.opts.Integration }

// Sim is the journal and fault table (crmsim). Token responses are not in the journal.
func (s *Server) Sim() *crmsim.Sim { return s.sim }

// Requests is the journal after sequence number since (0 for all).
func (s *Server) Requests(since int) []crmsim.Request { return s.sim.Requests(since) }

// Wait blocks until a journaled request satisfies pred, or ctx ends.
func (s *Server) Wait(ctx context.Context, pred func(crmsim.Request) bool) (crmsim.Request, error) {
	return s.sim.Wait(ctx, pred)
}

// AddFault injects a fault; Method names look like "POST /api/v4/calls". A fault without a
// body answers with the amoCRM error body of its status (ErrorBody).
func (s *Server) AddFault(f crmsim.Fault) { s.sim.AddFault(f) }

// ClearFaults removes every fault.
func (s *Server) ClearFaults() { s.sim.ClearFaults() }

// SetAccountState makes the account unpaid (402) or blocked (403), or active again.
func (s *Server) SetAccountState(st AccountState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acct = st
}

// SetRateLimit replaces the rate limit (and forgets the requests counted so far).
func (s *Server) SetRateLimit(r RateLimit) { s.limiter.set(r) }

// methodName names a request for the journal and faults: the route's pattern, e.g.
// "POST /api/v4/calls", "GET /api/v4/contacts/{id}".
func (s *Server) methodName(r *http.Request) string {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		return strings.TrimSuffix(strings.TrimSuffix(pattern, "{$}"), "/")
	}
	return r.Method + " " + strings.TrimSuffix(r.URL.Path, "/")
}

// serveAPI applies what the real cloud applies before a method runs: the rate limit, the
// token, the account's state; then routes.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	q.Del(hostParam)
	r.URL.RawQuery = q.Encode()
	if strings.HasPrefix(r.URL.Path, "/api/") {
		switch s.limiter.take(time.Now()) { // wall time: the limit is about real request rates, not the test clock
		case tooMany:
			writeProblem(w, httpProblem(http.StatusTooManyRequests, defaultDetails[http.StatusTooManyRequests]))
			return
		case banned:
			writeProblem(w, httpProblem(http.StatusForbidden, "Access from your IP is temporarily restricted"))
			return
		}
		user, p := s.authorize(r)
		if p != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="amoCRM"`)
			writeProblem(w, *p)
			return
		}
		s.mu.Lock()
		st := s.acct
		s.mu.Unlock()
		switch st {
		case Unpaid:
			writeProblem(w, httpProblem(http.StatusPaymentRequired, defaultDetails[http.StatusPaymentRequired]))
			return
		case Blocked:
			writeProblem(w, httpProblem(http.StatusForbidden, defaultDetails[http.StatusForbidden]))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		status := http.StatusNotFound
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := s.mux.Handler(probe); p != "" && m != r.Method {
				status = http.StatusMethodNotAllowed
			}
		}
		writeProblem(w, httpProblem(status, defaultDetails[status]))
		return
	}
	s.mux.ServeHTTP(w, r) // not the Handler's h: only ServeHTTP sets path values
}

type userKey struct{}

// currentUser is the user the token acts for (the installing admin).
func currentUser(r *http.Request) int {
	id, _ := r.Context().Value(userKey{}).(int)
	return id
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("POST /oauth2/access_token", s.handleToken)
	m.HandleFunc("GET /api/v4/account", s.handleAccount)
	m.HandleFunc("GET /api/v4/users", s.handleUsers)
	m.HandleFunc("GET /api/v4/users/{id}", s.handleUser)
	m.HandleFunc("GET /api/v4/contacts", s.handleContacts)
	m.HandleFunc("GET /api/v4/contacts/{id}", s.handleContact)
	m.HandleFunc("POST /api/v4/contacts", s.handleAddContacts)
	m.HandleFunc("GET /api/v4/companies", s.handleCompanies)
	m.HandleFunc("GET /api/v4/leads", s.handleLeads)
	m.HandleFunc("GET /api/v4/leads/{id}", s.handleLead)
	m.HandleFunc("POST /api/v4/leads", s.handleAddLeads)
	m.HandleFunc("POST /api/v4/leads/complex", s.handleAddComplex)
	m.HandleFunc("GET /api/v4/leads/pipelines", s.handlePipelines)
	m.HandleFunc("POST /api/v4/leads/unsorted/sip", s.handleAddUnsortedSIP)
	m.HandleFunc("GET /api/v4/leads/unsorted", s.handleUnsortedList)
	m.HandleFunc("POST /api/v4/leads/unsorted/{uid}/accept", s.handleAcceptUnsorted)
	m.HandleFunc("POST /api/v4/calls", s.handleAddCalls)
	m.HandleFunc("POST /api/v4/tasks", s.handleAddTasks)
	m.HandleFunc("GET /api/v4/tasks", s.handleTasks)
	m.HandleFunc("POST /api/v4/{entity}/notes", s.handleAddNotes)
	for _, et := range taskEntityTypes {
		m.HandleFunc("GET /api/v4/"+et+"/notes", s.handleNotes(et))
	}
	m.HandleFunc("POST /api/v2/events", s.handleEvents)
	m.HandleFunc("POST /api/v2/events/{$}", s.handleEvents)
}

// base is the account's address as the request reached it, for _links (the real API links to
// https://<subdomain>.amocrm.ru, which is the host its clients call).
func base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func link(r *http.Request, path string) map[string]any {
	return map[string]any{"self": map[string]string{"href": base(r) + path}}
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func sortedIDs[T any](m map[int]*T) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}
