package ami

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// session is one TCP connection, from login to close.
type session struct {
	c      *Client
	id     uint64
	conn   net.Conn
	rd     *Reader
	log    logrus.FieldLogger
	banner string

	wmu  sync.Mutex // serialises writes
	wbuf []byte

	mu      sync.Mutex
	pending map[string]*pending
	closed  bool
	cause   error
	done    chan struct{} // closed when the session is closed

	lists    atomic.Int32 // pending ActionList calls: only then do events need an ActionID lookup
	shutdown atomic.Bool  // Event: Shutdown seen
	goodbye  atomic.Bool  // Response: Goodbye seen
	missing  uint64       // Reader's MissingBlankLine already counted
}

// pending is an action waiting for its reply.
type pending struct {
	id     string
	action string
	list   bool
	sent   time.Time
	resp   *Message
	items  []*Message
	err    error
	done   chan struct{}
}

func newSession(c *Client, conn net.Conn) *session {
	return &session{
		c:    c,
		conn: conn,
		rd: NewReader(&tapReader{r: conn, c: c}, ReaderOptions{
			MaxLineSize: c.cfg.MaxLineSize, MaxPacketSize: c.cfg.MaxPacketSize,
		}),
		log:     c.log,
		pending: make(map[string]*pending),
		done:    make(chan struct{}),
	}
}

// close ends the session once: closes the socket and fails the waiting actions. It returns the
// first cause given, the one that counts.
func (s *session) close(cause error) error {
	s.mu.Lock()
	if s.closed {
		cause = s.cause
		s.mu.Unlock()
		return cause
	}
	if cause == nil {
		cause = io.EOF
	}
	if s.shutdown.Load() && !errors.Is(cause, ErrClosed) {
		cause = fmt.Errorf("%w: %w", ErrServerShutdown, cause)
	}
	s.closed = true
	s.cause = cause
	pend := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.conn.Close()
	close(s.done)
	for _, p := range pend {
		p.err = fmt.Errorf("ami: %s (ActionID %s): %w: %w", p.action, p.id, ErrConnectionLost, cause)
		close(p.done)
	}
	return cause
}

// handshake reads the banner and logs in, synchronously, before the reader loop starts.
func (s *session) handshake() error {
	cfg := &s.c.cfg
	banner, err := s.rd.ReadBanner()
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("closed before the banner (Asterisk's authlimit reached?): %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("ami: connect to %s: reading banner: %w", cfg.Address, err)
	}
	s.banner = banner
	login := (&Message{}).Add("Action", "Login").Add("Username", cfg.Username)
	if cfg.Auth == "md5" {
		resp, err := s.syncAction((&Message{}).Add("Action", "Challenge").Add("AuthType", "MD5"))
		if err != nil {
			return err
		}
		challenge := resp.Get("Challenge")
		if resp.Response() != "Success" || challenge == "" {
			return &LoginError{Username: cfg.Username, Message: "MD5 challenge refused: " + resp.Get("Message")}
		}
		login.Add("AuthType", "MD5").Add("Key", md5Key(challenge, cfg.Secret.Reveal()))
	} else {
		login.Add("Secret", cfg.Secret.Reveal())
	}
	if cfg.Events != "" {
		login.Add("Events", cfg.Events)
	}
	resp, err := s.syncAction(login)
	if err != nil {
		return err
	}
	msg := resp.Get("Message")
	if strings.EqualFold(msg, "Already authenticated") {
		return nil // a proxy or a re-used session: we are in
	}
	if resp.Response() != "Success" {
		return &LoginError{Username: cfg.Username, Message: msg}
	}
	return nil
}

// syncAction writes an action and reads until its reply; only for the handshake, before the
// reader loop runs.
func (s *session) syncAction(m *Message) (*Message, error) {
	id := s.c.nextID()
	name := m.Get("Action")
	if err := s.write(m, id); err != nil {
		return nil, fmt.Errorf("ami: connect to %s: sending %s: %w", s.c.cfg.Address, name, err)
	}
	for {
		r, err := s.rd.ReadMessage()
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				s.c.met.parseErrors.WithLabelValues(kindLabel(pe.Kind)).Inc()
				if pe.Kind != ErrTruncated {
					s.log.WithError(err).Warn("AMI: bad packet skipped during login")
					continue
				}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("ami: connect to %s: waiting for %s reply: %w", s.c.cfg.Address, name, err)
		}
		if rid := r.ActionID(); r.Response() != "" && (rid == id || rid == "") {
			return r, nil
		}
		s.log.WithField("packet", r.Event()).Debug("AMI: packet before the login reply ignored")
	}
}

// write sends m with ActionID id appended when m has none. The Secret and Key values are
// redacted in the debug log.
func (s *session) write(m *Message, id string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b := s.wbuf[:0]
	hasID := false
	for _, h := range m.Headers {
		if isKeyString(h.Key, "ActionID") {
			hasID = true
		}
		b = append(b, h.Key...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	if !hasID {
		b = append(b, "ActionID: "...)
		b = append(b, id...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if cap(b) <= 64<<10 {
		s.wbuf = b
	}
	if s.c.cfg.WriteTimeout > 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.c.cfg.WriteTimeout))
	}
	_, err := s.conn.Write(b)
	if debugEnabled(s.log) {
		s.log.WithFields(logrus.Fields{"action": m.Get("Action"), "action_id": id, "packet": Redacted(m)}).Debug("AMI action sent")
	}
	return err
}

// debugEnabled tells whether a debug line would be written (so it is worth building).
func debugEnabled(l logrus.FieldLogger) bool {
	switch l := l.(type) {
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}

// Redacted renders m in wire form with the values of Secret and Key headers replaced by
// <redacted>, for logs.
func Redacted(m *Message) string {
	var b strings.Builder
	for _, h := range m.Headers {
		b.WriteString(h.Key)
		b.WriteString(": ")
		if isKeyString(h.Key, "Secret") || isKeyString(h.Key, "Key") {
			b.WriteString("<redacted>")
		} else {
			b.WriteString(h.Value)
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

// do sends an action and waits for its reply (or list).
func (s *session) do(ctx context.Context, m *Message, list bool) (*pending, error) {
	id := m.ActionID()
	if id == "" {
		id = s.c.nextID()
	}
	p := &pending{id: id, action: m.Get("Action"), list: list, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		cause := s.cause
		s.mu.Unlock()
		return nil, fmt.Errorf("ami: %s (ActionID %s): %w: %w", p.action, id, ErrConnectionLost, cause)
	}
	if _, dup := s.pending[id]; dup {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: ActionID %q is already waiting for a reply", ErrInvalidAction, id)
	}
	s.pending[id] = p
	if list {
		s.lists.Add(1)
	}
	s.mu.Unlock()
	p.sent = time.Now()
	if err := s.write(m, id); err != nil {
		s.forget(p)
		cause := s.close(fmt.Errorf("writing %s: %w", p.action, err))
		return nil, fmt.Errorf("ami: %s (ActionID %s): %w: %w", p.action, id, ErrConnectionLost, cause)
	}
	select {
	case <-p.done:
		s.c.met.actionLatency.WithLabelValues(p.action).Observe(time.Since(p.sent).Seconds())
		return p, p.err
	case <-ctx.Done():
		if s.forget(p) {
			return nil, fmt.Errorf("ami: %s (ActionID %s): %w", p.action, id, ctx.Err())
		}
		<-p.done // completed meanwhile
		return p, p.err
	}
}

// forget removes a waiting action; false if it was already completed.
func (s *session) forget(p *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[p.id] != p {
		return false
	}
	delete(s.pending, p.id)
	if p.list {
		s.lists.Add(-1)
	}
	return true
}

// complete hands a finished action to its caller. Call with s.mu held.
func (s *session) completeLocked(p *pending) {
	delete(s.pending, p.id)
	if p.list {
		s.lists.Add(-1)
	}
	close(p.done)
}

// logoff sends Logoff, waits briefly for Goodbye and for the server to close, then closes.
func (s *session) logoff() {
	wait := s.c.cfg.PingTimeout
	if wait <= 0 || wait > 2*time.Second {
		wait = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := s.do(ctx, (&Message{}).Add("Action", "Logoff"), false); err == nil {
		select {
		case <-s.done:
		case <-ctx.Done():
		}
	}
	s.close(ErrClosed)
}

// pingLoop is the keep-alive: a Ping every PingInterval; no reply within PingTimeout drops the
// connection (the reader loop then ends and the Client reconnects).
func (s *session) pingLoop() {
	iv := s.c.cfg.PingInterval
	if iv <= 0 {
		return
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.PingTimeout)
		_, err := s.do(ctx, (&Message{}).Add("Action", "Ping"), false)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded):
			s.log.WithField("timeout", s.c.cfg.PingTimeout.String()).Warn("AMI: no reply to Ping; dropping the connection")
			s.close(fmt.Errorf("%w: no reply within %s", ErrPingTimeout, s.c.cfg.PingTimeout))
			return
		case errors.Is(err, ErrConnectionLost):
			return
		default:
			// A Ping answered with an error still proves the link is alive.
		}
	}
}

// readLoop is the socket reader: it never blocks on the consumer. It returns why it stopped.
func (s *session) readLoop() error {
	for {
		m, err := s.rd.ReadMessage()
		if st := s.rd.Stats(); st.MissingBlankLine != s.missing {
			s.c.met.missingBlank.Add(float64(st.MissingBlankLine - s.missing))
			s.missing = st.MissingBlankLine
		}
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				s.c.met.parseErrors.WithLabelValues(kindLabel(pe.Kind)).Inc()
				if pe.Kind != ErrTruncated {
					s.log.WithError(err).Warn("AMI: bad packet skipped")
					continue
				}
			}
			if s.goodbye.Load() && err == io.EOF {
				return fmt.Errorf("logged off (Response: Goodbye), closed by %s: %w", s.c.cfg.Address, err)
			}
			if err == io.EOF {
				return fmt.Errorf("closed by %s: %w", s.c.cfg.Address, err)
			}
			return err
		}
		if err := s.dispatch(m); err != nil {
			return err
		}
	}
}

// dispatch routes one packet: replies to the waiting action, list items to the waiting list,
// everything else to the event queue.
func (s *session) dispatch(m *Message) error {
	key := m.Headers[0].Key
	switch {
	case isKeyString(key, "Event"):
		return s.event(m)
	case isKeyString(key, "Response"):
		s.response(m)
		return nil
	}
	if _, ok := m.Lookup("Event"); ok {
		return s.event(m)
	}
	if _, ok := m.Lookup("Response"); ok {
		s.response(m)
		return nil
	}
	s.log.WithField("first_header", key).Warn("AMI: packet is neither an event nor a response; passing it on as an event")
	return s.event(m)
}

func (s *session) event(m *Message) error {
	s.c.met.events.Inc()
	if s.lists.Load() > 0 {
		if id := m.ActionID(); id != "" && s.listItem(id, m) {
			return nil
		}
	}
	if m.Event() == "Shutdown" {
		s.shutdown.Store(true)
		s.log.WithFields(logrus.Fields{"shutdown": m.Get("Shutdown"), "restart": m.Get("Restart")}).Warn("AMI: Asterisk is shutting down; expecting the connection to close")
	}
	if !s.c.pushEvent(m) {
		s.c.met.overflows.Inc()
		s.log.WithFields(logrus.Fields{"queued": len(s.c.events), "capacity": s.c.cfg.EventBuffer, "event": m.Event()}).
			Error("AMI event queue full: the consumer is too slow; dropping the connection to resync")
		return ErrQueueOverflow
	}
	return nil
}

// listItem takes an event that belongs to a waiting ActionList; false if none waits for id.
func (s *session) listItem(id string, m *Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	if p == nil || !p.list {
		return false
	}
	if strings.EqualFold(m.Get("EventList"), "Complete") || strings.HasSuffix(m.Event(), "Complete") {
		s.completeLocked(p)
		return true
	}
	p.items = append(p.items, m)
	return true
}

func (s *session) response(m *Message) {
	s.c.met.responses.Inc()
	status := m.Response()
	if status == "Goodbye" {
		s.goodbye.Store(true)
	}
	id := m.ActionID()
	s.mu.Lock()
	p := s.pending[id]
	if p == nil {
		s.mu.Unlock()
		s.c.met.unmatched.Inc()
		s.log.WithFields(logrus.Fields{"action_id": id, "response": status, "message": m.Get("Message")}).Debug("AMI: reply for no waiting action")
		return
	}
	p.resp = m
	if p.list && status == "Success" && isListStart(m) {
		s.mu.Unlock()
		return // items follow
	}
	if status == "Error" {
		p.err = &ActionError{Action: p.action, ActionID: p.id, Message: m.Get("Message"), Response: m}
	}
	s.completeLocked(p)
	s.mu.Unlock()
}

func isListStart(m *Message) bool {
	if strings.EqualFold(m.Get("EventList"), "start") {
		return true
	}
	return strings.Contains(strings.ToLower(m.Get("Message")), "will follow")
}
