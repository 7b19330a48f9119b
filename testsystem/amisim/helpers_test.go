package amisim

import (
	"crypto/md5"
	"encoding/hex"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

const (
	testUser   = "crm"
	testSecret = "crm-test-secret"
	ioTimeout  = 5 * time.Second
)

// startServer runs a Server on a loopback port with the crm account and a short login delay.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]User{testUser: {Secret: testSecret}}
	}
	if cfg.AuthFailDelay == 0 {
		cfg.AuthFailDelay = 10 * time.Millisecond
	}
	srv := New(cfg)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// client is a raw AMI client: a net.Conn and an ami.Reader, as the gateway reads.
type client struct {
	t      *testing.T
	conn   net.Conn
	rd     *ami.Reader
	banner string
}

func dial(t *testing.T, srv *Server) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr(), ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", srv.Addr(), err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, rd: ami.NewReader(conn, ami.ReaderOptions{})}
	conn.SetReadDeadline(time.Now().Add(ioTimeout))
	c.banner, err = c.rd.ReadBanner()
	if err != nil {
		t.Fatalf("read banner: %v", err)
	}
	return c
}

// sendRaw writes text as is.
func (c *client) sendRaw(text string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write([]byte(text)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes an action from "Key: Value" lines, CRLF-terminated.
func (c *client) send(lines ...string) {
	c.t.Helper()
	c.sendRaw(strings.Join(lines, "\r\n") + "\r\n\r\n")
}

// next reads the next packet or fails the test.
func (c *client) next() *ami.Message {
	c.t.Helper()
	m, err := c.nextErr(ioTimeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) nextErr(timeout time.Duration) (*ami.Message, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	return c.rd.ReadMessage()
}

// response reads packets until a Response, skipping events, and returns it.
func (c *client) response() *ami.Message {
	c.t.Helper()
	for {
		if m := c.next(); isResponse(m) {
			return m
		}
	}
}

// login logs in plainly and reads the reply and FullyBooted.
func (c *client) login(extra ...string) {
	c.t.Helper()
	c.send(append([]string{"Action: Login", "Username: " + testUser, "Secret: " + testSecret}, extra...)...)
	if r := c.next(); r.Get("Message") != "Authentication accepted" {
		c.t.Fatalf("login reply: %q", r.String())
	}
	for _, e := range extra {
		if strings.HasPrefix(e, "Events:") {
			return // a mask may exclude the system class, and so FullyBooted
		}
	}
	if fb := c.next(); fb.Event() != "FullyBooted" {
		c.t.Fatalf("after login: %q, want FullyBooted", fb.String())
	}
}

func md5Key(challenge, secret string) string {
	sum := md5.Sum([]byte(challenge + secret))
	return hex.EncodeToString(sum[:])
}

func loadTestRecording(t *testing.T, name string) *Recording {
	t.Helper()
	rec, err := LoadRecording(filepath.Join("testdata", name+".ami"))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return rec
}

// wantHeaders checks m's headers in order, exactly.
func wantHeaders(t *testing.T, m *ami.Message, want ...string) {
	t.Helper()
	var got []string
	for _, h := range m.Headers {
		got = append(got, h.Key+": "+h.Value)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("packet:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// isResponse tells a reply from an event by its first header (an OriginateResponse event also
// carries a Response header).
func isResponse(m *ami.Message) bool {
	return len(m.Headers) > 0 && m.Headers[0].Key == "Response"
}
