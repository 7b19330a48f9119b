package bus

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sirupsen/logrus"
)

// ErrClosed is returned by every operation on a Bus after Close.
var ErrClosed = errors.New("bus: closed")

// Bus is a connection to RabbitMQ that survives the broker: it reconnects with capped exponential
// backoff plus jitter after any loss, declares the topology again, resumes consumers and RPC
// servers, and re-sends unconfirmed publishes. It is safe for concurrent use. A process needs one.
type Bus struct {
	cfg  Config
	log  logrus.FieldLogger
	red  redactor
	addr string // host:port, the only form of the URL that appears in messages
	m    *metrics

	ctx    context.Context // cancelled by Close once the last publishes are confirmed (or given up)
	cancel context.CancelFunc
	wg     sync.WaitGroup // the connection loop and the publisher

	closing     chan struct{} // closed at the start of Close: no new publishes
	closingOnce sync.Once
	closeMu     sync.RWMutex // held shared by PublishAsync while it enqueues

	mu     sync.Mutex
	conn   *amqp.Connection // nil while not connected
	lost   chan struct{}    // closed when conn goes away
	up     chan struct{}    // closed when a connection is ready; replaced when it goes
	state  state
	queues map[string]QueueSpec

	pub pubState
	rpc rpcClient
	seq atomic.Uint64 // consumer tag suffixes

	// testHookDelivery, set only by tests, sees every raw delivery before its handler runs
	// (to get hold of the consumer's channel and kill it).
	testHookDelivery func(amqp.Delivery)
}

// state is what Ready reports.
type state struct {
	connected bool
	attempted bool
	cause     string // why not connected, in words
	causeErr  error
	retryAt   time.Time
	blocked   string // the broker's reason while it blocks publishers (resource alarm)
	closed    bool
}

// New validates cfg and starts connecting in the background; it never waits for the broker, so a
// service starts (and reports "not ready" with the reason) while RabbitMQ is still booting. Use
// Dial or WaitReady to wait for the first connection.
func New(cfg Config) (*Bus, error) {
	_, addr, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if err := validateDelays(cfg.RetryDelays); err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	cfg = cfg.withDefaults()
	b := &Bus{
		cfg:     cfg,
		red:     newRedactor(cfg.URL),
		addr:    addr,
		closing: make(chan struct{}),
		up:      make(chan struct{}),
		queues:  map[string]QueueSpec{},
	}
	b.log = cfg.Logger.WithFields(logrus.Fields{"component": "bus", "broker": addr})
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.pub.pending = make(chan *publishing, cfg.PublishBuffer)
	b.m = newMetrics(cfg.Registerer, b.bufferedCount)
	b.wg.Add(1)
	go b.run()
	return b, nil
}

// Dial is New followed by WaitReady: it returns once the first connection is up and the topology
// declared, or fails (closing the Bus) when ctx is done first, with the reason it could not
// connect.
func Dial(ctx context.Context, cfg Config) (*Bus, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.WaitReady(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = b.Close(cctx)
		return nil, err
	}
	return b, nil
}

// Ready returns nil while the Bus is connected with its topology declared, and otherwise an error
// that says why in words, for a readiness probe or a status page, e.g.
// "rabbitmq 127.0.0.1:5672: connection refused, retrying in 4s".
func (b *Bus) Ready() error {
	b.mu.Lock()
	st := b.state
	b.mu.Unlock()
	return b.stateError(st)
}

// NotReadyError is the error of Ready: Addr is the broker's host:port, Reason says why in words,
// RetryIn is the time to the next connection attempt (0 when unknown or connected).
type NotReadyError struct {
	Addr    string
	Reason  string
	RetryIn time.Duration
	Err     error // the underlying error, if any
}

func (e *NotReadyError) Error() string {
	s := "rabbitmq " + e.Addr + ": " + e.Reason
	if e.RetryIn > 0 {
		s += ", retrying in " + roundDelay(e.RetryIn).String()
	}
	return s
}

func (e *NotReadyError) Unwrap() error { return e.Err }

func (b *Bus) stateError(st state) error {
	switch {
	case st.closed:
		return &NotReadyError{Addr: b.addr, Reason: "bus closed", Err: ErrClosed}
	case st.connected && st.blocked != "":
		return &NotReadyError{Addr: b.addr, Reason: "connected, but the broker blocks publishing: " + st.blocked}
	case st.connected:
		return nil
	case !st.attempted:
		return &NotReadyError{Addr: b.addr, Reason: "connecting"}
	}
	e := &NotReadyError{Addr: b.addr, Reason: st.cause, Err: st.causeErr}
	if d := time.Until(st.retryAt); d > 0 {
		e.RetryIn = d
	} else {
		e.Reason += ", reconnecting now"
	}
	return e
}

func roundDelay(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(10 * time.Millisecond)
	}
}

// WaitReady waits until the Bus is connected or ctx is done; the error then carries the reason.
func (b *Bus) WaitReady(ctx context.Context) error {
	if _, _, err := b.connection(ctx); err != nil {
		return fmt.Errorf("bus: waiting for rabbitmq: %w", err)
	}
	return nil
}

// Close stops accepting publishes, waits until every publish already accepted is confirmed (or
// ctx is done), then stops consumers, RPC servers and the connection. Cancel the contexts of
// Consume and Serve first for a clean drain: a handler's retry published after Close fails and
// the message is requeued instead. Publishes still unconfirmed when ctx ends fail with ErrClosed.
func (b *Bus) Close(ctx context.Context) error {
	b.closingOnce.Do(func() { close(b.closing) })
	b.closeMu.Lock() // waits out enqueues in progress; later ones see closing
	b.closeMu.Unlock()

	var err error
	tick := time.NewTicker(5 * time.Millisecond)
	for b.pub.outstanding.Load() > 0 {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("bus: close: %d publishes not confirmed: %w", b.pub.outstanding.Load(), ctx.Err())
		case <-tick.C:
			continue
		}
		break
	}
	tick.Stop()

	b.cancel()
	b.wg.Wait()
	b.pub.failAll(ErrClosed)
	b.mu.Lock()
	b.state.closed = true
	b.state.connected = false
	b.mu.Unlock()
	b.m.unregister()
	return err
}

// connection returns the current connection and a channel closed when it is lost, waiting for one
// until ctx is done.
func (b *Bus) connection(ctx context.Context) (*amqp.Connection, <-chan struct{}, error) {
	for {
		b.mu.Lock()
		conn, lost, up, closed := b.conn, b.lost, b.up, b.state.closed
		b.mu.Unlock()
		if closed || b.ctx.Err() != nil {
			return nil, nil, ErrClosed
		}
		if conn != nil {
			return conn, lost, nil
		}
		select {
		case <-up:
		case <-b.ctx.Done():
			return nil, nil, ErrClosed
		case <-ctx.Done():
			reason := b.Ready()
			if reason == nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, fmt.Errorf("%w (%s)", ctx.Err(), reason.Error())
		}
	}
}

// withChannel runs f on a fresh channel of the current connection, waiting for a connection until
// ctx is done. A channel per operation keeps a channel error (404, 406) of one operation from
// touching anything else.
func (b *Bus) withChannel(ctx context.Context, f func(*amqp.Channel) error) error {
	conn, _, err := b.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	return f(ch)
}

// errorf builds an error prefixed with the broker address, with the password redacted.
func (b *Bus) errorf(format string, args ...any) error {
	return b.red.Err(fmt.Errorf("bus: rabbitmq %s: "+format, append([]any{b.addr}, args...)...))
}

// run is the connection loop: connect, declare, serve until the connection is lost, repeat.
func (b *Bus) run() {
	defer b.wg.Done()
	attempt := 0
	everConnected := false
	for b.ctx.Err() == nil {
		conn, err := b.connect()
		if err != nil {
			delay := backoff(b.cfg.ReconnectMin, b.cfg.ReconnectMax, attempt)
			attempt++
			cause := b.describe(err)
			b.setDown(cause, b.red.Err(err), delay)
			b.log.WithFields(logrus.Fields{"attempt": attempt, "retry_in": roundDelay(delay).String()}).
				Warnf("rabbitmq %s: %s, retrying in %s", b.addr, cause, roundDelay(delay))
			select {
			case <-time.After(delay):
			case <-b.ctx.Done():
			}
			continue
		}
		if everConnected {
			b.m.reconnects.Inc()
		}
		everConnected = true
		attempt = 0
		b.serveConnection(conn)
	}
}

// connect dials and declares the topology; a connection that cannot declare is closed, so
// "connected" always means "usable".
func (b *Bus) connect() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(b.cfg.Name)
	type dialed struct {
		conn *amqp.Connection
		err  error
	}
	// The dial runs apart so Close need not wait for it: a broker answers a wrong password only
	// after a few seconds, and a black-holed host only after DialTimeout.
	res := make(chan dialed, 1)
	go func() {
		conn, err := amqp.DialConfig(b.cfg.URL, amqp.Config{
			Heartbeat:  b.cfg.Heartbeat,
			Locale:     "en_US",
			Properties: props,
			Dial:       amqp.DefaultDial(b.cfg.DialTimeout),
		})
		res <- dialed{conn, err}
	}()
	var conn *amqp.Connection
	select {
	case r := <-res:
		if r.err != nil {
			return nil, r.err
		}
		conn = r.conn
	case <-b.ctx.Done():
		go func() {
			if r := <-res; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, ErrClosed
	}
	if err := b.declareAll(conn); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("declare topology: %w", err)
	}
	return conn, nil
}

// serveConnection publishes the connection, runs the publisher on it and waits for its loss.
func (b *Bus) serveConnection(conn *amqp.Connection) {
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	lost := make(chan struct{})

	b.mu.Lock()
	b.conn, b.lost = conn, lost
	b.state = state{connected: true, attempted: true}
	close(b.up)
	b.mu.Unlock()
	b.log.Infof("rabbitmq %s: connected", b.addr)

	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		b.publishLoop(conn, lost)
	}()

	var cause string
	var causeErr error
loop:
	for {
		select {
		case e, ok := <-closed:
			causeErr = errors.New("connection closed")
			if ok && e != nil {
				causeErr = e
			}
			cause = "connection lost: " + b.describe(causeErr)
			break loop
		case bl, ok := <-blocked:
			if !ok {
				blocked = nil // closed with the connection; closed says why
				continue
			}
			b.mu.Lock()
			if bl.Active {
				b.state.blocked = bl.Reason
			} else {
				b.state.blocked = ""
			}
			b.mu.Unlock()
			if bl.Active {
				b.log.Warnf("rabbitmq %s: broker blocks publishing: %s", b.addr, bl.Reason)
			} else {
				b.log.Infof("rabbitmq %s: broker unblocked publishing", b.addr)
			}
		case <-b.ctx.Done():
			cause, causeErr = "bus closed", ErrClosed
			break loop
		}
	}

	b.mu.Lock()
	b.conn, b.lost = nil, nil
	b.up = make(chan struct{})
	b.state = state{attempted: true, cause: cause, causeErr: b.red.Err(causeErr), retryAt: time.Now()}
	b.mu.Unlock()
	close(lost)
	if b.ctx.Err() != nil {
		_ = conn.Close()
	} else {
		b.log.Warnf("rabbitmq %s: %s", b.addr, cause)
	}
	<-pubDone
}

func (b *Bus) setDown(cause string, err error, delay time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state = state{attempted: true, cause: cause, causeErr: err, retryAt: time.Now().Add(delay)}
}

// describe turns a connection error into words an operator can act on, without the password.
func (b *Bus) describe(err error) string {
	var ae *amqp.Error
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &dnsErr):
		return "cannot resolve host " + dnsErr.Name
	case errors.As(err, &ae) && ae.Code == amqp.AccessRefused:
		return "access refused, check the user and password: " + b.red.String(ae.Reason)
	case errors.As(err, &ae):
		return b.red.String(ae.Error())
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return "connection timed out"
	}
	return b.red.String(err.Error())
}

// backoff is the delay before connection attempt n (0-based): min·2ⁿ capped at max, with "equal
// jitter" (half fixed, half random) so delays still grow while services that lost the broker at
// the same moment do not all come back at the same moment.
func backoff(min, max time.Duration, attempt int) time.Duration {
	d := max
	if attempt < 32 {
		if x := min << attempt; x > 0 && x < max {
			d = x
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// newID returns a random 128-bit hex id for MessageId and CorrelationId.
func newID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // never fails on Linux (getrandom), and panics rather than return short
	return hex.EncodeToString(b[:])
}
