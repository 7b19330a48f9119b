// Package bitrix is connector-bx's Bitrix24 REST client: OAuth application mode (tokens in Redis,
// refreshed single-flight across replicas) and incoming-webhook mode, errors that say whether a
// retry helps, one rate limiter per portal shared by every replica through Redis, and a
// dispatcher that sends each command alone while the limit allows and coalesces the commands
// that wait into `batch` requests of up to 50 while it does not.
//
// Facts and their sources are in shared/docs/reference/crm-apis.md §1.
package bitrix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
)

// MaxBatch is the most commands one batch request carries (ERROR_BATCH_LENGTH_EXCEEDED above).
const MaxBatch = 50

// Options configure a Client. Portal, Mode and Store are required, with ClientID/ClientSecret
// (mode app) or WebhookURL (mode webhook).
type Options struct {
	Portal       string // https://company.bitrix24.ru
	Mode         string // app or webhook
	ClientID     string
	ClientSecret config.Secret
	OAuthServer  string // default https://oauth.bitrix.info
	WebhookURL   config.Secret

	Store *store.Store
	// Prefix starts every Redis key (tokens, rate limit, pauses). Default ringbridge:connector-bx.
	Prefix string
	// PerSecond and Burst are the portal's limit (default 2 and 50). Limiter replaces the Redis
	// limiter built from them (tests).
	PerSecond, Burst int
	Limiter          Limiter
	// MaxPause is how long Call waits in place for a method Bitrix24 paused; a longer pause is
	// returned as a Paused error. Default 30 s; negative: never wait.
	MaxPause time.Duration

	// Senders is how many requests may be in flight at once (default 4).
	Senders int
	// MaxBatch is the most commands per batch (default and at most 50).
	MaxBatch int
	// Retries is how often Call sends a command again after a temporary failure (5xx, network,
	// query limit), with a growing pause (default 3).
	Retries   int
	RetryBase time.Duration // first pause, default 250 ms
	// QueryLimitRetries is how often a request refused with QUERY_LIMIT_EXCEEDED (never run) is
	// queued again before its callers get the error (default 20).
	QueryLimitRetries int

	HTTPClient     *http.Client
	RequestTimeout time.Duration // one request, default 60 s (the cloud's limit)
	Logger         *logrus.Entry
	Registerer     prometheus.Registerer
	Now            func() time.Time
}

// OptionsFrom takes the settings of the config's bitrix section.
func OptionsFrom(b config.Bitrix) Options {
	return Options{
		Portal:       b.Portal,
		Mode:         b.Mode,
		ClientID:     b.App.ClientID,
		ClientSecret: b.App.ClientSecret,
		OAuthServer:  b.App.OAuthServer,
		WebhookURL:   b.Webhook.URL,
		PerSecond:    b.Rate.PerSecond,
		Burst:        b.Rate.Burst,
		MaxPause:     b.Rate.MaxPause,
	}
}

// Client talks to one portal. Safe for concurrent use; Close stops it.
type Client struct {
	opt    Options
	http   *http.Client
	auth   authorizer
	app    *appAuth // nil in webhook mode
	tokens *TokenStore
	lim    Limiter
	pauses *pauses
	log    *logrus.Entry
	m      *metrics

	// authErr is the last authorization failure (nil when the last request got through), for
	// readiness.
	authErr atomic.Pointer[error]

	gate  sync.Mutex // one sender at a time waits for the limiter and takes commands
	mu    sync.Mutex
	queue []*command
	wake  chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type command struct {
	method   string
	params   url.Values
	solo     bool // never batched (a large body)
	ctx      context.Context
	done     chan outcomeT
	queued   time.Time
	requeues int
}

type outcomeT struct {
	resp *Response
	err  error
}

// New checks the options and starts the senders.
func New(opt Options) (*Client, error) {
	if opt.Store == nil {
		return nil, errors.New("bitrix: no Redis store")
	}
	if u, err := url.Parse(opt.Portal); err != nil || u.Host == "" {
		return nil, fmt.Errorf("bitrix: portal %q is not an address like https://company.bitrix24.ru", opt.Portal)
	}
	if opt.Prefix == "" {
		opt.Prefix = "ringbridge:connector-bx"
	}
	if opt.OAuthServer == "" {
		opt.OAuthServer = "https://oauth.bitrix.info"
	}
	if opt.PerSecond <= 0 {
		opt.PerSecond = 2
	}
	if opt.Burst <= 0 {
		opt.Burst = 50
	}
	if opt.MaxPause == 0 {
		opt.MaxPause = 30 * time.Second
	}
	if opt.Senders <= 0 {
		opt.Senders = 4
	}
	if opt.MaxBatch <= 0 || opt.MaxBatch > MaxBatch {
		opt.MaxBatch = MaxBatch
	}
	if opt.Retries == 0 {
		opt.Retries = 3
	}
	if opt.RetryBase <= 0 {
		opt.RetryBase = 250 * time.Millisecond
	}
	if opt.QueryLimitRetries <= 0 {
		opt.QueryLimitRetries = 20
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = 60 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opt.Logger = logrus.NewEntry(l)
	}
	hc := opt.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	// A redirect would turn a POST into a GET and lose its body; the portal's address is wrong.
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	c := &Client{
		opt:    opt,
		http:   &noRedirect,
		tokens: NewTokenStore(opt.Store, opt.Prefix, opt.Portal),
		lim:    opt.Limiter,
		pauses: newPauses(opt.Store, opt.Prefix, opt.Portal, opt.Now),
		log:    opt.Logger.WithField("component", "bitrix"),
		m:      newMetrics(opt.Registerer),
		wake:   make(chan struct{}, 1),
	}
	if c.lim == nil {
		c.lim = NewRedisLimiter(opt.Store, opt.Prefix, opt.Portal, opt.PerSecond, opt.Burst)
	}
	switch opt.Mode {
	case "app":
		if opt.ClientID == "" || opt.ClientSecret.IsZero() {
			return nil, errors.New("bitrix: mode app needs the application's client_id and client_secret")
		}
		c.app = &appAuth{
			base:   restBase(opt.Portal),
			tokens: c.tokens,
			st:     opt.Store,
			oauth:  &oauthServer{base: opt.OAuthServer, clientID: opt.ClientID, secret: opt.ClientSecret, http: c.http},
			log:    c.log,
			now:    opt.Now,
		}
		c.auth = c.app
	case "webhook":
		raw := opt.WebhookURL.Reveal()
		if u, err := url.Parse(raw); raw == "" || err != nil || u.Host == "" {
			return nil, errors.New("bitrix: mode webhook needs the incoming webhook's URL, https://company.bitrix24.ru/rest/1/<secret>/")
		}
		c.auth = webhookAuth{base: strings.TrimRight(raw, "/") + "/"}
	default:
		return nil, fmt.Errorf("bitrix: mode %q is not app or webhook", opt.Mode)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for range opt.Senders {
		c.wg.Add(1)
		go c.sender()
	}
	return c, nil
}

// Close stops the senders; commands still waiting fail.
func (c *Client) Close() {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, cmd := range q {
		cmd.done <- outcomeT{err: &Error{Method: cmd.method, Kind: Retry, Err: errors.New("the client is closed (the service is stopping)")}}
	}
}

// Call runs one REST method. While the portal's limit allows, the command goes out alone at once;
// while it does not, it waits and goes out in a batch with the others that wait. Temporary
// failures are tried again up to Options.Retries times; a method paused by Bitrix24 is waited for
// up to Options.MaxPause. The error is an *Error (KindOf says what to do) or ctx's.
func (c *Client) Call(ctx context.Context, method string, params url.Values) (*Response, error) {
	return c.call(ctx, method, params, false)
}

// CallAlone is Call for a command that must not go into a batch (a large body, e.g. a recording).
func (c *Client) CallAlone(ctx context.Context, method string, params url.Values) (*Response, error) {
	return c.call(ctx, method, params, true)
}

func (c *Client) call(ctx context.Context, method string, params url.Values, solo bool) (*Response, error) {
	method = strings.ToLower(method)
	pausedWaits := 0
	for attempt := 0; ; {
		resp, err := c.once(ctx, method, params, solo)
		if err == nil {
			return resp, nil
		}
		var wait time.Duration
		switch KindOf(err) {
		case Retry:
			if attempt >= c.opt.Retries || ctx.Err() != nil {
				return nil, err
			}
			wait = c.opt.RetryBase << attempt
			wait += time.Duration(rand.Int64N(int64(wait)/2 + 1))
			attempt++
		case Paused:
			var e *Error
			errors.As(err, &e)
			wait = e.Until.Sub(c.opt.Now())
			if c.opt.MaxPause < 0 || wait > c.opt.MaxPause || pausedWaits >= 3 {
				return nil, err
			}
			pausedWaits++
		default:
			return nil, err
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// once submits one command and waits for its outcome.
func (c *Client) once(ctx context.Context, method string, params url.Values, solo bool) (*Response, error) {
	if u := c.pauses.pausedUntil(ctx, method); !u.IsZero() {
		return nil, &Error{Method: method, Kind: Paused, Code: "OPERATION_TIME_LIMIT",
			Description: "blocked by Bitrix24's operating-time limit", Until: u}
	}
	cmd := &command{method: method, params: params, solo: solo, ctx: ctx, done: make(chan outcomeT, 1), queued: c.opt.Now()}
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return nil, &Error{Method: method, Kind: Retry, Err: errors.New("the client is closed (the service is stopping)")}
	}
	c.queue = append(c.queue, cmd)
	c.mu.Unlock()
	c.signal()
	select {
	case o := <-cmd.done:
		return o.resp, o.err
	case <-ctx.Done():
		return nil, transportError(method, ctx.Err())
	}
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sender takes the gate, waits until a command is queued and the limiter lets a request go,
// takes every command that waits (up to a batch), lets the gate go and sends. Only the gate's
// holder waits on the limiter, so no permit is taken without a command to spend it on.
func (c *Client) sender() {
	defer c.wg.Done()
	for {
		c.gate.Lock()
		if !c.waitQueued() {
			c.gate.Unlock()
			return
		}
		if err := c.lim.Wait(c.ctx); err != nil {
			c.gate.Unlock()
			if c.ctx.Err() != nil {
				return
			}
			// Redis does not answer: the commands cannot be counted, so they are not sent.
			c.log.WithError(err).Warn("rate limiter unavailable; failing the waiting commands")
			for _, cmd := range c.take() {
				c.deliver(cmd, nil, &Error{Method: cmd.method, Kind: Retry, Err: err})
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-c.ctx.Done():
				return
			}
			continue
		}
		cmds := c.take()
		c.gate.Unlock()
		if len(cmds) > 0 {
			c.send(cmds)
		}
	}
}

// waitQueued blocks until a command is queued; false when the client closes.
func (c *Client) waitQueued() bool {
	for {
		c.mu.Lock()
		n := len(c.queue)
		c.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-c.wake:
		case <-c.ctx.Done():
			return false
		}
	}
}

// take removes the commands to send now: the first live one alone if it must go alone, else up to
// MaxBatch that may share a batch, oldest first. Commands whose caller gave up are dropped.
func (c *Client) take() []*command {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out, keep []*command
	for _, cmd := range c.queue {
		switch {
		case cmd.ctx.Err() != nil:
			// The caller returned already; nothing to send or answer.
		case len(out) == 0 && cmd.solo:
			out = append(out, cmd)
		case len(out) > 0 && (out[0].solo || cmd.solo || len(out) >= c.opt.MaxBatch):
			keep = append(keep, cmd)
		default:
			out = append(out, cmd)
		}
	}
	c.queue = keep
	if len(keep) > 0 {
		c.signal()
	}
	return out
}

// requeue puts commands refused with QUERY_LIMIT_EXCEEDED back at the head of the queue.
func (c *Client) requeue(cmds []*command) {
	var back []*command
	for _, cmd := range cmds {
		cmd.requeues++
		if cmd.requeues > c.opt.QueryLimitRetries {
			c.deliver(cmd, nil, &Error{Method: cmd.method, Status: http.StatusServiceUnavailable, Code: "QUERY_LIMIT_EXCEEDED",
				Description: fmt.Sprintf("refused %d times by the portal's request limit", cmd.requeues), Kind: Retry})
			continue
		}
		back = append(back, cmd)
	}
	c.mu.Lock()
	c.queue = append(back, c.queue...)
	c.mu.Unlock()
	c.signal()
}

func (c *Client) deliver(cmd *command, resp *Response, err error) {
	c.m.commands.WithLabelValues(cmd.method, outcome(err)).Inc()
	if err == nil && resp != nil {
		c.pauses.observe(cmd.method, resp.Time)
	}
	var e *Error
	if errors.As(err, &e) && e.Kind == Paused && e.Until.IsZero() {
		e.Until = c.pauses.pause(c.ctx, cmd.method)
		c.m.paused.WithLabelValues(cmd.method).Inc()
		c.log.WithFields(logrus.Fields{"method": cmd.method, "until": e.Until.UTC().Format(time.RFC3339)}).
			Warn("Bitrix24 blocked this method (operating-time limit); other methods go on")
	}
	cmd.done <- outcomeT{resp: resp, err: err}
}

// send sends the commands alone or as one batch, refreshing the token once on expired_token.
func (c *Client) send(cmds []*command) {
	now := c.opt.Now()
	for _, cmd := range cmds {
		c.m.wait.Observe(now.Sub(cmd.queued).Seconds())
	}
	c.m.batchSize.Observe(float64(len(cmds)))
	kind := "single"
	if len(cmds) > 1 {
		kind = "batch"
	}
	var (
		resp *Response
		err  error
	)
	for try := 0; try < 2; try++ {
		var token string
		resp, token, err = c.post(cmds)
		c.m.requests.WithLabelValues(kind, outcome(err)).Inc()
		if KindOf(err) != Expired || try == 1 {
			break
		}
		rerr := c.auth.refresh(c.ctx, token)
		c.m.refreshes.WithLabelValues(outcome(rerr)).Inc()
		if rerr != nil {
			err = rerr
			break
		}
		// The refused request counted against the portal's bucket; so does the next.
		if werr := c.lim.Wait(c.ctx); werr != nil {
			err = &Error{Method: cmds[0].method, Kind: Retry, Err: werr}
			break
		}
	}
	if KindOf(err) == Expired {
		// Refused again right after a refresh: the new token does not work either.
		var e *Error
		errors.As(err, &e)
		err = &Error{Method: e.Method, Status: e.Status, Code: e.Code, Description: e.Description, Kind: Auth,
			Hint: "the portal refused a freshly refreshed token: install the application again in Bitrix24"}
	}
	c.noteAuth(err)
	var e *Error
	if errors.As(err, &e) && e.Code == "QUERY_LIMIT_EXCEEDED" {
		c.m.throttled.Inc()
		c.lim.Throttled(c.ctx)
		c.requeue(cmds)
		return
	}
	if len(cmds) == 1 {
		c.deliver(cmds[0], resp, err)
		return
	}
	if err != nil {
		for _, cmd := range cmds {
			c.deliver(cmd, nil, err)
		}
		return
	}
	methods := make(map[string]string, len(cmds))
	for i, cmd := range cmds {
		methods[batchKey(i)] = cmd.method
	}
	br, perr := parseBatch(methods, resp.Result)
	for i, cmd := range cmds {
		k := batchKey(i)
		switch {
		case perr != nil:
			c.deliver(cmd, nil, perr)
		case br.Errors[k] != nil:
			c.deliver(cmd, nil, br.Errors[k])
		case br.Results[k] != nil:
			c.deliver(cmd, &Response{Result: br.Results[k], Time: br.Times[k]}, nil)
		default:
			c.deliver(cmd, nil, &Error{Method: cmd.method, Kind: Retry, Description: "the batch answer has neither a result nor an error for this command"})
		}
	}
}

func batchKey(i int) string { return "c" + strconv.Itoa(i) }

// noteAuth remembers the last authorization outcome for readiness.
func (c *Client) noteAuth(err error) {
	switch KindOf(err) {
	case Auth, WrongAuthType:
		if err != nil {
			// Logged when it starts, not for every command while it lasts.
			if prev := c.authErr.Swap(&err); prev == nil {
				c.log.WithError(err).Error("Bitrix24 refuses the connector's authorization")
			}
		}
	default:
		// A method the webhook may call succeeding says nothing about register and finish: a
		// WRONG_AUTH_TYPE stays until the configuration changes (a restart).
		if prev := c.authErr.Load(); prev != nil && KindOf(*prev) == WrongAuthType {
			return
		}
		if err == nil || KindOf(err) != Retry {
			c.authErr.Store(nil)
		}
	}
}

// post sends the commands as one HTTP request and returns the answer and the token it used.
func (c *Client) post(cmds []*command) (*Response, string, error) {
	method := cmds[0].method
	base, token, err := c.auth.target(c.ctx)
	if err != nil {
		return nil, "", err
	}
	form := url.Values{}
	if len(cmds) == 1 {
		for k, vs := range cmds[0].params {
			form[k] = vs
		}
	} else {
		method = "batch"
		form.Set("halt", "0")
		for i, cmd := range cmds {
			form.Set("cmd["+batchKey(i)+"]", cmd.method+"?"+cmd.params.Encode())
		}
	}
	if token != "" {
		form.Set("auth", token) // in the body, never in the URL that proxies log
	}
	resp, err := c.postForm(base+method+".json", method, form)
	return resp, token, err
}

func (c *Client) postForm(endpoint, method string, form url.Values) (*Response, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opt.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &Error{Method: method, Kind: Permanent, Description: "cannot build the request (bad portal address?)"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return c.do(req, method)
}

func (c *Client) do(req *http.Request, method string) (*Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(method, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, transportError(method, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, &Error{Method: method, Status: resp.StatusCode, Kind: Permanent,
			Description: "the portal redirects to " + redactQuery(resp.Header.Get("Location")),
			Hint:        "the portal's address changed or lacks https: fix bitrix.portal (or bitrix.webhook.url)"}
	}
	return ParseResponse(method, resp.StatusCode, body)
}

// redactQuery drops a URL's query and user info (they may hold tokens).
func redactQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an address)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// Upload posts a file to an upload URL that attachRecord gave (FILENAME without content). It
// counts against the rate limit like any request.
func (c *Client) Upload(ctx context.Context, uploadURL, field, fileName string, content []byte) (*Response, error) {
	const method = "upload"
	if err := c.lim.Wait(ctx); err != nil {
		return nil, &Error{Method: method, Kind: Retry, Err: err}
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, err := w.CreateFormFile(field, fileName)
	if err == nil {
		_, err = fw.Write(content)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, &Error{Method: method, Kind: Permanent, Err: err}
	}
	rctx, cancel := context.WithTimeout(ctx, c.opt.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, uploadURL, &b)
	if err != nil {
		return nil, &Error{Method: method, Kind: Permanent, Description: "the upload URL the portal gave is not a URL"}
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := c.do(req, method)
	c.m.requests.WithLabelValues("upload", outcome(err)).Inc()
	return resp, err
}

// Ready says whether the portal takes the connector's authorization: in mode app the application
// must be installed, and the last request must not have been refused for authorization.
func (c *Client) Ready(ctx context.Context) error {
	if p := c.authErr.Load(); p != nil {
		return *p
	}
	if c.app != nil {
		if _, err := c.app.current(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Webhook reports whether the client runs in webhook mode.
func (c *Client) Webhook() bool { return c.auth.webhook() }
