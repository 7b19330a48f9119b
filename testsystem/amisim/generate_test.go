package amisim

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
)

// checkSane checks what every generated stream must keep, whatever the scenario: offsets never
// go back; each channel is created once, first, and hung up once, with no snapshot of it after
// its Hangup; bridges are created, emptied and destroyed; CEL and Cdr times and Uniqueid epochs
// agree with the offsets; each Linkedid ends once.
func checkSane(t *testing.T, rec *Recording) {
	t.Helper()
	start := rec.Start()
	var last time.Duration
	born := map[string]bool{}
	dead := map[string]bool{}
	bridges := map[string]int{} // bridge id → channels in it; -1 destroyed
	lids := map[string]bool{}
	ends := map[string]int{}
	for i, p := range rec.Packets {
		m := p.Msg
		name := exactGet(m, "Event")
		if p.Offset < last {
			t.Fatalf("packet %d (%s): offset %s before %s", i, name, p.Offset, last)
		}
		last = p.Offset
		now := start.Add(p.Offset).UTC()
		switch name {
		case "CEL":
			if got, want := exactGet(m, "EventTime"), now.Format(celLayout); got != want {
				t.Errorf("packet %d CEL %s: EventTime %s, offset says %s", i, exactGet(m, "EventName"), got, want)
			}
			if exactGet(m, "EventName") == "LINKEDID_END" {
				ends[exactGet(m, "LinkedID")]++
			}
			continue
		case "Cdr":
			// A Cdr is sent when its channel hangs up; an earlier pairing of it ended earlier.
			st, _ := time.ParseInLocation(celLayout, exactGet(m, "StartTime"), time.UTC)
			end, err := time.ParseInLocation(celLayout, exactGet(m, "EndTime"), time.UTC)
			if err != nil || end.After(now) || end.Before(st) {
				t.Errorf("packet %d Cdr of %s: StartTime %s EndTime %s, sent at %s", i, exactGet(m, "Channel"),
					exactGet(m, "StartTime"), exactGet(m, "EndTime"), now.Format(celLayout))
			}
			continue
		case "Newchannel":
			uid := exactGet(m, "Uniqueid")
			if born[uid] {
				t.Errorf("packet %d: Newchannel of %s twice", i, uid)
			}
			born[uid] = true
			lids[exactGet(m, "Linkedid")] = true
			if e, _, ok := splitUniqueid(uid); ok && e != now.Unix() {
				t.Errorf("packet %d: Uniqueid %s, created at %d", i, uid, now.Unix())
			}
		case "BridgeCreate":
			bridges[exactGet(m, "BridgeUniqueid")] = 0
		case "BridgeEnter", "BridgeLeave":
			id := exactGet(m, "BridgeUniqueid")
			n, ok := bridges[id]
			if !ok || n < 0 {
				t.Errorf("packet %d: %s of bridge %s not alive", i, name, id)
			}
			if name == "BridgeEnter" {
				bridges[id] = n + 1
			} else {
				bridges[id] = n - 1
			}
		case "BridgeDestroy":
			id := exactGet(m, "BridgeUniqueid")
			if bridges[id] != 0 {
				t.Errorf("packet %d: bridge %s destroyed with %d channels", i, id, bridges[id])
			}
			bridges[id] = -1
		}
		for _, h := range m.Headers {
			prefix, ok := strings.CutSuffix(h.Key, "Uniqueid")
			if !ok || strings.HasSuffix(prefix, "Bridge") || h.Key == "Uniqueid" && name == "OriginateResponse" {
				continue
			}
			if _, has := exact(m, prefix+"Channel"); !has {
				continue
			}
			if !born[h.Value] {
				t.Errorf("packet %d %s: channel %s before its Newchannel", i, name, h.Value)
			}
			if dead[h.Value] {
				t.Errorf("packet %d %s: channel %s after its Hangup", i, name, h.Value)
			}
		}
		if name == "Hangup" {
			dead[exactGet(m, "Uniqueid")] = true
		}
	}
	for uid := range born {
		if !dead[uid] {
			t.Errorf("channel %s never hung up", uid)
		}
	}
	for id, n := range bridges {
		if n != -1 {
			t.Errorf("bridge %s never destroyed", id)
		}
	}
	for lid := range lids {
		if ends[lid] != 1 {
			t.Errorf("Linkedid %s ended %d times", lid, ends[lid])
		}
	}
}

// e164RU is how the default classification (country RU) writes a number.
func e164RU(s string) string {
	switch {
	case len(s) == 11 && (s[0] == '7' || s[0] == '8'):
		return "+7" + s[1:]
	case len(s) == 10:
		return "+7" + s
	}
	return s
}

// expected is the call event the gateway must make of sc, from the scenario alone.
func expected(sc *Scenario, trunkLine string) callSummary {
	w := callSummary{Direction: string(sc.Direction)}
	ringers := sc.ringers()
	switch sc.Direction {
	case Inbound:
		w.External, w.Line = e164RU(sc.From), e164RU(sc.To)
		w.Rang = strings.Join(ringers, ",")
	case Outbound:
		// Line: the trunk it went out through, when the classification names trunks.
		w.External, w.Extension, w.Line = e164RU(sc.To), sc.From, trunkLine
		if sc.ClickToCall != nil {
			w.Rang = sc.From
		}
	case Internal:
		w.Extension, w.Rang = sc.From, strings.Join(ringers, ",")
	}
	switch {
	case sc.Answer != nil:
		w.Disposition = string(callevent.DispAnswered)
		w.AnsweredBy = sc.Answer.By
		if sc.Direction == Outbound {
			w.AnsweredBy = sc.From
		}
	case sc.Busy:
		w.Disposition = string(callevent.DispBusy)
	default:
		w.Disposition = string(callevent.DispNoAnswer)
	}
	if sc.Direction == Inbound {
		w.Extension = ringers[0]
		if sc.Answer != nil {
			w.Extension = sc.Answer.By
		}
	}
	if t := sc.Transfer; t != nil {
		kind := t.Kind
		if kind == TransferRedirect {
			kind = TransferBlind
		}
		w.Transfers = kind + ":" + sc.Answer.By + ">" + t.To
		w.Rang += "," + t.To
		if sc.Direction == Inbound {
			w.Extension = t.To
		}
		w.Talk = int((t.After + t.Ring + t.Consult) / time.Second)
	}
	if sc.Answer != nil {
		w.Talk += int(sc.Talk / time.Second)
		w.Ring = int(sc.Answer.After / time.Second)
	}
	return w
}

// recordingOf is the recording a generated stream names (MIXMONITOR_FILENAME, monitor folder cut).
func recordingOf(rec *Recording) string {
	for _, p := range rec.Packets {
		if exactGet(p.Msg, "Event") == "VarSet" && exactGet(p.Msg, "Variable") == "MIXMONITOR_FILENAME" {
			return strings.TrimPrefix(exactGet(p.Msg, "Value"), MonitorDir)
		}
	}
	return ""
}

// checkExpected compares the correlator's view of a generated call with the scenario's.
func checkExpected(t *testing.T, sc *Scenario, rec *Recording, cls config.Classify, trunkLine string) {
	t.Helper()
	s := shapeOf(rec.Messages())
	got := summarize(t, correlate(t, "sim", cls, rec.Messages()), s)
	want := expected(sc, trunkLine)
	if sc.Answer != nil && !sc.Busy {
		want.Recording = s.normalize(recordingOf(rec)) // the gateway names it for answered calls
	}
	want.CallID, want.Events = got.CallID, got.Events
	if sc.Answer == nil {
		want.Ring = got.Ring
	}
	if sc.ClickToCall != nil {
		want.Ring = got.Ring // the phone's ring comes first
	}
	for _, d := range compareSummary(want, got) {
		t.Error(strings.Replace(d, "real", "want", 1))
	}
}

// TestPJSIPStyleWithDefaultClassification generates every shared scenario, and some more, in the
// FreePBX-like pjsip style and checks the gateway's call events with config.Defaults()'s
// classification against what the scenario says.
func TestPJSIPStyleWithDefaultClassification(t *testing.T) {
	cls := config.Defaults().Classify
	files, _ := filepath.Glob(filepath.Join("testdata", "scenarios", "*.yaml"))
	type tc struct {
		name string
		sc   *Scenario
	}
	var cases []tc
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Fatal(err)
		}
		sc.Style = StylePJSIP
		cases = append(cases, tc{sc.Name, sc})
	}
	extra := map[string]string{
		"queue-answered-in-second-round": `direction: inbound
from: "79160000001"
to: "4950000000"
queue: {members: [101, 102, 103], member_timeout: 5s, retry: 2s}
answer: {by: "103", after: 9s}
talk: 20s`,
		"queue-timeout": `direction: inbound
from: "79160000002"
to: "4950000000"
queue: {members: [101, 102], member_timeout: 5s, retry: 2s, max_wait: 20s}`,
		"queue-abandoned-in-pause": `direction: inbound
from: "79160000003"
to: "4950000000"
queue: {members: [101], member_timeout: 5s, retry: 4s}
caller_hangs_up_after: 7s`,
		"queue-attended-transfer": `direction: inbound
from: "79160000004"
to: "4950000000"
queue: {members: [101, 102]}
answer: {by: "101", after: 4s}
transfer: {kind: attended, to: "105", after: 10s, ring: 3s, consult: 4s}
talk: 30s
hangup: caller`,
		"ringgroup-blind-transfer": `direction: inbound
from: "79160000005"
to: "4950000000"
ring: [101, 102]
answer: {by: "101", after: 3s}
transfer: {kind: blind, to: "105", after: 5s, ring: 2s}
talk: 8s`,
		"ringgroup-redirect-caller-hangs-up": `direction: inbound
from: "79160000006"
to: "4950000000"
ring: [101, 102, 103]
answer: {by: "102", after: 3s}
transfer: {kind: redirect, to: "104", after: 5s, ring: 2s}
talk: 8s
hangup: caller`,
		"ringgroup-missed": `direction: inbound
from: "79160000007"
to: "4950000000"
ring: [101, 102]`,
		"ringgroup-abandoned": `direction: inbound
from: "79160000008"
to: "4950000000"
ring: [101, 102]
caller_hangs_up_after: 5s`,
		"outbound-busy": `direction: outbound
from: "103"
to: "89160000009"
trunk: provider
busy: true`,
		"outbound-caller-hangs-up": `direction: outbound
from: "103"
to: "89160000010"
trunk: provider
answer: {after: 2s}
talk: 30s
hangup: caller
recording: "{date}/out-{to}-{from}-{uniqueid}.wav"`,
		"internal-busy": `direction: internal
from: "101"
to: "104"
busy: true`,
		"internal-blind-transfer": `direction: internal
from: "101"
to: "104"
answer: {after: 2s}
transfer: {kind: blind, to: "105", after: 4s}
talk: 5s`,
		"click-to-call-number-busy": `direction: outbound
from: "101"
to: "89160000011"
click_to_call: {phone_ring: 2s}
busy: true`,
	}
	for name, text := range extra {
		sc, err := ParseScenario([]byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sc.Name = name
		cases = append(cases, tc{name, sc})
	}
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, err := NewGenerator().Generate(c.sc, start)
			if err != nil {
				t.Fatal(err)
			}
			checkSane(t, rec)
			for _, p := range rec.Packets {
				if ch := exactGet(p.Msg, "Channel"); strings.HasPrefix(ch, "Local/") &&
					!strings.Contains(ch, "@from-internal-") && !strings.Contains(ch, "@from-queue-") {
					t.Fatalf("pjsip style uses Local channel %s", ch)
				}
			}
			checkExpected(t, c.sc, rec, cls, c.sc.Trunk)
		})
	}
}

// TestLocalStyleMatchesScenario checks the local-style generated calls against their own
// scenarios too (not only against the recordings), and their sanity.
func TestLocalStyleMatchesScenario(t *testing.T) {
	rc := loadReplay(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "scenarios", "*.yaml"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			sc, rec := generateLike(t, name)
			checkSane(t, rec)
			checkExpected(t, sc, rec, rc.Classify, "")
		})
	}
}

func originateAction(lines ...string) *ami.Message {
	m := &ami.Message{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ": ")
		m.Add(k, v)
	}
	return m
}

// TestGenerateOriginate covers click-to-call outcomes in both styles: ChannelId, variables, the
// OriginateResponse and what the gateway makes of the call.
func TestGenerateOriginate(t *testing.T) {
	base := func(channel string) []string {
		return []string{"Action: Originate", "Channel: " + channel, "Context: from-internal", "Exten: 89161112233",
			"Priority: 1", `CallerID: "Alice" <101>`, "Timeout: 20000", "Variable: CRM_CALL_ID=crm-42,OTHER=x",
			"ChannelId: gw-chan-1", "Async: true", "ActionID: act-9"}
	}
	tests := []struct {
		name      string
		channel   string
		scenario  string
		wantResp  []string // Response, Reason
		wantDisp  callevent.Disposition
		wantBy    string
		wantTalk  int
		wantFirst string // the first channel's name prefix
	}{
		{
			name: "local answered", channel: "Local/101@phones",
			scenario: "direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nclick_to_call: {phone_ring: 4s}\nanswer: {after: 5s}\ntalk: 10s\nhangup: caller",
			wantResp: []string{"Success", "4"}, wantDisp: callevent.DispAnswered, wantBy: "101", wantTalk: 10, wantFirst: "Local/101@phones-",
		},
		{
			name: "pjsip answered, number hangs up", channel: "PJSIP/101",
			scenario: "direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nclick_to_call: {phone_ring: 2s}\nanswer: {after: 7s}\ntalk: 25s\nrecording: \"out-{to}-{uniqueid}.wav\"",
			wantResp: []string{"Success", "4"}, wantDisp: callevent.DispAnswered, wantBy: "101", wantTalk: 25, wantFirst: "PJSIP/101-",
		},
		{
			name: "pjsip phone never answers", channel: "PJSIP/101",
			scenario: "direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nclick_to_call: {phone: no_answer}",
			wantResp: []string{"Failure", "3"}, wantDisp: callevent.DispNoAnswer, wantFirst: "PJSIP/101-",
		},
		{
			name: "local phone never answers", channel: "Local/101@phones",
			scenario: "direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nclick_to_call: {phone: no_answer}",
			wantResp: []string{"Failure", "3"}, wantDisp: callevent.DispNoAnswer, wantFirst: "Local/101@phones-",
		},
		{
			name: "pjsip phone busy", channel: "PJSIP/101",
			scenario: "direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nclick_to_call: {phone: busy}",
			wantResp: []string{"Failure", "5"}, wantDisp: callevent.DispNoAnswer, wantFirst: "PJSIP/101-",
		},
		{
			name: "local number does not answer", channel: "Local/101@phones",
			scenario: "direction: outbound\nfrom: \"101\"\nto: \"89161112233\"\nring_timeout: 15s\nclick_to_call: {phone_ring: 1s}",
			wantResp: []string{"Success", "4"}, wantDisp: callevent.DispNoAnswer, wantFirst: "Local/101@phones-",
		},
	}
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := ParseScenario([]byte(tt.scenario))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := NewGenerator().GenerateOriginate(originateAction(base(tt.channel)...), sc, start)
			if err != nil {
				t.Fatal(err)
			}
			checkSane(t, rec)
			msgs := rec.Messages()
			if first := exactGet(msgs[1], "Channel"); !strings.HasPrefix(first, tt.wantFirst) || exactGet(msgs[1], "Uniqueid") != "gw-chan-1" {
				t.Errorf("first channel %s %s, want %s* with Uniqueid gw-chan-1", first, exactGet(msgs[1], "Uniqueid"), tt.wantFirst)
			}
			vars := map[string]int{}
			var or *ami.Message
			for _, m := range msgs {
				switch exactGet(m, "Event") {
				case "VarSet":
					vars[exactGet(m, "Variable")+"="+exactGet(m, "Value")]++
				case "OriginateResponse":
					or = m
				}
			}
			if vars["CRM_CALL_ID=crm-42"] == 0 || vars["OTHER=x"] == 0 {
				t.Errorf("variables not set: %v", vars)
			}
			if or == nil {
				t.Fatal("no OriginateResponse")
			}
			if got := []string{or.Get("Response"), or.Get("Reason")}; strings.Join(got, " ") != strings.Join(tt.wantResp, " ") {
				t.Errorf("OriginateResponse %v, want %v", got, tt.wantResp)
			}
			if or.Get("ActionID") != "act-9" || or.Get("Uniqueid") != "gw-chan-1" || or.Get("CallerIDName") != "Alice" {
				t.Errorf("OriginateResponse %q", or.String())
			}
			if tt.wantResp[0] == "Failure" && or.Get("Channel") != tt.channel {
				t.Errorf("failed OriginateResponse Channel %q, want %q", or.Get("Channel"), tt.channel)
			}
			cls := config.Defaults().Classify
			if strings.HasPrefix(tt.channel, "Local/") {
				cls = loadReplay(t).Classify
			}
			events := correlate(t, "sim", cls, msgs)
			e := events[len(events)-1]
			if e.Kind != callevent.Ended || e.Disposition != tt.wantDisp || e.AnsweredBy != tt.wantBy ||
				e.Direction != callevent.Outbound || e.Extension != "101" || e.CRMCallID != "crm-42" {
				t.Errorf("ended %+v", e)
			}
			if d := e.TalkSeconds - tt.wantTalk; d < -1 || d > 1 {
				t.Errorf("talk %d, want %d", e.TalkSeconds, tt.wantTalk)
			}
		})
	}
}

// TestGenerateDeterministic: the same scenario, start and generator state give the same bytes;
// one Generator never reuses ids.
func TestGenerateDeterministic(t *testing.T) {
	sc, err := LoadScenario(filepath.Join("testdata", "scenarios", "attended-transfer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewGenerator().Generate(sc, sc.Start)
	b, _ := NewGenerator().Generate(sc, sc.Start)
	if wire(t, a) != wire(t, b) {
		t.Fatal("two generations differ")
	}
	g := NewGenerator()
	first, _ := g.Generate(sc, sc.Start)
	second, _ := g.Generate(sc, sc.Start)
	seen := map[string]bool{}
	for _, id := range first.IDs().Uniqueids {
		seen[id] = true
	}
	for _, id := range second.IDs().Uniqueids {
		if seen[id] {
			t.Fatalf("Uniqueid %s in both calls of one Generator", id)
		}
	}
	if first.IDs().Bridges[0] == second.IDs().Bridges[0] {
		t.Fatal("bridge id reused")
	}
}

// TestGeneratedPlaysLikeRecorded: Fresh and Retime work on generated calls as on recorded ones,
// and the Player paces them by their offsets.
func TestGeneratedPlaysLikeRecorded(t *testing.T) {
	sc, err := LoadScenario(filepath.Join("testdata", "scenarios", "inbound-answered.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewGenerator().Generate(sc, sc.Start)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Duration() != 16*time.Second {
		t.Errorf("duration %s, want 16s (4s ringing + 12s talk)", rec.Duration())
	}
	// Retime keeps second-precision times exact when the new start has the same fraction.
	now := time.Date(2030, 1, 2, 3, 4, 5, int(sc.Start.Nanosecond()), time.UTC)
	moved := rec.Fresh(7).Retime(now)
	checkSane(t, moved)
	if !moved.Start().Equal(now) {
		t.Errorf("start %s", moved.Start())
	}
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.login()
	began := time.Now()
	if err := srv.Play(t.Context(), moved, 40); err != nil { // 16 s at 40x: 0.4 s
		t.Fatal(err)
	}
	if d := time.Since(began); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("played in %s, want about 0.4s", d)
	}
	n := 0
	for n < moved.Len() {
		m := c.next()
		if m.Event() != exactGet(moved.Packets[n].Msg, "Event") {
			t.Fatalf("packet %d: %s, want %s", n, m.Event(), exactGet(moved.Packets[n].Msg, "Event"))
		}
		n++
	}
	if got := fmt.Sprint(len(srv.LiveChannels())); got != "0" {
		t.Errorf("%s channels left alive", got)
	}
}
