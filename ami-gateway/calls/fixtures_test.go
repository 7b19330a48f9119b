package calls

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
)

const fixtures = "../../../shared/fixtures"

// truth is the ground truth a22 fixture's .json holds, as the harness wrote it.
type truth struct {
	Scenario      string   `json:"scenario"`
	Direction     string   `json:"direction"`
	Caller        string   `json:"caller"`
	Called        string   `json:"called"`
	DID           string   `json:"did"`
	Rang          []string `json:"rang"`
	AnsweredBy    *string  `json:"answered_by"`
	Disposition   string   `json:"disposition"`
	RingSeconds   *int     `json:"ring_seconds"`
	TalkSeconds   *int     `json:"talk_seconds"`
	Recording     *string  `json:"recording"`
	RecordingFile string   `json:"recording_file"`
	Transfer      *struct {
		Kind string `json:"kind"`
		By   string `json:"by"`
		To   string `json:"to"`
	} `json:"transfer"`
	Talk101  *int `json:"talk_seconds_101"`
	Talk102  *int `json:"talk_seconds_102"`
	Talk102C *int `json:"talk_seconds_102_with_caller"`
	Consult  int  `json:"consultation_seconds"`
}

func loadReplayConfig(t testing.TB, path string) (string, config.Classify) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		PBX      string          `yaml:"pbx"`
		Classify config.Classify `yaml:"classify"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.PBX, f.Classify
}

func replayFile(t testing.TB, pbx string, cls config.Classify, path string) []callevent.Event {
	t.Helper()
	cl, err := NewClassifier(cls)
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{PBX: pbx}, cl)
	var out []callevent.Event
	for _, m := range readStream(t, path) {
		out = append(out, c.Handle(m)...)
	}
	if c.Calls() != 0 {
		t.Errorf("%d calls still open at the end of the stream", c.Calls())
	}
	return out
}

var extRe = regexp.MustCompile(`^\d{3}`)

func TestAsterisk22Fixtures(t *testing.T) {
	dir := filepath.Join(fixtures, "ami-asterisk22")
	pbx, cls := loadReplayConfig(t, filepath.Join(dir, "replay.yaml"))
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) < 15 {
		t.Fatalf("found %d fixtures in %s", len(files), dir)
	}
	for _, jf := range files {
		name := strings.TrimSuffix(filepath.Base(jf), ".json")
		t.Run(name, func(t *testing.T) {
			var tr truth
			b, _ := os.ReadFile(jf)
			if err := json.Unmarshal(b, &tr); err != nil {
				t.Fatal(err)
			}
			events := replayFile(t, pbx, cls, filepath.Join(dir, name+".ami"))
			ended := only(t, events, callevent.Ended)
			started := only(t, events, callevent.Started)
			checkOrder(t, events)

			wantDir := strings.Fields(tr.Direction)[0]
			if string(ended.Direction) != wantDir || started.Direction != ended.Direction {
				t.Errorf("direction: started %s, ended %s, want %s", started.Direction, ended.Direction, wantDir)
			}
			clickToCall := strings.Contains(tr.Direction, "click-to-call")
			switch wantDir {
			case "inbound":
				eq(t, "external", ended.External, "+7"+tr.Caller[1:])
				eq(t, "line", ended.Line, "+7"+tr.DID)
				eqList(t, "extensions_rang", ended.ExtensionsRang, tr.Rang)
			case "outbound":
				eq(t, "external", ended.External, "+7"+tr.Called[1:])
				eq(t, "extension", ended.Extension, tr.Caller)
				if clickToCall {
					eqList(t, "extensions_rang", ended.ExtensionsRang, []string{tr.Caller})
				} else {
					eqList(t, "extensions_rang", ended.ExtensionsRang, nil)
				}
			case "internal":
				eq(t, "external", ended.External, "")
				eq(t, "extension", ended.Extension, tr.Caller)
				eqList(t, "extensions_rang", ended.ExtensionsRang, []string{tr.Called})
			}
			if started.External != ended.External && !clickToCall {
				t.Errorf("started.external %q, ended.external %q", started.External, ended.External)
			}

			wantDisp := map[string]callevent.Disposition{"ANSWERED": "answered", "NO ANSWER": "no_answer", "BUSY": "busy", "ABANDONED": "no_answer"}
			var disp callevent.Disposition
			for k, v := range wantDisp {
				if strings.HasPrefix(tr.Disposition, k) {
					disp = v
				}
			}
			eq(t, "disposition", string(ended.Disposition), string(disp))

			// answered_by: the first employee that talked ("101, then 102 after ..." -> 101);
			// for an outbound call, the employee once the called number answered.
			wantBy := ""
			if tr.AnsweredBy != nil {
				wantBy = extRe.FindString(*tr.AnsweredBy)
				if wantDir == "outbound" {
					wantBy = tr.Caller
				}
			}
			eq(t, "answered_by", ended.AnsweredBy, wantBy)
			answered := filter(events, callevent.Answered)
			if wantBy != "" && (len(answered) == 0 || answered[0].Extension != wantBy) {
				t.Errorf("first answered event %+v, want extension %s", answered, wantBy)
			}
			if wantBy == "" && len(answered) != 0 {
				t.Errorf("answered events for a call nobody answered: %+v", answered)
			}

			// Responsible: inbound -> who talked last, or the first that rang.
			if wantDir == "inbound" {
				want := ""
				switch {
				case tr.Transfer != nil:
					want = tr.Transfer.To
				case wantBy != "":
					want = wantBy
				default:
					want = tr.Rang[0]
				}
				eq(t, "extension", ended.Extension, want)
			}

			if tr.Transfer != nil {
				if len(ended.Transfers) != 1 {
					t.Fatalf("transfers %+v, want one", ended.Transfers)
				}
				x := ended.Transfers[0]
				kind := strings.Fields(tr.Transfer.Kind)[0]
				eq(t, "transfer.kind", string(x.Kind), kind)
				if tr.Transfer.By != "CRM" {
					eq(t, "transfer.from", x.From, tr.Transfer.By)
				} else {
					eq(t, "transfer.from", x.From, wantBy)
				}
				eq(t, "transfer.to", x.To, tr.Transfer.To)
				if tr := filter(events, callevent.Transferred); len(tr) != 1 {
					t.Errorf("want one transferred event, got %d", len(tr))
				} else if len(tr[0].Transfers) != 1 || tr[0].Transfers[0] != ended.Transfers[0] {
					// Sent once it is certain: the same transfer, the same time, as in the record.
					t.Errorf("transferred event says %+v, ended says %+v", tr[0].Transfers, ended.Transfers)
				}
			} else if len(ended.Transfers) != 0 {
				t.Errorf("transfers %+v, want none", ended.Transfers)
			}

			// Ringing: one event per extension channel that rang.
			for _, ext := range tr.Rang {
				found := false
				for _, e := range filter(events, callevent.Ringing) {
					found = found || e.Extension == ext
				}
				if !found && disp != callevent.DispBusy {
					t.Errorf("no ringing event for %s", ext)
				}
			}

			// Durations come from the stream's own times (CEL), within a second.
			if tr.RingSeconds != nil && !clickToCall {
				near(t, "ring_seconds", ended.RingSeconds, *tr.RingSeconds)
			}
			talk := 0
			switch {
			case tr.TalkSeconds != nil:
				talk = *tr.TalkSeconds
			case tr.Talk101 != nil && tr.Talk102 != nil:
				talk = *tr.Talk101 + *tr.Talk102 + 4 // 102 rang 4 s in between
			case tr.Talk101 != nil && tr.Talk102C != nil:
				talk = *tr.Talk101 + 4 + tr.Consult + *tr.Talk102C // the caller holds through it
			}
			if clickToCall {
				talk = 10
			}
			near(t, "talk_seconds", ended.TalkSeconds, talk)

			wantRec := ""
			if tr.Recording != nil {
				wantRec = tr.RecordingFile
			}
			eq(t, "recording", ended.Recording, wantRec)
			if err := ended.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func only(t *testing.T, events []callevent.Event, kind callevent.Kind) callevent.Event {
	t.Helper()
	got := filter(events, kind)
	if len(got) != 1 {
		for _, e := range events {
			t.Logf("%s %s ext=%s", e.Kind, e.ID, e.Extension)
		}
		t.Fatalf("%d %s events, want exactly 1", len(got), kind)
	}
	return got[0]
}

func filter(events []callevent.Event, kind callevent.Kind) []callevent.Event {
	var out []callevent.Event
	for _, e := range events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// checkOrder: started first, ended last, ids unique.
func checkOrder(t *testing.T, events []callevent.Event) {
	t.Helper()
	seen := map[string]bool{}
	for i, e := range events {
		if seen[e.ID] {
			t.Errorf("event id %s sent twice", e.ID)
		}
		seen[e.ID] = true
		if i == 0 && e.Kind != callevent.Started {
			t.Errorf("first event is %s", e.Kind)
		}
		if i == len(events)-1 && e.Kind != callevent.Ended {
			t.Errorf("last event is %s", e.Kind)
		}
	}
}

func eq(t *testing.T, field, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", field, got, want)
	}
}

func eqList(t *testing.T, field string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s = %q, want %q", field, got, want)
	}
}

func near(t *testing.T, field string, got, want int) {
	t.Helper()
	if got < want-1 || got > want+1 {
		t.Errorf("%s = %d, want %d±1", field, got, want)
	}
}

// TestOriginatedPhoneIsNotClickToCall: a recording's harness originates the calling phone (a
// helper in from-internal). Whatever order Asterisk sends the Originate's DialBegin in, the call
// stays what it is (internal, outbound), not a click-to-call.
func TestOriginatedPhoneIsNotClickToCall(t *testing.T) {
	dir := filepath.Join(fixtures, "ami-asterisk22")
	pbx, cls := loadReplayConfig(t, filepath.Join(dir, "replay.yaml"))
	cl, err := NewClassifier(cls)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		dir  callevent.Direction
		ext  string
	}{{"internal-call", callevent.Internal, "101"}, {"outbound-answered", callevent.Outbound, "101"}} {
		t.Run(c.file, func(t *testing.T) {
			msgs := readStream(t, filepath.Join(dir, c.file+".ami"))
			// Move the DialBegin without a caller block right after the first Newchannel.
			first, orig := -1, -1
			for i, m := range msgs {
				if first < 0 && m.Event() == "Newchannel" {
					first = i
				}
				if orig < 0 && m.Event() == "DialBegin" && m.Get("Uniqueid") == "" {
					orig = i
				}
			}
			if first < 0 || orig < 0 {
				t.Fatal("recording has no Newchannel or no originate DialBegin")
			}
			m := msgs[orig]
			msgs = append(msgs[:orig], msgs[orig+1:]...)
			msgs = append(msgs[:first+1], append([]*ami.Message{m}, msgs[first+1:]...)...)
			corr := New(Options{PBX: pbx}, cl)
			var events []callevent.Event
			for _, m := range msgs {
				events = append(events, corr.Handle(m)...)
			}
			e := only(t, events, callevent.Ended)
			if e.Direction != c.dir || e.Extension != c.ext || len(e.ExtensionsRang) > 1 {
				t.Errorf("ended: direction %s extension %s rang %v, want %s %s", e.Direction, e.Extension, e.ExtensionsRang, c.dir, c.ext)
			}
		})
	}
}
