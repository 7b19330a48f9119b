package amisim

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// aliveAt counts, straight from the recording, the channels alive after its first n packets and
// the bridge each is in.
func aliveAt(rec *Recording, n int) map[string]string {
	names := map[string]string{}  // uniqueid → channel
	bridge := map[string]string{} // uniqueid → bridge
	for _, p := range rec.Packets[:n] {
		m := p.Msg
		uid := exactGet(m, "Uniqueid")
		switch exactGet(m, "Event") {
		case "Newchannel":
			names[uid] = exactGet(m, "Channel")
		case "Hangup":
			delete(names, uid)
			delete(bridge, uid)
		case "BridgeEnter":
			bridge[uid] = exactGet(m, "BridgeUniqueid")
		case "BridgeLeave":
			delete(bridge, uid)
		}
	}
	out := map[string]string{}
	for uid, name := range names {
		out[name] = bridge[uid]
	}
	return out
}

// coreShowChannels sends the action and returns the listed channel → BridgeId, checking the
// list's framing; events queued before the reply are skipped.
func (c *client) coreShowChannels(id string) map[string]string {
	c.t.Helper()
	c.send("Action: CoreShowChannels", "ActionID: "+id)
	for {
		r := c.next()
		if !isResponse(r) {
			continue
		}
		wantHeaders(c.t, r, "Response: Success", "ActionID: "+id, "EventList: start", "Message: Channels will follow")
		break
	}
	got := map[string]string{}
	for {
		m := c.next()
		if m.Event() == "CoreShowChannelsComplete" {
			wantHeaders(c.t, m, "Event: CoreShowChannelsComplete", "ActionID: "+id, "EventList: Complete",
				"ListItems: "+strconv.Itoa(len(got)))
			return got
		}
		if m.Event() != "CoreShowChannel" || m.Headers[1].Key != "ActionID" || m.ActionID() != id {
			c.t.Fatalf("list item %q", m.String())
		}
		var keys []string
		for _, h := range m.Headers[2:] {
			keys = append(keys, h.Key)
		}
		wantKeys := "Channel ChannelState ChannelStateDesc CallerIDNum CallerIDName ConnectedLineNum ConnectedLineName " +
			"Language AccountCode Context Exten Priority Uniqueid Linkedid Application ApplicationData Duration BridgeId"
		if strings.Join(keys, " ") != wantKeys {
			c.t.Fatalf("item keys %v", keys)
		}
		if d := m.Get("Duration"); len(d) != 8 || d[2] != ':' || d[5] != ':' {
			c.t.Fatalf("Duration %q", d)
		}
		got[m.Get("Channel")] = m.Get("BridgeId")
	}
}

func TestCoreShowChannelsDuringPlayback(t *testing.T) {
	firstOf := func(event string) func(rec *Recording) int {
		return func(rec *Recording) int {
			for i, p := range rec.Packets {
				if p.Msg.Event() == event {
					return i + 1 // just after it
				}
			}
			return -1
		}
	}
	tests := []struct {
		name string
		file string
		at   func(rec *Recording) int // pause after this many packets
	}{
		{"after the first Newchannel", "inbound-answered", firstOf("Newchannel")},
		{"after the first BridgeEnter", "inbound-answered", firstOf("BridgeEnter")},
		{"half way", "inbound-answered", func(rec *Recording) int { return rec.Len() / 2 }},
		{"during the attended transfer", "attended-transfer", firstOf("AttendedTransfer")},
		{"attended transfer after the Hold", "attended-transfer", firstOf("Hold")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{})
			c := dial(t, srv)
			c.login()
			rec := loadTestRecording(t, tt.file).Fresh(1)
			at := tt.at(rec)
			if at <= 0 {
				t.Fatal("pause point not in the recording")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := srv.NewPlayer(rec, 0)
			if err := p.PlayUntil(ctx, func(i int, _ *ami.Message) bool { return i == at }); err != nil {
				t.Fatal(err)
			}
			if p.Pos() != at {
				t.Fatalf("paused at %d, want %d", p.Pos(), at)
			}
			want := aliveAt(rec, at)
			if len(want) == 0 {
				t.Fatal("no channel alive at the pause point; pick another")
			}
			got := c.coreShowChannels("mid")
			if !equalMaps(got, want) {
				t.Fatalf("mid-call channels:\n got %v\nwant %v", got, want)
			}
			if names := srv.LiveChannels(); len(names) != len(want) {
				t.Fatalf("LiveChannels() = %v", names)
			}
			if err := p.Rest(ctx); err != nil {
				t.Fatal(err)
			}
			if !p.Done() {
				t.Fatal("player not done after Rest")
			}
			if got := c.coreShowChannels("end"); len(got) != 0 {
				t.Fatalf("channels after the call: %v", got)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestPlaySendsEverythingInOrder(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	rec := loadTestRecording(t, "attended-transfer")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Play(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	for i, p := range rec.Packets {
		if got, want := c.next().String(), p.Msg.String(); got != want {
			t.Fatalf("packet %d:\n%s\nwant\n%s", i, got, want)
		}
	}
}

func TestPacing(t *testing.T) {
	rec := loadTestRecording(t, "inbound-answered")
	tests := []struct {
		name     string
		speed    float64
		from     int // resume point: packets played fast before the timed part
		min, max time.Duration
	}{
		{"as fast as possible", 0, 0, 0, time.Second},
		{"40x", 40, 0, rec.Duration() / 40, rec.Duration()/40 + time.Second},
		{"40x resumed mid-call", 40, rec.Len() / 2,
			(rec.Duration() - rec.Packets[rec.Len()/2].Offset) / 40,
			(rec.Duration()-rec.Packets[rec.Len()/2].Offset)/40 + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := srv.NewPlayer(rec, tt.speed)
			fast := srv.NewPlayer(rec, 0)
			if err := fast.Step(ctx, tt.from); err != nil {
				t.Fatal(err)
			}
			p.pos = tt.from
			start := time.Now()
			if err := p.Rest(ctx); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < tt.min-10*time.Millisecond || d > tt.max {
				t.Fatalf("played in %v, want %v..%v", d, tt.min, tt.max)
			}
		})
	}
}

func TestConcurrentPlaysDoNotInterleave(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	rec := loadTestRecording(t, "attended-transfer")
	copies := []*Recording{rec.Fresh(1), rec.Fresh(2), rec.Fresh(3)}
	want := map[string]int{}
	total := 0
	for _, r := range copies {
		for _, p := range r.Packets {
			want[p.Msg.String()]++
			total++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(copies))
	for _, r := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- srv.Play(ctx, r, 0)
		}()
	}
	got := map[string]int{}
	for range total {
		got[c.next().String()]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("packet seen %d times, want %d:\n%s", got[k], n, k)
		}
	}
	if got := c.coreShowChannels("after"); len(got) != 0 {
		t.Fatalf("channels left: %v", got)
	}
}

func TestOriginate(t *testing.T) {
	c2c := loadTestRecording(t, "click-to-call-originate").Fresh(1)
	hand := []*ami.Message{
		(&ami.Message{}).Add("Event", "Newchannel").Add("Privilege", "call,all").
			Add("Channel", "Local/101@phones-00000001;1").Add("Uniqueid", "1700000000.1").Add("Linkedid", "1700000000.1"),
		(&ami.Message{}).Add("Event", "Hangup").Add("Privilege", "call,all").
			Add("Channel", "Local/101@phones-00000001;1").Add("Uniqueid", "1700000000.1").Add("Linkedid", "1700000000.1"),
	}
	action := []string{"Action: Originate", "Channel: Local/101@phones", "Context: from-internal", "Exten: 89161112233",
		"Priority: 1", `CallerID: "Alice" <101>`, "Timeout: 30000", "Variable: CRM_CALL_ID=gw-7", "ActionID: gw-7"}
	tests := []struct {
		name      string
		hook      OriginateHandler
		async     bool
		wantReply []string
		// wantEvents are the event names after the reply; the OriginateResponse is checked whole.
		wantEvents []string
		wantOR     []string
	}{
		{
			name: "async with a recorded click-to-call keeps the real order", async: true,
			hook:      func(*ami.Message) ([]*ami.Message, bool) { return c2c.Messages(), true },
			wantReply: []string{"Response: Success", "ActionID: gw-7", "Message: Originate successfully queued"},
			wantEvents: func() []string {
				var names []string
				for _, p := range c2c.Packets {
					names = append(names, p.Msg.Event())
				}
				return names
			}(),
			wantOR: func() []string {
				for _, p := range c2c.Packets {
					if p.Msg.Event() == "OriginateResponse" {
						var out []string
						for _, h := range p.Msg.Headers {
							if h.Key == "ActionID" {
								h.Value = "gw-7"
							}
							out = append(out, h.Key+": "+h.Value)
						}
						return out
					}
				}
				return nil
			}(),
		},
		{
			name: "async success appends OriginateResponse", async: true,
			hook:       func(*ami.Message) ([]*ami.Message, bool) { return hand, true },
			wantReply:  []string{"Response: Success", "ActionID: gw-7", "Message: Originate successfully queued"},
			wantEvents: []string{"Newchannel", "Hangup", "OriginateResponse"},
			wantOR: []string{"Event: OriginateResponse", "Privilege: call,all", "ActionID: gw-7", "Response: Success",
				"Channel: Local/101@phones-00000001;1", "Context: from-internal", "Exten: 89161112233", "Reason: 4",
				"Uniqueid: 1700000000.1", "CallerIDNum: 101", "CallerIDName: Alice"},
		},
		{
			name: "async failure", async: true,
			hook:       func(*ami.Message) ([]*ami.Message, bool) { return hand, false },
			wantReply:  []string{"Response: Success", "ActionID: gw-7", "Message: Originate successfully queued"},
			wantEvents: []string{"Newchannel", "Hangup", "OriginateResponse"},
			wantOR: []string{"Event: OriginateResponse", "Privilege: call,all", "ActionID: gw-7", "Response: Failure",
				"Channel: Local/101@phones", "Context: from-internal", "Exten: 89161112233", "Reason: 0",
				"Uniqueid: <unknown>", "CallerIDNum: 101", "CallerIDName: Alice"},
		},
		{
			name: "async without a hook fails", async: true,
			wantReply:  []string{"Response: Success", "ActionID: gw-7", "Message: Originate successfully queued"},
			wantEvents: []string{"OriginateResponse"},
			wantOR: []string{"Event: OriginateResponse", "Privilege: call,all", "ActionID: gw-7", "Response: Failure",
				"Channel: Local/101@phones", "Context: from-internal", "Exten: 89161112233", "Reason: 0",
				"Uniqueid: <unknown>", "CallerIDNum: 101", "CallerIDName: Alice"},
		},
		{
			name:       "sync replies after the events",
			hook:       func(*ami.Message) ([]*ami.Message, bool) { return hand, true },
			wantEvents: []string{"Newchannel", "Hangup"},
			wantReply:  []string{"Response: Success", "ActionID: gw-7", "Message: Originate successfully queued"},
		},
		{
			name:       "sync failure",
			hook:       func(*ami.Message) ([]*ami.Message, bool) { return nil, false },
			wantReply:  []string{"Response: Error", "ActionID: gw-7", "Message: Originate failed"},
			wantEvents: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{})
			var seen *ami.Message
			var mu sync.Mutex
			if tt.hook != nil {
				srv.OnOriginate(func(a *ami.Message) ([]*ami.Message, bool) {
					mu.Lock()
					seen = a
					mu.Unlock()
					return tt.hook(a)
				})
			}
			c := dial(t, srv)
			c.login()
			lines := append([]string(nil), action...)
			if tt.async {
				lines = append(lines, "Async: true")
			}
			c.send(lines...)
			if tt.async {
				wantHeaders(t, c.next(), tt.wantReply...)
			}
			var names []string
			for range tt.wantEvents {
				m := c.next()
				names = append(names, m.Event())
				if m.Event() == "OriginateResponse" {
					wantHeaders(t, m, tt.wantOR...)
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.wantEvents, ",") {
				t.Fatalf("events %v\nwant %v", names, tt.wantEvents)
			}
			if !tt.async {
				wantHeaders(t, c.next(), tt.wantReply...)
			}
			// Nothing else follows: the next packet is the Pong.
			c.send("Action: Ping", "ActionID: last")
			if m := c.next(); m.ActionID() != "last" {
				t.Fatalf("extra packet %q", m.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.hook != nil && (seen == nil || seen.Get("Variable") != "CRM_CALL_ID=gw-7") {
				t.Fatalf("hook saw %v", seen)
			}
		})
	}
}

func TestPlayerStepAndResume(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	rec := loadTestRecording(t, "inbound-answered").Fresh(4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := srv.NewPlayer(rec, 0)
	var steps []int
	for !p.Done() {
		if err := p.Step(ctx, 50); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, p.Pos())
	}
	if want := []int{50, 100, rec.Len()}; !slices.Equal(steps, want) {
		t.Fatalf("positions %v, want %v", steps, want)
	}
	for i := range rec.Len() {
		if m := c.next(); m.Event() != rec.Packets[i].Msg.Event() {
			t.Fatalf("packet %d: %s", i, m.Event())
		}
	}
}
