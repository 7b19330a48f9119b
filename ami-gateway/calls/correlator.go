// Package calls turns AMI channel events into call events (shared/docs/call-events.md).
//
// The correlator follows channels by Uniqueid and groups them into calls by Linkedid. Who talks
// with whom is not taken from any single event: it is derived from the channel graph, where
// channels in one talking bridge are joined, and the two halves of a Local channel (;1 and ;2)
// are joined too. An extension answers a call when it becomes joined to the customer's side. This
// one rule covers direct calls, ring groups, queues, FreePBX's Local-channel members, Local
// optimisation, blind, attended and Redirect transfers, so the answering user is never taken
// from a losing ring-group leg or a consultation call.
package calls

import (
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// Options configure a Correlator.
type Options struct {
	PBX string
	// Location is the PBX's time zone, for the CEL and Cdr times that carry none. UTC when nil.
	Location *time.Location
	// MonitorDir is cut from the front of recording paths, so recordings are named relative to
	// Asterisk's monitor folder (which connectors mount or serve).
	MonitorDir string
}

// DefaultMonitorDir is Asterisk's standard recording folder.
const DefaultMonitorDir = "/var/spool/asterisk/monitor/"

// Expectation is what ami-gateway knows of a call it originates itself (click-to-call).
type Expectation struct {
	External  string
	CRMCallID string
}

// Correlator is not safe for concurrent use: one goroutine feeds it the stream in order.
type Correlator struct {
	opt   Options
	cl    *Classifier
	clock Clock

	calls    map[string]*Call    // by Linkedid
	channels map[string]*Channel // by Uniqueid, live channels of every call
	expect   map[string]Expectation
	// dead remembers hung-up channels for a while: Asterisk may send a snapshot of a channel
	// after its Hangup (stasis topics are not ordered), which must not bring it back to life.
	dead     map[string]bool
	deadList []tomb
	// tentative lists calls with a held transfer (see transfer.Hold).
	tentative map[string]int // call id -> AMI events seen since

	open atomic.Int64 // len(calls), readable from other goroutines (metrics)

	out     []callevent.Event
	touched map[string]bool // calls changed since the last TakeTouched
	ended   []string        // calls ended since the last TakeTouched
}

// New makes a correlator for one PBX's stream.
func New(opt Options, cl *Classifier) *Correlator {
	if opt.Location == nil {
		opt.Location = time.UTC
	}
	if opt.MonitorDir == "" {
		opt.MonitorDir = DefaultMonitorDir
	}
	return &Correlator{
		opt:       opt,
		cl:        cl,
		clock:     Clock{Location: opt.Location},
		calls:     make(map[string]*Call),
		channels:  make(map[string]*Channel),
		expect:    make(map[string]Expectation),
		dead:      make(map[string]bool),
		tentative: make(map[string]int),
		touched:   make(map[string]bool),
	}
}

// Expect tells the correlator about a call that ami-gateway originates: the Originate's ChannelId
// becomes the Uniqueid of the call's first channel.
func (c *Correlator) Expect(uniqueid string, e Expectation) { c.expect[uniqueid] = e }

// Now is the stream's current time.
func (c *Correlator) Now() time.Time { return c.clock.Now() }

// Calls returns the number of calls in progress.
func (c *Correlator) Calls() int { return len(c.calls) }

// OpenCalls is Calls, safe to call from any goroutine (it may lag by one event).
func (c *Correlator) OpenCalls() int { return int(c.open.Load()) }

// Handle feeds one AMI message and returns the call events it completes. The returned slice is
// reused by the next call of Handle.
func (c *Correlator) Handle(m *ami.Message) []callevent.Event {
	c.out = c.out[:0]
	defer func() { c.open.Store(int64(len(c.calls))) }()
	name := m.Event()
	if c.clock.Observe(name, m) {
		c.restamp()
	}
	switch name {
	case "Newchannel":
		c.channel(m, "")
	case "NewCallerid", "Newstate", "NewConnectedLine", "HangupRequest", "SoftHangupRequest":
		if ch := c.channel(m, ""); ch != nil {
			if name == "Newstate" && m.Get("ChannelState") == "5" {
				c.ringing(c.calls[ch.Linkedid], ch)
			}
			c.settle(c.calls[ch.Linkedid])
		}
	case "VarSet":
		c.varSet(m)
	case "DialBegin":
		c.dialBegin(m)
	case "DialState":
		if m.Get("DialStatus") == "RINGING" {
			if d := c.channel(m, "Dest"); d != nil {
				c.ringing(c.calls[d.Linkedid], d)
			}
		}
	case "DialEnd":
		c.dialEnd(m)
	case "BridgeEnter":
		c.bridgeEnter(m)
	case "BridgeLeave":
		if ch := c.channel(m, ""); ch != nil {
			ch.Bridge = ""
			c.changed(c.calls[ch.Linkedid])
		}
	case "BlindTransfer":
		c.blindTransfer(m)
	case "AttendedTransfer":
		c.attendedTransfer(m)
	case "QueueCallerJoin":
		if ch := c.channel(m, ""); ch != nil {
			call := c.calls[ch.Linkedid]
			c.start(call, nil)
		}
	case "Hangup":
		c.hangup(m)
	case "CEL":
		// Asterisk sends the transfer's CEL (with its time) just after the transfer event.
		if n := m.Get("EventName"); n == "BLINDTRANSFER" || n == "ATTENDEDTRANSFER" {
			if call := c.calls[m.Get("LinkedID")]; call != nil {
				if k := len(call.Transfers); k > 0 && !call.Transfers[k-1].Timed {
					t := &call.Transfers[k-1]
					t.At, t.Timed = c.clock.Now(), true
					if !t.Inferred {
						t.Hold = false
						c.sendTransfers(call)
					}
				}
			}
		}
	}
	if len(c.tentative) > 0 {
		c.settleTentative()
	}
	return c.out
}

// tentativeEvents is how many channel snapshots of its own call an inferred transfer waits for an
// AttendedTransfer event that would explain it (Asterisk sends it in the same burst as the bridge
// change, usually as the call's next event).
const tentativeEvents = 4

// settleTentative sends inferred transfers once their call has had tentativeEvents more channel
// snapshots, or a second of stream time has passed, without an AttendedTransfer event.
func (c *Correlator) settleTentative() {
	now := c.clock.Now()
	for id, seen := range c.tentative {
		call := c.calls[id]
		if call == nil {
			delete(c.tentative, id)
			continue
		}
		n := len(call.Transfers)
		if n == 0 || !call.Transfers[n-1].Hold {
			delete(c.tentative, id)
			continue
		}
		if seen >= tentativeEvents || now.Sub(call.Transfers[n-1].Noted) >= time.Second {
			c.release(call)
			delete(c.tentative, id)
		}
	}
}

// channel finds or creates the channel that the snapshot block with the given prefix ("" or
// "Dest", "Transferer", ...) describes, following a Linkedid change to the call it now belongs to.
func (c *Correlator) channel(m *ami.Message, prefix string) *Channel {
	uid := m.Get(prefix + "Uniqueid")
	if uid == "" {
		return nil
	}
	lid := m.Get(prefix + "Linkedid")
	ch := c.channels[uid]
	if ch == nil {
		if lid == "" || c.dead[uid] {
			return nil
		}
		// Long-lived state holds copies: a substring would keep the whole AMI packet alive.
		uid, lid = strings.Clone(uid), strings.Clone(lid)
		name := strings.Clone(m.Get(prefix + "Channel"))
		class, num := c.cl.Channel(name)
		ch = &Channel{
			Uniqueid: uid,
			Name:     name,
			Linkedid: lid,
			Class:    class,
			Num:      num,
			Context:  strings.Clone(m.Get(prefix + "Context")),
			Exten:    strings.Clone(m.Get(prefix + "Exten")),
			Created:  c.created(uid),
		}
		c.channels[uid] = ch
		call := c.calls[lid]
		if call == nil {
			if c.dead[lid] {
				return nil // a straggler of a call that has ended
			}
			call = &Call{ID: lid, First: uid, Channels: make(map[string]*Channel), StartedAt: ch.Created}
			if uid != lid {
				// A channel of a call we never saw begin (a restart, or the stream started mid-call).
				call.First = lid
			}
			c.calls[lid] = call
		}
		call.Channels[uid] = ch
		if uid == call.First {
			call.StartedAt = ch.Created
		}
	} else if lid != "" && lid != ch.Linkedid && older(lid, ch.Linkedid) {
		// Linkedids only ever change to an older one; a snapshot queued before a merge still
		// carries the newer one and must not move the channel back.
		c.move(ch, lid)
	}
	if ch.CallerID == "" {
		if cid := m.Get(prefix + "CallerIDNum"); cid != "" && cid != "<unknown>" {
			ch.CallerID = strings.Clone(cid)
		}
	}
	call := c.calls[ch.Linkedid]
	call.Seen = c.clock.Now()
	c.touched[call.ID] = true
	if n, ok := c.tentative[call.ID]; ok {
		c.tentative[call.ID] = n + 1
	}
	return ch
}

// created is a new channel's creation time. With a stream clock, the Uniqueid's own second wins
// when the clock disagrees with it: CEL events may trail the Newchannel they describe.
func (c *Correlator) created(uid string) time.Time {
	now := c.clock.Now()
	if !c.clock.Streamed() {
		return now
	}
	e := uidEpoch(uid)
	if e.IsZero() || (!now.Before(e) && now.Sub(e) < time.Second) {
		return now
	}
	if e.After(now) {
		c.clock.Set(e)
	}
	return e
}

// restamp replaces the arrival times of channels seen before the stream's own time appeared.
func (c *Correlator) restamp() {
	for _, call := range c.calls {
		for _, ch := range call.Channels {
			if e := uidEpoch(ch.Uniqueid); !e.IsZero() {
				ch.Created = e
			}
		}
		if e := uidEpoch(call.First); !e.IsZero() {
			call.StartedAt = e
		}
	}
}

// move follows a channel whose Linkedid changed: Asterisk gives every channel in a bridge the
// oldest Linkedid, so an attended transfer merges the consultation call into the customer's.
func (c *Correlator) move(ch *Channel, lid string) {
	lid = strings.Clone(lid)
	from := c.calls[ch.Linkedid]
	to := c.calls[lid]
	if to == nil {
		to = &Call{ID: lid, First: lid, Channels: make(map[string]*Channel), StartedAt: ch.Created}
		c.calls[lid] = to
	}
	if from != nil {
		delete(from.Channels, ch.Uniqueid)
		// The other call's dial outcomes and rings belong to the merged call now.
		if leg, ok := from.Legs[ch.Uniqueid]; ok {
			if to.Legs == nil {
				to.Legs = make(map[string]*Leg)
			}
			to.Legs[ch.Uniqueid] = leg
		}
		if ch.Class == Extension && ch.Rang {
			to.addRang(c.extOf(from, ch))
		}
		if len(from.Channels) == 0 {
			c.finish(from)
		}
	}
	ch.Linkedid = lid
	to.Channels[ch.Uniqueid] = ch
	c.changed(to)
}

// extOf is the extension number a channel stands for.
func (c *Correlator) extOf(call *Call, ch *Channel) string {
	if ch.Class == Extension {
		if c.cl.ExtensionByCallerID() || ch.Num == "" {
			return ch.CallerID
		}
		return ch.Num
	}
	if call != nil && ch.Uniqueid == call.First && call.Placed {
		return call.CallerExt
	}
	return ""
}

func (c *Correlator) varSet(m *ami.Message) {
	switch m.Get("Variable") {
	case "MIXMONITOR_FILENAME":
		if ch := c.channel(m, ""); ch != nil {
			call := c.calls[ch.Linkedid]
			if call.Recording == "" {
				call.Recording = strings.Clone(strings.TrimPrefix(m.Get("Value"), c.opt.MonitorDir))
			}
		}
	case "CRM_CALL_ID":
		if ch := c.channel(m, ""); ch != nil {
			call := c.calls[ch.Linkedid]
			if call.CRMCallID == "" {
				call.CRMCallID = strings.Clone(m.Get("Value"))
			}
		}
	}
}

func (c *Correlator) dialBegin(m *ami.Message) {
	caller := c.channel(m, "")
	dest := c.channel(m, "Dest")
	if dest == nil {
		return
	}
	call := c.calls[dest.Linkedid]
	dest.Dialled = true
	if caller == nil {
		dest.Originated = true
	} else {
		dest.DialedBy = caller.Name
	}
	if call.Legs == nil {
		call.Legs = make(map[string]*Leg)
	}
	switch dest.Class {
	case Extension:
		call.Legs[dest.Uniqueid] = &Leg{Class: Extension, Num: c.extOf(call, dest)}
	case Trunk:
		call.Legs[dest.Uniqueid] = &Leg{Class: Trunk, Num: dest.Num}
		if call.External == "" || !call.Started {
			call.External = c.dialledNumber(call, caller, dest, m)
		}
	default:
		return // a helper: the channels it dials next tell more
	}
	c.start(call, dest)
	if dest.Class == Trunk && call.Placed && call.Line == "" && dest.Num != "" && !isNumber(dest.Num) {
		call.Line = dest.Num // the trunk it went out through, when the rules name trunks
	}
	if dest.Class == Extension && !(call.Placed && dest.Uniqueid == call.First && !dest.Originated) {
		call.addRang(c.extOf(call, dest))
	}
	c.settle(call)
}

// dialledNumber is the outside number an employee's call went to: the trunk channel's number
// when the rules name it, else the extension the dialling channel ran, else the first channel's.
func (c *Correlator) dialledNumber(call *Call, caller, dest *Channel, m *ami.Message) string {
	if isNumber(dest.Num) {
		return c.cl.Number(dest.Num)
	}
	if caller != nil {
		if e := m.Get("Exten"); isNumber(e) {
			return c.cl.Number(e)
		}
	}
	if e := m.Get("DestExten"); isNumber(e) {
		return c.cl.Number(e)
	}
	if f := call.first(); f != nil && isNumber(f.Exten) {
		return c.cl.Number(f.Exten)
	}
	return ""
}

func (c *Correlator) dialEnd(m *ami.Message) {
	dest := c.channel(m, "Dest")
	if dest == nil {
		return
	}
	c.channel(m, "")
	call := c.calls[dest.Linkedid]
	status := m.Get("DialStatus")
	if leg := call.Legs[dest.Uniqueid]; leg != nil && status != "" {
		leg.Status = strings.Clone(status)
	}
	if status == "ANSWER" {
		c.ringing(call, dest)
	}
	c.settle(call)
}

// ringing sends the ringing event of a dialled extension channel, once per channel.
func (c *Correlator) ringing(call *Call, ch *Channel) {
	if call == nil || ch.Class != Extension || !ch.Dialled || ch.Rang {
		return
	}
	if call.Placed && ch.Uniqueid == call.First && !ch.Originated {
		return
	}
	c.start(call, ch)
	ch.Rang = true
	ext := c.extOf(call, ch)
	c.emit(call, callevent.Ringing, ext, ext+"/"+ch.Uniqueid)
}

func (c *Correlator) bridgeEnter(m *ami.Message) {
	ch := c.channel(m, "")
	if ch == nil {
		return
	}
	switch {
	case m.Get("BridgeType") == "holding", m.Get("BridgeType") == "parking",
		m.Get("BridgeTechnology") == "holding_bridge":
		ch.Bridge = "" // on hold or parked: connected to nobody
	default:
		ch.Bridge = strings.Clone(m.Get("BridgeUniqueid"))
	}
	call := c.calls[ch.Linkedid]
	c.start(call, nil)
	c.changed(call)
}

func (c *Correlator) blindTransfer(m *ami.Message) {
	if m.Get("Result") != "Success" {
		return
	}
	who := c.channel(m, "Transferer")
	cust := c.channel(m, "Transferee")
	if cust == nil {
		return
	}
	call := c.calls[cust.Linkedid]
	from := ""
	if who != nil {
		from = c.extOf(c.calls[who.Linkedid], who)
	}
	call.Transfers = append(call.Transfers, transfer{Transfer: callevent.Transfer{
		Kind: callevent.Blind, From: from, To: strings.Clone(m.Get("Extension")), At: c.clock.Now()},
		Hold: true, Noted: c.clock.Now()})
	c.tentative[call.ID] = 0
	c.settle(call)
}

func (c *Correlator) attendedTransfer(m *ami.Message) {
	if m.Get("Result") != "Success" {
		return
	}
	orig := c.channel(m, "OrigTransferer")
	second := c.channel(m, "SecondTransferer")
	cust := c.channel(m, "Transferee")
	c.channel(m, "TransferTarget")
	// Merge the two calls now rather than waiting for each channel's next snapshot.
	if orig != nil && second != nil && orig.Linkedid != second.Linkedid {
		keep, gone := c.calls[orig.Linkedid], c.calls[second.Linkedid]
		if older(gone.ID, keep.ID) {
			keep, gone = gone, keep
		}
		for _, ch := range sortedChannels(gone) {
			c.move(ch, keep.ID)
		}
	}
	var call *Call
	switch {
	case cust != nil:
		call = c.calls[cust.Linkedid]
	case orig != nil:
		call = c.calls[orig.Linkedid]
	default:
		return
	}
	from := ""
	if orig != nil {
		from = c.extOf(call, orig)
	}
	if from == "" && second != nil {
		from = c.extOf(call, second)
	}
	// The bridge change that connected the target usually came just before this event and was
	// taken for a Redirect: it was this attended transfer.
	if n := len(call.Transfers); n > 0 && call.Transfers[n-1].Inferred && !call.Transfers[n-1].Sent {
		t := &call.Transfers[n-1]
		t.Kind, t.Inferred, t.Hold, t.At = callevent.Attended, false, false, c.clock.Now()
		if from != "" {
			t.From = from
		}
	} else {
		call.PendingFrom, call.PendingAt = from, c.clock.Now()
		if call.PendingFrom == "" {
			call.PendingFrom = "?"
		}
	}
	c.changed(call)
}

// older reports whether Uniqueid a was made before b.
func older(a, b string) bool {
	ea, eb := uidEpoch(a), uidEpoch(b)
	if !ea.Equal(eb) {
		return ea.Before(eb)
	}
	return seq(a) < seq(b)
}

// seq orders Uniqueids (epoch.sequence, maybe with a system-name prefix) by their sequence.
func seq(uid string) int64 {
	if i := strings.LastIndexByte(uid, '.'); i >= 0 {
		n, _ := strconv.ParseInt(uid[i+1:], 10, 64)
		return n
	}
	return 0
}

func (c *Correlator) hangup(m *ami.Message) {
	ch := c.channel(m, "")
	if ch == nil {
		return
	}
	call := c.calls[ch.Linkedid]
	if leg := call.Legs[ch.Uniqueid]; leg != nil && leg.Status == "" {
		leg.Status = causeStatus(m.Get("Cause"))
	}
	c.bury(ch.Uniqueid)
	delete(call.Channels, ch.Uniqueid)
	c.changed(call)
	if len(call.Channels) == 0 {
		c.finish(call)
	}
}

type tomb struct {
	uid string
	at  time.Time
}

// tombLife is how long a hung-up channel is remembered; late snapshots come within milliseconds.
const tombLife = 2 * time.Minute

func (c *Correlator) bury(uid string) {
	delete(c.channels, uid)
	c.markDead(uid)
}

// markDead remembers a hung-up channel or an ended call's Linkedid.
func (c *Correlator) markDead(uid string) {
	now := c.clock.Now()
	c.dead[uid] = true
	c.deadList = append(c.deadList, tomb{uid, now})
	n := 0
	for n < len(c.deadList) && now.Sub(c.deadList[n].at) > tombLife {
		delete(c.dead, c.deadList[n].uid)
		n++
	}
	if n > 0 {
		c.deadList = append(c.deadList[:0], c.deadList[n:]...)
	}
}

// causeStatus maps a Q.850 hangup cause to a DialStatus, for a leg that ended with no DialEnd.
func causeStatus(cause string) string {
	switch cause {
	case "17", "21":
		return "BUSY"
	case "18", "19", "16", "26", "0":
		return "NOANSWER"
	case "1", "3", "20", "27", "28", "38", "66":
		return "CHANUNAVAIL"
	case "34", "41", "42", "44":
		return "CONGESTION"
	}
	return "NOANSWER"
}

// changed marks the call's talking set for recomputation and settles it.
func (c *Correlator) changed(call *Call) {
	call.dirty = true
	c.settle(call)
}

// start decides who placed the call and sends the started event, once. dest is the channel whose
// dialling started it, when a dial did.
func (c *Correlator) start(call *Call, dest *Channel) {
	if call == nil || call.Started {
		return
	}
	first := call.first()
	if first == nil {
		// The call's first channel is gone (or was never seen): take what the live ones say.
		first = &Channel{Uniqueid: call.First}
		for _, ch := range sortedChannels(call) {
			if ch.Class == Trunk {
				first = ch
				break
			}
		}
	}
	call.Started = true
	switch {
	case first.Class == Trunk:
		call.Placed = false
	case first.Class == Extension:
		call.Placed = true
	case c.cl.InboundContext(first.Context):
		call.Placed = false
	case c.cl.InternalContext(first.Context):
		call.Placed = true
	default:
		// A helper in a context the rules don't name: an originated call is placed by the
		// employee it rings first; otherwise a caller ID that is an extension's says so.
		call.Placed = first.Originated || len(first.CallerID) < 7
	}
	exp, expected := c.expect[call.First]
	if expected {
		delete(c.expect, call.First)
		call.CRMCallID = exp.CRMCallID
	}
	if call.Placed {
		// Asterisk originated the first channel: a click-to-call when that channel is the
		// employee's phone, or a helper outside the employees' contexts that rings it. A helper in
		// an employees' context stands for a phone placing an ordinary call (its CallerIDNum is
		// the extension), whoever originated it.
		call.ClickToCall = first.Originated && (first.Class == Extension || !c.cl.InternalContext(first.Context))
		switch {
		case first.Class == Extension:
			call.CallerExt = c.extOf(call, first)
		case call.ClickToCall && dest != nil && dest.Class == Extension:
			call.CallerExt = c.extOf(call, dest)
		default:
			call.CallerExt = first.CallerID
		}
		switch {
		case call.ClickToCall && dest != nil && dest.Class == Extension && first.Class != Extension:
			// An Originate through a helper to the employee's phone (Asterisk 13 style).
			call.Direction = callevent.Outbound
			call.addRang(c.extOf(call, dest))
		case call.ClickToCall, dest != nil && dest.Class == Trunk:
			call.Direction = callevent.Outbound
		case dest != nil && dest.Class == Extension:
			call.Direction = callevent.Internal
		case hasTrunk(call):
			call.Direction = callevent.Outbound
		case isNumber(first.Exten) && len(first.Exten) >= 7: // dialled an outside number, no Dial yet
			call.Direction = callevent.Outbound
			call.External = c.cl.Number(first.Exten)
		default:
			call.Direction = callevent.Internal
		}
		if expected && exp.External != "" {
			call.External = exp.External
		}
	} else {
		call.Direction = callevent.Inbound
		call.External = c.cl.Number(first.CallerID)
		if isNumber(first.Exten) {
			call.Line = c.cl.Number(first.Exten)
		}
	}
	if call.Direction == callevent.Internal {
		call.External = ""
	}
	c.emit(call, callevent.Started, "", "")
}

func hasTrunk(call *Call) bool {
	for _, ch := range call.Channels {
		if ch.Class == Trunk {
			return true
		}
	}
	return false
}

// settle recomputes who talks with the customer when the channel graph changed, and sends the
// answered and transferred events that follow.
func (c *Correlator) settle(call *Call) {
	if call == nil || !call.Started || call.Ended {
		return
	}
	if call.dirty {
		call.dirty = false
		now := c.clock.Now()
		talking := c.talkers(call)
		for _, ext := range talking {
			if contains(call.Talking, ext) {
				continue
			}
			if call.AnsweredBy == "" {
				call.AnsweredBy, call.AnsweredAt = ext, now
			}
			if call.LastTalker != "" && call.LastTalker != ext && !contains(talking, call.LastTalker) {
				c.transferTo(call, ext, now)
			}
			call.LastTalker = ext
			if !call.Answered[ext] {
				if call.Answered == nil {
					call.Answered = make(map[string]bool)
				}
				call.Answered[ext] = true
				c.emit(call, callevent.Answered, ext, ext)
			}
		}
		if len(call.Talking) > 0 && len(talking) == 0 {
			call.LastLeft = now
		}
		call.Talking = talking
		// A transfer this bridge change shows goes out now when it is certain; an inferred one
		// is held for an AttendedTransfer event that may follow.
		c.sendTransfers(call)
		return
	}
	c.sendTransfers(call)
}

// transferTo records that ext now talks with the customer instead of the last talker.
func (c *Correlator) transferTo(call *Call, ext string, now time.Time) {
	if n := len(call.Transfers); n > 0 && call.Transfers[n-1].To == ext {
		return // a BlindTransfer event said so already
	}
	if call.PendingFrom != "" {
		from := call.PendingFrom
		if from == "?" {
			from = call.LastTalker
		}
		call.Transfers = append(call.Transfers, transfer{Transfer: callevent.Transfer{
			Kind: callevent.Attended, From: from, To: ext, At: call.PendingAt}})
		call.PendingFrom = ""
		return
	}
	at := call.LastLeft
	if at.IsZero() {
		at = now
	}
	t := transfer{Transfer: callevent.Transfer{Kind: callevent.Blind, From: call.LastTalker, To: ext, At: at}}
	if c.dialedByCustomer(call, ext) {
		// The customer's own channel dialled the new talker (an AMI Redirect, a blind transfer
		// without its event): certain at once.
		call.Transfers = append(call.Transfers, t)
		return
	}
	t.Inferred, t.Hold, t.Noted = true, true, now
	call.Transfers = append(call.Transfers, t)
	c.tentative[call.ID] = 0
}

// dialedByCustomer reports whether ext's channel was dialled by the customer's side of the call
// (its first channel, the other half of that Local channel, or a trunk), rather than by an
// employee's consultation call.
func (c *Correlator) dialedByCustomer(call *Call, ext string) bool {
	first := call.first()
	for _, ch := range call.Channels {
		if ch.Class != Extension || ch.DialedBy == "" || c.extOf(call, ch) != ext {
			continue
		}
		if class, _ := c.cl.Channel(ch.DialedBy); class == Trunk {
			return true
		}
		if first != nil {
			if ch.DialedBy == first.Name {
				return true
			}
			k1, ok1 := localKey(ch.DialedBy)
			k2, ok2 := localKey(first.Name)
			if ok1 && ok2 && k1 == k2 {
				return true
			}
		}
	}
	return false
}

func (c *Correlator) sendTransfers(call *Call) {
	for i := range call.Transfers {
		t := &call.Transfers[i]
		if t.Sent {
			continue
		}
		if t.Hold {
			return // in order: nothing after a held transfer goes out before it
		}
		t.Sent = true
		c.emit(call, callevent.Transferred, t.To, strconv.Itoa(i+1))
	}
}

// release sends held transfers as they are.
func (c *Correlator) release(call *Call) {
	for i := range call.Transfers {
		call.Transfers[i].Hold = false
	}
	c.sendTransfers(call)
}

// talkers lists the extensions that talk with the customer's side now, in a stable order.
func (c *Correlator) talkers(call *Call) []string {
	chans := sortedChannels(call)
	if len(chans) == 0 {
		return nil
	}
	// Union-find over the call's live channels.
	parent := make(map[string]string, len(chans))
	var find func(string) string
	find = func(x string) string {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	union := func(a, b string) { parent[find(a)] = find(b) }
	byBridge := make(map[string]string)
	byLocal := make(map[string]string)
	for _, ch := range chans {
		parent[ch.Uniqueid] = ch.Uniqueid
	}
	for _, ch := range chans {
		if ch.Bridge != "" {
			if o, ok := byBridge[ch.Bridge]; ok {
				union(ch.Uniqueid, o)
			} else {
				byBridge[ch.Bridge] = ch.Uniqueid
			}
		}
		if key, ok := localKey(ch.Name); ok {
			if o, ok := byLocal[key]; ok {
				union(ch.Uniqueid, o)
			} else {
				byLocal[key] = ch.Uniqueid
			}
		}
	}
	customer := make(map[string]bool)
	for _, ch := range chans {
		switch {
		case ch.Class == Trunk:
			if call.Direction != callevent.Internal {
				customer[find(ch.Uniqueid)] = true
			}
		case ch.Uniqueid == call.First && call.Direction != callevent.Outbound:
			customer[find(ch.Uniqueid)] = true
		}
	}
	var out []string
	for _, ch := range chans {
		if !customer[find(ch.Uniqueid)] {
			continue
		}
		var ext string
		switch {
		case ch.Uniqueid == call.First && call.Direction == callevent.Outbound:
			ext = call.CallerExt
		case ch.Uniqueid == call.First:
			continue // the caller of an internal call, or the customer
		case ch.Class == Extension:
			ext = c.extOf(call, ch)
		}
		if ext != "" && !contains(out, ext) {
			out = append(out, ext)
		}
	}
	return out
}

// localKey joins the two halves of a Local channel: Local/x@ctx-0000001a;1 and ;2.
func localKey(name string) (string, bool) {
	if len(name) > 8 && strings.HasPrefix(name, "Local/") && name[len(name)-2] == ';' {
		return name[:len(name)-2], true
	}
	return "", false
}

func sortedChannels(call *Call) []*Channel {
	out := make([]*Channel, 0, len(call.Channels))
	for _, ch := range call.Channels {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return seq(out[i].Uniqueid) < seq(out[j].Uniqueid)
	})
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// finish sends the ended event of a call whose last channel is gone.
func (c *Correlator) finish(call *Call) {
	if call.Ended {
		return
	}
	if !call.Started {
		c.start(call, nil)
	}
	call.dirty = true
	c.settle(call)
	c.release(call)
	call.Ended = true
	c.emit(call, callevent.Ended, "", "")
	delete(c.calls, call.ID)
	for uid := range call.Channels {
		delete(c.channels, uid)
	}
	c.markDead(call.ID)
	c.ended = append(c.ended, call.ID)
}

// disposition is how the call ended, from who talked and how each dialled leg ended.
func (call *Call) disposition() callevent.Disposition {
	if call.AnsweredBy != "" {
		return callevent.DispAnswered
	}
	want := Extension
	if call.Direction == callevent.Outbound {
		want = Trunk
	}
	n, busy, failed := 0, 0, 0
	for _, leg := range call.Legs {
		if leg.Class != want || (call.Direction == callevent.Internal && leg.Num == call.CallerExt) {
			continue
		}
		n++
		switch leg.Status {
		case "BUSY":
			busy++
		case "CONGESTION", "CHANUNAVAIL":
			failed++
		}
	}
	switch {
	case n > 0 && busy == n:
		return callevent.DispBusy
	case call.Direction == callevent.Inbound:
		return callevent.DispNoAnswer
	case n > 0 && failed == n:
		return callevent.DispFailed
	case n == 0 && call.ClickToCall:
		return callevent.DispNoAnswer
	case n == 0:
		return callevent.DispFailed
	}
	return callevent.DispNoAnswer
}

// emit appends one event with the call's current record.
func (c *Correlator) emit(call *Call, kind callevent.Kind, ext, part string) {
	now := c.clock.Now()
	e := callevent.Event{
		Schema:         callevent.Schema,
		ID:             callevent.EventID(c.opt.PBX, call.ID, kind, part),
		Kind:           kind,
		PBX:            c.opt.PBX,
		CallID:         call.ID,
		At:             now,
		Direction:      call.Direction,
		External:       call.External,
		Line:           call.Line,
		Extension:      ext,
		ExtensionsRang: append([]string(nil), call.Rang...),
		AnsweredBy:     call.AnsweredBy,
		StartedAt:      call.StartedAt,
		CRMCallID:      call.CRMCallID,
	}
	if !call.AnsweredAt.IsZero() {
		at := call.AnsweredAt
		e.AnsweredAt = &at
	}
	for _, t := range call.Transfers {
		if t.Sent || kind == callevent.Ended {
			e.Transfers = append(e.Transfers, t.Transfer)
		}
	}
	if kind == callevent.Ended {
		end := now
		e.EndedAt = &end
		e.Disposition = call.disposition()
		switch {
		case call.Direction != callevent.Inbound:
			e.Extension = call.CallerExt
		case call.LastTalker != "":
			e.Extension = call.LastTalker
		case len(call.Rang) > 0:
			e.Extension = call.Rang[0]
		}
		if e.Disposition == callevent.DispAnswered {
			e.RingSeconds = seconds(call.AnsweredAt.Sub(call.StartedAt))
			e.TalkSeconds = seconds(end.Sub(call.AnsweredAt))
			e.Recording = call.Recording
		} else {
			e.RingSeconds = seconds(end.Sub(call.StartedAt))
		}
	}
	c.out = append(c.out, e)
}

// seconds are whole seconds, cut down as a phone's display does.
func seconds(d time.Duration) int {
	if d < 0 {
		return 0
	}
	return int(d / time.Second)
}
