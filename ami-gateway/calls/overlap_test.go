package calls

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// summary is what must not change when a call overlaps others.
func summary(e callevent.Event) string {
	var tr []string
	for _, x := range e.Transfers {
		tr = append(tr, string(x.Kind)+":"+x.From+">"+x.To)
	}
	return strings.Join([]string{string(e.Direction), e.External, e.Line, e.Extension,
		strings.Join(e.ExtensionsRang, ","), e.AnsweredBy, string(e.Disposition), e.Recording,
		strings.Join(tr, ",")}, "|")
}

// TestOverlappingCalls plays many copies of every recording at once, interleaved packet by
// packet, and checks that each call comes out as it does alone.
func TestOverlappingCalls(t *testing.T) {
	dir := filepath.Join(fixtures, "ami-asterisk22")
	pbx, cls := loadReplayConfig(t, filepath.Join(dir, "replay.yaml"))
	cl, err := NewClassifier(cls)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ami"))
	const copies = 6
	want := map[string]callevent.Event{} // by call id
	var streams [][]*ami.Message
	for fi, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < copies; n++ {
			msgs := parseAll(t, fresh(raw, fi*copies+n))
			solo := New(Options{PBX: pbx}, cl)
			for _, m := range msgs {
				for _, e := range solo.Handle(m) {
					if e.Kind == callevent.Ended {
						want[e.CallID] = e
					}
				}
			}
			streams = append(streams, msgs)
		}
	}
	all := New(Options{PBX: pbx}, cl)
	got := map[string]callevent.Event{}
	maxOpen := 0
	for _, m := range interleave(streams) {
		for _, e := range all.Handle(m) {
			if e.Kind != callevent.Ended {
				continue
			}
			if _, dup := got[e.CallID]; dup {
				t.Errorf("call %s ended twice", e.CallID)
			}
			got[e.CallID] = e
		}
		if all.Calls() > maxOpen {
			maxOpen = all.Calls()
		}
	}
	if maxOpen < len(streams)/2 {
		t.Errorf("only %d calls were open at once", maxOpen)
	}
	if len(got) != len(want) {
		t.Fatalf("%d calls ended, want %d", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("call %s never ended", id)
			continue
		}
		if summary(g) != summary(w) {
			t.Errorf("call %s overlapped:\n got %s\nwant %s", id, summary(g), summary(w))
		}
	}
	t.Logf("%d calls, %d open at most, %d AMI events", len(got), maxOpen, len(interleave(streams)))
}
