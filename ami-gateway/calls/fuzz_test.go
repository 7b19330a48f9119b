package calls

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// FuzzCorrelate feeds the correlator damaged streams: any bytes as AMI, and real recordings with
// packets dropped, repeated or swapped as the ops bytes say. Whatever comes in, it must not panic,
// every event must be valid, no event id may repeat, and no call may end twice.
func FuzzCorrelate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "ami-asterisk22", "*.ami"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, []byte{})
		f.Add(raw, []byte{3, 0, 7, 1, 9, 2})
	}
	_, cls := loadReplayConfig(f, filepath.Join(fixtures, "ami-asterisk22", "replay.yaml"))
	cl, err := NewClassifier(cls)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw, ops []byte) {
		r := ami.NewReader(bytes.NewReader(raw), ami.ReaderOptions{MaxPacketSize: 1 << 16})
		var msgs []*ami.Message
		for len(msgs) < 5000 {
			m, err := r.ReadMessage()
			if errors.Is(err, io.EOF) {
				break
			}
			var pe *ami.ParseError
			if errors.As(err, &pe) {
				if errors.Is(err, ami.ErrTruncated) {
					break
				}
				continue
			}
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		// ops: pairs (kind, index): 0 drop, 1 repeat, 2 swap with the next.
		for i := 0; i+1 < len(ops) && len(msgs) > 1; i += 2 {
			at := int(ops[i+1]) * len(msgs) / 256
			switch ops[i] % 3 {
			case 0:
				msgs = append(msgs[:at], msgs[at+1:]...)
			case 1:
				msgs = append(msgs[:at+1], msgs[at:]...)
			case 2:
				if at+1 < len(msgs) {
					msgs[at], msgs[at+1] = msgs[at+1], msgs[at]
				}
			}
		}
		c := New(Options{PBX: "fuzz"}, cl)
		ids := map[string]bool{}
		ended := map[string]bool{}
		check := func(events []callevent.Event) {
			for _, e := range events {
				if err := e.Validate(); err != nil {
					t.Fatalf("invalid event: %v", err)
				}
				if ids[e.ID] {
					t.Fatalf("event id %s twice", e.ID)
				}
				ids[e.ID] = true
				if e.Kind == callevent.Ended {
					if ended[e.CallID] {
						t.Fatalf("call %s ended twice", e.CallID)
					}
					ended[e.CallID] = true
				}
			}
		}
		for _, m := range msgs {
			check(c.Handle(m))
		}
		// A resync with nothing listed ends every call left.
		check(c.Resync(nil, c.Now()))
		if c.Calls() != 0 {
			t.Fatalf("%d calls open after a resync with no channels", c.Calls())
		}
	})
}
