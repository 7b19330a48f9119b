package ami

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
)

// Config of a Client. Zero durations and sizes take the defaults noted.
type Config struct {
	Address  string        // host:port; ":5038" is added when the port is missing
	Username string        // manager.conf account
	Secret   config.Secret // never logged, never in an error
	Auth     string        // "md5" (default; challenge-response, the secret never crosses the wire) or "plain"
	// Events is the Login `Events:` mask: "on", "off" or classes such as "call,cdr,agent,dialplan".
	// "" sends no mask, so the account's read= classes apply.
	Events string

	PingInterval   time.Duration // keep-alive Ping period; default 10s; negative turns keep-alive off
	PingTimeout    time.Duration // a Ping without reply within this drops the connection; default 5s
	ReconnectMin   time.Duration // first backoff step; default 500ms
	ReconnectMax   time.Duration // backoff cap; default 30s
	ConnectTimeout time.Duration // dial + banner + login; default 10s
	WriteTimeout   time.Duration // writing one action; default 5s

	// EventBuffer is how many events may wait for the consumer. When it is full the connection is
	// dropped (overflow policy, see the package doc). Default 50000.
	EventBuffer int

	MaxLineSize   int // Reader limit; default DefaultMaxLineSize
	MaxPacketSize int // Reader limit; default DefaultMaxPacketSize

	Logger     logrus.FieldLogger    // nil: no logs
	Registerer prometheus.Registerer // nil: no metrics
	// RawTap, when set, gets every byte read from the socket, in order, on every connection
	// (banners included): `ami-gateway record --out FILE`. It is written on the reader goroutine,
	// so it must be fast (a buffered file); after its first error it is dropped and the error logged.
	RawTap io.Writer
	// Dialer opens the connection; nil uses net.Dialer. For TLS or tests.
	Dialer func(ctx context.Context, network, address string) (net.Conn, error)
}

// Defaults of Config.
const (
	DefaultPingInterval   = 10 * time.Second
	DefaultPingTimeout    = 5 * time.Second
	DefaultReconnectMin   = 500 * time.Millisecond
	DefaultReconnectMax   = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultWriteTimeout   = 5 * time.Second
	DefaultEventBuffer    = 50000
)

func (cfg *Config) setDefaults() error {
	if cfg.Address == "" {
		return errors.New("ami: Config.Address is empty")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		cfg.Address = net.JoinHostPort(strings.Trim(cfg.Address, "[]"), "5038")
	}
	if cfg.Username == "" {
		return errors.New("ami: Config.Username is empty")
	}
	if strings.ContainsAny(cfg.Username, "\r\n") || strings.ContainsAny(cfg.Secret.Reveal(), "\r\n") || strings.ContainsAny(cfg.Events, "\r\n") {
		return errors.New("ami: Config.Username, Secret and Events must not contain line breaks")
	}
	switch strings.ToLower(cfg.Auth) {
	case "", "md5":
		cfg.Auth = "md5"
	case "plain":
		cfg.Auth = "plain"
	default:
		return fmt.Errorf("ami: Config.Auth %q: want md5 or plain", cfg.Auth)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.PingInterval, DefaultPingInterval)
	def(&cfg.PingTimeout, DefaultPingTimeout)
	def(&cfg.ReconnectMin, DefaultReconnectMin)
	def(&cfg.ReconnectMax, DefaultReconnectMax)
	def(&cfg.ConnectTimeout, DefaultConnectTimeout)
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	if cfg.PingTimeout < 0 || cfg.ReconnectMin < 0 || cfg.ReconnectMax < 0 || cfg.ConnectTimeout < 0 || cfg.WriteTimeout < 0 {
		return errors.New("ami: negative timeout in Config")
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = cfg.ReconnectMin
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.Dialer == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		cfg.Dialer = d.DialContext
	}
	return nil
}

// State of the connection.
type State int32

const (
	StateConnecting   State = iota + 1 // dialing or logging in
	StateConnected                     // logged in; events flow
	StateDisconnected                  // down; waiting to reconnect
	StateClosed                        // Close was called
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// StateChange is a connection coming up or going down, delivered in Client.Events in stream order.
type StateChange struct {
	State State // StateConnected or StateDisconnected
	// Conn numbers the connections of this Client from 1. Events between the Connected and the
	// Disconnected of one Conn came on that connection.
	Conn uint64
	// Reconnect is true on a Connected that follows an earlier connection: state built from
	// events may be stale, resync now (ami-gateway runs CoreShowChannels).
	Reconnect bool
	Banner    string // Connected: the server's banner line
	// Err says why a connection went down: ErrQueueOverflow, ErrPingTimeout, ErrServerShutdown,
	// ErrClosed, a *ParseError of kind ErrTruncated, or the network error.
	Err error
	At  time.Time
}

// Event is one item of Client.Events: an event packet (Msg) or, in its place in the stream, a
// connection state change (State). Exactly one of the two is set.
type Event struct {
	Msg   *Message
	State *StateChange
}

// Status is a snapshot of the Client's connection, for readiness checks and logs.
type Status struct {
	State    State
	Conn     uint64    // the current or last connection number
	Since    time.Time // when State was entered
	Err      error     // why the last attempt or connection failed; nil while connected
	Failures int       // failed connection attempts since the last success
	Banner   string
}

// Client is an AMI connection that keeps itself up: it logs in, pings, reconnects with backoff,
// correlates actions with their replies, and delivers events through Events.
type Client struct {
	cfg      Config
	log      logrus.FieldLogger
	met      *metrics
	events   chan Event
	idPrefix string
	idSeq    atomic.Uint64
	tapDead  atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // the connection loop ended

	mu        sync.Mutex
	sess      *session
	status    Status
	closed    bool
	connSeq   uint64
	firstUp   chan struct{} // closed at the first successful login
	authErr   chan error    // the first login rejection, for Dial
	closeOnce sync.Once
}

// New validates cfg, starts the connection loop in the background and returns at once. The Client
// keeps trying to connect until Close; watch Events, Status or Ready.
func New(cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     cfg,
		events:  make(chan Event, cfg.EventBuffer+2), // +2: room reserved for state notices
		done:    make(chan struct{}),
		firstUp: make(chan struct{}),
		authErr: make(chan error, 1),
	}
	if cfg.Logger != nil {
		c.log = cfg.Logger.WithFields(logrus.Fields{"component": "ami", "ami_address": cfg.Address, "ami_user": cfg.Username})
	} else {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.log = l
	}
	met, err := newMetrics(cfg.Registerer, func() float64 { return float64(len(c.events)) })
	if err != nil {
		return nil, fmt.Errorf("ami: registering metrics: %w", err)
	}
	c.met = met
	c.met.queueCapacity.Set(float64(cfg.EventBuffer))
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	c.idPrefix = "rb-" + hex.EncodeToString(rb[:]) + "-"
	c.status = Status{State: StateConnecting, Since: time.Now()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c, nil
}

// Dial is New plus a wait for the first login. It returns when the Client is connected; when
// Asterisk rejects the login (the error matches ErrAuthFailed or ErrLoginRejected: fail fast, a
// config error); or when ctx ends (the error wraps ctx.Err() and the last attempt's error). On
// error the Client is closed.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.firstUp:
		return c, nil
	case err := <-c.authErr:
		c.Close()
		return nil, err
	case <-ctx.Done():
		last := c.Status().Err
		c.Close()
		if last != nil {
			return nil, fmt.Errorf("ami: no session with %s: %w (last attempt: %w)", c.cfg.Address, ctx.Err(), last)
		}
		return nil, fmt.Errorf("ami: no session with %s: %w", c.cfg.Address, ctx.Err())
	}
}

// Events delivers, in stream order, the server's events (those that are not replies to an
// ActionList) and the connection's state changes. It is closed after Close. The queue is bounded
// by Config.EventBuffer; a consumer that lets it fill up gets the connection dropped and resynced
// (package doc). Read it from one goroutine.
func (c *Client) Events() <-chan Event { return c.events }

// Status returns the current connection status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Ready returns nil while logged in, else an error that says why not (for a readiness probe):
// e.g. "AMI login as crm rejected: wrong username or secret" (matches ErrAuthFailed).
func (c *Client) Ready() error {
	st := c.Status()
	switch {
	case st.State == StateConnected:
		return nil
	case st.State == StateClosed:
		return ErrClosed
	case st.Err != nil:
		return st.Err
	}
	return fmt.Errorf("%w: %s", ErrNotConnected, st.State)
}

// Close logs off (Action Logoff, waiting briefly for Asterisk's Goodbye), closes the connection,
// stops reconnecting and closes Events. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		s := c.sess
		c.mu.Unlock()
		if s != nil {
			s.logoff()
		}
		c.cancel()
		<-c.done
		close(c.events)
		c.setStatus(func(st *Status) { st.State = StateClosed; st.Err = nil })
	})
	return nil
}

func (c *Client) setStatus(f func(*Status)) {
	c.mu.Lock()
	before := c.status.State
	f(&c.status)
	if c.status.State != before {
		c.status.Since = time.Now()
	}
	c.mu.Unlock()
}

func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Client) current() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.sess == nil {
		if c.status.Err != nil {
			return nil, fmt.Errorf("%w (%w)", ErrNotConnected, c.status.Err)
		}
		return nil, ErrNotConnected
	}
	return c.sess, nil
}

func (c *Client) nextID() string {
	return c.idPrefix + strconv.FormatUint(c.idSeq.Add(1), 10)
}

// Action sends an action and waits for its reply. It adds an ActionID when msg has none (msg is
// not modified; the reply carries the ID). A `Response: Error` reply returns the reply and an
// *ActionError. A legacy `Response: Follows` reply carries the command text in Output. If the
// connection drops first the error matches ErrConnectionLost; with no session, ErrNotConnected.
// Use ActionList for actions that answer with an event list.
func (c *Client) Action(ctx context.Context, msg *Message) (*Message, error) {
	if err := validateAction(msg); err != nil {
		return nil, err
	}
	s, err := c.current()
	if err != nil {
		return nil, fmt.Errorf("ami: %s: %w", msg.Get("Action"), err)
	}
	p, err := s.do(ctx, msg, false)
	if p == nil {
		return nil, err
	}
	return p.resp, err
}

// ActionList sends an action that answers with an event list (`Response: Success` +
// `EventList: start`, item events carrying the ActionID, then an event with
// `EventList: Complete`), e.g. CoreShowChannels, and returns the items (without the Complete
// event). Items do not go to Events. A `Response: Error` reply gives an *ActionError with its
// Message; a Success without a list start gives no items.
func (c *Client) ActionList(ctx context.Context, msg *Message) ([]*Message, error) {
	if err := validateAction(msg); err != nil {
		return nil, err
	}
	s, err := c.current()
	if err != nil {
		return nil, fmt.Errorf("ami: %s: %w", msg.Get("Action"), err)
	}
	p, err := s.do(ctx, msg, true)
	if err != nil {
		return nil, err
	}
	return p.items, nil
}

// validateAction refuses what would break framing on the wire.
func validateAction(m *Message) error {
	if m == nil || len(m.Headers) == 0 {
		return fmt.Errorf("%w: no headers", ErrInvalidAction)
	}
	for _, h := range m.Headers {
		if h.Key == "" || strings.ContainsAny(h.Key, ":\r\n") || strings.ContainsAny(h.Value, "\r\n") {
			return fmt.Errorf("%w: header %q has an empty key, a colon in the key or a line break", ErrInvalidAction, h.Key)
		}
	}
	return nil
}

// backoff returns the delay before reconnect attempt n (0-based): full jitter over a capped
// exponential, uniform in [0, min(max, min*2^n)].
func backoff(minD, maxD time.Duration, n int) time.Duration {
	if minD <= 0 {
		return 0
	}
	d := maxD
	if n < 32 {
		if e := minD << n; e > 0 && e < maxD {
			d = e
		}
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

// run is the connection loop: connect, read until the connection ends, back off, again.
func (c *Client) run() {
	defer close(c.done)
	attempt := 0
	for {
		if !c.waitForRoom() {
			return
		}
		c.setStatus(func(st *Status) { st.State = StateConnecting })
		s, err := c.connect()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.connectFailed(err)
			if !c.sleep(backoff(c.cfg.ReconnectMin, c.cfg.ReconnectMax, attempt)) {
				return
			}
			attempt++
			continue
		}
		started := time.Now()
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			s.close(ErrClosed)
			return
		}
		c.sess = s
		c.status = Status{State: StateConnected, Conn: s.id, Since: started, Banner: s.banner}
		c.mu.Unlock()
		if s.id == 1 {
			close(c.firstUp)
		} else {
			c.met.reconnects.Inc()
		}
		c.met.connects.WithLabelValues("ok").Inc()
		c.met.connected.Set(1)
		c.log.WithFields(logrus.Fields{"conn": s.id, "banner": s.banner}).Info("AMI connected and logged in")
		c.pushState(&StateChange{State: StateConnected, Conn: s.id, Reconnect: s.id > 1, Banner: s.banner, At: started})

		stop := context.AfterFunc(c.ctx, func() { s.close(ErrClosed) })
		go s.pingLoop()
		readErr := s.readLoop()
		stop()
		if c.isClosing() {
			readErr = ErrClosed
		}
		cause := s.close(readErr)
		c.met.connected.Set(0)
		c.mu.Lock()
		c.sess = nil
		c.status = Status{State: StateDisconnected, Conn: s.id, Since: time.Now(), Err: cause, Banner: s.banner}
		c.mu.Unlock()
		c.pushState(&StateChange{State: StateDisconnected, Conn: s.id, Err: cause, At: time.Now()})
		entry := c.log.WithFields(logrus.Fields{"conn": s.id, "up_for": time.Since(started).Round(time.Millisecond).String()}).WithError(cause)
		switch {
		case c.ctx.Err() != nil || c.isClosing():
			entry.Info("AMI connection closed")
			return
		case errors.Is(cause, ErrServerShutdown):
			entry.Warn("AMI connection closed: Asterisk shut down; reconnecting")
		default:
			entry.Warn("AMI connection lost; reconnecting")
		}
		if time.Since(started) >= c.cfg.ReconnectMax {
			attempt = 0
		}
		d := backoff(c.cfg.ReconnectMin, c.cfg.ReconnectMax, attempt)
		if errors.Is(cause, ErrServerShutdown) && d < c.cfg.ReconnectMin {
			d = c.cfg.ReconnectMin // Asterisk is restarting; don't knock at once
		}
		attempt++
		if !c.sleep(d) {
			return
		}
	}
}

func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// waitForRoom holds reconnecting while the consumer has not drained the queue to half: after an
// overflow, reconnecting at once would only overflow again.
func (c *Client) waitForRoom() bool {
	limit := c.cfg.EventBuffer / 2
	if len(c.events) <= limit {
		return c.ctx.Err() == nil
	}
	c.log.WithField("queued", len(c.events)).Warn("AMI event consumer is behind; waiting for it to drain the queue before reconnecting")
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for len(c.events) > limit {
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

func (c *Client) connectFailed(err error) {
	result := "error"
	var le *LoginError
	if errors.As(err, &le) {
		result = "login_rejected"
		if le.AuthFailed() {
			result = "auth_failed"
		}
		select {
		case c.authErr <- err:
		default:
		}
		c.log.WithError(err).Error("AMI login rejected; check ami.username and ami.secret")
	} else {
		c.log.WithError(err).Warn("AMI connection attempt failed")
	}
	c.met.connects.WithLabelValues(result).Inc()
	c.setStatus(func(st *Status) {
		st.State = StateDisconnected
		st.Err = err
		st.Failures++
	})
}

// pushEvent queues an event without blocking; false means the queue is full (overflow).
// Only the goroutine running the connection loop sends on c.events, so the length check holds.
func (c *Client) pushEvent(m *Message) bool {
	if len(c.events) >= c.cfg.EventBuffer {
		return false
	}
	c.events <- Event{Msg: m}
	return true
}

// pushState queues a state notice in the room reserved for it.
func (c *Client) pushState(sc *StateChange) {
	select {
	case c.events <- Event{State: sc}:
	default:
		// Cannot happen while the reserve invariant holds; never block the loop on it.
		c.log.WithField("state", sc.State.String()).Error("AMI event queue full: state notice dropped")
	}
}

// connect dials, reads the banner and logs in.
func (c *Client) connect() (*session, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.cfg.Dialer(ctx, "tcp", c.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("ami: connect to %s: %w", c.cfg.Address, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	s := newSession(c, conn)
	err = s.handshake()
	if !stop() && err == nil {
		err = ctx.Err() // timed out or closed just as the login finished
	}
	if err != nil {
		conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ErrLoginRejected) {
			return nil, fmt.Errorf("ami: connect to %s: %w (%v)", c.cfg.Address, ctxErr, err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	c.mu.Lock()
	c.connSeq++
	s.id = c.connSeq
	c.mu.Unlock()
	s.log = c.log.WithField("conn", s.id)
	return s, nil
}

// md5Key is Asterisk's MD5 login key: lowercase hex md5(challenge + secret).
func md5Key(challenge, secret string) string {
	sum := md5.Sum([]byte(challenge + secret))
	return hex.EncodeToString(sum[:])
}

// tapReader counts the bytes read from the socket and copies them to Config.RawTap.
type tapReader struct {
	r io.Reader
	c *Client
}

func (t *tapReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.c.met.bytes.Add(float64(n))
		if tap := t.c.cfg.RawTap; tap != nil && !t.c.tapDead.Load() {
			if _, werr := tap.Write(p[:n]); werr != nil {
				t.c.tapDead.Store(true)
				t.c.log.WithError(werr).Error("AMI raw tap failed; no longer recording the stream")
			}
		}
	}
	return n, err
}
