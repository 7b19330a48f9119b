package amisim

import (
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

const clickToCall = "direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nclick_to_call: {phone_ring: 4s}\nanswer: {after: 5s}\ntalk: 10s\nhangup: caller\n"

// TestOriginateWiredToGenerator: a client's Originate, answered by the generator through
// OnOriginate (events at once) and through OriginateScenario (paced), async and sync.
func TestOriginateWiredToGenerator(t *testing.T) {
	sc, err := ParseScenario([]byte(clickToCall))
	if err != nil {
		t.Fatal(err)
	}
	noAnswer, err := ParseScenario([]byte("direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nclick_to_call: {phone: no_answer, timeout: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	action := []string{"Action: Originate", "Channel: PJSIP/101", "Context: from-internal", "Exten: 89161112233",
		`CallerID: "Alice" <101>`, "Variable: CRM_CALL_ID=c2c-7", "ChannelId: c2c-7-chan", "ActionID: c2c-7"}
	tests := []struct {
		name      string
		wire      func(srv *Server)
		async     bool
		wantReply string // Response of the action's reply
		wantOR    string // Response of the OriginateResponse; "" none
		minTime   time.Duration
	}{
		{name: "OnOriginate, async", async: true, wantReply: "Success", wantOR: "Success",
			wire: func(srv *Server) { srv.OnOriginate(ScenarioOriginate(NewGenerator(), sc)) }},
		{name: "OnOriginate, phone never answers", async: true, wantReply: "Success", wantOR: "Failure",
			wire: func(srv *Server) { srv.OnOriginate(ScenarioOriginate(NewGenerator(), noAnswer)) }},
		{name: "paced, async", async: true, wantReply: "Success", wantOR: "Success", minTime: 150 * time.Millisecond,
			wire: func(srv *Server) { srv.OriginateScenario(NewGenerator(), sc, 100) }}, // 19 s at 100x
		{name: "paced, sync", wantReply: "Success", minTime: 150 * time.Millisecond,
			wire: func(srv *Server) { srv.OriginateScenario(NewGenerator(), sc, 100) }},
		{name: "paced, sync, phone never answers", wantReply: "Error",
			wire: func(srv *Server) { srv.OriginateScenario(NewGenerator(), noAnswer, 100) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Config{})
			tt.wire(srv)
			c := dial(t, srv)
			c.login()
			lines := append([]string(nil), action...)
			if tt.async {
				lines = append(lines, "Async: true")
			}
			began := time.Now()
			c.send(lines...)
			var reply, or *ami.Message
			var hangups, newchannels int
			for reply == nil || (tt.wantOR != "" && or == nil) || hangups < newchannels || newchannels == 0 {
				m := c.next()
				switch {
				case isResponse(m):
					reply = m
				case m.Event() == "OriginateResponse":
					or = m
				case m.Event() == "Newchannel":
					if newchannels == 0 && m.Get("Uniqueid") != "c2c-7-chan" {
						t.Errorf("first channel's Uniqueid %s, want the ChannelId", m.Get("Uniqueid"))
					}
					newchannels++
				case m.Event() == "Hangup":
					hangups++
				}
			}
			if reply.Get("Response") != tt.wantReply || reply.ActionID() != "c2c-7" {
				t.Errorf("reply %q", reply.String())
			}
			if tt.wantOR != "" && (or.Get("Response") != tt.wantOR || or.ActionID() != "c2c-7") {
				t.Errorf("OriginateResponse %q", or.String())
			}
			if !tt.async && or != nil {
				t.Errorf("a synchronous Originate got an OriginateResponse")
			}
			if d := time.Since(began); d < tt.minTime {
				t.Errorf("call played in %s, want at least %s", d, tt.minTime)
			}
			if live := srv.LiveChannels(); len(live) != 0 {
				t.Errorf("channels left: %s", strings.Join(live, ", "))
			}
		})
	}
}
