// Package bitrix simulates a Bitrix24 cloud portal for the telephony connector's tests: the REST
// API (OAuth application and incoming-webhook modes), the OAuth server (oauth.bitrix.info),
// the request-intensity and operating-time limits, and the events the portal posts to an
// application (ONAPPINSTALL, ONEXTERNALCALLSTART, ONEXTERNALCALLBACKSTART). Every request goes
// through a crmsim journal and fault table. See README.md for what is simulated and how.
package bitrix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

// Options configure a portal. The zero value is a working portal with one local application
// and the cloud's limits; every field can also come from a JSON/YAML file (LoadOptions).
type Options struct {
	// Domain is the portal's domain in events and OAuth answers; default: the host of PublicURL.
	Domain string `json:"domain" yaml:"domain"`
	// PublicURL is the simulator's base URL as clients reach it (http://crmsim:8080); Start sets
	// it when empty, and a request's Host is used when it is still empty.
	PublicURL string `json:"public_url" yaml:"public_url"`
	MemberID  string `json:"member_id" yaml:"member_id"` // default: random 32 hex digits

	// The local application (client_id/client_secret of the OAuth server).
	ClientID     string `json:"client_id" yaml:"client_id"`         // default local.ringbridge.test
	ClientSecret string `json:"client_secret" yaml:"client_secret"` // default ringbridge-secret
	AppName      string `json:"app_name" yaml:"app_name"`           // REST_APP_NAME in finish
	Scope        string `json:"scope" yaml:"scope"`                 // default crm,telephony,user

	Users     []User    `json:"users" yaml:"users"`
	Contacts  []Contact `json:"contacts" yaml:"contacts"`
	Companies []Company `json:"companies" yaml:"companies"`
	Leads     []Lead    `json:"leads" yaml:"leads"`
	Lines     []Line    `json:"lines" yaml:"lines"`
	Webhooks  []Webhook `json:"webhooks" yaml:"webhooks"`

	// Token lifetimes (settings/oauth): access 1 h, refresh 180 days, authorization code 30 s.
	AccessTokenTTL  time.Duration `json:"access_token_ttl" yaml:"access_token_ttl"`
	RefreshTokenTTL time.Duration `json:"refresh_token_ttl" yaml:"refresh_token_ttl"`
	CodeTTL         time.Duration `json:"code_ttl" yaml:"code_ttl"`
	// KeepUsedRefreshTokens lets a refresh token be used again. By default a used one is revoked:
	// the reference (§1.1) says to treat Bitrix24 refresh tokens as single-use ("until first use"
	// on the older official page), so a connector that reuses one must fail here.
	KeepUsedRefreshTokens bool `json:"keep_used_refresh_tokens" yaml:"keep_used_refresh_tokens"`

	// Request intensity (limits.md): a leaky bucket that drains RateDrain requests per second and
	// blocks above RateBurst. Defaults 2 and 50 (5 and 250 is the Enterprise plan).
	RateDrain float64 `json:"rate_drain" yaml:"rate_drain"`
	RateBurst int     `json:"rate_burst" yaml:"rate_burst"`
	// RatePerIP keeps one bucket per client IP instead of one for the portal (the cloud counts
	// per portal and source IP; one bucket is the stricter view when all replicas share an IP).
	RatePerIP   bool `json:"rate_per_ip" yaml:"rate_per_ip"`
	NoRateLimit bool `json:"no_rate_limit" yaml:"no_rate_limit"`

	// Operating time (limits.md): a method whose execution time over 10 minutes exceeds
	// OperatingLimit (default 480 s) is blocked with 429 for that app/webhook. OperatingCost
	// adds a simulated execution time per method (lower-case name), since the simulator itself
	// takes microseconds.
	OperatingLimit time.Duration            `json:"operating_limit" yaml:"operating_limit"`
	OperatingCost  map[string]time.Duration `json:"operating_cost" yaml:"operating_cost"`

	// ReRegisterWindow is how long a repeated register may return an existing CALL_ID
	// (default 30 minutes, telephony-external-call-register.md).
	ReRegisterWindow time.Duration `json:"reregister_window" yaml:"reregister_window"`
	// StaleCallTTL, when set, makes a call not finished within it unknown to finish and show.
	// The reference does not document such a cleanup; it is off by default.
	StaleCallTTL time.Duration `json:"stale_call_ttl" yaml:"stale_call_ttl"`
	// LeadCreationError, when set, makes CRM_CREATE=1 fail to create a lead with this
	// LEAD_CREATION_ERROR (e.g. "Lead creation is disabled for local users", reference §1.4).
	LeadCreationError string `json:"lead_creation_error" yaml:"lead_creation_error"`
	// FetchRecordURL makes attachRecord download RECORD_URL (else the URL is only recorded).
	FetchRecordURL bool `json:"fetch_record_url" yaml:"fetch_record_url"`

	// Location is the portal's time zone for date_start/date_finish; default UTC+3.
	Location *time.Location `json:"-" yaml:"-"`
	// Now is the clock; default time.Now. Server.Advance moves it forward.
	Now func() time.Time `json:"-" yaml:"-"`
	// HTTPClient posts events and fetches RECORD_URL; default a client with a 10 s timeout.
	HTTPClient *http.Client `json:"-" yaml:"-"`
}

// Server is a simulated portal. It is an http.Handler; use it with httptest or Start.
type Server struct {
	opts    Options
	sim     *crmsim.Sim
	handler http.Handler
	methods map[string]methodSpec

	mu        sync.Mutex
	offset    time.Duration // Advance
	publicURL string
	users     []*User
	contacts  []*Contact
	companies []*Company
	leads     []*Lead
	lines     []*Line
	webhooks  []Webhook
	calls     map[string]*Call
	callOrder []string
	apps      map[string]*app
	tokens    []*Token // in issue order
	access    map[string]*Token
	refresh   map[string]*Token
	codes     map[string]*authCode
	uploads   map[string]pendingUpload
	events    []SentEvent
	buckets   map[string]*bucket
	operating map[string][]opEntry
	nextID    map[string]int

	srv *http.Server
	ln  net.Listener
}

type app struct {
	clientID, secret string
	appToken         string
	scope            string
	userID           int
	restAppID        int
	installed        bool
}

type authCode struct {
	clientID string
	userID   int
	expires  time.Time
}

type pendingUpload struct {
	callID, fileName string
}

// New builds a portal from opts.
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = "local.ringbridge.test"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "ringbridge-secret"
	}
	if opts.AppName == "" {
		opts.AppName = "ringbridge"
	}
	if opts.Scope == "" {
		opts.Scope = "crm,telephony,user"
	}
	if opts.MemberID == "" {
		opts.MemberID = randHex(16)
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = time.Hour
	}
	if opts.RefreshTokenTTL == 0 {
		opts.RefreshTokenTTL = 180 * 24 * time.Hour
	}
	if opts.CodeTTL == 0 {
		opts.CodeTTL = 30 * time.Second
	}
	if opts.RateDrain == 0 {
		opts.RateDrain = 2
	}
	if opts.RateBurst == 0 {
		opts.RateBurst = 50
	}
	if opts.OperatingLimit == 0 {
		opts.OperatingLimit = 480 * time.Second
	}
	if opts.ReRegisterWindow == 0 {
		opts.ReRegisterWindow = 30 * time.Minute
	}
	if opts.Location == nil {
		opts.Location = time.FixedZone("MSK", 3*3600)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		opts: opts,
		// Parameters that carry secrets never reach the journal.
		sim:       crmsim.New("auth", "access_token", "refresh_token", "client_secret", "code", "application_token", "token"),
		publicURL: strings.TrimRight(opts.PublicURL, "/"),
		calls:     map[string]*Call{},
		apps:      map[string]*app{},
		access:    map[string]*Token{},
		refresh:   map[string]*Token{},
		codes:     map[string]*authCode{},
		uploads:   map[string]pendingUpload{},
		buckets:   map[string]*bucket{},
		operating: map[string][]opEntry{},
		nextID:    map[string]int{},
	}
	s.apps[opts.ClientID] = &app{clientID: opts.ClientID, secret: opts.ClientSecret, scope: opts.Scope, restAppID: 1}
	for _, u := range opts.Users {
		s.AddUser(u)
	}
	for _, c := range opts.Companies {
		s.AddCompany(c)
	}
	for _, c := range opts.Contacts {
		s.AddContact(c)
	}
	for _, l := range opts.Leads {
		l.CreatedBy = "seed"
		s.AddLead(l)
	}
	for _, l := range opts.Lines {
		s.addLine(l)
	}
	for _, w := range opts.Webhooks {
		s.AddWebhook(w)
	}
	s.methods = s.methodTable()
	s.handler = s.sim.Wrap(http.HandlerFunc(s.api), methodName, ErrorBody)
	return s
}

// Journal is the request journal and fault table (Requests, Wait, AddFault, ClearFaults).
func (s *Server) Journal() *crmsim.Sim { return s.sim }

// now is the simulated clock.
func (s *Server) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time { return s.opts.Now().Add(s.offset) }

// Advance moves the portal's clock forward: token expiry, the 30-minute rule, the leaky bucket
// and operating time all follow it, so tests need not sleep.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// Start serves the portal on addr ("" for 127.0.0.1:0) until Close.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bitrix: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	if s.publicURL == "" {
		s.publicURL = "http://" + ln.Addr().String()
	}
	srv := s.srv
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed on Close
	return nil
}

// URL is the base URL the portal is reachable at ("" before Start or SetPublicURL).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publicURL
}

// SetPublicURL sets the base URL used in client_endpoint, uploadUrl and events (for a portal
// served by httptest or behind a proxy).
func (s *Server) SetPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publicURL = strings.TrimRight(u, "/")
}

// Close stops a server started with Start.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("bitrix: close: %w", err)
	}
	return nil
}

// routeKey carries the parsed REST route past the journal, which only sees the redacted path.
type routeKey struct{}

// route is where a /rest/ request goes.
type route struct {
	method  string // lower case, without .json
	webhook bool
	userID  int
	secret  string
}

// parseRoute reads /rest/<method>[.json] and /rest/<user_id>/<secret>/<method>[.json].
func parseRoute(urlPath string) (route, bool) {
	rest, ok := strings.CutPrefix(urlPath, "/rest/")
	if !ok {
		return route{}, false
	}
	parts := strings.Split(rest, "/")
	var rt route
	switch len(parts) {
	case 1:
		rt.method = parts[0]
	case 3:
		uid, err := strconv.Atoi(parts[0])
		if err != nil {
			return route{}, false
		}
		rt = route{method: parts[2], webhook: true, userID: uid, secret: parts[1]}
	default:
		return route{}, false
	}
	rt.method = strings.ToLower(strings.TrimSuffix(rt.method, ".json"))
	if rt.method == "" {
		return route{}, false
	}
	return rt, true
}

// ServeHTTP hides a webhook's secret from the journal (the path is all it records) and hands
// the request to the journaled API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rt, ok := parseRoute(r.URL.Path); ok {
		r = r.Clone(context.WithValue(r.Context(), routeKey{}, rt))
		if rt.webhook {
			r.URL.Path = fmt.Sprintf("/rest/%d/<secret>/%s", rt.userID, path.Base(r.URL.Path))
			r.URL.RawPath = ""
		}
	}
	s.handler.ServeHTTP(w, r)
}

// methodName names a request for the journal and fault matching: the lower-case REST method,
// "oauth.token" for the OAuth server.
func methodName(r *http.Request) string {
	if rt, ok := r.Context().Value(routeKey{}).(route); ok {
		return rt.method
	}
	if strings.HasPrefix(r.URL.Path, "/oauth/token") {
		return "oauth.token"
	}
	return r.URL.Path
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/oauth/token") {
		s.oauthToken(w, r)
		return
	}
	rt, ok := r.Context().Value(routeKey{}).(route)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "NOT_FOUND", "error_description": "Not found"})
		return
	}
	s.rest(w, r, rt)
}

// timeBlock is the "time" object of every answer (data-types.md#time, limits.md).
type timeBlock struct {
	Start            float64  `json:"start"`
	Finish           float64  `json:"finish"`
	Duration         float64  `json:"duration"`
	Processing       float64  `json:"processing"`
	DateStart        string   `json:"date_start"`
	DateFinish       string   `json:"date_finish"`
	OperatingResetAt *int64   `json:"operating_reset_at,omitempty"`
	Operating        *float64 `json:"operating,omitempty"`
}

func (s *Server) timing(start time.Time, elapsed time.Duration) timeBlock {
	finish := start.Add(elapsed)
	return timeBlock{
		Start:      float64(start.UnixMicro()) / 1e6,
		Finish:     float64(finish.UnixMicro()) / 1e6,
		Duration:   elapsed.Seconds(),
		Processing: elapsed.Seconds(),
		DateStart:  start.In(s.opts.Location).Format(time.RFC3339),
		DateFinish: finish.In(s.opts.Location).Format(time.RFC3339),
	}
}

// result is what a method returns: the value, and for list methods next and total.
type result struct {
	value any
	next  *int
	total *int
}

// envelope is a successful answer: {"result": ..., "next": ..., "total": ..., "time": {...}}.
type envelope struct {
	Result any       `json:"result"`
	Next   *int      `json:"next,omitempty"`
	Total  *int      `json:"total,omitempty"`
	Time   timeBlock `json:"time"`
}

func (s *Server) rest(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	realStart := time.Now()
	start := s.now()
	p, err := readParams(r)
	if err != nil {
		writeErr(w, &apiError{http.StatusBadRequest, "INVALID_REQUEST", err.Error()})
		return
	}
	if !s.allow(clientIP(r)) {
		writeErr(w, errQueryLimit())
		return
	}
	c, aerr := s.authenticate(rt, p)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	if rt.method == "upload" {
		s.upload(w, r, c, p, start, realStart)
		return
	}
	res, err := s.call(ctx, c, rt.method, p, false)
	if err != nil {
		writeErr(w, asAPIError(err))
		return
	}
	tb := s.timing(start, time.Since(realStart))
	if rt.method != "batch" { // the outer batch is not counted in operating (limits.md)
		op, reset := s.operatingState(c.key, rt.method)
		tb.Operating, tb.OperatingResetAt = &op, &reset
	}
	writeJSON(w, http.StatusOK, envelope{Result: res.value, Next: res.next, Total: res.total, Time: tb})
}

// methodSpec is one REST method.
type methodSpec struct {
	fn    func(ctx context.Context, c *caller, p params) (result, error)
	scope string // "" for methods every token may call; a|b: either scope
	// appOnly methods answer WRONG_AUTH_TYPE to a webhook (reference §1.1).
	appOnly bool
}

// call runs one method for c, directly or as a batch command: the method must exist, be allowed
// for the auth type and scope and not be blocked by operating time; its run time is accounted.
func (s *Server) call(ctx context.Context, c *caller, method string, p params, inBatch bool) (result, error) {
	if method == "batch" && inBatch {
		return result{}, errBatchMethod()
	}
	spec, ok := s.methods[method]
	if !ok {
		return result{}, errMethodNotFound()
	}
	if spec.scope != "" && !slices.ContainsFunc(strings.Split(spec.scope, "|"), func(sc string) bool { return c.scope[sc] }) {
		return result{}, errInsufficientScope(c.webhook)
	}
	if spec.appOnly && c.webhook {
		return result{}, errWrongAuthType()
	}
	if method == "batch" {
		return spec.fn(ctx, c, p)
	}
	if s.operatingBlocked(c.key, method) {
		return result{}, errOperationTimeLimit()
	}
	t0 := time.Now()
	res, err := spec.fn(ctx, c, p)
	s.addOperating(c.key, method, time.Since(t0)+s.opts.OperatingCost[method])
	return res, err
}

func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", err.Error()}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = (&apiError{status, "INTERNAL_SERVER_ERROR", err.Error()}).body()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.Status)
	w.Write(e.body())
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// baseURL is the simulator's base URL: the public one, else the one the request came to.
func (s *Server) baseURL(r *http.Request) string {
	s.mu.Lock()
	u := s.publicURL
	s.mu.Unlock()
	switch {
	case u != "":
		return u
	case r == nil: // no request to learn the host from: call Start or SetPublicURL first
		return "http://localhost"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// domain is the portal's domain: Options.Domain, else the host of base.
func (s *Server) domain(base string) string {
	if s.opts.Domain != "" {
		return s.opts.Domain
	}
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		return u.Host
	}
	return "localhost"
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// id hands out the next id of a kind (user, lead, call statistics, file, ...).
func (s *Server) idLocked(kind string) int {
	s.nextID[kind]++
	return s.nextID[kind]
}

// seeID makes later ids of kind larger than a seeded one.
func (s *Server) seeIDLocked(kind string, id int) {
	if id > s.nextID[kind] {
		s.nextID[kind] = id
	}
}

// Requests is the journal after sequence number since (Journal().Requests).
func (s *Server) Requests(since int) []crmsim.Request { return s.sim.Requests(since) }

// Wait blocks until a journaled request satisfies pred (Journal().Wait).
func (s *Server) Wait(ctx context.Context, pred func(crmsim.Request) bool) (crmsim.Request, error) {
	r, err := s.sim.Wait(ctx, pred)
	if err != nil {
		return crmsim.Request{}, fmt.Errorf("bitrix: %w", err)
	}
	return r, nil
}

// AddFault injects a fault (Journal().AddFault); Method is the lower-case REST method name,
// "oauth.token" for the OAuth server, or a prefix with "*".
func (s *Server) AddFault(f crmsim.Fault) { s.sim.AddFault(f) }

// ClearFaults removes every fault.
func (s *Server) ClearFaults() { s.sim.ClearFaults() }
