package ami

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/internal/config"
)

// testConfig: short intervals so the whole package runs in a few seconds.
func testConfig(srv *fakeAMI) (Config, *logtest.Hook, *prometheus.Registry) {
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	reg := prometheus.NewRegistry()
	return Config{
		Address:        srv.addr(),
		Username:       "crm",
		Secret:         config.Secret(testSecret),
		Auth:           "md5",
		Events:         "call,cdr,agent,dialplan",
		PingInterval:   time.Hour, // tests that need keep-alive set it
		PingTimeout:    100 * time.Millisecond,
		ReconnectMin:   5 * time.Millisecond,
		ReconnectMax:   40 * time.Millisecond,
		ConnectTimeout: 3 * time.Second,
		EventBuffer:    1000,
		Logger:         logger,
		Registerer:     reg,
	}, hook, reg
}

func dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next item of Events, failing after a timeout.
func next(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

// waitState skips events until a state change of the given state and returns it and the events
// skipped.
func waitState(t *testing.T, c *Client, want State) (*StateChange, []*Message) {
	t.Helper()
	var skipped []*Message
	for {
		ev := next(t, c)
		if ev.State != nil {
			if ev.State.State == want {
				return ev.State, skipped
			}
			continue
		}
		skipped = append(skipped, ev.Msg)
	}
}

// noSecretLogged checks that no log line carries the secret.
func noSecretLogged(t *testing.T, hook *logtest.Hook) {
	t.Helper()
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		if strings.Contains(line, testSecret) {
			t.Fatalf("secret in log line: %s", line)
		}
	}
}

func TestClientLogin(t *testing.T) {
	for _, auth := range []string{"plain", "md5"} {
		t.Run(auth, func(t *testing.T) {
			srv := newFakeAMI(t)
			cfg, hook, reg := testConfig(srv)
			cfg.Auth = auth
			c := dial(t, cfg)

			ev := next(t, c)
			if ev.State == nil || ev.State.State != StateConnected || ev.State.Conn != 1 || ev.State.Reconnect || ev.State.Banner != "Asterisk Call Manager/11.0.0" {
				t.Fatalf("first item %+v %+v", ev, ev.State)
			}
			if ev = next(t, c); ev.Msg == nil || ev.Msg.Event() != "FullyBooted" {
				t.Fatalf("second item %+v", ev)
			}
			if err := c.Ready(); err != nil {
				t.Fatal(err)
			}
			login := srv.actionsNamed("Login")[0]
			if login.Get("Username") != "crm" || login.Get("Events") != "call,cdr,agent,dialplan" || login.ActionID() == "" {
				t.Fatalf("login %q", login.Headers)
			}
			switch auth {
			case "plain":
				if login.Get("Secret") != testSecret {
					t.Fatalf("plain login %q", login.Headers)
				}
			case "md5":
				if _, has := login.Lookup("Secret"); has || login.Get("AuthType") != "MD5" || login.Get("Key") != md5Key("471112343", testSecret) {
					t.Fatalf("md5 login %q", login.Headers)
				}
				if len(srv.actionsNamed("Challenge")) != 1 {
					t.Fatal("no challenge")
				}
			}
			c.Close()
			if len(srv.actionsNamed("Logoff")) != 1 {
				t.Fatal("Close did not log off")
			}
			var last *StateChange
			for ev := range c.Events() {
				if ev.State != nil {
					last = ev.State
				}
			}
			if last == nil || last.State != StateDisconnected || !errors.Is(last.Err, ErrClosed) {
				t.Fatalf("last state %+v", last)
			}
			if c.Status().State != StateClosed || !errors.Is(c.Ready(), ErrClosed) {
				t.Fatalf("status %+v", c.Status())
			}
			if _, err := c.Action(context.Background(), (&Message{}).Add("Action", "Ping")); !errors.Is(err, ErrClosed) {
				t.Fatalf("action after close: %v", err)
			}
			if got := metric(t, reg, "ami_connect_attempts_total", "ok"); got != 1 {
				t.Fatalf("connect ok = %v", got)
			}
			noSecretLogged(t, hook)
		})
	}
}

// metric reads a counter or gauge from the registry; label selects a series of a vector by its
// label value ("" for an unlabelled metric).
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == "" && len(m.GetLabel()) == 0
			for _, lp := range m.GetLabel() {
				match = match || lp.GetValue() == label
			}
			if !match {
				continue
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func TestClientWrongSecret(t *testing.T) {
	t.Run("Dial fails fast and says so", func(t *testing.T) {
		srv := newFakeAMI(t)
		srv.set(func(s *fakeAMI) { s.authDelay = 50 * time.Millisecond })
		cfg, hook, _ := testConfig(srv)
		cfg.Secret = "wrong-" + testSecret
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := Dial(ctx, cfg)
		if !errors.Is(err, ErrAuthFailed) || !errors.Is(err, ErrLoginRejected) {
			t.Fatalf("err %v", err)
		}
		if got, want := err.Error(), "AMI login as crm rejected: wrong username or secret"; got != want {
			t.Fatalf("error text %q, want %q", got, want)
		}
		var ne net.Error
		if errors.As(err, &ne) {
			t.Fatal("auth error looks like a network error")
		}
		for _, e := range hook.AllEntries() {
			line, _ := e.String()
			if strings.Contains(line, "wrong-"+testSecret) {
				t.Fatalf("secret logged: %s", line)
			}
		}
	})
	t.Run("background client reports it and retries with backoff", func(t *testing.T) {
		srv := newFakeAMI(t)
		srv.set(func(s *fakeAMI) { s.authDelay = 20 * time.Millisecond })
		cfg, _, reg := testConfig(srv)
		cfg.Secret = "wrong"
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for srv.loginCount() < 4 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d login attempts", srv.loginCount())
			}
			time.Sleep(5 * time.Millisecond)
		}
		err = c.Ready()
		if !errors.Is(err, ErrAuthFailed) || !strings.Contains(err.Error(), "wrong username or secret") {
			t.Fatalf("Ready() = %v", err)
		}
		if st := c.Status(); st.Failures < 3 || st.State == StateConnected {
			t.Fatalf("status %+v", st)
		}
		if _, err := c.Action(context.Background(), (&Message{}).Add("Action", "Ping")); !errors.Is(err, ErrNotConnected) || !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("action while rejected: %v", err)
		}
		if got := metric(t, reg, "ami_connect_attempts_total", "auth_failed"); got < 3 {
			t.Fatalf("auth_failed attempts %v", got)
		}
		// The secret is fixed on the PBX side: the client gets in on its next attempt.
		srv.mu.Lock()
		srv.secret = "wrong"
		srv.mu.Unlock()
		if sc, _ := waitState(t, c, StateConnected); sc.Conn != 1 {
			t.Fatalf("%+v", sc)
		}
	})
}

func TestClientAlreadyAuthenticated(t *testing.T) {
	srv := newFakeAMI(t)
	srv.set(func(s *fakeAMI) { s.loginReply = "Response: Success\r\nMessage: Already authenticated\r\n\r\n" })
	cfg, _, _ := testConfig(srv)
	cfg.Auth = "plain"
	c := dial(t, cfg)
	if err := c.Ready(); err != nil {
		t.Fatal(err)
	}
}

func TestClientPingTimeoutReconnects(t *testing.T) {
	srv := newFakeAMI(t)
	cfg, _, reg := testConfig(srv)
	cfg.PingInterval = 30 * time.Millisecond
	cfg.PingTimeout = 300 * time.Millisecond // generous: a loaded CI machine must not drop a live link
	c := dial(t, cfg)
	if sc, _ := waitState(t, c, StateConnected); sc.Conn != 1 {
		t.Fatal(sc)
	}
	// Pings are answered: the connection stays up over several intervals.
	time.Sleep(150 * time.Millisecond)
	if st := c.Status(); st.State != StateConnected || st.Conn != 1 {
		t.Fatalf("dropped while pongs came: %+v", st)
	}
	if n := len(srv.actionsNamed("Ping")); n < 2 {
		t.Fatalf("%d pings", n)
	}
	srv.dropPing.Store(true)
	down, _ := waitState(t, c, StateDisconnected)
	if !errors.Is(down.Err, ErrPingTimeout) || down.Conn != 1 {
		t.Fatalf("disconnect %+v", down)
	}
	srv.dropPing.Store(false)
	up, _ := waitState(t, c, StateConnected)
	if up.Conn != 2 || !up.Reconnect {
		t.Fatalf("reconnect %+v", up)
	}
	if metric(t, reg, "ami_reconnects_total", "") < 1 {
		t.Fatal("reconnect not counted")
	}
}

func TestClientServerDropsMidPacket(t *testing.T) {
	srv := newFakeAMI(t)
	cfg, _, reg := testConfig(srv)
	c := dial(t, cfg)
	fc := srv.waitConn(t)
	waitState(t, c, StateConnected)
	fc.send("Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/101@phones-0000002b;1\r\n\r\nEvent: Hangup\r\nChannel: Local/101@pho")
	fc.c.Close()
	down, msgs := waitState(t, c, StateDisconnected)
	if !errors.Is(down.Err, ErrTruncated) {
		t.Fatalf("disconnect cause %v", down.Err)
	}
	var names []string
	for _, m := range msgs {
		names = append(names, m.Event())
	}
	if strings.Join(names, ",") != "FullyBooted,Newchannel" {
		t.Fatalf("events before the drop: %v (the cut Hangup must not be delivered)", names)
	}
	up, _ := waitState(t, c, StateConnected)
	if up.Conn != 2 || !up.Reconnect {
		t.Fatalf("%+v", up)
	}
	// The resync the gateway does after a reconnect works on the new connection.
	srv.setHandler(coreShowChannels(3))
	items, err := c.ActionList(context.Background(), (&Message{}).Add("Action", "CoreShowChannels"))
	if err != nil || len(items) != 3 {
		t.Fatalf("resync: %d items, %v", len(items), err)
	}
	if got := metric(t, reg, "ami_parse_errors_total", "truncated"); got != 1 {
		t.Fatalf("truncated parse errors %v", got)
	}
}

// coreShowChannels answers CoreShowChannels like Asterisk, with a plain event in the middle of
// the list, and Status with an error.
func coreShowChannels(n int) func(fc *fakeConn, m *Message) bool {
	return func(fc *fakeConn, m *Message) bool {
		id := idLine(m)
		switch m.Get("Action") {
		case "CoreShowChannels":
			var b strings.Builder
			b.WriteString("Response: Success\r\n" + id + "EventList: start\r\nMessage: Channels will follow\r\n\r\n")
			for i := range n {
				if i == 1 {
					b.WriteString("Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: Local/x\r\n\r\n")
				}
				fmt.Fprintf(&b, "Event: CoreShowChannel\r\n%sChannel: Local/10%d@phones-0000000%d;1\r\nLinkedid: 1795634950.%d\r\nBridgeId: \r\n\r\n", id, i, i, i)
			}
			fmt.Fprintf(&b, "Event: CoreShowChannelsComplete\r\n%sEventList: Complete\r\nListItems: %d\r\n\r\n", id, n)
			fc.send(b.String())
			return true
		case "Status":
			fc.send("Response: Error\r\n" + id + "Message: Permission denied\r\n\r\n")
			return true
		}
		return false
	}
}

func TestClientActionList(t *testing.T) {
	srv := newFakeAMI(t)
	srv.setHandler(coreShowChannels(5))
	cfg, _, _ := testConfig(srv)
	c := dial(t, cfg)
	waitState(t, c, StateConnected)
	cases := []struct {
		name    string
		action  *Message
		items   int
		errText string
	}{
		{"CoreShowChannels", (&Message{}).Add("Action", "CoreShowChannels"), 5, ""},
		{"CoreShowChannels with own ActionID", (&Message{}).Add("Action", "CoreShowChannels").Add("ActionID", "resync-1"), 5, ""},
		{"error reply", (&Message{}).Add("Action", "Status"), 0, "Permission denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := c.ActionList(context.Background(), tc.action)
			if tc.errText != "" {
				var ae *ActionError
				if !errors.As(err, &ae) || ae.Message != tc.errText || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tc.items {
				t.Fatalf("%d items", len(items))
			}
			for i, it := range items {
				if it.Event() != "CoreShowChannel" || it.Get("Linkedid") != "1795634950."+strconv.Itoa(i) {
					t.Fatalf("item %d %q", i, it.Headers)
				}
				if id := tc.action.ActionID(); id != "" && it.ActionID() != id {
					t.Fatalf("item ActionID %q", it.ActionID())
				}
			}
			// The plain event inside the list went to Events, not into the list.
			var got *Message
			for got == nil {
				if ev := next(t, c); ev.Msg != nil && ev.Msg.Event() == "Newexten" {
					got = ev.Msg
				}
			}
		})
	}
}

func TestClientConcurrentActions(t *testing.T) {
	srv := newFakeAMI(t)
	// Echo answers after a random delay, so replies come back out of order.
	srv.setHandler(func(fc *fakeConn, m *Message) bool {
		if m.Get("Action") != "Echo" {
			return false
		}
		go func() {
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
			fc.send("Response: Success\r\n" + idLine(m) + "Value: " + m.Get("Value") + "\r\n\r\n")
		}()
		return true
	})
	cfg, _, reg := testConfig(srv)
	c := dial(t, cfg)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := strconv.Itoa(i)
			resp, err := c.Action(context.Background(), (&Message{}).Add("Action", "Echo").Add("Value", v))
			if err != nil {
				errs <- err
				return
			}
			if resp.Get("Value") != v || resp.ActionID() == "" {
				errs <- fmt.Errorf("action %s got %q", v, resp.Headers)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Run("own ActionID is kept", func(t *testing.T) {
		resp, err := c.Action(context.Background(), (&Message{}).Add("Action", "Echo").Add("ActionID", "c2c-000123").Add("Value", "x"))
		if err != nil || resp.ActionID() != "c2c-000123" {
			t.Fatalf("%v %v", resp, err)
		}
	})
	t.Run("error reply", func(t *testing.T) {
		resp, err := c.Action(context.Background(), (&Message{}).Add("Action", "Nonsense"))
		var ae *ActionError
		if !errors.As(err, &ae) || resp == nil || !strings.HasPrefix(ae.Message, "Invalid/unknown command") || ae.Action != "Nonsense" {
			t.Fatalf("%v %v", resp, err)
		}
	})
	t.Run("header injection refused", func(t *testing.T) {
		_, err := c.Action(context.Background(), (&Message{}).Add("Action", "Originate").Add("CallerID", "x\r\nAction: Command"))
		if !errors.Is(err, ErrInvalidAction) {
			t.Fatal(err)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Action(ctx, (&Message{}).Add("Action", "Silent")) // unknown: replies with Error
		if err == nil {
			return // answered in time; fine
		}
		var ae *ActionError
		if !errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &ae) {
			t.Fatal(err)
		}
	})
	h, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range h {
		if mf.GetName() == "ami_action_duration_seconds" {
			for _, m := range mf.GetMetric() {
				if m.GetHistogram().GetSampleCount() >= n {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatal("action latency not observed")
	}
}

func TestClientPendingActionFailsOnDrop(t *testing.T) {
	srv := newFakeAMI(t)
	srv.setHandler(func(fc *fakeConn, m *Message) bool {
		if m.Get("Action") != "Hang" {
			return false
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			fc.c.Close()
		}()
		return true
	})
	cfg, _, _ := testConfig(srv)
	c := dial(t, cfg)
	_, err := c.Action(context.Background(), (&Message{}).Add("Action", "Hang"))
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), "Hang") {
		t.Fatalf("%v", err)
	}
	_, err = c.ActionList(context.Background(), (&Message{}).Add("Action", "Hang"))
	if err == nil {
		t.Fatal("list action on a dropped connection succeeded")
	}
}

func TestClientStalledConsumerDoesNotStallReader(t *testing.T) {
	srv := newFakeAMI(t)
	cfg, _, reg := testConfig(srv)
	cfg.EventBuffer = 30000
	c := dial(t, cfg)
	fc := srv.waitConn(t)
	const n = 20000
	// Nobody reads Events while the server writes 20000 real-size events, each write under
	// Asterisk's 100 ms write timeout.
	pkt := newchannelEvent()
	start := time.Now()
	for i := range n {
		if err := fc.send(fmt.Sprintf(pkt, i)); err != nil {
			t.Fatalf("server write %d blocked past 100ms: %v", i, err)
		}
	}
	took := time.Since(start)
	if srv.writeErrs.Load() != 0 {
		t.Fatal("server writes timed out")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.Events()) < n+2 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d queued", len(c.Events()))
		}
		time.Sleep(time.Millisecond)
	}
	if d := metric(t, reg, "ami_event_queue_depth", ""); d != n+2 {
		t.Fatalf("queue depth metric %v, want %d", d, n+2)
	}
	waitState(t, c, StateConnected)
	if ev := next(t, c); ev.Msg.Event() != "FullyBooted" {
		t.Fatal(ev)
	}
	for i := range n {
		ev := next(t, c)
		if ev.Msg == nil || ev.Msg.Get("Seq") != strconv.Itoa(i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if st := c.Status(); st.State != StateConnected || st.Conn != 1 {
		t.Fatalf("%+v", st)
	}
	t.Logf("server wrote %d events in %v with the consumer stalled", n, took)
}

func newchannelEvent() string {
	return "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/101@phones-0000002b;1\r\nChannelState: 0\r\n" +
		"ChannelStateDesc: Down\r\nCallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\n" +
		"ConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: phones\r\nExten: 101\r\nPriority: 1\r\n" +
		"Uniqueid: 1795635265.86\r\nLinkedid: 1795635265.86\r\nSeq: %d\r\n\r\n"
}

func TestClientOverflowPolicy(t *testing.T) {
	srv := newFakeAMI(t)
	cfg, hook, reg := testConfig(srv)
	cfg.EventBuffer = 100
	c := dial(t, cfg)
	fc := srv.waitConn(t)
	pkt := newchannelEvent()
	for i := range 1000 {
		if fc.send(fmt.Sprintf(pkt, i)) != nil {
			break // the client dropped the connection: expected
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, reg, "ami_event_queue_overflows_total", "") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no overflow counted")
		}
		time.Sleep(time.Millisecond)
	}
	// The queue holds what fitted, then the in-band Disconnected; no silent gap.
	up := next(t, c)
	if up.State == nil || up.State.State != StateConnected {
		t.Fatalf("%+v", up)
	}
	seq := -1
	for {
		ev := next(t, c)
		if ev.State != nil {
			if ev.State.State != StateDisconnected || !errors.Is(ev.State.Err, ErrQueueOverflow) {
				t.Fatalf("state %+v", ev.State)
			}
			break
		}
		if ev.Msg.Event() == "Newchannel" {
			s, _ := strconv.Atoi(ev.Msg.Get("Seq"))
			if s != seq+1 {
				t.Fatalf("gap inside the delivered events: %d after %d", s, seq)
			}
			seq = s
		}
	}
	if seq < 90 || seq >= 1000-1 {
		t.Fatalf("delivered up to seq %d before the overflow", seq)
	}
	// Drained: the client reconnects and says so, so the consumer resyncs.
	again, _ := waitState(t, c, StateConnected)
	if again.Conn != 2 || !again.Reconnect {
		t.Fatalf("%+v", again)
	}
	found := false
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel && strings.Contains(e.Message, "event queue full") {
			found = true
		}
	}
	if !found {
		t.Fatal("overflow not logged")
	}
}

func TestClientShutdownEvent(t *testing.T) {
	srv := newFakeAMI(t)
	cfg, _, _ := testConfig(srv)
	c := dial(t, cfg)
	fc := srv.waitConn(t)
	fc.send("Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n")
	time.Sleep(10 * time.Millisecond)
	fc.c.Close()
	down, msgs := waitState(t, c, StateDisconnected)
	if len(msgs) == 0 || msgs[len(msgs)-1].Event() != "Shutdown" {
		t.Fatal("Shutdown event not delivered")
	}
	if !errors.Is(down.Err, ErrServerShutdown) {
		t.Fatalf("%v", down.Err)
	}
	if up, _ := waitState(t, c, StateConnected); up.Conn != 2 {
		t.Fatal(up)
	}
}

func TestClientRawTap(t *testing.T) {
	srv := newFakeAMI(t)
	cfg, _, _ := testConfig(srv)
	var tap bytes.Buffer
	cfg.RawTap = &tap
	c := dial(t, cfg)
	fc := srv.waitConn(t)
	// A slice of a real recording, sent in odd-sized pieces.
	data := fixtures(t)[0].data
	data = data[bytes.Index(data, []byte("\r\n\r\n"))+4:] // without banner and login reply
	data = data[:len(data)/3]
	data = data[:bytes.LastIndex(data, []byte("\r\n\r\n"))+4]
	for len(data) > 0 {
		k := min(len(data), 1+rand.IntN(700))
		fc.send(string(data[:k]))
		data = data[k:]
	}
	fc.send("Event: Last\r\n\r\n")
	for {
		if ev := next(t, c); ev.Msg != nil && ev.Msg.Event() == "Last" {
			break
		}
	}
	c.Close()
	if want := fc.writtenBytes(); !bytes.Equal(tap.Bytes(), want) {
		t.Fatalf("tap has %d bytes, server wrote %d", tap.Len(), len(want))
	}
}

func TestBackoff(t *testing.T) {
	cases := []struct {
		name     string
		min, max time.Duration
		attempt  int
		ceiling  time.Duration
	}{
		{"first", 500 * time.Millisecond, 30 * time.Second, 0, 500 * time.Millisecond},
		{"third", 500 * time.Millisecond, 30 * time.Second, 2, 2 * time.Second},
		{"capped", 500 * time.Millisecond, 30 * time.Second, 10, 30 * time.Second},
		{"huge attempt", 500 * time.Millisecond, 30 * time.Second, 1000, 30 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var maxSeen time.Duration
			for range 2000 {
				d := backoff(tc.min, tc.max, tc.attempt)
				if d < 0 || d > tc.ceiling {
					t.Fatalf("%v outside [0, %v]", d, tc.ceiling)
				}
				maxSeen = max(maxSeen, d)
			}
			if maxSeen < tc.ceiling/2 {
				t.Fatalf("no jitter spread: max %v of %v", maxSeen, tc.ceiling)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"no address", Config{Username: "crm"}, false},
		{"no user", Config{Address: "pbx"}, false},
		{"bad auth", Config{Address: "pbx", Username: "crm", Auth: "ntlm"}, false},
		{"line break in secret", Config{Address: "pbx", Username: "crm", Secret: "a\r\nAction: Command"}, false},
		{"port added", Config{Address: "pbx", Username: "crm"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			err := cfg.setDefaults()
			if (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
			if tc.ok && (cfg.Address != "pbx:5038" || cfg.Auth != "md5" || cfg.PingInterval != DefaultPingInterval) {
				t.Fatalf("%+v", cfg)
			}
			if err != nil && strings.Contains(err.Error(), "Action: Command") {
				t.Fatal("secret in error")
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	m := (&Message{}).Add("Action", "Login").Add("Username", "crm").Add("Secret", testSecret).Add("key", "abc")
	s := Redacted(m)
	if strings.Contains(s, testSecret) || strings.Contains(s, "abc") || !strings.Contains(s, "Username: crm") {
		t.Fatal(s)
	}
}

func TestClientLegacyCommandOutput(t *testing.T) {
	srv := newFakeAMI(t)
	srv.set(func(s *fakeAMI) { s.banner = "Asterisk Call Manager/2.10.6" }) // Asterisk 13
	srv.setHandler(func(fc *fakeConn, m *Message) bool {
		if m.Get("Action") != "Command" {
			return false
		}
		fc.send("Response: Follows\r\nPrivilege: Command\r\n" + idLine(m) +
			"Channel              Location             State   Application(Data)\n\n" +
			"SIP/101-00000001     101@from-internal:1  Up      Dial(SIP/102)\n\n1 active channel\n--END COMMAND--\r\n\r\n" +
			"Event: Newexten\r\nPrivilege: dialplan,all\r\n\r\n")
		return true
	})
	cfg, _, _ := testConfig(srv)
	cfg.Auth = "plain"
	c := dial(t, cfg)
	up, _ := waitState(t, c, StateConnected)
	if up.Banner != "Asterisk Call Manager/2.10.6" {
		t.Fatal(up.Banner)
	}
	resp, err := c.Action(context.Background(), (&Message{}).Add("Action", "Command").Add("Command", "core show channels"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Response() != "Follows" || !strings.Contains(resp.Output, "\n\n1 active channel\n") || strings.Contains(resp.Output, "END COMMAND") {
		t.Fatalf("%q %q", resp.Headers, resp.Output)
	}
	for {
		if ev := next(t, c); ev.Msg != nil && ev.Msg.Event() == "Newexten" {
			break
		}
	}
}
