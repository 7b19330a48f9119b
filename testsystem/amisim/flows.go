package amisim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// party is one end of the call: in the local style a Local pair (outer: the half that runs the
// dialplan or sits in the bridge; inner: the simulated device), in the pjsip style one channel
// (outer == inner).
type party struct {
	outer, inner *channel
}

type legKind int

const (
	legPhone  legKind = iota // a phone: Local/1XX@phones pair, or PJSIP/1XX
	legMember                // pjsip ring-group or queue member: a Local pair whose ;2 dials PJSIP/1XX
	legTrunk                 // the outside number: Local/<n>@trunk-out pair, or PJSIP/<trunk>
)

// leg is one channel that a Dial or Queue rings, and what stands behind it.
type leg struct {
	ext   string
	kind  legKind
	outer *channel // the dialled channel (the Dest* of the Dial events)
	inner *channel // the other half of a Local pair; the channel itself for PJSIP
	sub   *channel // legMember: the PJSIP phone the member's ;2 dials
	start time.Duration
}

// device is the channel whose user answers and hangs up.
func (l *leg) device() *channel {
	if l.sub != nil {
		return l.sub
	}
	return l.inner
}

// phoneSide is the channel standing for the phone in the bridge with the caller's side.
func (l *leg) phoneSide() *channel {
	if l.sub != nil {
		return l.sub
	}
	return l.outer
}

func (c *call) run() error {
	if c.orig != nil {
		c.clickToCall()
	} else {
		cp := c.newCaller()
		if c.sc.Recording != "" {
			c.mixMonitor(cp.outer)
		}
		if c.sc.Queue != nil {
			c.queueCall(cp)
		} else {
			c.outcome(cp, c.dial(cp), 0)
		}
	}
	for _, ch := range c.chans {
		if !ch.dead {
			return fmt.Errorf("channel %s is left alive (a generator bug)", ch.name)
		}
	}
	return nil
}

// newCaller creates the calling side and runs its dialplan up to the Dial.
func (c *call) newCaller() *party {
	sc := c.sc
	name := sc.FromName
	switch {
	case sc.Direction == Inbound && c.local:
		// The harness originates Local/<DID>@from-trunk: ;2 is the inbound call, ;1 the caller.
		one, two := c.newLocal(sc.To+"@from-trunk", "from-trunk", sc.To, nil, "", "")
		c.callerIDs(one, two, sc.From, name)
		c.originated(one, sc.To+"@from-trunk")
		c.newexten(two, "NoOp", fmt.Sprintf("Inbound call from %s to DID %s", sc.From, sc.To))
		two.dialer = true
		return &party{outer: two, inner: one}
	case sc.Direction == Inbound:
		tr := c.newPJSIP(sc.Trunk, "from-pstn", sc.To, stRing, nil, "")
		tr.cidNum, tr.cidName = sc.From, name
		c.announce(tr)
		c.newexten(tr, "NoOp", fmt.Sprintf("Inbound call from %s to DID %s", sc.From, sc.To))
		tr.dialer = true
		return &party{outer: tr, inner: tr}
	case c.local:
		// The harness originates Local/<dialled>@from-internal: ;2 runs the extension's call.
		one, two := c.newLocal(sc.To+"@from-internal", "from-internal", sc.To, nil, "", "")
		c.callerIDs(one, two, sc.From, name)
		// The originate's DialBegin comes once ;2 has dialled (as recorded): a gateway that saw it
		// first would take the call for a click-to-call of the phone it rings.
		one.originating, one.cdrOwn = true, true
		one.app, one.appData = "AppDial2", "(Outgoing Line)"
		c.pendingOrig = func() { c.dialBegin(nil, one, sc.To+"@from-internal") }
		c.newexten(two, "NoOp", fmt.Sprintf("Call %s -> %s", sc.From, sc.To))
		two.dialer = true
		return &party{outer: two, inner: one}
	default:
		ph := c.newPJSIP(sc.From, "from-internal", sc.To, stRing, nil, "")
		ph.cidNum, ph.cidName = sc.From, name
		c.announce(ph)
		c.newexten(ph, "NoOp", fmt.Sprintf("Call %s -> %s", sc.From, sc.To))
		ph.dialer = true
		return &party{outer: ph, inner: ph}
	}
}

// callerIDs gives both halves of a fresh Local pair the caller's id, as the originate does.
func (c *call) callerIDs(one, two *channel, num, name string) {
	c.setCallerID(one, num, name)
	c.setConnected(one, num, name)
	c.setCallerID(two, num, name)
	c.setConnected(two, num, name)
	c.localBridge(one, two, true)
}

// originated: Asterisk dials ch for an Originate (no caller block); its answer is pending.
func (c *call) originated(ch *channel, dialString string) {
	ch.originating, ch.cdrOwn = true, true
	ch.app, ch.appData = "AppDial2", "(Outgoing Line)"
	c.dialBegin(nil, ch, dialString)
}

// originAnswered: the originated half is answered and runs its own dialplan (the simulated
// caller waiting on the line).
func (c *call) originAnswered(cp *party) {
	in := cp.inner
	if in == nil || !in.originating {
		return
	}
	in.originating = false
	c.answer(in)
	c.dialEnd(nil, in, "ANSWER")
	if c.sc.Direction == Inbound {
		in.context, in.exten = "pstn-caller", c.sc.From
	} else {
		in.context, in.exten = "phone-user", c.sc.From
	}
	in.prio = 0
	c.newexten(in, "Wait", "600")
}

func (c *call) mixMonitor(ch *channel) {
	file := c.recordingName(ch)
	c.newexten(ch, "Set", "RECFILE="+file)
	c.varSet(ch, "RECFILE", file)
	c.newexten(ch, "MixMonitor", file+",b")
	c.varSet(ch, "MIXMONITOR_FILENAME", MonitorDir+file)
	c.emit(c.chanEvent("MixMonitorStart", "call", ch))
	c.cel("APP_START", ch, "", "")
	c.cel("APP_END", ch, "", "")
}

func (c *call) recordingName(ch *channel) string {
	from, to := c.sc.From, c.sc.To
	if c.orig != nil {
		from, to = c.orig.ext, c.orig.exten
	}
	w := c.wall().UTC()
	vals := map[string]string{
		"date": w.Format("20060102"), "time": w.Format("150405"),
		"from": from, "to": to, "uniqueid": ch.uid, "linkedid": ch.lid,
	}
	return placeholderRe.ReplaceAllStringFunc(c.sc.Recording, func(p string) string {
		return vals[p[1:len(p)-1]]
	})
}

// dial runs the caller's Dial to the scenario's targets and rings them.
func (c *call) dial(cp *party) []*leg {
	sc := c.sc
	targets, kind := sc.Ring, c.phoneKind(len(sc.Ring) > 1)
	if sc.Direction == Outbound {
		targets, kind = []string{sc.To}, legTrunk
	}
	legs := c.startDial(cp, targets, kind, sc.RingTimeout)
	if !sc.Busy {
		for _, l := range legs {
			c.ringLeg(cp, l, false)
		}
	}
	return legs
}

// phoneKind is how a Dial reaches a phone: FreePBX puts Local channels in front of the phones of
// a ring group.
func (c *call) phoneKind(group bool) legKind {
	if group && !c.local {
		return legMember
	}
	return legPhone
}

func (c *call) startDial(cp *party, targets []string, kind legKind, timeout time.Duration) []*leg {
	var parts []string
	for _, t := range targets {
		switch {
		case kind == legTrunk && c.local:
			parts = append(parts, "Local/"+t+"@trunk-out")
		case kind == legTrunk:
			parts = append(parts, "PJSIP/"+t+"@"+c.sc.Trunk)
		case kind == legMember:
			parts = append(parts, "Local/"+t+"@from-internal/n")
		case c.local:
			parts = append(parts, "Local/"+t+"@phones")
		default:
			parts = append(parts, "PJSIP/"+t)
		}
	}
	c.varSet(cp.outer, "DIALSTATUS", "")
	c.appStart(cp.outer, "Dial", fmt.Sprintf("%s,%d,tT", strings.Join(parts, "&"), int(timeout/time.Second)))
	var legs []*leg
	for _, t := range targets {
		legs = append(legs, c.newLeg(cp, t, kind, false))
		if c.pendingOrig != nil {
			c.pendingOrig()
			c.pendingOrig = nil
		}
	}
	return legs
}

// newLeg creates the channels of one dialled target and sends its DialBegin (a queue member
// also gets AgentCalled).
func (c *call) newLeg(cp *party, target string, kind legKind, queue bool) *leg {
	caller := cp.outer
	l := &leg{ext: target, kind: kind, start: c.now}
	app := "AppDial"
	if queue {
		app = "AppQueue"
	}
	switch {
	case kind == legTrunk && c.local:
		one, two := c.newLocal(target+"@trunk-out", "trunk-out", target, caller, "", "")
		c.setCallerID(one, target, caller.cidName)
		c.setConnected(one, caller.cidNum, caller.cidName)
		c.setCallerID(two, caller.cidNum, caller.cidName)
		c.setConnected(two, target, caller.cidName)
		c.localBridge(one, two, true)
		l.outer, l.inner = one, two
		two.cdrOwn = true
		c.dialBegin(caller, one, target+"@trunk-out")
	case kind == legTrunk:
		tr := c.newPJSIP(c.sc.Trunk, "from-pstn", target, stDown, caller, "")
		c.announce(tr)
		c.setCallerID(tr, target, caller.cidName)
		c.setConnected(tr, caller.cidNum, caller.cidName)
		l.outer, l.inner = tr, tr
		c.dialBegin(caller, tr, target+"@"+c.sc.Trunk)
	case kind == legPhone && c.local:
		one, two := c.newLocal(target+"@phones", "phones", target, caller, "", "")
		if queue {
			c.setCallerID(one, caller.cidNum, caller.cidName)
			c.setCallerID(two, caller.cidNum, caller.cidName)
			c.setConnected(two, caller.cidNum, caller.cidName)
		} else {
			// app_dial gives the dialled channel the caller's extension as its caller id.
			one.exten = caller.exten
			c.setCallerID(one, caller.exten, caller.cidName)
			c.setConnected(one, caller.cidNum, caller.cidName)
			c.setCallerID(two, caller.cidNum, caller.cidName)
			c.setConnected(two, caller.exten, caller.cidName)
		}
		c.localBridge(one, two, true)
		l.outer, l.inner = one, two
		two.cdrOwn = true
		if queue {
			c.agentEvent("AgentCalled", caller, one, target)
			c.dialBegin(caller, one, "Local/"+target+"@phones")
		} else {
			c.dialBegin(caller, one, target+"@phones")
		}
	case kind == legPhone:
		ph := c.newPJSIP(target, "from-internal", caller.exten, stDown, caller, "")
		c.announce(ph)
		c.setCallerID(ph, caller.exten, caller.cidName)
		c.setConnected(ph, caller.cidNum, caller.cidName)
		l.outer, l.inner = ph, ph
		if queue {
			c.agentEvent("AgentCalled", caller, ph, target)
		}
		c.dialBegin(caller, ph, target)
	default: // legMember
		ctx := "from-internal"
		if queue {
			ctx = "from-queue"
		}
		one, two := c.newLocal(target+"@"+ctx, ctx, target, caller, "", "")
		c.setCallerID(one, caller.exten, caller.cidName)
		c.setConnected(one, caller.cidNum, caller.cidName)
		c.setCallerID(two, caller.cidNum, caller.cidName)
		c.setConnected(two, caller.exten, caller.cidName)
		c.localBridge(one, two, false)
		l.outer, l.inner = one, two
		if queue {
			c.agentEvent("AgentCalled", caller, one, target)
			c.dialBegin(caller, one, "Local/"+target+"@"+ctx+"/n")
		} else {
			c.dialBegin(caller, one, target+"@"+ctx+"/n")
		}
		// The member's ;2 runs FreePBX's dialplan, which dials the phone.
		two.dialer = true
		c.varSet(two, "DIALSTATUS", "")
		c.appStart(two, "Dial", "PJSIP/"+target+",,tr")
		ph := c.newPJSIP(target, "from-internal", two.exten, stDown, two, "")
		c.announce(ph)
		c.setCallerID(ph, two.exten, two.cidName)
		c.setConnected(ph, two.cidNum, two.cidName)
		ph.app, ph.appData = "AppDial", "(Outgoing Line)"
		l.sub = ph
		c.dialBegin(two, ph, target)
	}
	l.outer.app, l.outer.appData = app, "(Outgoing Line)"
	return l
}

// ringLeg: the target rings; the first ringing reaches the originated half of the caller.
func (c *call) ringLeg(cp *party, l *leg, queue bool) {
	caller := cp.outer
	switch {
	case l.kind == legTrunk:
		c.newstate(l.outer, stRinging)
		c.dialState(caller, l.outer, "PROGRESS")
		c.dialState(caller, l.outer, "RINGING")
	case l.sub != nil:
		c.newstate(l.sub, stRinging)
		c.dialState(l.inner, l.sub, "RINGING")
		c.newstate(l.outer, stRinging)
		c.dialState(caller, l.outer, "RINGING")
	default:
		c.newstate(l.outer, stRinging)
		if queue && c.local {
			c.setConnected(l.outer, caller.cidNum, caller.cidName)
		}
		c.dialState(caller, l.outer, "RINGING")
	}
	if in := cp.inner; in != nil && in.originating && in.state != stRinging {
		c.newstate(in, stRinging)
		if l.kind == legTrunk {
			c.dialState(nil, in, "PROGRESS")
		}
		c.dialState(nil, in, "RINGING")
	}
}

// outcome plays what happens to the ringing legs: busy, an answer, the caller giving up, or the
// Dial timing out. dialStart is when they started ringing.
func (c *call) outcome(cp *party, legs []*leg, dialStart time.Duration) {
	sc := c.sc
	switch {
	case sc.Busy:
		c.busyLeg(cp, legs[0])
		c.dialFailed(cp, "BUSY")
	case sc.Answer != nil:
		c.at(dialStart + sc.Answer.After)
		var win *leg
		var others []*leg
		for _, l := range legs {
			if win == nil && (l.ext == sc.Answer.By || len(legs) == 1) {
				win = l
			} else {
				others = append(others, l)
			}
		}
		c.answerLeg(cp, win, others, false)
		c.talk(cp, win)
	case sc.CallerHangsUpAfter > 0:
		c.at(dialStart + sc.CallerHangsUpAfter)
		c.callerAbandons(cp, legs)
	default:
		c.at(dialStart + sc.RingTimeout)
		for _, l := range legs {
			c.cancelLeg(cp, l, "NOANSWER", 0, false)
		}
		c.dialFailed(cp, "NOANSWER")
	}
}

// answerDevice answers the leg's device and whatever stands between it and the Dial.
func (c *call) answerDevice(l *leg) {
	switch {
	case l.sub != nil:
		c.answer(l.sub)
		c.dialEnd(l.inner, l.sub, "ANSWER")
		c.answer(l.inner)
		b := c.bridgeCreate()
		c.bridgeEnter(b, l.sub)
		c.bridgeEnter(b, l.inner)
		c.answer(l.outer)
	case l.inner != l.outer:
		c.answer(l.inner)
		c.answer(l.outer)
	default:
		c.answer(l.outer)
	}
}

// answerLeg: win answers, the other legs are cancelled (answered elsewhere), and the caller's
// side is bridged with it.
func (c *call) answerLeg(cp *party, win *leg, others []*leg, queue bool) {
	c.answerDevice(win)
	if queue {
		c.dialEnd(cp.outer, win.outer, "ANSWER")
		for _, o := range others {
			c.cancelLeg(cp, o, "CANCEL", 26, true)
		}
	} else {
		for _, o := range others {
			c.cancelLeg(cp, o, "CANCEL", 26, false)
		}
		c.dialEnd(cp.outer, win.outer, "ANSWER")
	}
	c.answer(cp.outer)
	if queue {
		c.queueLeave(cp.outer)
		c.agentEvent("AgentConnect", cp.outer, win.outer, win.ext,
			"HoldTime", strconv.Itoa(secondsBetween(c.start, c.queueJoined, c.now)),
			"RingTime", strconv.Itoa(secondsBetween(c.start, win.start, c.now)))
	}
	b := c.bridgeCreate()
	c.bridgeEnter(b, win.outer)
	c.originAnswered(cp)
	c.bridgeEnter(b, cp.outer)
}

// cancelLeg ends a leg that did not answer: its DialEnd (twice for a queue, as app_queue sends
// it), then its channels hang up with cause.
func (c *call) cancelLeg(cp *party, l *leg, status string, cause int, twice bool) {
	c.dialEnd(cp.outer, l.outer, status)
	if twice {
		c.dialEnd(cp.outer, l.outer, status)
	}
	switch {
	case l.sub != nil:
		c.hangup(l.outer, cause)
		l.inner.ending = true
		c.hangupRequest(l.inner, cause)
		c.dialEnd(l.inner, l.sub, "CANCEL")
		c.hangup(l.sub, cause)
		c.softHangup(l.inner, 16)
		c.hangup(l.inner, cause)
	case l.inner != l.outer:
		l.inner.ending = true
		c.hangupRequest(l.inner, cause)
		c.hangup(l.outer, cause)
		c.softHangup(l.inner, 16)
		c.hangup(l.inner, cause)
	default:
		c.hangup(l.outer, cause)
	}
}

// busyLeg: the target answers busy at once.
func (c *call) busyLeg(cp *party, l *leg) {
	if l.inner != l.outer {
		c.newexten(l.inner, "Busy", "5")
		c.newstate(l.inner, stBusy)
		l.inner.busy = true
		c.cancelLeg(cp, l, "BUSY", 0, false)
		return
	}
	l.outer.busy = true // SIP 486
	c.cancelLeg(cp, l, "BUSY", 17, false)
}

// dialFailed: the Dial returned without an answer; the dialplan goes on to Hangup(), and the
// originated half of a Local caller follows.
func (c *call) dialFailed(cp *party, status string) {
	out := cp.outer
	c.appEnd(out)
	c.varSet(out, "DIALSTATUS", status)
	out.failedDial = true
	out.hangupSource = "dialplan/builtin"
	c.newexten(out, "Hangup", "")
	c.softHangup(out, 16)
	in := cp.inner
	if in == out || in.dead {
		c.hangup(out, 16)
		return
	}
	in.ending = true
	c.hangupRequest(in, 16)
	c.hangup(out, 16)
	if in.originating {
		in.originating = false
		c.dialEnd(nil, in, "NOANSWER")
	} else {
		c.softHangup(in, 16)
	}
	c.hangup(in, 16)
}

// callerAbandons: the caller hangs up while the legs ring.
func (c *call) callerAbandons(cp *party, legs []*leg) {
	out, in := cp.outer, cp.inner
	cause := 16
	switch {
	case in == out:
		out.ending = true
		c.hangupRequest(out, cause) // CANCEL from the provider
	case in.originating:
		// The originate that plays the caller gives up: its channel is hung up at once.
		in.originating, in.ending, cause = false, true, 19
		c.hangup(in, cause)
		out.ending = true
		c.hangupRequest(out, cause)
	default:
		in.ending = true
		c.softHangup(in, 16)
		out.ending = true
		c.hangupRequest(out, cause)
		c.hangup(in, cause)
	}
	for _, l := range legs {
		c.cancelLeg(cp, l, "CANCEL", cause, false)
	}
	c.appEnd(out)
	if in != out {
		c.softHangup(out, 16)
	}
	c.hangup(out, cause)
}

// talk plays the answered call: an optional transfer, the talk, the hangup.
func (c *call) talk(cp *party, win *leg) {
	sc := c.sc
	if t := sc.Transfer; t != nil {
		c.at(c.now + t.After)
		c.transferring = true
		switch {
		case t.Kind == TransferAttended && c.local:
			win = c.attendedLocal(cp, win, t)
		case t.Kind == TransferAttended:
			win = c.attendedPJSIP(cp, win, t)
		default:
			win = c.blindTransfer(cp, win, t)
		}
		c.transferring = false
	}
	c.at(c.now + sc.Talk)
	if sc.HangupBy == HangupCaller {
		c.userHangup(cp.inner)
	} else {
		c.userHangup(win.device())
	}
}

// userHangup: the user of ch hangs up; the hangup travels along Local pairs and bridges the way
// Asterisk's does.
func (c *call) userHangup(ch *channel) {
	ch.ending = true
	if p := ch.peer; p != nil && !p.dead {
		// A Local device half: Hangup() in its dialplan (or an AMI Hangup).
		c.softHangup(ch, 16)
		p.ending = true
		c.hangupRequest(p, 16)
		c.hangup(ch, 16)
		c.requested(p, 16)
		return
	}
	c.hangupRequest(ch, 16) // the phone or the provider sent BYE
	if ch.bridge != nil {
		c.leave(ch, true)
		return
	}
	c.hangup(ch, 16)
}

// requested: y's other half hung up (a HangupRequest came).
func (c *call) requested(y *channel, cause int) {
	if y.bridge != nil {
		c.leave(y, false)
		return
	}
	c.appEnd(y)
	c.softHangup(y, 16)
	c.hangup(y, cause)
}

// leave: y leaves its bridge and ends; then the channels left in the bridge are sent away.
func (c *call) leave(y *channel, user bool) {
	b := y.bridge
	c.bridgeLeave(y)
	c.appEnd(y)
	rest := append([]*channel(nil), b.chans...)
	for _, z := range rest {
		c.endLeg(y, z)
		c.endLeg(z, y)
	}
	c.finish(y, user)
	for _, z := range rest {
		if z.dead || z.bridge != b {
			continue
		}
		z.ending = true
		c.bridgeLeave(z)
		c.appEnd(z)
		c.finish(z, false)
	}
}

// finish: y is out of its bridge. A dialling channel's dialplan goes on to Hangup(); the other
// half of a Local channel follows.
func (c *call) finish(y *channel, user bool) {
	if y.dialer && !user {
		c.softHangup(y, 16)
	}
	p := y.peer
	if p == nil || p.dead || p.ending {
		c.hangup(y, 16)
		return
	}
	p.ending = true
	if y.dialer {
		c.hangup(y, 16)
		c.hangupRequest(p, 16)
		c.requested(p, 16)
		return
	}
	c.hangupRequest(p, 16)
	c.requested(p, 16)
	c.hangup(y, 16)
}

// blindTransfer: the answering phone transfers the caller to t.To (BlindTransfer), or the caller's
// channel is redirected there (AMI Redirect, no transfer event); the caller's side then dials it.
func (c *call) blindTransfer(cp *party, win *leg, t *Transfer) *leg {
	xferer := win.phoneSide()
	b := xferer.bridge
	xferee := cp.outer
	if t.Kind == TransferBlind {
		xferee = otherIn(b, xferer)
	} else {
		b = cp.outer.bridge
	}
	ctx := "internal"
	switch {
	case !c.local && t.Kind == TransferBlind:
		ctx = "from-internal-xfer"
	case !c.local:
		ctx = "from-internal"
	}
	if t.Kind == TransferBlind {
		m := ev("BlindTransfer", "call")
		m.Add("Result", "Success")
		snap(m, "Transferer", xferer)
		snap(m, "Transferee", xferee)
		bridgeBlock(m, "", b)
		m.Add("IsExternal", "Yes").Add("Context", ctx).Add("Extension", t.To)
		c.emit(m)
		c.cel("BLINDTRANSFER", xferer, "", fmt.Sprintf(`{"extension":"%s","context":"%s","bridge_id":"%s","transferee_channel_name":"%s","transferee_channel_uniqueid":"%s"}`,
			t.To, ctx, b.id, xferee.name, xferee.uid))
	}
	xferee.context, xferee.exten, xferee.prio = ctx, t.To, 0
	// The transferee leaves for the dialplan; the rest of the bridge hangs up.
	c.bridgeLeave(xferee)
	c.appEnd(xferee)
	for _, z := range append([]*channel(nil), b.chans...) {
		c.endLeg(xferee, z)
		c.endLeg(z, xferee)
		z.ending = true
		if !c.local && z == xferer {
			c.hangupRequest(z, 16) // the phone ends its dialog after the REFER
		}
		c.bridgeLeave(z)
		c.appEnd(z)
		c.finish(z, false)
	}
	xferee.dialer = true
	c.newexten(xferee, "NoOp", "Transfer target "+t.To)
	np := &party{outer: xferee, inner: xferee}
	if xferee.peer != nil {
		np.inner = xferee.peer
	}
	nl := c.startDial(np, []string{t.To}, legPhone, DefaultRingTimeout)[0]
	c.ringLeg(np, nl, false)
	c.at(c.now + t.Ring)
	c.answerLeg(np, nl, nil, false)
	return nl
}

func otherIn(b *bridge, ch *channel) *channel {
	for _, o := range b.chans {
		if o != ch {
			return o
		}
	}
	return nil
}

// hold: the phone puts the call on hold before it consults.
func (c *call) hold(ch *channel) {
	m := c.chanEvent("Hold", "call", ch)
	m.Add("MusicClass", "default")
	c.emit(m)
}

// attendedLocal is Asterisk's attended-transfer feature (*2 + the target, as the test PBX's
// harness triggers with Atxfer): the caller stays in its bridge on hold, the transferer's
// channel moves to a consultation bridge with Local/<target>@internal, and when the transferer
// hangs up the consultation bridge merges into the caller's.
func (c *call) attendedLocal(cp *party, win *leg, t *Transfer) *leg {
	p1, p2 := win.outer, win.inner
	b1 := p1.bridge
	c.hold(p1)
	c1, c2 := c.newLocal(t.To+"@internal", "internal", t.To, p1, "", "")
	b2 := c.bridgeCreate()
	c.setCallerID(c2, p1.cidNum, p1.cidName)
	c.localBridge(c1, c2, true)
	c.setConnected(c1, p1.cidNum, p1.cidName)
	c.bridgeEnter(b2, c1)
	c2.dialer = true
	c.newexten(c2, "NoOp", "Transfer/internal target "+t.To)
	np := &party{outer: c2, inner: c1}
	nl := c.startDial(np, []string{t.To}, legPhone, DefaultRingTimeout)[0]
	c.ringLeg(np, nl, false)
	c.newstate(c1, stRinging)
	c.bridgeLeave(p1)
	c.bridgeEnter(b2, p1)
	c.dialState(nil, c1, "RINGING")
	c.at(c.now + t.Ring)
	c.answerDevice(nl)
	c.dialEnd(c2, nl.outer, "ANSWER")
	c.answer(c1)
	c.dialEnd(nil, c1, "ANSWER")
	c.answer(c2)
	b3 := c.bridgeCreate()
	c.bridgeEnter(b3, nl.outer)
	c.bridgeEnter(b3, c2)
	consultStart := c.now
	c.at(c.now + t.Consult)
	// The transferer hangs up: that completes the transfer.
	p2.ending, p1.ending = true, true
	c.softHangup(p2, 16)
	c.hangupRequest(p1, 0)
	c.hangup(p2, 0)
	c.bridgeLeave(p1)
	p1.legs = append(p1.legs, &cdrLeg{dest: c1, start: consultStart, answer: consultStart, answered: true,
		end: c.now, ended: true, disposition: "ANSWERED", app: "AppDial", data: "(Outgoing Line)"})
	m := ev("BridgeMerge", "call")
	bridgeBlock(m, "To", b1)
	bridgeBlock(m, "From", b2)
	c.emit(m)
	c.endLeg(cp.outer, p1)
	c.bridgeLeave(c1)
	c.bridgeEnter(b1, c1)
	cp.outer.legs = append(cp.outer.legs, &cdrLeg{dest: c1, start: c.now, answer: c.now, answered: true,
		disposition: "ANSWERED", app: cp.outer.app, data: cp.outer.appData})
	c1.cdrOwn = true
	m = ev("AttendedTransfer", "call")
	m.Add("Result", "Success")
	snap(m, "OrigTransferer", p1)
	bridgeBlock(m, "Orig", b1)
	snap(m, "SecondTransferer", p1)
	bridgeBlock(m, "Second", b2)
	snap(m, "Transferee", cp.outer)
	m.Add("IsExternal", "No").Add("DestType", "Bridge").Add("DestBridgeUniqueid", b1.id)
	c.emit(m)
	c.cel("ATTENDEDTRANSFER", p1, "", fmt.Sprintf(`{"bridge1_id":"%s","channel2_name":"%s","channel2_uniqueid":"%s","bridge2_id":"%s","transferee_channel_name":"%s","transferee_channel_uniqueid":"%s","transfer_target_channel_name":"N/A","transfer_target_channel_uniqueid":"N/A"}`,
		b1.id, p1.name, p1.uid, b2.id, cp.outer.name, cp.outer.uid))
	c.hangup(p1, 16)
	return nl
}

// attendedPJSIP is a phone's attended transfer: it holds the caller, places a consultation call
// (a call of its own, with its own Linkedid), and sends REFER with Replaces; Asterisk moves the
// target into the caller's bridge, which merges the two calls onto the caller's Linkedid.
func (c *call) attendedPJSIP(cp *party, win *leg, t *Transfer) *leg {
	xferer := win.phoneSide()
	b1 := xferer.bridge
	xferee := otherIn(b1, xferer)
	c.hold(xferer)
	ph2 := c.newPJSIP(win.ext, "from-internal", t.To, stRing, nil, "")
	ph2.cidNum = win.ext
	c.announce(ph2)
	ph2.dialer = true
	c.newexten(ph2, "NoOp", fmt.Sprintf("Call %s -> %s", win.ext, t.To))
	np := &party{outer: ph2, inner: ph2}
	nl := c.startDial(np, []string{t.To}, legPhone, DefaultRingTimeout)[0]
	c.ringLeg(np, nl, false)
	c.at(c.now + t.Ring)
	c.answerLeg(np, nl, nil, false)
	c.at(c.now + t.Consult)
	tgt := nl.outer
	b2 := tgt.bridge
	c.endLeg(xferee, xferer)
	c.endLeg(ph2, tgt)
	xferer.ending, ph2.ending = true, true
	c.bridgeLeave(xferer)
	c.bridgeLeave(ph2)
	c.bridgeLeave(tgt)
	c.bridgeEnter(b1, tgt)
	if xferee.dialer {
		xferee.legs = append(xferee.legs, &cdrLeg{dest: tgt, start: c.now, answer: c.now, answered: true,
			disposition: "ANSWERED", app: xferee.app, data: xferee.appData})
	}
	m := ev("AttendedTransfer", "call")
	m.Add("Result", "Success")
	snap(m, "OrigTransferer", xferer)
	bridgeBlock(m, "Orig", b1)
	snap(m, "SecondTransferer", ph2)
	bridgeBlock(m, "Second", b2)
	snap(m, "Transferee", xferee)
	snap(m, "TransferTarget", tgt)
	m.Add("IsExternal", "Yes").Add("DestType", "Bridge").Add("DestBridgeUniqueid", b1.id)
	c.emit(m)
	c.cel("ATTENDEDTRANSFER", xferer, "", fmt.Sprintf(`{"bridge1_id":"%s","channel2_name":"%s","channel2_uniqueid":"%s","bridge2_id":"%s","transferee_channel_name":"%s","transferee_channel_uniqueid":"%s","transfer_target_channel_name":"%s","transfer_target_channel_uniqueid":"%s"}`,
		b1.id, ph2.name, ph2.uid, b2.id, xferee.name, xferee.uid, tgt.name, tgt.uid))
	// The phone ends both of its dialogs.
	c.hangupRequest(xferer, 16)
	c.finish(xferer, true)
	c.appEnd(ph2)
	c.hangupRequest(ph2, 16)
	c.hangup(ph2, 16)
	return nl
}

// queueCall: the caller is answered and waits in a ringall queue; members ring in rounds of
// MemberTimeout with Retry between them.
func (c *call) queueCall(cp *party) {
	sc, q := c.sc, c.sc.Queue
	out := cp.outer
	c.newexten(out, "Answer", "")
	c.answer(out)
	c.originAnswered(cp)
	c.varSet(out, "QUEUEWAIT", "")
	c.appStart(out, "Queue", fmt.Sprintf("%s,rtT,,,%d", q.Name, int(q.MaxWait/time.Second)))
	m := c.chanEvent("QueueCallerJoin", "agent", out)
	m.Add("Queue", q.Name).Add("Position", "1").Add("Count", "1")
	c.emit(m)
	c.queueJoined = c.now
	joined := c.now
	kind := legPhone
	if !c.local {
		kind = legMember
	}
	period := q.MemberTimeout + q.Retry
	for round := 0; ; round++ {
		roundStart := joined + time.Duration(round)*period
		c.at(roundStart)
		if roundStart >= joined+q.MaxWait {
			c.queueTimeout(cp, nil)
			return
		}
		var legs []*leg
		for _, mb := range q.Members {
			legs = append(legs, c.newLeg(cp, mb, kind, true))
		}
		for _, l := range legs {
			c.ringLeg(cp, l, true)
		}
		roundEnd := roundStart + q.MemberTimeout
		abandon := time.Duration(-1)
		if sc.CallerHangsUpAfter > 0 {
			abandon = sc.CallerHangsUpAfter
		}
		switch {
		case sc.Answer != nil && sc.Answer.After < roundEnd:
			c.at(sc.Answer.After)
			var win *leg
			var others []*leg
			for _, l := range legs {
				if l.ext == sc.Answer.By {
					win = l
				} else {
					others = append(others, l)
				}
			}
			c.queueTalk(cp, win, others)
			return
		case abandon >= 0 && abandon < roundEnd:
			c.at(abandon)
			c.queueAbandon(cp, legs)
			return
		case joined+q.MaxWait <= roundEnd:
			c.at(joined + q.MaxWait)
			c.queueTimeout(cp, legs)
			return
		}
		// Nobody answered in time: the members' calls end, and they ring again after Retry.
		c.at(roundEnd)
		for _, l := range legs {
			c.agentEvent("AgentRingNoAnswer", out, l.outer, l.ext, "RingTime", strconv.Itoa(int(q.MemberTimeout/time.Millisecond)))
			c.cancelLeg(cp, l, "NOANSWER", 0, false)
		}
		switch {
		case abandon >= 0 && abandon < roundEnd+q.Retry:
			c.at(abandon)
			c.queueAbandon(cp, nil)
			return
		case joined+q.MaxWait < roundEnd+q.Retry:
			c.at(joined + q.MaxWait)
			c.queueTimeout(cp, nil)
			return
		}
	}
}

func (c *call) queueTalk(cp *party, win *leg, others []*leg) {
	out := cp.outer
	b := (*bridge)(nil)
	completed := false
	answered := time.Duration(0)
	c.onLeave = func(ch *channel) {
		if completed || ch.bridge == nil || ch.bridge != b {
			return
		}
		completed = true
		reason := "agent"
		switch {
		case c.transferring:
			reason = "transfer"
		case ch == out:
			reason = "caller"
		}
		c.agentEvent("AgentComplete", out, win.outer, win.ext,
			"HoldTime", strconv.Itoa(secondsBetween(c.start, c.queueJoined, answered)),
			"TalkTime", strconv.Itoa(secondsBetween(c.start, answered, c.now)),
			"Reason", reason)
	}
	c.answerLeg(cp, win, others, true)
	answered = c.now
	b = win.outer.bridge
	c.talk(cp, win)
}

func (c *call) queueLeave(out *channel) {
	m := c.chanEvent("QueueCallerLeave", "agent", out)
	m.Add("Queue", c.sc.Queue.Name).Add("Count", "0").Add("Position", "1")
	c.emit(m)
}

// queueAbandon: the caller hangs up while waiting; the ringing members are cancelled.
func (c *call) queueAbandon(cp *party, legs []*leg) {
	out, in := cp.outer, cp.inner
	out.ending, in.ending = true, true
	if in != out {
		c.softHangup(in, 16)
		c.hangupRequest(out, 16)
		c.hangup(in, 16)
	} else {
		c.hangupRequest(out, 16)
	}
	for _, l := range legs {
		c.cancelLeg(cp, l, "CANCEL", 0, true)
	}
	m := c.chanEvent("QueueCallerAbandon", "agent", out)
	m.Add("Queue", c.sc.Queue.Name).Add("Position", "1").Add("OriginalPosition", "1").
		Add("HoldTime", strconv.Itoa(secondsBetween(c.start, c.queueJoined, c.now)))
	c.emit(m)
	c.queueLeave(out)
	c.appEnd(out)
	if in != out {
		c.softHangup(out, 16)
	}
	c.hangup(out, 16)
}

// queueTimeout: the caller's maximum wait passed; the dialplan goes on to Hangup().
func (c *call) queueTimeout(cp *party, legs []*leg) {
	out := cp.outer
	for _, l := range legs {
		c.cancelLeg(cp, l, "CANCEL", 0, true)
	}
	c.queueLeave(out)
	c.appEnd(out)
	c.varSet(out, "QUEUESTATUS", "TIMEOUT")
	c.newexten(out, "Hangup", "")
	out.hangupSource = "dialplan/builtin"
	c.softHangup(out, 16)
	in := cp.inner
	if in == out {
		c.hangup(out, 16)
		return
	}
	in.ending = true
	c.hangupRequest(in, 16)
	c.hangup(out, 16)
	c.softHangup(in, 16)
	c.hangup(in, 16)
}

// agentEvent sends a queue member event: the caller's snapshot, the member channel as Dest*,
// then Queue, Interface and MemberName, then extra key/value pairs.
func (c *call) agentEvent(name string, caller, member *channel, ext string, extra ...string) {
	m := ev(name, "agent")
	snap(m, "", caller)
	snap(m, "Dest", member)
	iface := "Local/" + ext + "@phones"
	if !c.local {
		iface = "Local/" + ext + "@from-queue/n"
	}
	m.Add("Queue", c.sc.Queue.Name).Add("Interface", iface).Add("MemberName", ext)
	for i := 0; i+1 < len(extra); i += 2 {
		m.Add(extra[i], extra[i+1])
	}
	c.emit(m)
}

// originate is what GenerateOriginate takes from the Originate action.
type originate struct {
	style              Style
	channel            string // as the action gave it
	ext                string // the employee's extension
	context, exten     string
	cidNum, cidName    string
	timeout            time.Duration
	vars               [][2]string
	channelID, otherID string
	actionID           string
}

var originateChanRe = regexp.MustCompile(`^(?:Local/([0-9]{2,6})@phones|PJSIP/([0-9]{2,6}))$`)

func parseOriginate(a *ami.Message, sc *Scenario) (*originate, error) {
	if a == nil {
		return nil, fmt.Errorf("no Originate action")
	}
	o := &originate{channel: a.Get("Channel"), context: a.Get("Context"), exten: a.Get("Exten"),
		channelID: a.Get("ChannelId"), otherID: a.Get("OtherChannelId"), actionID: a.Get("ActionID")}
	mm := originateChanRe.FindStringSubmatch(o.channel)
	switch {
	case mm == nil:
		return nil, fmt.Errorf("Channel %q: generated click-to-calls ring Local/<ext>@phones or PJSIP/<ext>", o.channel)
	case mm[1] != "":
		o.style, o.ext = StyleLocal, mm[1]
	default:
		o.style, o.ext = StylePJSIP, mm[2]
	}
	if a.Get("Application") != "" {
		return nil, fmt.Errorf("Application %q: only Context/Exten originates are generated", a.Get("Application"))
	}
	if !numberRe.MatchString(o.exten) {
		return nil, fmt.Errorf("Exten %q: write the number to call", o.exten)
	}
	if o.context == "" {
		o.context = "from-internal"
	}
	o.cidNum, o.cidName = parseCallerID(a.Get("CallerID"))
	if o.cidNum == "" {
		o.cidNum = o.ext
	}
	o.timeout = DefaultOriginateTimeout
	if sc.ClickToCall != nil && sc.ClickToCall.Timeout > 0 {
		o.timeout = sc.ClickToCall.Timeout
	}
	if t := a.Get("Timeout"); t != "" {
		ms, err := strconv.Atoi(t)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("Timeout %q: write milliseconds, e.g. 30000", t)
		}
		o.timeout = time.Duration(ms) * time.Millisecond
	}
	for _, v := range a.All("Variable") {
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				continue
			}
			o.vars = append(o.vars, [2]string{strings.TrimSpace(k), val})
		}
	}
	return o, nil
}

// originateAction is the Originate a CRM would send for a click-to-call scenario.
func (sc *Scenario) originateAction() *ami.Message {
	ch := "PJSIP/" + sc.From
	if sc.Style == StyleLocal {
		ch = "Local/" + sc.From + "@phones"
	}
	timeout := DefaultOriginateTimeout
	if sc.ClickToCall != nil && sc.ClickToCall.Timeout > 0 {
		timeout = sc.ClickToCall.Timeout
	}
	a := &ami.Message{}
	a.Add("Action", "Originate").Add("Channel", ch).Add("Context", "from-internal").Add("Exten", sc.To).
		Add("Priority", "1").Add("CallerID", fmt.Sprintf("%q <%s>", sc.FromName, sc.From)).
		Add("Timeout", strconv.Itoa(int(timeout/time.Millisecond))).Add("Async", "true")
	return a
}

// clickToCall: the Originate rings the employee's phone; once it answers, the phone's channel
// runs Context/Exten, which dials the number.
func (c *call) clickToCall() {
	sc, o := c.sc, c.orig
	var ph *party
	if c.local {
		p1, p2 := c.newLocal(o.ext+"@phones", "phones", o.ext, nil, o.channelID, o.otherID)
		for _, kv := range o.vars {
			c.varSet(p1, kv[0], kv[1])
		}
		for _, kv := range o.vars {
			c.varSet(p2, kv[0], kv[1])
		}
		c.callerIDs(p1, p2, o.cidNum, o.cidName)
		p2.cdrOwn = true
		ph = &party{outer: p1, inner: p2}
	} else {
		p := c.newPJSIP(o.ext, "from-internal", "s", stDown, nil, o.channelID)
		p.cidNum, p.cidName = o.cidNum, o.cidName
		c.announce(p)
		for _, kv := range o.vars {
			c.varSet(p, kv[0], kv[1])
		}
		ph = &party{outer: p, inner: p}
	}
	p1 := ph.outer
	p1.cdrOwn = true
	p1.app, p1.appData = "AppDial2", "(Outgoing Line)"
	dialString := o.ext
	if c.local {
		dialString = o.ext + "@phones"
	}
	c.dialEvent("DialBegin", nil, p1, "DialString", dialString)
	phone := sc.clickPhone()
	if phone == PhoneBusy {
		c.clickFailed(ph, "BUSY", 17, 5)
		return
	}
	c.newstate(p1, stRinging)
	c.dialState(nil, p1, "RINGING")
	if phone == PhoneNoAnswer {
		c.at(o.timeout)
		c.clickFailed(ph, "", 19, 3)
		return
	}
	ring := DefaultPhoneRing
	if sc.ClickToCall != nil && sc.ClickToCall.PhoneRing > 0 {
		ring = sc.ClickToCall.PhoneRing
	}
	if ring >= o.timeout {
		c.at(o.timeout)
		c.clickFailed(ph, "", 19, 3)
		return
	}
	c.at(ring)
	if c.local {
		c.answer(ph.inner)
	}
	c.answer(p1)
	c.dialEvent("DialEnd", nil, p1, "DialStatus", "ANSWER")
	// The phone's channel runs Context/Exten: an outbound call from the employee.
	p1.context, p1.exten, p1.prio, p1.dialer = o.context, o.exten, 0, true
	c.newexten(p1, "NoOp", fmt.Sprintf("Outbound call %s -> %s", o.cidNum, o.exten))
	if sc.Recording != "" {
		c.mixMonitor(p1)
	}
	kind := legTrunk
	if extensionRe.MatchString(o.exten) {
		kind = legPhone
	}
	timeout := sc.RingTimeout
	if sc.Direction != Outbound {
		timeout = DefaultOutboundRingTimeout
	}
	dialStart := c.now
	legs := c.startDial(ph, []string{o.exten}, kind, timeout)
	c.originateResponse(true, 4, p1)
	if !sc.Busy {
		c.ringLeg(ph, legs[0], false)
	}
	saved := *sc
	c.sc = &saved // the outcome of the number's side, with the Dial's own timeout
	saved.RingTimeout = timeout
	if saved.Answer != nil {
		a := *saved.Answer
		a.By = o.exten
		saved.Answer = &a
		saved.Transfer = nil
	}
	c.outcome(ph, legs, dialStart)
}

// clickFailed: the phone did not answer the Originate (busy, or it rang until the timeout).
func (c *call) clickFailed(ph *party, status string, cause, reason int) {
	p1, in := ph.outer, ph.inner
	if status != "" {
		if in != p1 {
			c.newstate(in, stBusy)
			in.busy = true
		} else {
			p1.busy = true
		}
		c.dialEvent("DialEnd", nil, p1, "DialStatus", status)
	}
	p1.ending = true
	c.hangup(p1, cause)
	if in != p1 {
		in.ending = true
		c.hangupRequest(in, cause)
		c.softHangup(in, 16)
		c.hangup(in, cause)
	}
	c.originateResponse(false, reason, nil)
}

// originateResponse is the async Originate's result, with the action's ActionID.
func (c *call) originateResponse(ok bool, reason int, ch *channel) {
	o := c.orig
	m := ev("OriginateResponse", "call")
	if o.actionID != "" {
		m.Add("ActionID", o.actionID)
	}
	name, uid := o.channel, o.channelID
	resp := "Failure"
	if ok {
		resp, name, uid = "Success", ch.name, ch.uid
	}
	if uid == "" {
		uid = "<unknown>"
	}
	m.Add("Response", resp).Add("Channel", name).Add("Context", o.context).Add("Exten", o.exten).
		Add("Reason", strconv.Itoa(reason)).Add("Uniqueid", uid).
		Add("CallerIDNum", orUnknown(o.cidNum)).Add("CallerIDName", orUnknown(o.cidName))
	c.emit(m)
}
