package amisim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// Packet is one event of a Recording.
type Packet struct {
	Msg *ami.Message
	// Offset is when the event happened, from the recording's start, by the stream's own clock;
	// it never decreases along the recording.
	Offset time.Duration
}

// Recording is a captured call (or several): its events in stream order with their offsets.
// Recordings are values: Fresh, Retime and Merge return new ones and never modify their input,
// so one loaded recording can feed many concurrent plays. Do not modify its messages.
type Recording struct {
	Name    string
	Packets []Packet
	start   time.Time // the time the first offset is counted from; zero when the stream has none
}

// LoadRecording reads a captured `.ami` stream (banner optional, CRLF or LF). It keeps the event
// packets and drops the recorded session's own replies (Response packets) and its FullyBooted,
// which the simulator sends itself at each login. OriginateResponse events are kept.
func LoadRecording(path string) (*Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("amisim: load recording: %w", err)
	}
	defer f.Close()
	rec, err := ReadRecording(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), f)
	if err != nil {
		return nil, fmt.Errorf("amisim: load recording %s: %w", path, err)
	}
	return rec, nil
}

// ReadRecording is LoadRecording from a reader.
func ReadRecording(name string, r io.Reader) (*Recording, error) {
	rd := ami.NewReader(r, ami.ReaderOptions{})
	var msgs []*ami.Message
	for {
		m, err := rd.ReadMessage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", len(msgs)+1, err)
		}
		if len(m.Headers) == 0 || !strings.EqualFold(m.Headers[0].Key, "Event") {
			continue
		}
		if m.Headers[0].Value == "FullyBooted" {
			continue
		}
		m.Received = time.Time{}
		msgs = append(msgs, m)
	}
	return NewRecording(name, msgs), nil
}

// NewRecording makes a Recording of msgs, with offsets from their own times (see Recording).
// An event's time is its Timestamp header when present, else: CEL EventTime, Cdr EndTime,
// Newchannel's Uniqueid epoch (a channel's creation second), EventTV. An event without a time
// gets the offset of the timed event before it (0 at the start), and an event timed earlier than
// one before it (CEL is often late) keeps that earlier offset, so offsets never decrease.
func NewRecording(name string, msgs []*ami.Message) *Recording {
	rec := &Recording{Name: name, Packets: make([]Packet, len(msgs))}
	times := make([]time.Time, len(msgs))
	for i, m := range msgs {
		rec.Packets[i].Msg = m
		if t, ok := eventTime(m); ok {
			times[i] = t
			if rec.start.IsZero() || t.Before(rec.start) {
				rec.start = t
			}
		}
	}
	var last time.Duration
	for i := range rec.Packets {
		if !times[i].IsZero() {
			if d := times[i].Sub(rec.start); d > last {
				last = d
			}
		}
		rec.Packets[i].Offset = last
	}
	return rec
}

// Len is the number of packets.
func (r *Recording) Len() int { return len(r.Packets) }

// Messages returns the events in order (shared, do not modify).
func (r *Recording) Messages() []*ami.Message {
	out := make([]*ami.Message, len(r.Packets))
	for i := range r.Packets {
		out[i] = r.Packets[i].Msg
	}
	return out
}

// Start is the earliest time the stream carries: offsets count from it. Zero when no event has a
// time.
func (r *Recording) Start() time.Time { return r.start }

// Duration is the offset of the last packet.
func (r *Recording) Duration() time.Duration {
	if len(r.Packets) == 0 {
		return 0
	}
	return r.Packets[len(r.Packets)-1].Offset
}

// WriteTo writes the packets in wire form (CRLF, no banner): a `.ami` file LoadRecording reads
// back into the same events.
func (r *Recording) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	var buf []byte
	for _, p := range r.Packets {
		buf = p.Msg.AppendWire(buf[:0])
		k, err := bw.Write(buf)
		n += int64(k)
		if err != nil {
			return n, fmt.Errorf("amisim: write recording %s: %w", r.Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("amisim: write recording %s: %w", r.Name, err)
	}
	return n, nil
}

// IDs lists the identifiers a recording carries, each once, in order of first appearance.
type IDs struct {
	Uniqueids []string // `epoch.seq` parts of every Uniqueid/Linkedid-like field (prefix removed)
	Channels  []string // channel names with a -XXXXXXXX suffix
	Bridges   []string // bridge UUIDs
}

// IDs returns the identifiers of r.
func (r *Recording) IDs() IDs {
	ix := r.collect()
	var ids IDs
	ids.Uniqueids = append(ids.Uniqueids, ix.uniqueids...)
	ids.Channels = append(ids.Channels, ix.channels...)
	seen := map[string]bool{}
	for _, p := range r.Packets {
		for _, h := range p.Msg.Headers {
			for _, u := range uuidRe.FindAllString(h.Value, -1) {
				if !seen[u] {
					seen[u] = true
					ids.Bridges = append(ids.Bridges, u)
				}
			}
		}
	}
	return ids
}

// Scheduled is one recording of a Merge, starting At after the merged timeline's start.
type Scheduled struct {
	Rec *Recording
	At  time.Duration
}

// Merge interleaves recordings into one timeline: packet offsets become At + Offset, and packets
// are ordered by offset (ties keep the order of calls, then of packets). Messages are shared;
// Fresh each recording first when they are copies of one capture, and Retime them if their own
// times should match the new timeline.
func Merge(name string, calls []Scheduled) *Recording {
	type item struct {
		off  time.Duration
		call int
		idx  int
	}
	var items []item
	for c, s := range calls {
		for i, p := range s.Rec.Packets {
			items = append(items, item{s.At + p.Offset, c, i})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].off < items[j].off })
	out := &Recording{Name: name, Packets: make([]Packet, len(items))}
	for k, it := range items {
		out.Packets[k] = Packet{Msg: calls[it.call].Rec.Packets[it.idx].Msg, Offset: it.off}
	}
	for _, s := range calls {
		if st := s.Rec.start.Add(-s.At); !s.Rec.start.IsZero() && (out.start.IsZero() || st.Before(out.start)) {
			out.start = st
		}
	}
	return out
}

// MergeByStart merges recordings on their own clocks: each starts at its Start() minus the
// earliest Start() (Retime each call to when it should happen, then merge). A recording without
// times starts at 0.
func MergeByStart(name string, recs ...*Recording) *Recording {
	var first time.Time
	for _, r := range recs {
		if !r.start.IsZero() && (first.IsZero() || r.start.Before(first)) {
			first = r.start
		}
	}
	calls := make([]Scheduled, len(recs))
	for i, r := range recs {
		calls[i] = Scheduled{Rec: r}
		if !r.start.IsZero() {
			calls[i].At = r.start.Sub(first)
		}
	}
	return Merge(name, calls)
}

// Replace returns a copy of r with every header value rewritten by strings.NewReplacer(oldnew...):
// give an originated channel the ChannelId the action asked for, or a call the CRM's call id.
func (r *Recording) Replace(oldnew ...string) *Recording {
	rep := strings.NewReplacer(oldnew...)
	return r.mapValues(r.Name, r.start, func(_, v string) string { return rep.Replace(v) })
}

// mapValues returns a copy of r with every header value passed through f (and its Start set).
func (r *Recording) mapValues(name string, start time.Time, f func(key, value string) string) *Recording {
	out := &Recording{Name: name, Packets: make([]Packet, len(r.Packets)), start: start}
	for i, p := range r.Packets {
		m := &ami.Message{Headers: make([]ami.Header, len(p.Msg.Headers)), Output: p.Msg.Output}
		for j, h := range p.Msg.Headers {
			v := h.Value
			if j > 0 || !strings.EqualFold(h.Key, "Event") {
				v = f(h.Key, v)
			}
			m.Headers[j] = ami.Header{Key: h.Key, Value: v}
		}
		out.Packets[i] = Packet{Msg: m, Offset: p.Offset}
	}
	return out
}
