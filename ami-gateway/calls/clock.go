package calls

import (
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// Clock is the stream's time: the Timestamp header when Asterisk sends one (timestampevents=yes),
// else the times CEL and Cdr events carry, else the arrival time. So a replay of a recording gives
// the same times and durations as the live service did, however fast it reads.
type Clock struct {
	Location *time.Location
	now      time.Time
	// streamed: the stream has carried its own time; from then on arrival times are ignored,
	// since they belong to a different clock (a replay reads a recording made days ago).
	streamed bool
}

// Now is the current stream time.
func (k *Clock) Now() time.Time { return k.now }

// Streamed reports whether the stream carries its own time.
func (k *Clock) Streamed() bool { return k.streamed }

// Observe advances the clock by one message. It reports true when the stream's own time was seen
// for the first time, so arrival times taken before can be replaced.
func (k *Clock) Observe(event string, m *ami.Message) (switched bool) {
	var t time.Time
	if ts, ok := m.Lookup("Timestamp"); ok {
		t = ami.ParseTimestamp(ts)
	} else {
		switch event {
		case "CEL":
			t = k.parse(m.Get("EventTime"))
		case "Cdr":
			t = k.parse(m.Get("EndTime"))
		}
	}
	if !t.IsZero() {
		if !k.streamed || t.After(k.now) {
			k.now = t
		}
		switched = !k.streamed
		k.streamed = true
		return switched
	}
	if k.streamed {
		return false
	}
	arr := m.Received
	if arr.IsZero() {
		arr = time.Now()
	}
	if arr.After(k.now) {
		k.now = arr.UTC()
	}
	return false
}

// uidEpoch is the creation second that a Uniqueid ([system-]epoch.sequence) carries, or zero.
func uidEpoch(uid string) time.Time {
	dot := strings.LastIndexByte(uid, '.')
	if dot <= 0 {
		return time.Time{}
	}
	start := strings.LastIndexByte(uid[:dot], '-') + 1
	var s int64
	for i := start; i < dot; i++ {
		c := uid[i]
		if c < '0' || c > '9' {
			return time.Time{}
		}
		s = s*10 + int64(c-'0')
	}
	if s < 946684800 { // before 2000: not an epoch
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// parse reads CEL's and Cdr's "2006-01-02 15:04:05[.frac]" in the PBX's zone, or "sec.usec".
func (k *Clock) parse(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if !strings.Contains(s, "-") {
		return ami.ParseTimestamp(s)
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, k.Location)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// Set moves the clock, for a correlator restored from saved state.
func (k *Clock) Set(t time.Time) {
	if t.After(k.now) {
		k.now = t
	}
}
