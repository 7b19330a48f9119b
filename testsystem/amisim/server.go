package amisim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// Defaults of Config.
const (
	DefaultVersion       = "11.0.0" // AMI version of Asterisk 22
	DefaultWriteTimeout  = 100 * time.Millisecond
	DefaultAuthFailDelay = time.Second
	DefaultAuthTimeout   = 30 * time.Second
)

// ErrClosed is returned by Serve, Listen and the players once the Server is closed.
var ErrClosed = errors.New("amisim: server closed")

// User is one manager.conf account.
type User struct {
	Secret string
	// Read lists the event classes the account may read (manager.conf read=), such as "call",
	// "cdr", "agent", "dialplan", "system". Empty means all classes.
	Read []string
}

// Config of a Server. Zero fields take the defaults noted.
type Config struct {
	Users   map[string]User    // username → account
	Version string             // banner `Asterisk Call Manager/<Version>`; default DefaultVersion
	Logger  logrus.FieldLogger // nil: no logs
	// WriteTimeout is Asterisk's writetimeout: a client whose socket stays full this long is
	// disconnected. Default DefaultWriteTimeout (100 ms).
	WriteTimeout time.Duration
	// AuthFailDelay is the sleep before `Authentication failed` (Asterisk sleeps 1 s). Default
	// DefaultAuthFailDelay; negative: no delay.
	AuthFailDelay time.Duration
	// AuthTimeout drops a connection that has not logged in within it (authtimeout). Default
	// DefaultAuthTimeout; negative: never.
	AuthTimeout time.Duration
	// Timestamps adds `Timestamp: sec.usec` to events that do not carry one (timestampevents=yes).
	Timestamps bool
	// SendBuffer, when > 0, sets SO_SNDBUF of client sockets: a small buffer makes a slow client
	// hit WriteTimeout after little data.
	SendBuffer int
}

// OriginateHandler decides what an Originate action does. It gets a copy of the action; the
// events it returns are played to every session in order, as fast as possible; ok is whether the
// call was placed (OriginateResponse Success, Reason 4) or not (Failure, Reason 0). An
// OriginateResponse among the events takes the action's ActionID and replaces the one the server
// would add at the end, so a recorded click-to-call plays in Asterisk's real order.
type OriginateHandler func(action *ami.Message) (events []*ami.Message, ok bool)

// ActionHandler answers a custom action (see Server.Handle). reply is sent to the client with the
// action's ActionID put after its first header (nil: `Response: Success`); events are then played
// to every session.
type ActionHandler func(action *ami.Message) (reply *ami.Message, events []*ami.Message)

// Stats counts what the Server did.
type Stats struct {
	Accepted        int // TCP connections accepted
	Logins          int // successful logins
	AuthFailures    int // failed logins
	Logoffs         int
	SlowDisconnects int // sessions closed because a write exceeded WriteTimeout
	Dropped         int // connections cut by DropConnections
	Actions         int // actions received (all sessions, Login included)
	Events          int // events broadcast (played, from hooks, or Broadcast)
}

// Server is the simulated Asterisk. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	log     logrus.FieldLogger
	done    chan struct{} // closed by Close
	closeMu sync.Once
	wg      sync.WaitGroup

	mu          sync.Mutex
	ln          net.Listener
	closed      bool
	users       map[string]User
	sessions    map[*session]struct{}
	nextID      uint64
	channels    *channelTable
	ignorePings bool
	originate   OriginateHandler
	handlers    map[string]ActionHandler // lower-case action name
	actions     []*ami.Message
	stats       Stats
	changed     chan struct{} // closed and replaced when the session set or a login changes
}

// New returns a Server; it listens only after Listen or Serve.
func New(cfg Config) *Server {
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.AuthFailDelay == 0 {
		cfg.AuthFailDelay = DefaultAuthFailDelay
	}
	if cfg.AuthTimeout == 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	users := make(map[string]User, len(cfg.Users))
	for name, u := range cfg.Users {
		users[name] = u
	}
	return &Server{
		cfg:      cfg,
		log:      log.WithField("component", "amisim"),
		done:     make(chan struct{}),
		users:    users,
		sessions: make(map[*session]struct{}),
		channels: newChannelTable(),
		handlers: make(map[string]ActionHandler),
		changed:  make(chan struct{}),
	}
}

// Listen binds addr ("127.0.0.1:0" in tests) and serves in the background.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("amisim: listen on %s: %w", addr, err)
	}
	if err := s.setListener(ln); err != nil {
		ln.Close()
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.acceptLoop(ln)
	}()
	return nil
}

// Serve accepts connections on ln until Close; it then returns ErrClosed. ln is closed on return.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.setListener(ln); err != nil {
		ln.Close()
		return err
	}
	s.wg.Add(1)
	defer s.wg.Done()
	return s.acceptLoop(ln)
}

func (s *Server) setListener(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.ln != nil {
		return errors.New("amisim: server already listening on " + s.ln.Addr().String())
	}
	s.ln = ln
	return nil
}

func (s *Server) acceptLoop(ln net.Listener) error {
	defer ln.Close()
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.WithError(err).Error("accept failed; no longer serving")
			return fmt.Errorf("amisim: accept: %w", err)
		}
		s.startSession(conn)
	}
}

// Addr is the address the server listens on ("127.0.0.1:41234"), or "" before Listen/Serve.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops listening, closes every session and waits for the server's goroutines (players
// running in the caller's goroutines return ErrClosed).
func (s *Server) Close() error {
	s.closeMu.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		ln := s.ln
		sessions := s.sessionList()
		s.mu.Unlock()
		if ln != nil {
			ln.Close()
		}
		for _, ss := range sessions {
			ss.kill(errors.New("server closed"), false)
		}
	})
	s.wg.Wait()
	return nil
}

// sessionList returns the sessions; s.mu must be held.
func (s *Server) sessionList() []*session {
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

// notifyLocked wakes WaitSessions; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Sessions is the number of logged-in sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for ss := range s.sessions {
		if ss.authed {
			n++
		}
	}
	return n
}

// WaitSessions waits until exactly n sessions are logged in (a gateway came back, or went away).
func (s *Server) WaitSessions(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got := 0
		for ss := range s.sessions {
			if ss.authed {
				got++
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if got == n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("amisim: waiting for %d logged-in sessions (have %d): %w", n, got, ctx.Err())
		}
	}
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// DropConnections cuts every client connection at once with a TCP reset, wherever the stream is,
// as a crashed PBX or a broken link would. It returns how many it cut.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	sessions := s.sessionList()
	s.stats.Dropped += len(sessions)
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.kill(errors.New("dropped by test"), true)
	}
	return len(sessions)
}

// SetSecret sets (or adds) a user's secret; sessions already logged in stay.
func (s *Server) SetSecret(user, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	u.Secret = secret
	s.users[user] = u
}

// IgnorePings makes the server swallow Ping actions without reply (on) or answer them again
// (off): the link looks half-open to a client's keep-alive, while events still flow.
func (s *Server) IgnorePings(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignorePings = on
}

// OnOriginate sets the handler of Originate actions; nil (the default) makes every Originate fail
// (OriginateResponse Failure, Reason 0) with no events.
func (s *Server) OnOriginate(h OriginateHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.originate = h
}

// Handle makes the server answer action (matched case-insensitively) with h, overriding the
// built-in behaviour. Login, Challenge and Logoff cannot be overridden. A nil h removes it.
func (s *Server) Handle(action string, h ActionHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(action)
	if h == nil {
		delete(s.handlers, key)
		return
	}
	s.handlers[key] = h
}

// Actions returns a copy of every action received so far, all sessions, in arrival order.
func (s *Server) Actions() []*ami.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*ami.Message(nil), s.actions...)
}

// LiveChannels returns the names of the channels alive now (Newchannel played, Hangup not yet),
// oldest first.
func (s *Server) LiveChannels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels.names()
}

// ResetChannels forgets the live channel set (a fresh PBX between tests).
func (s *Server) ResetChannels() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = newChannelTable()
}

// Broadcast sends events to every logged-in session that reads their class, as a playback
// would, and applies them to the live channel set. It does not wait for the writes; see Flush.
func (s *Server) Broadcast(events ...*ami.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range events {
		s.broadcastLocked(m)
	}
}

// broadcastLocked applies m to the channel table and queues its wire form for each session that
// should get it; s.mu must be held, so the table and every session's queue see the same order.
func (s *Server) broadcastLocked(m *ami.Message) {
	now := time.Now()
	s.channels.apply(m, now)
	s.stats.Events++
	if len(s.sessions) == 0 {
		return
	}
	if s.cfg.Timestamps {
		if _, ok := exact(m, "Timestamp"); !ok {
			m = withTimestamp(m, now)
		}
	}
	cat := eventCategory(m)
	var wire []byte
	for ss := range s.sessions {
		if !ss.wantsEvent(cat) {
			continue
		}
		if wire == nil {
			wire = m.AppendWire(nil)
		}
		ss.enqueue(wire)
	}
}

// Flush waits until every packet queued so far has been written to its client socket (or the
// session has died): after it, the bytes are in the kernel, and a test may kill the gateway.
func (s *Server) Flush(ctx context.Context) error {
	s.mu.Lock()
	type target struct {
		ss *session
		n  uint64
	}
	var targets []target
	for ss := range s.sessions {
		targets = append(targets, target{ss, ss.queuedCount()})
	}
	s.mu.Unlock()
	for _, t := range targets {
		if err := t.ss.waitWritten(ctx, t.n); err != nil {
			return err
		}
	}
	return nil
}

// withTimestamp returns a copy of m with `Timestamp: sec.usec` after Privilege (or Event), where
// Asterisk's timestampevents puts it.
func withTimestamp(m *ami.Message, now time.Time) *ami.Message {
	ts := formatTimestamp(now)
	out := &ami.Message{Headers: make([]ami.Header, 0, len(m.Headers)+1)}
	at := 1
	if len(m.Headers) > 1 && m.Headers[1].Key == "Privilege" {
		at = 2
	}
	if at > len(m.Headers) {
		at = len(m.Headers)
	}
	out.Headers = append(out.Headers, m.Headers[:at]...)
	out.Headers = append(out.Headers, ami.Header{Key: "Timestamp", Value: ts})
	out.Headers = append(out.Headers, m.Headers[at:]...)
	return out
}

// formatTimestamp renders Asterisk's `%ld.%06lu` form.
func formatTimestamp(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}

// exact returns the first value of key, matched case-sensitively: recorded events carry both
// `Uniqueid` (channel snapshot) and `UniqueID` (CEL, Cdr), which must not be confused.
func exact(m *ami.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

func exactGet(m *ami.Message, key string) string {
	v, _ := exact(m, key)
	return v
}

// cloneMessage copies m's headers so the copy can be edited.
func cloneMessage(m *ami.Message) *ami.Message {
	return &ami.Message{Headers: append([]ami.Header(nil), m.Headers...), Output: m.Output, Received: m.Received}
}
