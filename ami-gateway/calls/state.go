package calls

import (
	"time"

	"github.com/ringbridge/ringbridge/internal/callevent"
)

// Channel is what the correlator knows of one live Asterisk channel. It is saved with its call,
// so the fields are exported and JSON-tagged.
type Channel struct {
	Uniqueid string    `json:"uniqueid"`
	Name     string    `json:"name"`
	Linkedid string    `json:"linkedid"`
	Class    Class     `json:"class"`
	Num      string    `json:"num,omitempty"`
	Context  string    `json:"context,omitempty"`  // at creation
	Exten    string    `json:"exten,omitempty"`    // at creation
	CallerID string    `json:"callerid,omitempty"` // first known CallerIDNum
	Created  time.Time `json:"created"`
	// Bridge is the talking bridge the channel is in (holding and parking bridges don't count).
	Bridge     string `json:"bridge,omitempty"`
	Dialled    bool   `json:"dialled,omitempty"`    // a Dial/Queue called it
	Originated bool   `json:"originated,omitempty"` // dialled by Asterisk itself (Originate)
	Rang       bool   `json:"rang,omitempty"`       // its ringing event was sent
	DialedBy   string `json:"dialed_by,omitempty"`  // the channel whose Dial called it
}

// Leg is the outcome of one dialled extension or trunk channel.
type Leg struct {
	Class  Class  `json:"class"`
	Num    string `json:"num"`
	Status string `json:"status,omitempty"` // DialEnd DialStatus, or derived from the hangup cause
}

// transfer is a callevent.Transfer plus what the correlator needs to settle it.
type transfer struct {
	callevent.Transfer
	// Inferred: no transfer event explained a change of who talks with the customer (an AMI
	// Redirect does that); it stays tentative until the call settles, since Asterisk sends the
	// AttendedTransfer event just after the bridge changes it describes.
	Inferred bool `json:"inferred,omitempty"`
	Sent     bool `json:"sent,omitempty"`
	Timed    bool `json:"timed,omitempty"` // At comes from the transfer's own CEL event
	// Hold keeps the transferred event back until the transfer is certain (an inferred one may
	// turn out attended) and timed (a BlindTransfer event comes just before its CEL, whose time
	// is the transfer's): settleTentative lifts it after a few events at most.
	Hold bool `json:"hold,omitempty"`
	// Noted is when an inferred transfer was noticed (stream time).
	Noted time.Time `json:"noted,omitempty"`
}

// Call is one call in progress, keyed by Asterisk's Linkedid.
type Call struct {
	ID       string              `json:"id"`
	First    string              `json:"first"` // Uniqueid of the call's first channel
	Channels map[string]*Channel `json:"channels"`
	Legs     map[string]*Leg     `json:"legs,omitempty"` // by Uniqueid of the dialled channel

	// Placed: an employee placed the call (outbound or internal); else it came from outside.
	Placed      bool                `json:"placed"`
	Direction   callevent.Direction `json:"direction,omitempty"`
	ClickToCall bool                `json:"click_to_call,omitempty"`
	CallerExt   string              `json:"caller_ext,omitempty"`
	External    string              `json:"external,omitempty"`
	Line        string              `json:"line,omitempty"`
	CRMCallID   string              `json:"crm_call_id,omitempty"`
	Recording   string              `json:"recording,omitempty"`

	Rang       []string        `json:"rang,omitempty"`
	Talking    []string        `json:"talking,omitempty"`
	Answered   map[string]bool `json:"answered,omitempty"` // extensions whose answered event was sent
	AnsweredBy string          `json:"answered_by,omitempty"`
	AnsweredAt time.Time       `json:"answered_at"`
	LastTalker string          `json:"last_talker,omitempty"`
	LastLeft   time.Time       `json:"last_left"`
	Transfers  []transfer      `json:"transfers,omitempty"`
	// pendingFrom is the transferer of an AttendedTransfer whose target does not talk yet.
	PendingFrom string    `json:"pending_from,omitempty"`
	PendingAt   time.Time `json:"pending_at"`

	StartedAt time.Time `json:"started_at"`
	Started   bool      `json:"started"`
	Ended     bool      `json:"ended"`
	// Seen is the stream time of the call's last event, for resync after a long outage.
	Seen time.Time `json:"seen"`

	dirty bool // the talking set must be recomputed
}

func (c *Call) first() *Channel { return c.Channels[c.First] }

func (c *Call) addRang(ext string) {
	for _, e := range c.Rang {
		if e == ext {
			return
		}
	}
	c.Rang = append(c.Rang, ext)
}
