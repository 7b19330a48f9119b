package calls

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringbridge/ringbridge/internal/callevent"
)

// TestAsterisk13Public replays the public Asterisk 13 sessions (shared/fixtures/ami-public) with
// the classification in testdata/public.yaml: phones are SIP accounts 1500100NN.
func TestAsterisk13Public(t *testing.T) {
	pbx, cls := loadReplayConfig(t, "testdata/public.yaml")
	type want struct {
		dir        callevent.Direction
		disp       callevent.Disposition
		answeredBy string
		extension  string
		rang       string
		external   string
		transfers  string // kind:from>to, comma separated
		calls      int    // ended events (an attended transfer's consultation is a call too)
	}
	cases := map[string]want{
		"asterisk13-internal-answered":                {dir: "internal", disp: "answered", answeredBy: "150010002", extension: "150010001", rang: "150010002", calls: 1},
		"asterisk13-internal-missed-caller-cancel":    {dir: "internal", disp: "no_answer", extension: "150010001", rang: "150010002", calls: 1},
		"asterisk13-internal-rejected-busy":           {dir: "internal", disp: "busy", extension: "150010001", rang: "150010002", calls: 1},
		"asterisk13-attended-transfer":                {dir: "internal", disp: "answered", answeredBy: "150010002", extension: "150010001", rang: "150010002,150010003", transfers: "attended:150010002>150010003", calls: 2},
		"asterisk13-blind-transfer":                   {dir: "internal", disp: "answered", answeredBy: "150010002", extension: "150010001", rang: "150010002,150010003", transfers: "blind:150010001>203", calls: 1},
		"asterisk13-queue-answered":                   {dir: "inbound", disp: "answered", answeredBy: "150010002", extension: "150010002", rang: "150010002,150010003", external: "+31150010001", calls: 1},
		"asterisk13-queue-abandoned":                  {dir: "inbound", disp: "no_answer", extension: "150010002", rang: "150010002", external: "+31150010001", calls: 1},
		"asterisk13-originate-click-to-dial-outbound": {dir: "outbound", disp: "answered", answeredBy: "150010001", extension: "150010001", rang: "150010001", external: "+31260010001", calls: 1},
		"asterisk13-chansip-outbound-peer-answered":   {dir: "outbound", disp: "answered", answeredBy: "9170-12", extension: "9170-12", external: "9898", calls: 1},
	}
	files, _ := filepath.Glob(filepath.Join(fixtures, "ami-public", "*.ami"))
	if len(files) != len(cases) {
		t.Fatalf("%d public recordings, %d cases", len(files), len(cases))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".ami")
		w, ok := cases[name]
		if !ok {
			t.Errorf("no case for %s", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			events := replayFile(t, pbx, cls, f)
			ended := filter(events, callevent.Ended)
			if len(ended) != w.calls {
				t.Fatalf("%d ended events, want %d", len(ended), w.calls)
			}
			e := ended[len(ended)-1] // the customer's call ends last
			if e.Direction != w.dir || e.Disposition != w.disp {
				t.Errorf("direction %s disposition %s, want %s %s", e.Direction, e.Disposition, w.dir, w.disp)
			}
			eq(t, "answered_by", e.AnsweredBy, w.answeredBy)
			eq(t, "extension", e.Extension, w.extension)
			eq(t, "extensions_rang", strings.Join(e.ExtensionsRang, ","), w.rang)
			eq(t, "external", e.External, w.external)
			var tr []string
			for _, x := range e.Transfers {
				tr = append(tr, string(x.Kind)+":"+x.From+">"+x.To)
			}
			eq(t, "transfers", strings.Join(tr, ","), w.transfers)
			ids := map[string]bool{}
			for _, ev := range events {
				if ids[ev.ID] {
					t.Errorf("event id %s sent twice", ev.ID)
				}
				ids[ev.ID] = true
			}
		})
	}
}
