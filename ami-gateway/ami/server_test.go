package ami

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAMI is a small AMI server for the client tests: real TCP on 127.0.0.1, real framing,
// Asterisk's login rules (MD5 challenge, 1 s-style delay then close on a bad secret), Ping,
// Logoff/Goodbye, and Asterisk's 100 ms write timeout on every write.
type fakeAMI struct {
	t      testing.TB
	ln     net.Listener
	user   string
	secret string
	banner string

	authDelay  time.Duration // sleep before "Authentication failed", as Asterisk does
	loginReply string        // replaces the success reply to Login (e.g. Already authenticated)
	dropPing   atomic.Bool   // do not answer Ping
	handler    func(fc *fakeConn, m *Message) bool

	writeErrs atomic.Int64 // writes that hit the 100 ms write timeout: Asterisk would drop us
	mu        sync.Mutex
	logins    []*Message
	actions   []*Message
	conns     []*fakeConn
	authed    chan *fakeConn // every logged-in connection
}

type fakeConn struct {
	srv     *fakeAMI
	c       net.Conn
	n       int // 1-based connection number (accepted)
	wmu     sync.Mutex
	written bytes.Buffer // everything written, for the raw tap test
}

const testSecret = "s3cret-Test-value"

func newFakeAMI(t testing.TB) *fakeAMI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeAMI{t: t, ln: ln, user: "crm", secret: testSecret, banner: "Asterisk Call Manager/11.0.0",
		authed: make(chan *fakeConn, 100)}
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, fc := range s.conns {
			fc.c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

func (s *fakeAMI) addr() string { return s.ln.Addr().String() }

func (s *fakeAMI) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		fc := &fakeConn{srv: s, c: c, n: len(s.conns) + 1}
		s.conns = append(s.conns, fc)
		s.mu.Unlock()
		go fc.serve()
	}
}

func (s *fakeAMI) loginCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logins)
}

// waitConn waits for the next logged-in connection.
func (s *fakeAMI) waitConn(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case fc := <-s.authed:
		return fc
	case <-time.After(5 * time.Second):
		t.Fatal("no client logged in")
		return nil
	}
}

// send writes raw bytes with Asterisk's write timeout.
func (fc *fakeConn) send(p string) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = fc.c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := io.WriteString(fc.c, p)
	fc.written.WriteString(p[:n])
	if err != nil {
		fc.srv.writeErrs.Add(1)
	}
	return err
}

func (fc *fakeConn) writtenBytes() []byte {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return bytes.Clone(fc.written.Bytes())
}

func idLine(m *Message) string {
	if id := m.ActionID(); id != "" {
		return "ActionID: " + id + "\r\n"
	}
	return ""
}

func (fc *fakeConn) serve() {
	s := fc.srv
	defer fc.c.Close()
	s.mu.Lock()
	banner, authDelay, loginReply := s.banner, s.authDelay, s.loginReply
	s.mu.Unlock()
	if fc.send(banner+"\r\n") != nil {
		return
	}
	rd := NewReader(fc.c, ReaderOptions{})
	challenge := ""
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.actions = append(s.actions, m)
		s.mu.Unlock()
		id := idLine(m)
		switch strings.ToLower(m.Get("Action")) {
		case "challenge":
			challenge = "471112343"
			fc.send("Response: Success\r\n" + id + "Challenge: " + challenge + "\r\n\r\n")
		case "login":
			s.mu.Lock()
			s.logins = append(s.logins, m)
			secret := s.secret
			s.mu.Unlock()
			ok := m.Get("Username") == s.user
			if strings.EqualFold(m.Get("AuthType"), "md5") {
				ok = ok && challenge != "" && m.Get("Key") == md5Key(challenge, secret)
			} else {
				ok = ok && m.Get("Secret") == secret
			}
			if !ok {
				time.Sleep(authDelay)
				fc.send("Response: Error\r\n" + id + "Message: Authentication failed\r\n\r\n")
				return
			}
			reply := "Response: Success\r\n" + id + "Message: Authentication accepted\r\n\r\n"
			if loginReply != "" {
				reply = loginReply
			}
			fc.send(reply)
			fc.send("Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 538\r\nLastReload: 106\r\nStatus: Fully Booted\r\n\r\n")
			s.authed <- fc
		case "ping":
			if !s.dropPing.Load() {
				fc.send("Response: Success\r\n" + id + "Ping: Pong\r\nTimestamp: 1795634950.123456\r\n\r\n")
			}
		case "logoff":
			fc.send("Response: Goodbye\r\n" + id + "Message: Thanks for all the fish.\r\n\r\n")
			return
		default:
			s.mu.Lock()
			h := s.handler
			s.mu.Unlock()
			if h != nil && h(fc, m) {
				continue
			}
			fc.send("Response: Error\r\n" + id + "Message: Invalid/unknown command: " + m.Get("Action") + ". Use Action: ListCommands to show available commands.\r\n\r\n")
		}
	}
}

// set changes the server's settings under its lock.
func (s *fakeAMI) set(f func(s *fakeAMI)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *fakeAMI) setHandler(h func(fc *fakeConn, m *Message) bool) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

func (s *fakeAMI) actionsNamed(name string) []*Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Message
	for _, m := range s.actions {
		if strings.EqualFold(m.Get("Action"), name) {
			out = append(out, m)
		}
	}
	return out
}
