package amisim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/ami-gateway/calls"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
)

// a22 holds the real Asterisk 22 recordings the generator is checked against.
const a22 = "../../../shared/fixtures/ami-asterisk22"

// shape is a call's events reduced to what Asterisk does for the call whatever its threads' timing
// and whatever drove it:
//
//   - ami: per channel role, the call events that carry the channel in a snapshot block, in
//     stream order, prefixed by the block (Dest:DialBegin, Transferee:BlindTransfer), with the
//     outcome that matters (DialStatus, hangup Cause, the new ChannelState);
//   - cel: per role, the CEL event names (LINKEDID_END counted apart: which channel carries it
//     depends on which channel thread ends last);
//   - cdr: per role, its Cdr records as DISPOSITION>peer role;
//   - bridges: per bridge, the roles that entered it.
//
// A role is a channel's name without its -XXXXXXXX suffix (Local/101@phones;1), numbered when one
// name is used by several channels (a second Local/101@phones pair is Local/101@phones;1#2).
// Left out: dialplan noise (Newexten, VarSet), caller-id refreshes (NewCallerid,
// NewConnectedLine, whose place depends on timing), DTMF, Hold/Unhold and MusicOnHold (they show
// how the harness triggered a transfer, not the transfer), and events of the harness or the PBX
// at large (FullyBooted, SuccessfulAuth, DeviceStateChange, QueueMemberStatus, and the
// OriginateResponse of the harness's own Originate, which click-to-call checks apart).
type shape struct {
	roles        []string
	ami          map[string][]string
	cel          map[string][]string
	cdr          map[string][]string
	bridges      []string
	linkedidEnds int
	originate    []string // OriginateResponse: Response, Reason, Channel role, Uniqueid role
	uidRole      map[string]string
}

var (
	suffixRe = regexp.MustCompile(`-[0-9a-f]{8}(;[12])?$`)
	uidRe    = regexp.MustCompile(`\d{9,}\.\d+(;2)?`)
)

var shapeIgnored = map[string]bool{
	"Newexten": true, "VarSet": true, "NewCallerid": true, "NewConnectedLine": true,
	"DTMFBegin": true, "DTMFEnd": true, "Hold": true, "Unhold": true,
	"MusicOnHoldStart": true, "MusicOnHoldStop": true, "DeviceStateChange": true,
	"QueueMemberStatus": true, "SuccessfulAuth": true, "FullyBooted": true,
}

func shapeOf(msgs []*ami.Message) *shape {
	s := &shape{ami: map[string][]string{}, cel: map[string][]string{}, cdr: map[string][]string{}, uidRole: map[string]string{}}
	byName := map[string]string{}
	count := map[string]int{}
	role := func(name string) string {
		if name == "" {
			return ""
		}
		if r, ok := byName[name]; ok {
			return r
		}
		base := suffixRe.ReplaceAllString(name, "$1")
		count[base]++
		r := base
		if count[base] > 1 {
			r = fmt.Sprintf("%s#%d", base, count[base])
		}
		byName[name] = r
		s.roles = append(s.roles, r)
		return r
	}
	bridgeIdx := map[string]int{}
	var entered []map[string]bool
	for _, m := range msgs {
		name := exactGet(m, "Event")
		if shapeIgnored[name] {
			continue
		}
		switch name {
		case "CEL":
			r := role(exactGet(m, "Channel"))
			switch n := exactGet(m, "EventName"); n {
			case "DTMF":
			case "LINKEDID_END":
				s.linkedidEnds++
			case "CHAN_START":
				s.uidRole[exactGet(m, "UniqueID")] = r
				fallthrough
			default:
				s.cel[r] = append(s.cel[r], n)
			}
			continue
		case "Cdr":
			r := role(exactGet(m, "Channel"))
			rec := exactGet(m, "Disposition")
			if d := exactGet(m, "DestinationChannel"); d != "" {
				rec += ">" + role(d)
			}
			s.cdr[r] = append(s.cdr[r], rec)
			continue
		case "OriginateResponse":
			if strings.HasPrefix(exactGet(m, "ActionID"), "h-") {
				continue // the recording harness's own Originate
			}
			ch := exactGet(m, "Channel")
			if suffixRe.MatchString(ch) {
				ch = role(ch)
			}
			uid := exactGet(m, "Uniqueid")
			if r, ok := s.uidRole[uid]; ok {
				uid = r
			}
			s.originate = []string{exactGet(m, "Response"), exactGet(m, "Reason"), ch, uid}
			continue
		case "BridgeCreate", "BridgeEnter":
			id := exactGet(m, "BridgeUniqueid")
			if _, ok := bridgeIdx[id]; !ok {
				bridgeIdx[id] = len(entered)
				entered = append(entered, map[string]bool{})
			}
			if name == "BridgeEnter" {
				entered[bridgeIdx[id]][role(exactGet(m, "Channel"))] = true
			}
		}
		detail := ""
		switch name {
		case "DialBegin", "DialState", "DialEnd":
			detail = "(" + exactGet(m, "DialStatus") + ")"
		case "Hangup", "HangupRequest", "SoftHangupRequest":
			detail = "(" + exactGet(m, "Cause") + ")"
		case "Newstate":
			detail = "(" + exactGet(m, "ChannelState") + ")"
		case "Newchannel":
			s.uidRole[exactGet(m, "Uniqueid")] = role(exactGet(m, "Channel"))
		}
		for _, h := range m.Headers {
			prefix, ok := strings.CutSuffix(h.Key, "Channel")
			if !ok || !strings.Contains(h.Value, "/") {
				continue
			}
			tok := name + detail
			if prefix != "" {
				tok = prefix + ":" + tok
			}
			r := role(h.Value)
			s.ami[r] = append(s.ami[r], tok)
		}
	}
	for _, e := range entered {
		var rs []string
		for r := range e {
			rs = append(rs, r)
		}
		sort.Strings(rs)
		s.bridges = append(s.bridges, strings.Join(rs, " + "))
	}
	return s
}

// diff lists the differences between the real shape and the generated one.
func (want *shape) diff(got *shape) []string {
	var out []string
	wr, gr := append([]string(nil), want.roles...), append([]string(nil), got.roles...)
	sort.Strings(wr)
	sort.Strings(gr)
	if strings.Join(wr, ",") != strings.Join(gr, ",") {
		out = append(out, fmt.Sprintf("channel roles:\n  real %v\n  gen  %v", wr, gr))
	}
	for _, part := range []struct {
		name      string
		real, gen map[string][]string
	}{{"ami", want.ami, got.ami}, {"cel", want.cel, got.cel}, {"cdr", want.cdr, got.cdr}} {
		for _, r := range wr {
			a, b := strings.Join(part.real[r], " "), strings.Join(part.gen[r], " ")
			if a != b {
				out = append(out, fmt.Sprintf("%s %s:\n  real %s\n  gen  %s", part.name, r, a, b))
			}
		}
	}
	if strings.Join(want.bridges, " | ") != strings.Join(got.bridges, " | ") {
		out = append(out, fmt.Sprintf("bridges:\n  real %v\n  gen  %v", want.bridges, got.bridges))
	}
	if want.linkedidEnds != got.linkedidEnds {
		out = append(out, fmt.Sprintf("LINKEDID_END events: real %d, gen %d", want.linkedidEnds, got.linkedidEnds))
	}
	if strings.Join(want.originate, " ") != strings.Join(got.originate, " ") {
		out = append(out, fmt.Sprintf("OriginateResponse: real %v, gen %v", want.originate, got.originate))
	}
	return out
}

// normalize replaces every Uniqueid in v by the role of its channel.
func (s *shape) normalize(v string) string {
	return uidRe.ReplaceAllStringFunc(v, func(u string) string {
		if r, ok := s.uidRole[u]; ok {
			return "<" + r + ">"
		}
		return u
	})
}

type replayConfig struct {
	PBX      string          `yaml:"pbx"`
	Classify config.Classify `yaml:"classify"`
}

func loadReplay(t *testing.T) replayConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a22, "replay.yaml"))
	if err != nil {
		t.Skipf("shared fixtures not available: %v", err)
	}
	var rc replayConfig
	if err := yaml.Unmarshal(b, &rc); err != nil {
		t.Fatal(err)
	}
	return rc
}

// correlate runs the gateway's correlator over msgs.
func correlate(t *testing.T, pbx string, cls config.Classify, msgs []*ami.Message) []callevent.Event {
	t.Helper()
	cl, err := calls.NewClassifier(cls)
	if err != nil {
		t.Fatal(err)
	}
	c := calls.New(calls.Options{PBX: pbx}, cl)
	var out []callevent.Event
	for _, m := range msgs {
		out = append(out, c.Handle(m)...)
	}
	if c.Calls() != 0 {
		t.Errorf("%d calls still open at the end of the stream", c.Calls())
	}
	return out
}

// callSummary is the ended event's fields that must agree, with Uniqueids named by role.
type callSummary struct {
	Direction, External, Line, Extension, AnsweredBy, Disposition, Recording, CallID string
	Rang, Transfers, Events                                                          string
	Ring, Talk                                                                       int
}

func summarize(t *testing.T, events []callevent.Event, s *shape) callSummary {
	t.Helper()
	var ended []callevent.Event
	var evs []string
	run := 0 // start of the current run of ringing events: legs ringing together come in any order
	for _, e := range events {
		if e.Kind == callevent.Ended {
			ended = append(ended, e)
		}
		if e.Kind != callevent.Ringing {
			run = len(evs) + 1
		}
		evs = append(evs, string(e.Kind)+":"+e.Extension)
		sort.Strings(evs[min(run, len(evs)):])
	}
	if len(ended) == 0 {
		t.Fatalf("no ended event among %v", evs)
	}
	e := ended[len(ended)-1] // the customer's call ends last
	var tr []string
	for _, x := range e.Transfers {
		tr = append(tr, string(x.Kind)+":"+x.From+">"+x.To)
	}
	return callSummary{
		Direction: string(e.Direction), External: e.External, Line: e.Line, Extension: e.Extension,
		AnsweredBy: e.AnsweredBy, Disposition: string(e.Disposition), Recording: s.normalize(e.Recording),
		CallID: s.normalize(e.CallID), Rang: strings.Join(e.ExtensionsRang, ","), Transfers: strings.Join(tr, ","),
		Events: strings.Join(evs, " "), Ring: e.RingSeconds, Talk: e.TalkSeconds,
	}
}

// compareSummary reports differing fields; durations may differ by a second.
func compareSummary(real, gen callSummary) []string {
	var out []string
	f := func(name, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s: real %q, gen %q", name, a, b))
		}
	}
	f("direction", real.Direction, gen.Direction)
	f("external", real.External, gen.External)
	f("line", real.Line, gen.Line)
	f("extension", real.Extension, gen.Extension)
	f("extensions_rang", real.Rang, gen.Rang)
	f("answered_by", real.AnsweredBy, gen.AnsweredBy)
	f("disposition", real.Disposition, gen.Disposition)
	f("transfers", real.Transfers, gen.Transfers)
	f("recording", real.Recording, gen.Recording)
	f("call_id", real.CallID, gen.CallID)
	f("events", real.Events, gen.Events)
	if d := real.Ring - gen.Ring; d < -1 || d > 1 {
		out = append(out, fmt.Sprintf("ring_seconds: real %d, gen %d", real.Ring, gen.Ring))
	}
	if d := real.Talk - gen.Talk; d < -1 || d > 1 {
		out = append(out, fmt.Sprintf("talk_seconds: real %d, gen %d", real.Talk, gen.Talk))
	}
	return out
}

// readActions reads the actions a recorded client sent (a .sent file).
func readActions(t *testing.T, path string) []*ami.Message {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rd := ami.NewReader(bytes.NewReader(b), ami.ReaderOptions{})
	var out []*ami.Message
	for {
		m, err := rd.ReadMessage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

// generateLike generates the scenario of a shared recording, the way that recording was made.
func generateLike(t *testing.T, name string) (*Scenario, *Recording) {
	t.Helper()
	sc, err := LoadScenario(filepath.Join("testdata", "scenarios", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.ClickToCall == nil {
		rec, err := NewGenerator().Generate(sc, sc.Start)
		if err != nil {
			t.Fatal(err)
		}
		return sc, rec
	}
	var action *ami.Message
	for _, a := range readActions(t, filepath.Join(a22, name+".sent")) {
		if strings.EqualFold(a.Get("Action"), "Originate") {
			action = a
		}
	}
	if action == nil {
		t.Fatalf("%s.sent has no Originate", name)
	}
	rec, err := NewGenerator().GenerateOriginate(action, sc, sc.Start)
	if err != nil {
		t.Fatal(err)
	}
	return sc, rec
}

// TestGeneratorMatchesRealRecordings generates, in the local style, the scenario of every real
// Asterisk 22 recording and checks (a) the shape of its events (see shape) and (b) the call events
// the gateway's correlator makes of it, with the recordings' replay.yaml.
func TestGeneratorMatchesRealRecordings(t *testing.T) {
	rc := loadReplay(t)
	files, _ := filepath.Glob(filepath.Join(a22, "*.ami"))
	if len(files) < 15 {
		t.Fatalf("found %d recordings in %s", len(files), a22)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".ami")
		t.Run(name, func(t *testing.T) {
			real, err := LoadRecording(f)
			if err != nil {
				t.Fatal(err)
			}
			_, gen := generateLike(t, name)
			rs, gs := shapeOf(real.Messages()), shapeOf(gen.Messages())
			for _, d := range rs.diff(gs) {
				t.Error(d)
			}
			re := summarize(t, correlate(t, rc.PBX, rc.Classify, real.Messages()), rs)
			ge := summarize(t, correlate(t, rc.PBX, rc.Classify, gen.Messages()), gs)
			for _, d := range compareSummary(re, ge) {
				t.Error("call event " + d)
			}
		})
	}
}

// TestShapeCatchesDifferences: the comparison is not blind — a missing ring, another hangup
// cause, a lost Cdr or an extra bridge each show up.
func TestShapeCatchesDifferences(t *testing.T) {
	real, err := LoadRecording(filepath.Join(a22, "inbound-answered.ami"))
	if err != nil {
		t.Skipf("shared fixtures not available: %v", err)
	}
	edit := func(f func(m *ami.Message) *ami.Message) []*ami.Message {
		var out []*ami.Message
		for _, m := range real.Messages() {
			if m = f(cloneMessage(m)); m != nil {
				out = append(out, m)
			}
		}
		return out
	}
	set := func(m *ami.Message, key, value string) {
		for i := range m.Headers {
			if m.Headers[i].Key == key {
				m.Headers[i].Value = value
			}
		}
	}
	tests := []struct {
		name string
		edit func(m *ami.Message) *ami.Message
		want string
	}{
		{"no DialState", func(m *ami.Message) *ami.Message {
			if m.Event() == "DialState" {
				return nil
			}
			return m
		}, "ami Local/101@phones;1"},
		{"another cause", func(m *ami.Message) *ami.Message {
			if m.Event() == "Hangup" && strings.HasSuffix(m.Get("Channel"), ";2") {
				set(m, "Cause", "17")
			}
			return m
		}, "Hangup(17)"},
		{"a Cdr lost", func(m *ami.Message) *ami.Message {
			if m.Event() == "Cdr" && exactGet(m, "Disposition") == "ANSWERED" && exactGet(m, "DestinationChannel") != "" {
				return nil
			}
			return m
		}, "cdr Local/4951234567@from-trunk;2"},
		{"no LINKEDID_END", func(m *ami.Message) *ami.Message {
			if exactGet(m, "EventName") == "LINKEDID_END" {
				return nil
			}
			return m
		}, "LINKEDID_END events: real 1, gen 0"},
	}
	want := shapeOf(real.Messages())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diffs := strings.Join(want.diff(shapeOf(edit(tt.edit))), "\n")
			if !strings.Contains(diffs, tt.want) {
				t.Errorf("diff %q does not show %q", diffs, tt.want)
			}
		})
	}
	if d := want.diff(shapeOf(real.Messages())); len(d) != 0 {
		t.Errorf("a recording differs from itself: %v", d)
	}
}
