package amisim

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

func TestBanner(t *testing.T) {
	tests := []struct {
		name    string
		version string
		want    string
	}{
		{"default is Asterisk 22", "", "Asterisk Call Manager/11.0.0"},
		{"configured", "9.0.0", "Asterisk Call Manager/9.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Version: tt.version})
			c := dial(t, srv)
			if c.banner != tt.want {
				t.Fatalf("banner %q, want %q", c.banner, tt.want)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name string
		// action builds the login packet(s) text; challenge is filled from a Challenge reply when
		// md5 is set.
		md5     bool
		lines   func(challenge string) []string
		lf      bool // LF line ends instead of CRLF
		wantOK  bool
		wantMsg string
	}{
		{"plain", false, func(string) []string {
			return []string{"Action: Login", "ActionID: l1", "Username: crm", "Secret: " + testSecret}
		}, false, true, "Authentication accepted"},
		{"plain with LF line ends", false, func(string) []string {
			return []string{"Action: Login", "ActionID: l1", "Username: crm", "Secret: " + testSecret}
		}, true, true, "Authentication accepted"},
		{"md5", true, func(ch string) []string {
			return []string{"Action: Login", "ActionID: l1", "AuthType: MD5", "Username: crm", "Key: " + md5Key(ch, testSecret)}
		}, false, true, "Authentication accepted"},
		{"wrong secret", false, func(string) []string {
			return []string{"Action: Login", "ActionID: l1", "Username: crm", "Secret: nope"}
		}, false, false, "Authentication failed"},
		{"md5 wrong key", true, func(ch string) []string {
			return []string{"Action: Login", "ActionID: l1", "AuthType: MD5", "Username: crm", "Key: " + md5Key(ch, "nope")}
		}, false, false, "Authentication failed"},
		{"unknown user", false, func(string) []string {
			return []string{"Action: Login", "ActionID: l1", "Username: ghost", "Secret: " + testSecret}
		}, false, false, "Authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{})
			c := dial(t, srv)
			challenge := ""
			if tt.md5 {
				c.send("Action: Challenge", "AuthType: MD5", "ActionID: c1")
				r := c.next()
				challenge = r.Get("Challenge")
				if r.Response() != "Success" || r.ActionID() != "c1" || challenge == "" || strings.Trim(challenge, "0123456789") != "" {
					t.Fatalf("challenge reply %q", r.String())
				}
			}
			text := strings.Join(tt.lines(challenge), "\r\n") + "\r\n\r\n"
			if tt.lf {
				text = strings.ReplaceAll(text, "\r\n", "\n")
			}
			c.sendRaw(text)
			r := c.next()
			if tt.wantOK {
				wantHeaders(t, r, "Response: Success", "ActionID: l1", "Message: "+tt.wantMsg)
				fb := c.next()
				if fb.Event() != "FullyBooted" || fb.Get("Privilege") != "system,all" || fb.Get("Status") != "Fully Booted" {
					t.Fatalf("after login %q", fb.String())
				}
				if got := srv.Sessions(); got != 1 {
					t.Fatalf("Sessions() = %d, want 1", got)
				}
				return
			}
			wantHeaders(t, r, "Response: Error", "ActionID: l1", "Message: "+tt.wantMsg)
			// Asterisk closes the socket after a failed login.
			if m, err := c.nextErr(ioTimeout); err == nil {
				t.Fatalf("got %q after failed login, want the socket closed", m.String())
			} else if !errors.Is(err, io.EOF) {
				t.Logf("closed with %v", err)
			}
			if got := srv.Stats().AuthFailures; got != 1 {
				t.Fatalf("AuthFailures = %d", got)
			}
		})
	}
}

func TestAuthFailDelay(t *testing.T) {
	srv := startServer(t, Config{AuthFailDelay: 200 * time.Millisecond})
	c := dial(t, srv)
	start := time.Now()
	c.send("Action: Login", "Username: crm", "Secret: nope")
	r := c.next()
	if r.Get("Message") != "Authentication failed" {
		t.Fatalf("reply %q", r.String())
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("failed login answered after %v, want the configured delay", d)
	}
}

func TestBeforeLogin(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"ping is denied", []string{"Action: Ping", "ActionID: p1"},
			[]string{"Response: Error", "ActionID: p1", "Message: Permission denied"}},
		{"unknown action is denied", []string{"Action: Frobnicate"},
			[]string{"Response: Error", "Message: Permission denied"}},
		{"missing action comes first", []string{"ActionID: x1", "Foo: bar"},
			[]string{"Response: Error", "ActionID: x1", "Message: Missing action in request"}},
		{"challenge without AuthType", []string{"Action: Challenge"},
			[]string{"Response: Error", "Message: Must specify AuthType"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{})
			c := dial(t, srv)
			c.send(tt.lines...)
			wantHeaders(t, c.next(), tt.want...)
		})
	}
}

func TestLogoff(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	c.send("Action: Logoff", "ActionID: bye")
	wantHeaders(t, c.next(), "Response: Goodbye", "ActionID: bye", "Message: Thanks for all the fish.")
	if _, err := c.nextErr(ioTimeout); err == nil {
		t.Fatal("socket still open after Logoff")
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := srv.WaitSessions(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

func TestActions(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		check func(t *testing.T, r *ami.Message)
	}{
		{"ping with ActionID", []string{"Action: Ping", "ActionID: p1"}, func(t *testing.T, r *ami.Message) {
			if len(r.Headers) != 4 || r.Headers[0].Value != "Success" || r.Headers[1].Key != "ActionID" ||
				r.Get("Ping") != "Pong" {
				t.Fatalf("reply %q", r.String())
			}
			ts := ami.ParseTimestamp(r.Get("Timestamp"))
			if time.Since(ts) > time.Minute || len(strings.SplitN(r.Get("Timestamp"), ".", 2)[1]) != 6 {
				t.Fatalf("Timestamp %q", r.Get("Timestamp"))
			}
		}},
		{"ping without ActionID echoes none", []string{"Action: Ping"}, func(t *testing.T, r *ami.Message) {
			if _, ok := r.Lookup("ActionID"); ok || r.Get("Ping") != "Pong" {
				t.Fatalf("reply %q", r.String())
			}
		}},
		{"action name is case-insensitive", []string{"action: PING", "actionid: p2"}, func(t *testing.T, r *ami.Message) {
			if r.Get("Ping") != "Pong" || r.ActionID() != "p2" {
				t.Fatalf("reply %q", r.String())
			}
		}},
		{"unknown action", []string{"Action: Frobnicate", "ActionID: u1"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Error", "ActionID: u1",
				"Message: Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands.")
		}},
		{"missing action", []string{"Foo: bar"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Error", "Message: Missing action in request")
		}},
		{"events off", []string{"Action: Events", "EventMask: off", "ActionID: e1"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Success", "ActionID: e1", "Events: Off")
		}},
		{"events on", []string{"Action: Events", "EventMask: on"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Success", "Events: On")
		}},
		{"events empty mask", []string{"Action: Events", "EventMask: "}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Error", "Message: Invalid event mask")
		}},
		{"second login", []string{"Action: Login", "Username: crm", "Secret: x"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Success", "Message: Already authenticated")
		}},
		{"redirect", []string{"Action: Redirect", "Channel: Local/101@phones-00000001;1", "Context: internal", "Exten: 102", "Priority: 1", "ActionID: r1"},
			func(t *testing.T, r *ami.Message) {
				wantHeaders(t, r, "Response: Success", "ActionID: r1", "Message: Redirect successful")
			}},
		{"hangup", []string{"Action: Hangup", "Channel: Local/101@phones-00000001;1"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Success", "Message: Channel Hungup")
		}},
		{"coreshowchannels with none", []string{"Action: CoreShowChannels", "ActionID: s1"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Success", "ActionID: s1", "EventList: start", "Message: Channels will follow")
		}},
		{"originate without channel", []string{"Action: Originate", "Exten: 100"}, func(t *testing.T, r *ami.Message) {
			wantHeaders(t, r, "Response: Error", "Message: Channel not specified")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{})
			c := dial(t, srv)
			c.login()
			c.send(tt.lines...)
			tt.check(t, c.next())
		})
	}
}

func TestLineTooLong(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	c.send("Action: Ping", "Variable: x="+strings.Repeat("a", 2000))
	wantHeaders(t, c.next(), "Response: Error", "Message: Failed to parse message: line too long")
	c.send("Action: Ping", "ActionID: after")
	if r := c.next(); r.Get("Ping") != "Pong" {
		t.Fatalf("session unusable after a long line: %q", r.String())
	}
}

func TestHandle(t *testing.T) {
	srv := startServer(t, Config{})
	srv.Handle("Redirect", func(action *ami.Message) (*ami.Message, []*ami.Message) {
		r := (&ami.Message{}).Add("Response", "Error").Add("Message", "No such channel")
		ev := (&ami.Message{}).Add("Event", "UserEvent").Add("Privilege", "user,all").Add("UserEvent", "seen "+action.Get("Channel"))
		return r, []*ami.Message{ev}
	})
	c := dial(t, srv)
	c.login()
	c.send("Action: Redirect", "Channel: SIP/x-00000001", "ActionID: r9")
	wantHeaders(t, c.next(), "Response: Error", "ActionID: r9", "Message: No such channel")
	if ev := c.next(); ev.Get("UserEvent") != "seen SIP/x-00000001" {
		t.Fatalf("event %q", ev.String())
	}
	if acts := srv.Actions(); len(acts) != 2 || acts[1].Get("Action") != "Redirect" {
		t.Fatalf("Actions() = %d", len(acts))
	}
}

func TestSetSecret(t *testing.T) {
	srv := startServer(t, Config{})
	srv.SetSecret(testUser, "rotated")
	c := dial(t, srv)
	c.send("Action: Login", "Username: crm", "Secret: "+testSecret)
	if r := c.next(); r.Get("Message") != "Authentication failed" {
		t.Fatalf("old secret: %q", r.String())
	}
	c2 := dial(t, srv)
	c2.send("Action: Login", "Username: crm", "Secret: rotated")
	if r := c2.next(); r.Get("Message") != "Authentication accepted" {
		t.Fatalf("new secret: %q", r.String())
	}
}

func TestIgnorePings(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	srv.IgnorePings(true)
	c.send("Action: Ping", "ActionID: p1")
	if m, err := c.nextErr(300 * time.Millisecond); err == nil {
		t.Fatalf("got %q while pings are ignored", m.String())
	} else if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
	// The reader timed out mid-nothing; start a fresh one on the same socket.
	c.rd = ami.NewReader(c.conn, ami.ReaderOptions{})
	srv.IgnorePings(false)
	c.send("Action: Ping", "ActionID: p2")
	if r := c.next(); r.ActionID() != "p2" || r.Get("Ping") != "Pong" {
		t.Fatalf("reply %q", r.String())
	}
}

func TestEventClasses(t *testing.T) {
	cdr := (&ami.Message{}).Add("Event", "Cdr").Add("Privilege", "cdr,all").Add("UniqueID", "1.1")
	call := (&ami.Message{}).Add("Event", "Newstate").Add("Privilege", "call,all").Add("Uniqueid", "1.2")
	marker := (&ami.Message{}).Add("Event", "UserEvent").Add("Privilege", "user,all").Add("UserEvent", "end")
	tests := []struct {
		name  string
		read  []string
		login []string // extra login headers
		setup []string // an action after login
		want  []string // events received before the marker
	}{
		{"all", nil, nil, nil, []string{"Cdr", "Newstate"}},
		{"read cdr only", []string{"cdr", "user"}, nil, nil, []string{"Cdr"}},
		{"login mask", nil, []string{"Events: call,user"}, nil, []string{"Newstate"}},
		{"events action", nil, nil, []string{"Action: Events", "EventMask: cdr,user"}, []string{"Cdr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{Users: map[string]User{testUser: {Secret: testSecret, Read: tt.read}}})
			c := dial(t, srv)
			c.send(append([]string{"Action: Login", "Username: crm", "Secret: " + testSecret}, tt.login...)...)
			c.response()
			if tt.setup != nil {
				c.send(tt.setup...)
				c.response()
			}
			srv.Broadcast(cdr, call, marker)
			var got []string
			for {
				m := c.next()
				if m.Event() == "UserEvent" {
					break
				}
				if m.Event() != "FullyBooted" {
					got = append(got, m.Event())
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("events %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEventsOffAtLogin(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login("Events: off")
	srv.Broadcast((&ami.Message{}).Add("Event", "Newstate").Add("Privilege", "call,all"))
	c.send("Action: Ping", "ActionID: p")
	// No FullyBooted (no system class) and no event: the next packet is the Pong.
	if r := c.next(); r.ActionID() != "p" {
		t.Fatalf("got %q, want only the Ping reply", r.String())
	}
}

func TestTimestamps(t *testing.T) {
	srv := startServer(t, Config{Timestamps: true})
	c := dial(t, srv)
	c.login()
	srv.Broadcast((&ami.Message{}).Add("Event", "Newstate").Add("Privilege", "call,all").Add("Channel", "x"))
	m := c.next()
	if len(m.Headers) != 4 || m.Headers[2].Key != "Timestamp" || time.Since(m.Timestamp()) > time.Minute {
		t.Fatalf("event %q, want Timestamp after Privilege", m.String())
	}
}

func TestDropConnections(t *testing.T) {
	srv := startServer(t, Config{})
	a, b := dial(t, srv), dial(t, srv)
	a.login()
	b.login()
	rec := loadTestRecording(t, "inbound-answered")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := srv.NewPlayer(rec, 0)
	if err := p.Step(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if n := srv.DropConnections(); n != 2 {
		t.Fatalf("DropConnections() = %d, want 2", n)
	}
	for name, c := range map[string]*client{"a": a, "b": b} {
		n := 0
		for {
			_, err := c.nextErr(ioTimeout)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("client %s: connection not cut: %v", name, err)
				}
				break
			}
			n++
		}
		if n > 20 {
			t.Fatalf("client %s read %d packets after 20 events", name, n)
		}
	}
	if err := srv.WaitSessions(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// The server keeps serving: a client reconnects and the rest of the call plays to it.
	c := dial(t, srv)
	c.login()
	if err := p.Rest(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < rec.Len(); i++ {
		if m := c.next(); m.Event() != rec.Packets[i].Msg.Event() {
			t.Fatalf("packet %d: %s, want %s", i, m.Event(), rec.Packets[i].Msg.Event())
		}
	}
}

func TestSlowClientDisconnected(t *testing.T) {
	srv := startServer(t, Config{SendBuffer: 4096, WriteTimeout: 100 * time.Millisecond})
	fast := dial(t, srv)
	fast.login()
	slow := dial(t, srv)
	slow.login()
	if tc, ok := slow.conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	// The slow client now never reads; the fast one reads everything in its own goroutine.
	rec := loadTestRecording(t, "inbound-answered")
	const copies = 8
	var calls []Scheduled
	for i := 1; i <= copies; i++ {
		calls = append(calls, Scheduled{Rec: rec.Fresh(i)})
	}
	want := copies * rec.Len()
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	go func() {
		n := 0
		for n < want {
			fast.conn.SetReadDeadline(time.Now().Add(ioTimeout))
			if _, err := fast.rd.ReadMessage(); err != nil {
				got <- result{n, err}
				return
			}
			n++
		}
		got <- result{n, nil}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.PlayAll(ctx, calls, 0); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || r.n != want {
		t.Fatalf("fast client got %d of %d events: %v", r.n, want, r.err)
	}
	if err := srv.WaitSessions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.SlowDisconnects != 1 {
		t.Fatalf("SlowDisconnects = %d, want 1", st.SlowDisconnects)
	}
	t.Logf("played %d events in %v", want, time.Since(start))
}

func TestCloseEndsSessions(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	srv.Close()
	if _, err := c.nextErr(ioTimeout); err == nil {
		t.Fatal("session open after Close")
	}
	if err := srv.Play(context.Background(), loadTestRecording(t, "inbound-answered"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Play after Close: %v, want ErrClosed", err)
	}
}
