package calls

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// Resync reconciles the calls in progress with the channels Asterisk lists now (the
// CoreShowChannel items of a CoreShowChannels action), after an AMI reconnect or a restart.
// AMI has no replay, so what happened while the gateway was away is inferred: a channel that is
// gone hung up, a call with no channel left ended, channels in one bridge talk. now is the time
// of the listing, used where the stream has no time of its own.
func (c *Correlator) Resync(items []*ami.Message, now time.Time) []callevent.Event {
	c.out = c.out[:0]
	c.clock.Set(now.UTC())
	listed := make(map[string]bool, len(items))
	for _, m := range items {
		uid := m.Get("Uniqueid")
		if uid == "" || m.Get("Linkedid") == "" {
			continue
		}
		listed[uid] = true
		known := c.channels[uid] != nil
		ch := c.channel(m, "")
		if ch == nil {
			continue
		}
		if !known {
			if d, ok := parseHMS(m.Get("Duration")); ok {
				if e := uidEpoch(uid); !e.IsZero() {
					ch.Created = e
				} else {
					ch.Created = c.clock.Now().Add(-d)
				}
			}
			if call := c.calls[ch.Linkedid]; call != nil && call.First == uid {
				call.StartedAt = ch.Created
			}
		}
		ch.Bridge = m.Get("BridgeId")
	}
	for _, call := range c.sortedCalls() {
		for _, ch := range sortedChannels(call) {
			if !listed[ch.Uniqueid] {
				if leg := call.Legs[ch.Uniqueid]; leg != nil && leg.Status == "" {
					leg.Status = "NOANSWER"
				}
				c.bury(ch.Uniqueid)
				delete(call.Channels, ch.Uniqueid)
			}
		}
		c.touched[call.ID] = true
		if len(call.Channels) == 0 {
			c.finish(call)
			continue
		}
		c.start(call, nil)
		c.changed(call)
		c.release(call)
	}
	c.open.Store(int64(len(c.calls)))
	return c.out
}

func (c *Correlator) sortedCalls() []*Call {
	out := make([]*Call, 0, len(c.calls))
	for _, call := range c.calls {
		out = append(out, call)
	}
	// Oldest first, so events come out in the order the calls began.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && older(out[j].ID, out[j-1].ID); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// parseHMS reads CoreShowChannel's Duration, HH:MM:SS.
func parseHMS(s string) (time.Duration, bool) {
	var h, m, sec int
	if _, err := fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec); err != nil {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, true
}

// TakeTouched returns the calls changed and the calls ended since the last call, for the live
// state store, and forgets them.
func (c *Correlator) TakeTouched() (changed []*Call, ended []string) {
	for id := range c.touched {
		if call := c.calls[id]; call != nil {
			changed = append(changed, call)
		}
		delete(c.touched, id)
	}
	ended = c.ended
	c.ended = nil
	return changed, ended
}

// Encode is the saved form of a call.
func Encode(call *Call) ([]byte, error) { return json.Marshal(call) }

// Decode reads a saved call.
func Decode(b []byte) (*Call, error) {
	var call Call
	if err := json.Unmarshal(b, &call); err != nil {
		return nil, fmt.Errorf("decode saved call: %w", err)
	}
	if call.ID == "" {
		return nil, fmt.Errorf("decode saved call: no id")
	}
	if call.Channels == nil {
		call.Channels = make(map[string]*Channel)
	}
	return &call, nil
}

// Restore puts saved calls back, as a restarted gateway found them in the live state store.
// Call Resync next: the channels may have changed while the gateway was down.
func (c *Correlator) Restore(calls []*Call) {
	for _, call := range calls {
		if call.Ended {
			continue
		}
		c.calls[call.ID] = call
		for uid, ch := range call.Channels {
			c.channels[uid] = ch
		}
		c.clock.Set(call.Seen)
	}
}
