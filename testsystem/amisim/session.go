package amisim

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// Asterisk's input limits (main/manager.c): inbuf[1025] and AST_MAX_MANHEADERS.
const (
	maxInputLine    = 1024
	maxInputHeaders = 128
	// maxWriteBatch caps how many queued bytes go out in one write (one WriteTimeout).
	maxWriteBatch = 64 << 10
)

// session is one client connection. Its reader goroutine runs actions one at a time, as
// Asterisk's session thread does; its writer goroutine drains a queue of whole packets, so
// replies and events from concurrent plays never interleave mid-packet and a slow client never
// blocks a playback (it is cut after WriteTimeout instead).
type session struct {
	srv  *Server
	id   uint64
	conn net.Conn
	log  logrus.FieldLogger

	// Guarded by srv.mu.
	authed     bool
	user       string
	readPerm   uint32
	sendEvents uint32

	challenge string // reader goroutine only

	qmu        sync.Mutex
	qcond      *sync.Cond
	queue      [][]byte
	queued     uint64 // packets ever queued
	written    uint64 // packets ever written
	closeAfter bool   // close once the queue is written (Logoff, failed login)
	dead       bool
	progress   chan struct{} // closed and replaced when written advances or the session dies
}

func (s *Server) startSession(conn net.Conn) {
	if s.cfg.SendBuffer > 0 {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetWriteBuffer(s.cfg.SendBuffer)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.nextID++
	ss := &session{
		srv:        s,
		id:         s.nextID,
		conn:       conn,
		log:        s.log.WithFields(logrus.Fields{"session": s.nextID, "remote": conn.RemoteAddr().String()}),
		sendEvents: classAll,
		progress:   make(chan struct{}),
	}
	ss.qcond = sync.NewCond(&ss.qmu)
	s.sessions[ss] = struct{}{}
	s.stats.Accepted++
	s.notifyLocked()
	// The banner is one line, not a packet: no blank line follows it.
	ss.enqueue([]byte(ami.BannerPrefix + s.cfg.Version + "\r\n"))
	s.wg.Add(2)
	s.mu.Unlock()
	ss.log.Debug("client connected")
	go func() {
		defer s.wg.Done()
		ss.writeLoop()
	}()
	go func() {
		defer s.wg.Done()
		ss.readLoop()
	}()
}

// wantsEvent tells whether the session gets an event of class cat; srv.mu must be held. It is
// Asterisk's test: logged in, and both the read permission and the event mask cover the class.
func (ss *session) wantsEvent(cat uint32) bool {
	if !ss.authed || ss.sendEvents == 0 {
		return false
	}
	return ss.readPerm&cat == cat && ss.sendEvents&cat == cat
}

// enqueue queues one whole packet for the writer.
func (ss *session) enqueue(pkts ...[]byte) {
	ss.qmu.Lock()
	defer ss.qmu.Unlock()
	if ss.dead || ss.closeAfter {
		return
	}
	ss.queue = append(ss.queue, pkts...)
	ss.queued += uint64(len(pkts))
	ss.qcond.Signal()
}

func (ss *session) send(m *ami.Message) { ss.enqueue(m.AppendWire(nil)) }

// finish queues nothing more and closes the connection once the queue is written.
func (ss *session) finish() {
	ss.qmu.Lock()
	defer ss.qmu.Unlock()
	ss.closeAfter = true
	ss.qcond.Signal()
}

func (ss *session) queuedCount() uint64 {
	ss.qmu.Lock()
	defer ss.qmu.Unlock()
	return ss.queued
}

// waitWritten waits until n packets have been written or the session is dead.
func (ss *session) waitWritten(ctx context.Context, n uint64) error {
	for {
		ss.qmu.Lock()
		done := ss.dead || ss.written >= n
		ch := ss.progress
		ss.qmu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("amisim: flushing session %d: %w", ss.id, ctx.Err())
		}
	}
}

func (ss *session) writeLoop() {
	for {
		ss.qmu.Lock()
		for len(ss.queue) == 0 && !ss.dead && !ss.closeAfter {
			ss.qcond.Wait()
		}
		if ss.dead {
			ss.qmu.Unlock()
			return
		}
		if len(ss.queue) == 0 { // closeAfter, all written
			ss.qmu.Unlock()
			ss.kill(nil, false)
			return
		}
		// Take whole packets up to maxWriteBatch bytes (at least one).
		n, size := 0, 0
		for n < len(ss.queue) && (n == 0 || size+len(ss.queue[n]) <= maxWriteBatch) {
			size += len(ss.queue[n])
			n++
		}
		batch := append(net.Buffers(nil), ss.queue[:n]...)
		ss.queue = ss.queue[n:]
		if len(ss.queue) == 0 {
			ss.queue = nil // let the backing array go
		}
		ss.qmu.Unlock()

		ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
		if _, err := batch.WriteTo(ss.conn); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Asterisk's send_string: a write blocked past writetimeout closes the session.
				ss.srv.mu.Lock()
				ss.srv.stats.SlowDisconnects++
				ss.srv.mu.Unlock()
				ss.log.WithField("write_timeout", ss.srv.cfg.WriteTimeout.String()).Info("client too slow; disconnecting")
			}
			ss.kill(fmt.Errorf("write: %w", err), false)
			return
		}
		ss.qmu.Lock()
		ss.written += uint64(n)
		close(ss.progress)
		ss.progress = make(chan struct{})
		ss.qmu.Unlock()
	}
}

// kill closes the connection (with a TCP reset when abort is set) and removes the session. It is
// idempotent.
func (ss *session) kill(why error, abort bool) {
	ss.qmu.Lock()
	if ss.dead {
		ss.qmu.Unlock()
		return
	}
	ss.dead = true
	ss.queue = nil
	close(ss.progress)
	ss.progress = make(chan struct{})
	ss.qcond.Broadcast()
	ss.qmu.Unlock()

	if abort {
		if tc, ok := ss.conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close sends RST, not FIN
		}
	}
	ss.conn.Close()

	s := ss.srv
	s.mu.Lock()
	delete(s.sessions, ss)
	s.notifyLocked()
	s.mu.Unlock()
	if why != nil {
		ss.log.WithError(why).Debug("session closed")
	} else {
		ss.log.Debug("session closed")
	}
}

func (ss *session) readLoop() {
	s := ss.srv
	if s.cfg.AuthTimeout > 0 {
		ss.conn.SetReadDeadline(time.Now().Add(s.cfg.AuthTimeout))
	}
	rd := ami.NewReader(ss.conn, ami.ReaderOptions{MaxLineSize: maxInputLine})
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			var pe *ami.ParseError
			if errors.As(err, &pe) && errors.Is(err, ami.ErrLineTooLong) {
				// Asterisk discards the line, answers, and keeps the session.
				ss.send(errorReply(nil, "Failed to parse message: line too long"))
				continue
			}
			if errors.As(err, &pe) && !errors.Is(err, ami.ErrTruncated) {
				continue // garbage line: Asterisk would not find an Action in it either
			}
			ss.kill(fmt.Errorf("read: %w", err), false)
			return
		}
		if !ss.handle(m) {
			return
		}
	}
}

// handle runs one action; false ends the session's reader.
func (ss *session) handle(m *ami.Message) bool {
	s := ss.srv
	action := strings.TrimSpace(m.Get("Action"))
	lower := strings.ToLower(action)

	s.mu.Lock()
	s.stats.Actions++
	s.actions = append(s.actions, cloneMessage(m))
	authed := ss.authed
	custom := s.handlers[lower]
	s.mu.Unlock()

	if len(m.Headers) > maxInputHeaders {
		ss.send(errorReply(m, "Too many lines in message or allocation failure"))
		return true
	}
	// The order of checks is process_message()'s: missing action, then authentication.
	if action == "" {
		ss.send(errorReply(m, "Missing action in request"))
		return true
	}
	if !authed && lower != "login" && lower != "logoff" && lower != "challenge" {
		ss.send(errorReply(m, "Permission denied"))
		return true
	}
	if custom != nil && lower != "login" && lower != "logoff" && lower != "challenge" {
		ss.custom(m, custom)
		return true
	}
	switch lower {
	case "login":
		return ss.login(m)
	case "challenge":
		ss.challengeAction(m)
	case "logoff":
		s.mu.Lock()
		s.stats.Logoffs++
		s.mu.Unlock()
		ss.send(reply(m, "Goodbye", "Thanks for all the fish."))
		ss.finish()
		return false
	case "ping":
		s.mu.Lock()
		ignore := s.ignorePings
		s.mu.Unlock()
		if ignore {
			return true
		}
		r := &ami.Message{}
		r.Add("Response", "Success")
		addActionID(r, m)
		r.Add("Ping", "Pong").Add("Timestamp", formatTimestamp(time.Now()))
		ss.send(r)
	case "events":
		ss.events(m)
	case "coreshowchannels":
		ss.coreShowChannels(m)
	case "originate":
		ss.originateAction(m)
	case "redirect":
		ss.send(reply(m, "Success", "Redirect successful"))
	case "hangup":
		ss.send(reply(m, "Success", "Channel Hungup"))
	default:
		ss.send(errorReply(m, "Invalid/unknown command: "+action+". Use Action: ListCommands to show available commands."))
	}
	return true
}

// login is action_login: plain Secret or MD5 Key against the session's challenge.
func (ss *session) login(m *ami.Message) bool {
	s := ss.srv
	s.mu.Lock()
	if ss.authed {
		s.mu.Unlock()
		ss.send(reply(m, "Success", "Already authenticated"))
		return true
	}
	name := m.Get("Username")
	u, known := s.users[name]
	s.mu.Unlock()

	ok := known
	if ok {
		if strings.EqualFold(m.Get("AuthType"), "MD5") {
			sum := md5.Sum([]byte(ss.challenge + u.Secret))
			ok = ss.challenge != "" && m.Get("Key") == hex.EncodeToString(sum[:])
		} else {
			ok = m.Get("Secret") == u.Secret
		}
	}
	if !ok {
		s.mu.Lock()
		s.stats.AuthFailures++
		s.mu.Unlock()
		ss.log.WithField("user", name).Info("authentication failed")
		if d := s.cfg.AuthFailDelay; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
			}
		}
		ss.send(errorReply(m, "Authentication failed"))
		ss.finish()
		return false
	}

	read := classAll
	if len(u.Read) > 0 {
		read = classList(u.Read)
	}
	send := classAll
	if ev := m.Get("Events"); ev != "" {
		if v := eventMask(ev); v >= 0 {
			send = uint32(v)
		}
	}
	ss.conn.SetReadDeadline(time.Time{}) // no idle timeout once authenticated, as Asterisk
	// Reply (and FullyBooted) are queued under s.mu with the flag set, so no event broadcast
	// after this point is missed and none lands before the reply.
	s.mu.Lock()
	ss.authed = true
	ss.user = name
	ss.readPerm = read
	ss.sendEvents = send
	s.stats.Logins++
	s.notifyLocked()
	ss.send(reply(m, "Success", "Authentication accepted"))
	if send&classSystem != 0 && read&classSystem != 0 {
		fb := &ami.Message{}
		fb.Add("Event", "FullyBooted").Add("Privilege", "system,all").
			Add("Uptime", "1").Add("LastReload", "1").Add("Status", "Fully Booted")
		ss.send(fb)
	}
	s.mu.Unlock()
	ss.log.WithField("user", name).Debug("logged in")
	return true
}

func (ss *session) challengeAction(m *ami.Message) {
	if !strings.EqualFold(m.Get("AuthType"), "MD5") {
		ss.send(errorReply(m, "Must specify AuthType"))
		return
	}
	if ss.challenge == "" {
		var b [8]byte
		rand.Read(b[:])
		ss.challenge = strconv.FormatUint(binary.BigEndian.Uint64(b[:])>>33, 10) // ast_random is a long
	}
	r := &ami.Message{}
	r.Add("Response", "Success")
	addActionID(r, m)
	r.Add("Challenge", ss.challenge)
	ss.send(r)
}

func (ss *session) events(m *ami.Message) {
	v := eventMask(m.Get("EventMask"))
	if v < 0 {
		ss.send(errorReply(m, "Invalid event mask"))
		return
	}
	s := ss.srv
	s.mu.Lock()
	ss.sendEvents = uint32(v)
	s.mu.Unlock()
	r := &ami.Message{}
	r.Add("Response", "Success")
	addActionID(r, m)
	if v > 0 {
		r.Add("Events", "On")
	} else {
		r.Add("Events", "Off")
	}
	ss.send(r)
}

// coreShowChannels answers from the live channel table. It holds s.mu while it queues the whole
// list, so the list is consistent with the events queued before and after it.
func (ss *session) coreShowChannels(m *ami.Message) {
	s := ss.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	ack := &ami.Message{}
	ack.Add("Response", "Success")
	addActionID(ack, m)
	ack.Add("EventList", "start").Add("Message", "Channels will follow")
	pkts := [][]byte{ack.AppendWire(nil)}
	items := s.channels.list(m.Get("ActionID"), time.Now())
	for _, it := range items {
		pkts = append(pkts, it.AppendWire(nil))
	}
	done := &ami.Message{}
	done.Add("Event", "CoreShowChannelsComplete")
	addActionID(done, m)
	done.Add("EventList", "Complete").Add("ListItems", strconv.Itoa(len(items)))
	pkts = append(pkts, done.AppendWire(nil))
	ss.enqueue(pkts...)
}

func (ss *session) custom(m *ami.Message, h ActionHandler) {
	r, events := h(cloneMessage(m))
	if r == nil {
		r = (&ami.Message{}).Add("Response", "Success")
	} else {
		r = cloneMessage(r)
	}
	if _, has := r.Lookup("ActionID"); !has {
		if id, ok := m.Lookup("ActionID"); ok && id != "" && len(r.Headers) > 0 {
			hs := append([]ami.Header{r.Headers[0], {Key: "ActionID", Value: id}}, r.Headers[1:]...)
			r.Headers = hs
		}
	}
	ss.send(r)
	ss.srv.Broadcast(events...)
}

// reply builds astman_send_response_full's packet: Response, ActionID if sent, Message.
func reply(action *ami.Message, response, message string) *ami.Message {
	r := &ami.Message{}
	r.Add("Response", response)
	addActionID(r, action)
	if message != "" {
		r.Add("Message", message)
	}
	return r
}

func errorReply(action *ami.Message, message string) *ami.Message {
	return reply(action, "Error", message)
}

// addActionID echoes the action's ActionID, only when the client sent a non-empty one.
func addActionID(r, action *ami.Message) {
	if action == nil {
		return
	}
	if id := action.Get("ActionID"); id != "" {
		r.Add("ActionID", id)
	}
}
