package ami

import (
	"strings"
	"time"
)

// Header is one `Key: Value` line of a packet. Keys keep the case Asterisk sent.
type Header struct {
	Key   string
	Value string
}

// Message is one AMI packet: an event, a response, or (when sent) an action. Headers are kept in
// order, and a key may repeat (Variable, ChanVariable, Output), so it is a list, not a map.
type Message struct {
	Headers []Header
	// Output holds the raw text of a legacy `Response: Follows` command reply (Asterisk <= 13).
	Output string
	// Received is when the reader took the packet off the socket.
	Received time.Time
}

// Get returns the first value of key, matched case-insensitively as Asterisk does, or "".
func (m *Message) Get(key string) string {
	v, _ := m.Lookup(key)
	return v
}

// Lookup returns the first value of key and whether the key is present.
func (m *Message) Lookup(key string) (string, bool) {
	for i := range m.Headers {
		if len(m.Headers[i].Key) == len(key) && (m.Headers[i].Key == key || strings.EqualFold(m.Headers[i].Key, key)) {
			return m.Headers[i].Value, true
		}
	}
	return "", false
}

// All returns every value of key in order.
func (m *Message) All(key string) []string {
	var out []string
	for i := range m.Headers {
		if strings.EqualFold(m.Headers[i].Key, key) {
			out = append(out, m.Headers[i].Value)
		}
	}
	return out
}

// Event is the event name, or "" for a response.
func (m *Message) Event() string { return m.Get("Event") }

// Response is the response status (Success, Error, Follows, Goodbye), or "" for an event.
func (m *Message) Response() string { return m.Get("Response") }

// ActionID is the ActionID header, or "".
func (m *Message) ActionID() string { return m.Get("ActionID") }

// Add appends a header; for building actions and test packets.
func (m *Message) Add(key, value string) *Message {
	m.Headers = append(m.Headers, Header{Key: key, Value: value})
	return m
}

// Timestamp is when Asterisk says the event happened: the Timestamp header when the PBX sends one
// (timestampevents=yes), else the zero time.
func (m *Message) Timestamp() time.Time {
	ts := m.Get("Timestamp")
	if ts == "" {
		return time.Time{}
	}
	return ParseTimestamp(ts)
}

// ParseTimestamp reads Asterisk's `sec.usec` form; it returns the zero time when it cannot.
func ParseTimestamp(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	var s, us int64
	for _, c := range sec {
		if c < '0' || c > '9' {
			return time.Time{}
		}
		s = s*10 + int64(c-'0')
	}
	n := 0
	for _, c := range frac {
		if c < '0' || c > '9' {
			return time.Time{}
		}
		if n < 6 {
			us = us*10 + int64(c-'0')
			n++
		}
	}
	for ; n < 6; n++ {
		us *= 10
	}
	if s == 0 && us == 0 {
		return time.Time{}
	}
	return time.Unix(s, us*1000).UTC()
}

// String renders the packet in wire form (CRLF lines and a blank line), for logs of actions with
// no secrets and for `record`. A legacy command reply (first header `Response: Follows`) is
// rendered as Asterisk <= 13 sends it: headers, Output, then `--END COMMAND--` and a blank line.
// Reading the result back with a Reader gives the same Message.
func (m *Message) String() string {
	n := 2
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	if m.isFollows() {
		n += len(m.Output) + len(endCommand) + 2
	}
	return string(m.AppendWire(make([]byte, 0, n)))
}

// AppendWire appends the wire form of m (as String renders it) to b.
func (m *Message) AppendWire(b []byte) []byte {
	for _, h := range m.Headers {
		b = append(b, h.Key...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	if m.isFollows() {
		b = append(b, m.Output...)
		b = append(b, endCommand...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}
