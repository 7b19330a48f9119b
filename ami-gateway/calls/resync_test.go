package calls

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// listing is what CoreShowChannels would answer at a point of a recording: the live channels,
// built from the stream independently of the correlator.
func listing(msgs []*ami.Message) []*ami.Message {
	live := map[string]*ami.Message{}
	dead := map[string]bool{}
	bridge := map[string]string{}
	var order []string
	for _, m := range msgs {
		uid := m.Get("Uniqueid")
		if uid == "" || m.Get("Linkedid") == "" {
			continue
		}
		switch m.Event() {
		case "Hangup":
			delete(live, uid)
			dead[uid] = true
			continue
		case "BridgeEnter":
			bridge[uid] = m.Get("BridgeUniqueid")
		case "BridgeLeave":
			bridge[uid] = ""
		}
		if dead[uid] {
			continue // a late snapshot of a channel that is gone
		}
		if _, ok := live[uid]; !ok {
			order = append(order, uid)
		}
		live[uid] = m
	}
	var out []*ami.Message
	for _, uid := range order {
		m, ok := live[uid]
		if !ok {
			continue
		}
		item := &ami.Message{}
		item.Add("Event", "CoreShowChannel").Add("ActionID", "resync-1")
		for _, k := range []string{"Channel", "ChannelState", "CallerIDNum", "Context", "Exten", "Uniqueid", "Linkedid"} {
			item.Add(k, m.Get(k))
		}
		item.Add("BridgeId", bridge[uid]).Add("Duration", "00:00:05")
		out = append(out, item)
	}
	return out
}

func TestRestartMidCall(t *testing.T) {
	dir := filepath.Join(fixtures, "ami-asterisk22")
	pbx, cls := loadReplayConfig(t, filepath.Join(dir, "replay.yaml"))
	cl, err := NewClassifier(cls)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"inbound-answered", "ringgroup-answered-by-second", "blind-transfer", "attended-transfer", "outbound-answered", "queue-answered"} {
		msgs := readStream(t, filepath.Join(dir, name+".ami"))
		whole := replayFile(t, pbx, cls, filepath.Join(dir, name+".ami"))
		want := only(t, whole, callevent.Ended)
		for _, cut := range []float64{0.3, 0.5, 0.7} {
			at := int(float64(len(msgs)) * cut)
			t.Run(name+"/cut-"+time.Duration(cut*100).String(), func(t *testing.T) {
				// The gateway before the kill: its state as saved after each message.
				a := New(Options{PBX: pbx}, cl)
				saved := map[string][]byte{}
				var sent []callevent.Event
				for _, m := range msgs[:at] {
					sent = append(sent, a.Handle(m)...)
					changed, ended := a.TakeTouched()
					for _, call := range changed {
						b, err := Encode(call)
						if err != nil {
							t.Fatal(err)
						}
						saved[call.ID] = b
					}
					for _, id := range ended {
						delete(saved, id)
					}
				}
				// The restarted gateway: saved state, then CoreShowChannels, then the stream.
				b := New(Options{PBX: pbx}, cl)
				var restored []*Call
				for _, raw := range saved {
					call, err := Decode(raw)
					if err != nil {
						t.Fatal(err)
					}
					restored = append(restored, call)
				}
				b.Restore(restored)
				sent = append(sent, b.Resync(listing(msgs[:at]), a.Now())...)
				for _, m := range msgs[at:] {
					sent = append(sent, b.Handle(m)...)
				}
				got := only(t, sent, callevent.Ended)
				if got.ID != want.ID || got.AnsweredBy != want.AnsweredBy || got.Disposition != want.Disposition ||
					got.Extension != want.Extension || got.External != want.External || len(got.Transfers) != len(want.Transfers) ||
					got.TalkSeconds != want.TalkSeconds || got.RingSeconds != want.RingSeconds {
					t.Errorf("after restart:\n got %+v\nwant %+v", got, want)
				}
				if n := len(filter(sent, callevent.Started)); n != 1 {
					t.Errorf("%d started events", n)
				}
			})
		}
	}
}

func TestResyncCallEndedWhileAway(t *testing.T) {
	dir := filepath.Join(fixtures, "ami-asterisk22")
	pbx, cls := loadReplayConfig(t, filepath.Join(dir, "replay.yaml"))
	cl, _ := NewClassifier(cls)
	msgs := readStream(t, filepath.Join(dir, "inbound-answered.ami"))
	a := New(Options{PBX: pbx}, cl)
	var sent []callevent.Event
	cut := 0
	for i, m := range msgs {
		sent = append(sent, a.Handle(m)...)
		if m.Event() == "BridgeEnter" && m.Get("Context") == "from-trunk" {
			cut = i + 1
			break
		}
	}
	if len(filter(sent, callevent.Answered)) != 1 {
		t.Fatalf("the call should be answered by now: %+v", sent)
	}
	away := a.Now().Add(30 * time.Second)
	ended := a.Resync(nil, away)
	e := only(t, ended, callevent.Ended)
	if e.Disposition != callevent.DispAnswered || e.AnsweredBy != "101" || !e.EndedAt.Equal(away) {
		t.Errorf("ended while away: %+v", e)
	}
	if a.Calls() != 0 {
		t.Errorf("%d calls left", a.Calls())
	}
	// The rest of the stream (the hangups the gateway missed) makes nothing more.
	for _, m := range msgs[cut:] {
		if out := a.Handle(m); len(out) != 0 {
			t.Errorf("after resync: %+v", out)
		}
	}
}

func TestResyncCallStartedWhileAway(t *testing.T) {
	dir := filepath.Join(fixtures, "ami-asterisk22")
	pbx, cls := loadReplayConfig(t, filepath.Join(dir, "replay.yaml"))
	cl, _ := NewClassifier(cls)
	msgs := readStream(t, filepath.Join(dir, "ringgroup-answered-by-second.ami"))
	// Find the moment 102 talks: after the caller's BridgeEnter.
	at := 0
	for i, m := range msgs {
		if m.Event() == "BridgeEnter" && m.Get("Context") == "from-trunk" {
			at = i + 1
			break
		}
	}
	c := New(Options{PBX: pbx}, cl)
	sent := append([]callevent.Event(nil), c.Resync(listing(msgs[:at]), time.Now())...)
	for _, m := range msgs[at:] {
		sent = append(sent, c.Handle(m)...)
	}
	e := only(t, sent, callevent.Ended)
	if e.Direction != callevent.Inbound || e.AnsweredBy != "102" || e.External != "+79057776655" || e.Disposition != callevent.DispAnswered {
		t.Errorf("call found by resync: %+v", e)
	}
}
