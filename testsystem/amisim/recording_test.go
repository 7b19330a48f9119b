package amisim

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

func TestLoadRecording(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		wantEvents int // Event packets in the file minus FullyBooted
	}{
		{"inbound answered", "inbound-answered", 134},
		{"click to call", "click-to-call-originate", 142},
		{"attended transfer", "attended-transfer", 326},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := loadTestRecording(t, tt.file)
			if rec.Len() != tt.wantEvents {
				t.Fatalf("Len() = %d, want %d", rec.Len(), tt.wantEvents)
			}
			originates := 0
			for i, p := range rec.Packets {
				if isResponse(p.Msg) || p.Msg.Event() == "" || p.Msg.Event() == "FullyBooted" {
					t.Fatalf("packet %d kept: %q", i, p.Msg.Headers[0])
				}
				if p.Msg.Event() == "OriginateResponse" {
					originates++
				}
				if i > 0 && p.Offset < rec.Packets[i-1].Offset {
					t.Fatalf("offset goes back at %d: %v < %v", i, p.Offset, rec.Packets[i-1].Offset)
				}
			}
			if originates != 1 {
				t.Fatalf("%d OriginateResponse kept, want 1", originates)
			}
			if d := rec.Duration(); d < 10*time.Second || d > 2*time.Minute {
				t.Fatalf("Duration() = %v", d)
			}
		})
	}
}

func TestRecordingWithoutBannerAndLF(t *testing.T) {
	text := "Response: Success\nMessage: Authentication accepted\n\n" +
		"Event: Newchannel\nPrivilege: call,all\nChannel: Local/1@a-00000001;1\nUniqueid: 1700000000.1\nLinkedid: 1700000000.1\n\n" +
		"Event: Hangup\nPrivilege: call,all\nChannel: Local/1@a-00000001;1\nUniqueid: 1700000000.1\n\n" +
		"Response: Goodbye\nMessage: Thanks for all the fish.\n\n"
	rec, err := ReadRecording("lf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Len() != 2 || rec.Packets[0].Msg.Event() != "Newchannel" || rec.Start() != time.Unix(1700000000, 0).UTC() {
		t.Fatalf("got %d packets, start %v", rec.Len(), rec.Start())
	}
}

func TestOffsets(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	cel := func(at time.Time) *ami.Message {
		return (&ami.Message{}).Add("Event", "CEL").Add("EventTime", at.Format(celLayout))
	}
	newchan := func(at time.Time) *ami.Message {
		return (&ami.Message{}).Add("Event", "Newchannel").Add("Uniqueid", fmt.Sprintf("%d.7", at.Unix()))
	}
	plain := func() *ami.Message { return (&ami.Message{}).Add("Event", "VarSet") }
	stamped := func(at time.Time) *ami.Message {
		return (&ami.Message{}).Add("Event", "Newstate").Add("Timestamp", formatTimestamp(at))
	}
	tests := []struct {
		name string
		msgs []*ami.Message
		want []time.Duration
	}{
		{"untimed events take the previous offset",
			[]*ami.Message{plain(), cel(t0), plain(), newchan(t0.Add(2 * time.Second)), plain()},
			[]time.Duration{0, 0, 0, 2 * time.Second, 2 * time.Second}},
		{"a late CEL does not go back",
			[]*ami.Message{cel(t0), newchan(t0.Add(3 * time.Second)), cel(t0.Add(time.Second)), plain()},
			[]time.Duration{0, 3 * time.Second, 3 * time.Second, 3 * time.Second}},
		{"the start is the earliest time, even when it comes late",
			[]*ami.Message{newchan(t0.Add(time.Second)), cel(t0), cel(t0.Add(4 * time.Second))},
			[]time.Duration{time.Second, time.Second, 4 * time.Second}},
		{"Timestamp headers are precise",
			[]*ami.Message{stamped(t0), stamped(t0.Add(1500 * time.Millisecond))},
			[]time.Duration{0, 1500 * time.Millisecond}},
		{"no times at all", []*ami.Message{plain(), plain()}, []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := NewRecording(tt.name, tt.msgs)
			for i, p := range rec.Packets {
				if p.Offset != tt.want[i] {
					t.Fatalf("offset %d = %v, want %v", i, p.Offset, tt.want[i])
				}
			}
		})
	}
}

// Test-side id extraction, independent of the package's: from the wire text.
var (
	testIDLineRe = regexp.MustCompile(`(?im)^([A-Za-z]*(?:uniqueid|linkedid)): (.*)\r$`)
	testNumRe    = regexp.MustCompile(`\d+\.\d+`)
	testSuffixRe = regexp.MustCompile(`-[0-9a-f]{8};[0-9]`)
	testUUIDRe   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

type wireIDs struct{ uniqueids, suffixes, bridges map[string]bool }

func extractIDs(text string) wireIDs {
	ids := wireIDs{map[string]bool{}, map[string]bool{}, map[string]bool{}}
	for _, sm := range testIDLineRe.FindAllStringSubmatch(text, -1) {
		if strings.Contains(strings.ToLower(sm[1]), "bridge") {
			continue
		}
		if n := testNumRe.FindString(sm[2]); n != "" {
			ids.uniqueids[n] = true
		}
	}
	for _, s := range testSuffixRe.FindAllString(text, -1) {
		ids.suffixes[s[:9]] = true
	}
	for _, s := range testUUIDRe.FindAllString(text, -1) {
		ids.bridges[s] = true
	}
	return ids
}

func wire(t *testing.T, rec *Recording) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := rec.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFresh(t *testing.T) {
	for _, file := range []string{"inbound-answered", "attended-transfer", "click-to-call-originate"} {
		t.Run(file, func(t *testing.T) {
			orig := loadTestRecording(t, file)
			copies := map[string]*Recording{"original": orig, "fresh1": orig.Fresh(1), "fresh2": orig.Fresh(2)}
			texts := map[string]string{}
			ids := map[string]wireIDs{}
			for name, rec := range copies {
				texts[name] = wire(t, rec)
				ids[name] = extractIDs(texts[name])
				if len(ids[name].uniqueids) == 0 || len(ids[name].suffixes) == 0 {
					t.Fatalf("%s: no ids found", name)
				}
			}
			if file == "inbound-answered" && len(ids["original"].bridges) == 0 {
				t.Fatal("no bridge id found")
			}
			// No id of one copy appears anywhere in another: not only in id fields, also in CEL
			// Extra JSON, variable values and file names.
			for a := range copies {
				for b := range copies {
					if a == b {
						continue
					}
					numbers := map[string]bool{}
					for _, n := range testNumRe.FindAllString(texts[b], -1) {
						numbers[n] = true
					}
					for u := range ids[a].uniqueids {
						if numbers[u] {
							t.Errorf("uniqueid %s of %s appears in %s", u, a, b)
						}
					}
					for s := range ids[a].suffixes {
						if strings.Contains(texts[b], s+";") {
							t.Errorf("channel suffix %s of %s appears in %s", s, a, b)
						}
					}
					for br := range ids[a].bridges {
						if strings.Contains(texts[b], br) {
							t.Errorf("bridge %s of %s appears in %s", br, a, b)
						}
					}
				}
				if len(ids[a].uniqueids) != len(ids["original"].uniqueids) || len(ids[a].suffixes) != len(ids["original"].suffixes) ||
					len(ids[a].bridges) != len(ids["original"].bridges) {
					t.Errorf("%s has %d/%d/%d ids, original %d/%d/%d", a, len(ids[a].uniqueids), len(ids[a].suffixes), len(ids[a].bridges),
						len(ids["original"].uniqueids), len(ids["original"].suffixes), len(ids["original"].bridges))
				}
			}
			// Parsed back, a copy has the same events in the same order, and its rewrite is a
			// consistent renaming: each original value maps to one new value and back.
			for _, name := range []string{"fresh1", "fresh2"} {
				back, err := ReadRecording(name, strings.NewReader(texts[name]))
				if err != nil {
					t.Fatal(err)
				}
				if back.Len() != orig.Len() {
					t.Fatalf("%s parses into %d events, want %d", name, back.Len(), orig.Len())
				}
				fwd, rev := map[string]string{}, map[string]string{}
				for i := range back.Packets {
					om, fm := orig.Packets[i].Msg, back.Packets[i].Msg
					if om.Event() != fm.Event() || len(om.Headers) != len(fm.Headers) {
						t.Fatalf("%s packet %d: %s (%d headers), want %s (%d)", name, i, fm.Event(), len(fm.Headers), om.Event(), len(om.Headers))
					}
					for j, h := range om.Headers {
						nh := fm.Headers[j]
						if nh.Key != h.Key {
							t.Fatalf("%s packet %d header %d: %s, want %s", name, i, j, nh.Key, h.Key)
						}
						if strings.HasSuffix(h.Key, "Uniqueid") || strings.HasSuffix(h.Key, "Linkedid") || strings.HasSuffix(h.Key, "Channel") {
							if v, ok := fwd[h.Value]; ok && v != nh.Value {
								t.Fatalf("%s: %s maps to %s and %s", name, h.Value, v, nh.Value)
							}
							if v, ok := rev[nh.Value]; ok && v != h.Value {
								t.Fatalf("%s: %s and %s both map to %s", name, v, h.Value, nh.Value)
							}
							fwd[h.Value], rev[nh.Value] = nh.Value, h.Value
						}
					}
				}
			}
			// The gateway's channel patterns (replay.yaml) still match.
			ext := regexp.MustCompile(`^Local/(1\d\d)@phones-[0-9a-f]+;1$`)
			found := false
			for _, p := range copies["fresh1"].Packets {
				if ext.MatchString(exactGet(p.Msg, "Channel")) {
					found = true
					break
				}
			}
			if !found {
				t.Fatal("no fresh channel matches the extension pattern")
			}
		})
	}
}

func TestFreshKeepsUniqueidForm(t *testing.T) {
	msgs := []*ami.Message{
		(&ami.Message{}).Add("Event", "Newchannel").Add("Channel", "SIP/150010003-0000002f").
			Add("Uniqueid", "195176c06ab8-1529936170.42").Add("Linkedid", "195176c06ab8-1529936170.42"),
		(&ami.Message{}).Add("Event", "VarSet").Add("Uniqueid", "195176c06ab8-1529936170.42").
			Add("Value", "rec-195176c06ab8-1529936170.42.wav"),
	}
	fresh := NewRecording("prefixed", msgs).Fresh(3)
	uid := exactGet(fresh.Packets[0].Msg, "Uniqueid")
	if !regexp.MustCompile(`^195176c06ab8-1529936170\.\d+$`).MatchString(uid) || uid == "195176c06ab8-1529936170.42" {
		t.Fatalf("Uniqueid %q: want the same prefix and epoch, another sequence", uid)
	}
	if got := exactGet(fresh.Packets[1].Msg, "Value"); got != "rec-"+uid+".wav" {
		t.Fatalf("Value %q, want the new Uniqueid inside", got)
	}
	if ch := exactGet(fresh.Packets[0].Msg, "Channel"); !regexp.MustCompile(`^SIP/150010003-[0-9a-f]{8}$`).MatchString(ch) || ch == "SIP/150010003-0000002f" {
		t.Fatalf("Channel %q", ch)
	}
}

func TestRetime(t *testing.T) {
	orig := loadTestRecording(t, "attended-transfer")
	tests := []struct {
		name  string
		start time.Time
	}{
		{"whole seconds later", time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)},
		{"half a second, earlier", time.Date(2020, 1, 2, 3, 4, 5, 500e6, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := orig.Retime(tt.start)
			if !re.Start().Equal(tt.start) {
				t.Fatalf("Start() = %v, want %v", re.Start(), tt.start)
			}
			delta := tt.start.Sub(orig.Start())
			// Second-precision fields move by the whole seconds of the delta, floored.
			wantSec := int64(time.Unix(0, 0).Add(delta).Unix())
			cels, uids := 0, 0
			for i := range orig.Packets {
				om, nm := orig.Packets[i].Msg, re.Packets[i].Msg
				if orig.Packets[i].Offset != re.Packets[i].Offset {
					t.Fatalf("offset %d changed", i)
				}
				for j, h := range om.Headers {
					nv := nm.Headers[j].Value
					switch h.Key {
					case "EventTime", "StartTime", "EndTime":
						a, _ := time.Parse(celLayout, h.Value)
						b, err := time.Parse(celLayout, nv)
						if err != nil {
							t.Fatalf("%s %q: %v", h.Key, nv, err)
						}
						if d := b.Unix() - a.Unix(); d != wantSec {
							t.Fatalf("%s moved %ds, want %ds", h.Key, d, wantSec)
						}
						cels++
					case "Uniqueid", "Linkedid", "UniqueID", "LinkedID", "DestUniqueid":
						ae, as, _ := strings.Cut(h.Value, ".")
						be, bs, _ := strings.Cut(nv, ".")
						a, _ := strconv.ParseInt(ae, 10, 64)
						b, _ := strconv.ParseInt(be, 10, 64)
						if b-a != wantSec || as != bs {
							t.Fatalf("%s %s → %s, want epoch +%ds and the same sequence", h.Key, h.Value, nv, wantSec)
						}
						uids++
					case "EventTV":
						a, _ := time.Parse("2006-01-02T15:04:05-0700", h.Value)
						b, err := time.Parse("2006-01-02T15:04:05-0700", nv)
						if err != nil || b.Sub(a) != delta.Truncate(time.Millisecond) {
							t.Fatalf("EventTV %s → %s, want +%v", h.Value, nv, delta)
						}
					}
				}
			}
			if cels == 0 || uids == 0 {
				t.Fatalf("checked %d times and %d uniqueids", cels, uids)
			}
			// The event an epoch stands for and the CEL of the same moment still agree.
			for _, p := range re.Packets {
				if exactGet(p.Msg, "Event") == "CEL" && exactGet(p.Msg, "EventName") == "CHAN_START" {
					et, _ := time.Parse(celLayout, exactGet(p.Msg, "EventTime"))
					epoch, _, _ := strings.Cut(exactGet(p.Msg, "UniqueID"), ".")
					if strconv.FormatInt(et.Unix(), 10) != epoch {
						t.Fatalf("CHAN_START at %v, Uniqueid epoch %s", et, epoch)
					}
				}
			}
		})
	}
}

func TestRetimeRecordingFileName(t *testing.T) {
	msgs := []*ami.Message{
		(&ami.Message{}).Add("Event", "Newchannel").Add("Uniqueid", "1795634950.39"),
		(&ami.Message{}).Add("Event", "VarSet").Add("Uniqueid", "1795634950.39").
			Add("Value", "/var/spool/asterisk/monitor/out-20261125-192910-101-89161234567-1795634950.39.wav"),
	}
	rec := NewRecording("file", msgs)
	re := rec.Retime(rec.Start().Add(time.Hour))
	want := "/var/spool/asterisk/monitor/out-20261125-202910-101-89161234567-1795638550.39.wav"
	if got := exactGet(re.Packets[1].Msg, "Value"); got != want {
		t.Fatalf("Value %q, want %q", got, want)
	}
}

func TestMerge(t *testing.T) {
	rec := loadTestRecording(t, "inbound-answered")
	a, b := rec.Fresh(1), rec.Fresh(2)
	m := Merge("two", []Scheduled{{Rec: a}, {Rec: b, At: 3 * time.Second}})
	if m.Len() != a.Len()+b.Len() {
		t.Fatalf("Len() = %d", m.Len())
	}
	if m.Duration() != b.Duration()+3*time.Second {
		t.Fatalf("Duration() = %v", m.Duration())
	}
	ia, ib := 0, 0
	for i, p := range m.Packets {
		if i > 0 && p.Offset < m.Packets[i-1].Offset {
			t.Fatalf("offset goes back at %d", i)
		}
		// Each call keeps its own order.
		switch {
		case ia < a.Len() && p.Msg == a.Packets[ia].Msg:
			ia++
		case ib < b.Len() && p.Msg == b.Packets[ib].Msg:
			ib++
		default:
			t.Fatalf("packet %d out of its call's order", i)
		}
	}
}

func TestIDs(t *testing.T) {
	rec := loadTestRecording(t, "inbound-answered")
	ids := rec.IDs()
	want := IDs{
		Uniqueids: []string{"1795634813.4", "1795634813.5", "1795634813.6", "1795634813.7"},
		Channels: []string{"Local/4951234567@from-trunk-00000002;1", "Local/4951234567@from-trunk-00000002;2",
			"Local/101@phones-00000003;1", "Local/101@phones-00000003;2"},
	}
	if strings.Join(ids.Uniqueids, " ") != strings.Join(want.Uniqueids, " ") ||
		strings.Join(ids.Channels, " ") != strings.Join(want.Channels, " ") || len(ids.Bridges) != 1 {
		t.Fatalf("IDs() = %+v", ids)
	}
	fresh := rec.Fresh(1).IDs()
	for i, u := range fresh.Uniqueids {
		if u == ids.Uniqueids[i] || !strings.HasPrefix(u, "1795634813.") {
			t.Fatalf("fresh Uniqueid %q", u)
		}
	}
	if fresh.Bridges[0] == ids.Bridges[0] || fresh.Channels[0] == ids.Channels[0] {
		t.Fatalf("fresh ids %+v", fresh)
	}
}

func TestMergeByStart(t *testing.T) {
	rec := loadTestRecording(t, "inbound-answered")
	t0 := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	a := rec.Fresh(1).Retime(t0.Add(5 * time.Second))
	b := rec.Fresh(2).Retime(t0)
	m := MergeByStart("two", a, b)
	if !m.Start().Equal(t0) || m.Duration() != a.Duration()+5*time.Second {
		t.Fatalf("Start() %v, Duration() %v", m.Start(), m.Duration())
	}
	if m.Packets[0].Msg != b.Packets[0].Msg {
		t.Fatal("the earlier call does not come first")
	}
}

func TestReplace(t *testing.T) {
	rec := loadTestRecording(t, "click-to-call-originate")
	first := rec.IDs().Uniqueids[0]
	out := rec.Replace(first, "chan-id-1", "c2c-000123", "crm-42")
	text := wire(t, out)
	if strings.Contains(text, "c2c-000123") || strings.Contains(text, first+"\r") || !strings.Contains(text, "Uniqueid: chan-id-1\r") ||
		!strings.Contains(text, "Value: crm-42\r") {
		t.Fatal("values not replaced")
	}
	if out.Len() != rec.Len() || !strings.Contains(wire(t, rec), "c2c-000123") {
		t.Fatal("the original changed")
	}
}
