// Package replay turns a recorded AMI stream into the call events the gateway would publish for
// it: `ami-gateway replay FILE.ami` prints them as JSON lines, the same JSON as on the bus.
package replay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/ami-gateway/calls"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
)

// Stats says what a replay read and made.
type Stats struct {
	Packets     uint64
	ParseErrors uint64
	Events      int
	Calls       int // calls ended
	Open        int // calls still in progress when the stream ended
}

// Options are the replay's config: the PBX's name and its channel classification.
type Options struct {
	PBX      string
	Classify config.Classify
	Location *time.Location
	// Errors receives one line per bad packet (a recording may be cut or damaged); nil drops them
	// after counting.
	Errors io.Writer
}

// Run reads the AMI stream from r and writes one JSON line per call event to w.
func Run(r io.Reader, w io.Writer, opt Options) (Stats, error) {
	var st Stats
	cl, err := calls.NewClassifier(opt.Classify)
	if err != nil {
		return st, err
	}
	c := calls.New(calls.Options{PBX: opt.PBX, Location: opt.Location}, cl)
	rd := ami.NewReader(r, ami.ReaderOptions{})
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	for {
		m, err := rd.ReadMessage()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *ami.ParseError
		if errors.As(err, &pe) {
			st.ParseErrors++
			if opt.Errors != nil {
				fmt.Fprintf(opt.Errors, "replay: skipped bad input: %v\n", pe)
			}
			if errors.Is(err, ami.ErrTruncated) {
				break
			}
			continue
		}
		if err != nil {
			return st, fmt.Errorf("read AMI stream: %w", err)
		}
		st.Packets++
		events := c.Handle(m)
		for i := range events {
			ev := &events[i]
			b, err := callevent.Marshal(ev)
			if err != nil {
				return st, fmt.Errorf("encode call event %s: %w", ev.ID, err)
			}
			bw.Write(b)
			if err := bw.WriteByte('\n'); err != nil {
				return st, fmt.Errorf("write call events: %w", err)
			}
			st.Events++
			if ev.Kind == callevent.Ended {
				st.Calls++
			}
		}
	}
	st.Open = c.Calls()
	return st, bw.Flush()
}
