// Package amo is connector-amo's amoCRM (Kommo) API v4 client: OAuth 2.0 tokens kept in Redis
// and refreshed single-flight across replicas, the account's request rate shared through Redis,
// and errors that say whether a retry helps or the whole account has stopped (402, 403, a dead
// token). Facts: shared/docs/reference/crm-apis.md §2.
package amo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// TokenSource gives the access token of API requests.
type TokenSource interface {
	// Token returns a valid access token, refreshing it first when it is about to expire.
	Token(ctx context.Context) (string, error)
	// Refresh is called when amoCRM refused refused with 401: it returns a token to try once
	// more (a newer one another replica stored, or a fresh one), or an error.
	Refresh(ctx context.Context, refused string) (string, error)
}

// Limiter spaces the account's requests; Wait returns when one may be sent.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Options configure a Client.
type Options struct {
	// BaseURL is the account's address, https://company.amocrm.ru.
	BaseURL string
	Tokens  TokenSource
	// Limiter is shared by every replica (RedisLimiter); nil sends without waiting.
	Limiter Limiter
	// HTTP is the HTTP client; nil is one with sane transport timeouts.
	HTTP *http.Client
	// Timeout bounds one request (default 20s).
	Timeout time.Duration
	// RateRetries is how many 429s one call rides out before it reports KindRateLimited
	// (default 4, backing off 1s, 2s, 4s, 8s unless amoCRM says Retry-After).
	RateRetries int
	// UserAgent names the client (default "ringbridge-connector-amo").
	UserAgent string
	Logger    logrus.FieldLogger
	// Registerer receives the client's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// sleep waits between 429 retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// Client calls one account's API. Safe for concurrent use.
type Client struct {
	base    *url.URL
	opt     Options
	http    *http.Client
	log     logrus.FieldLogger
	metrics *metrics
}

// maxBody bounds an answer read into memory: the biggest real answer is a 250-item list page.
const maxBody = 8 << 20

// New returns a Client for the account at opt.BaseURL.
func New(opt Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(opt.BaseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("amo: account address %q is not a URL like https://company.amocrm.ru", opt.BaseURL)
	}
	if opt.Tokens == nil {
		return nil, errors.New("amo: no token source")
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 20 * time.Second
	}
	if opt.RateRetries <= 0 {
		opt.RateRetries = 4
	}
	if opt.UserAgent == "" {
		opt.UserAgent = "ringbridge-connector-amo"
	}
	if opt.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opt.Logger = l
	}
	if opt.sleep == nil {
		opt.sleep = sleepCtx
	}
	hc := opt.HTTP
	if hc == nil {
		hc = newHTTPClient()
	}
	return &Client{base: u, opt: opt, http: hc, log: opt.Logger, metrics: newMetrics(opt.Registerer)}, nil
}

func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	t.MaxIdleConnsPerHost = 8
	return &http.Client{Transport: t}
}

// Host is the account's host, e.g. company.amocrm.ru.
func (c *Client) Host() string { return c.base.Host }

// BaseURL is the account's address.
func (c *Client) BaseURL() string { return c.base.String() }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// request is one API call.
type request struct {
	method string
	path   string // /api/v4/calls
	query  url.Values
	body   any    // encoded as JSON; nil sends no body
	out    any    // decoded from a 2xx JSON answer; nil ignores it
	route  string // metrics and errors: "POST /api/v4/calls" (no ids in it)
}

// do sends req with the account's token, the shared rate limit, one refresh on 401 and backoff on
// 429. A 204 leaves req.out untouched and is not an error (an empty list). It returns the HTTP
// status of the final answer.
//
// ctx may cancel a request while it waits (for the rate limit, the token, a backoff), but never one
// already sent: it is completed under its own timeout, so that stopping the connector or pausing
// it for an unpaid account does not leave a call half-sent with an unknown outcome.
func (c *Client) do(ctx context.Context, req request) (int, error) {
	if req.route == "" {
		req.route = req.method + " " + req.path
	}
	var body []byte
	if req.body != nil {
		var err error
		if body, err = json.Marshal(req.body); err != nil {
			return 0, fmt.Errorf("amo %s: encoding the request: %w", req.route, err)
		}
	}
	refreshed := false
	rateHits := 0
	token, err := c.opt.Tokens.Token(ctx)
	for {
		if err != nil {
			return 0, c.tokenError(req.route, err)
		}
		if c.opt.Limiter != nil {
			start := time.Now()
			if err := c.opt.Limiter.Wait(ctx); err != nil {
				return 0, fmt.Errorf("amo %s: waiting for the rate limit: %w", req.route, err)
			}
			c.metrics.limitWait.Observe(time.Since(start).Seconds())
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("amo %s: %w", req.route, err)
		}
		status, respBody, hdr, serr := c.send(ctx, req, body, token)
		if serr != nil {
			return 0, serr
		}
		switch {
		case status >= 200 && status < 300:
			if status == http.StatusNoContent || req.out == nil || len(bytes.TrimSpace(respBody)) == 0 {
				return status, nil
			}
			if err := json.Unmarshal(respBody, req.out); err != nil {
				return status, badResponse(req.route, status, err)
			}
			return status, nil
		case status == http.StatusUnauthorized && !refreshed:
			// The token may have been rotated by another replica (a refresh revokes the previous
			// access token) or expired early: one refresh, then the answer stands.
			refreshed = true
			c.log.WithField("route", req.route).Info("amoCRM refused the access token; refreshing it once")
			token, err = c.opt.Tokens.Refresh(ctx, token)
			continue
		case status == http.StatusTooManyRequests && rateHits < c.opt.RateRetries:
			d := retryAfter(hdr, rateHits)
			rateHits++
			c.metrics.rateLimited.Inc()
			c.log.WithFields(logrus.Fields{"route": req.route, "retry_in": d.String()}).Warn("amoCRM answered 429 too many requests; backing off")
			if err := c.opt.sleep(ctx, d); err != nil {
				return 0, fmt.Errorf("amo %s: backing off after 429: %w", req.route, err)
			}
			token, err = c.opt.Tokens.Token(ctx)
			continue
		}
		e := newHTTPError(req.route, status, respBody)
		if status == http.StatusUnauthorized {
			e.Detail = strings.TrimSpace(e.Detail + " (refused again after a refresh)")
		}
		return status, e
	}
}

// tokenError turns a token source's failure into an *Error the caller can act on.
func (c *Client) tokenError(route string, err error) error {
	if e, ok := AsError(err); ok {
		if e.AccountStopped() || e.Retryable() {
			return err
		}
		// The token endpoint refused (400, invalid client): the install is broken.
		return &Error{Kind: KindUnauthorized, Route: route, Status: e.Status, Title: e.Title, Detail: e.Detail, Hint: e.Hint, Err: err}
	}
	return fmt.Errorf("amo %s: getting the access token: %w", route, err)
}

// send makes one HTTP exchange. Its errors are *Error of KindTransport.
func (c *Client) send(ctx context.Context, req request, body []byte, token string) (int, []byte, http.Header, error) {
	u := *c.base
	u.Path = c.base.Path + req.path
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}
	// Not cancelled with ctx once sent (see do); bounded by the request timeout instead.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opt.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(sctx, req.method, u.String(), rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("amo %s: %w", req.route, err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Accept", "application/hal+json, application/json, application/problem+json")
	hr.Header.Set("User-Agent", c.opt.UserAgent)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(hr)
	if err != nil {
		c.metrics.requests.WithLabelValues(req.route, "error").Inc()
		return 0, nil, nil, &Error{Kind: KindTransport, Route: req.route, Sent: maybeSent(err), Err: scrubURL(err)}
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	elapsed := time.Since(start)
	c.metrics.requests.WithLabelValues(req.route, strconv.Itoa(resp.StatusCode)).Inc()
	c.metrics.duration.WithLabelValues(req.route).Observe(elapsed.Seconds())
	if err != nil {
		return 0, nil, nil, &Error{Kind: KindTransport, Route: req.route, Status: 0, Sent: true, Err: fmt.Errorf("reading the answer to %d: %w", resp.StatusCode, scrubURL(err))}
	}
	c.log.WithFields(logrus.Fields{"route": req.route, "status": resp.StatusCode, "ms": elapsed.Milliseconds()}).Debug("amoCRM request")
	return resp.StatusCode, respBody, resp.Header, nil
}

// maybeSent: a request whose connection was never made certainly did not reach amoCRM.
func maybeSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var dns *net.DNSError
	return !errors.As(err, &dns)
}

// scrubURL drops the URL from a *url.Error: it holds query strings (phone numbers) and is noise.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryAfter is the wait before 429 retry n: amoCRM's Retry-After when given (bounded), else
// 1s·2ⁿ with jitter so replicas that hit the limit together do not come back together.
func retryAfter(h http.Header, n int) time.Duration {
	if s := h.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && secs >= 0 {
			return min(time.Duration(secs)*time.Second, 30*time.Second) + jitter(250*time.Millisecond)
		}
	}
	d := time.Second << min(n, 4)
	return d/2 + jitter(d/2)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	limitWait   prometheus.Histogram
	rateLimited prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_amo_requests_total",
			Help: "amoCRM API requests by route and HTTP status (error: no answer).",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ringbridge_amo_request_seconds",
			Help:    "amoCRM API request duration.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 20},
		}, []string{"route"}),
		limitWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringbridge_amo_rate_wait_seconds",
			Help:    "Time a request waited for the account's shared rate limit.",
			Buckets: []float64{.001, .01, .05, .1, .2, .5, 1, 2, 5, 10},
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_amo_rate_limited_total",
			Help: "429 answers from amoCRM (each is retried after a backoff).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.limitWait, m.rateLimited} {
			var are prometheus.AlreadyRegisteredError
			if err := reg.Register(c); err != nil && !errors.As(err, &are) {
				continue
			}
		}
	}
	return m
}
