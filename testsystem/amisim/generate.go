package amisim

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// MonitorDir is where Asterisk's MixMonitor writes recordings by default; MIXMONITOR_FILENAME
// holds the full path.
const MonitorDir = "/var/spool/asterisk/monitor/"

// Generator turns scenarios into recordings. It numbers Uniqueids, channel names and bridges
// across every call it makes, so calls from one Generator never share an id. Safe for concurrent
// use.
type Generator struct {
	mu      sync.Mutex
	seq     int // next Uniqueid sequence number
	chanSeq int // next channel name suffix (-%08x)
	bridges int
}

// NewGenerator returns a Generator whose first call gets Uniqueid sequence 1 and channel suffix
// 00000001, as a freshly started Asterisk would.
func NewGenerator() *Generator { return &Generator{seq: 1, chanSeq: 1} }

// Generate makes the events of sc with a new Generator; the call starts at sc.Start, or now when
// that is zero. Use one Generator (or Recording.Fresh) for several calls that must not share ids.
func Generate(sc *Scenario) (*Recording, error) {
	return NewGenerator().Generate(sc, time.Time{})
}

// GenerateOriginate makes the events of the click-to-call an AMI Originate action places, with a
// new Generator (see Generator.GenerateOriginate).
func GenerateOriginate(action *ami.Message, sc *Scenario) (*Recording, error) {
	return NewGenerator().GenerateOriginate(action, sc, time.Time{})
}

// Generate makes the AMI events Asterisk sends for the call sc describes, starting at start
// (zero: sc.Start, or now when that is zero too). Each packet's Offset paces the Player; CEL
// EventTime, Cdr times, Uniqueid epochs and recording names agree with start.
func (gen *Generator) Generate(sc *Scenario, start time.Time) (*Recording, error) {
	if sc == nil {
		return nil, fmt.Errorf("amisim: generate: no scenario")
	}
	if sc.ClickToCall != nil {
		return gen.GenerateOriginate(sc.originateAction(), sc, start)
	}
	gen.mu.Lock()
	defer gen.mu.Unlock()
	c := gen.newCall(sc, start, sc.Style)
	if err := c.run(); err != nil {
		return nil, fmt.Errorf("amisim: generate %s: %w", sc.Name, err)
	}
	return c.recording(), nil
}

// GenerateOriginate makes the events of an AMI Originate action (Channel PJSIP/101 or
// Local/101@phones, Context, Exten, CallerID, Timeout, Variable, ChannelId, OtherChannelId,
// ActionID) placing the click-to-call sc describes: the phone rings (click_to_call), then the
// number dialled (answer, busy, talk, hangup, recording). The action's Channel decides the style
// and its Exten the number; ChannelId becomes the first channel's Uniqueid; each Variable a
// VarSet; the recording ends with or contains the OriginateResponse carrying the ActionID, as
// Asterisk sends it for an async Originate.
func (gen *Generator) GenerateOriginate(action *ami.Message, sc *Scenario, start time.Time) (*Recording, error) {
	if sc == nil {
		return nil, fmt.Errorf("amisim: generate originate: no scenario")
	}
	o, err := parseOriginate(action, sc)
	if err != nil {
		return nil, fmt.Errorf("amisim: generate originate: %w", err)
	}
	gen.mu.Lock()
	defer gen.mu.Unlock()
	c := gen.newCall(sc, start, o.style)
	c.orig = o
	if err := c.run(); err != nil {
		return nil, fmt.Errorf("amisim: generate originate %s: %w", sc.Name, err)
	}
	return c.recording(), nil
}

func (gen *Generator) newCall(sc *Scenario, start time.Time, style Style) *call {
	if start.IsZero() {
		start = sc.Start
	}
	if start.IsZero() {
		start = time.Now()
	}
	name := sc.Name
	if name == "" {
		name = "scenario"
	}
	return &call{gen: gen, sc: sc, name: name, local: style == StyleLocal, start: start, lids: map[string]int{}}
}

// call is one call being generated: a tiny model of Asterisk's channels, bridges, CEL linkedid
// counts and CDRs, which the flows drive and which writes the events.
type call struct {
	gen   *Generator
	sc    *Scenario
	name  string
	local bool
	orig  *originate // set for GenerateOriginate
	start time.Time
	now   time.Duration
	pkts  []Packet
	lids  map[string]int // live channels per linkedid (CEL's linkedid reference count)
	chans []*channel

	queueJoined  time.Duration
	onLeave      func(ch *channel) // called before a channel leaves a bridge (AgentComplete)
	pendingOrig  func()            // the harness originate's DialBegin, sent after the first Dial
	transferring bool
}

func (c *call) recording() *Recording {
	return &Recording{Name: c.name, Packets: c.pkts, start: c.start}
}

// at moves the call's clock forward to d (never back).
func (c *call) at(d time.Duration) {
	if d > c.now {
		c.now = d
	}
}

func (c *call) wall() time.Time { return c.start.Add(c.now) }

// Channel states (include/asterisk/channelstate.h).
const (
	stDown    = 0
	stRing    = 4
	stRinging = 5
	stUp      = 6
	stBusy    = 7
)

func stateDesc(st int) string {
	switch st {
	case stDown:
		return "Down"
	case stRing:
		return "Ring"
	case stRinging:
		return "Ringing"
	case stUp:
		return "Up"
	case stBusy:
		return "Busy"
	}
	return fmt.Sprintf("Unknown (%d)", st)
}

// causeText is ast_cause2str for the causes generated.
func causeText(cause int) string {
	switch cause {
	case 16:
		return "Normal Clearing"
	case 17:
		return "User busy"
	case 19:
		return "User alerting, no answer"
	case 21:
		return "Call Rejected"
	case 26:
		return "Answered elsewhere"
	}
	return "Unknown"
}

// channel is what the model knows of one Asterisk channel.
type channel struct {
	name            string
	uid, lid        string
	state           int
	cidNum, cidName string
	clNum, clName   string
	context, exten  string
	prio            int
	app, appData    string // the application running, for CEL
	celApp          bool   // a CEL-tracked application (Dial, Queue) is running
	created         time.Duration
	answeredAt      time.Duration
	answered        bool
	peer            *channel // the other half of a Local channel
	bridge          *bridge
	dead            bool
	ending          bool // hanging up on its own: do not send it a hangup request
	dialer          bool // runs Dial/Queue: after its bridge ends its dialplan goes on to Hangup()
	originating     bool // dialled by an Originate whose answer is still pending
	busy            bool // ran Busy(): its hangup cause becomes 17
	hangupSource    string
	dialStatus      string

	cdrOwn     bool      // gets a Cdr of its own (the device end of a call, a harness originate)
	legs       []*cdrLeg // its Dial's legs, one Cdr each
	failedDial bool      // its Dial failed and its dialplan went on: one more Cdr without a peer
}

// cdrLeg is a Party A / Party B pairing of Asterisk's CDR engine: one Cdr.
type cdrLeg struct {
	dest        *channel
	start       time.Duration
	answer      time.Duration
	answered    bool
	end         time.Duration
	ended       bool
	disposition string
	app, data   string
}

type bridge struct {
	id    string
	chans []*channel
}

// ev starts an event with its class.
func ev(name, class string) *ami.Message {
	m := &ami.Message{Headers: make([]ami.Header, 0, 24)}
	return m.Add("Event", name).Add("Privilege", class+",all")
}

func (c *call) emit(m *ami.Message) { c.pkts = append(c.pkts, Packet{Msg: m, Offset: c.now}) }

// snap adds a channel snapshot block (ast_manager_build_channel_state_string_prefix).
func snap(m *ami.Message, prefix string, ch *channel) {
	m.Add(prefix+"Channel", ch.name).
		Add(prefix+"ChannelState", strconv.Itoa(ch.state)).
		Add(prefix+"ChannelStateDesc", stateDesc(ch.state)).
		Add(prefix+"CallerIDNum", orUnknown(ch.cidNum)).
		Add(prefix+"CallerIDName", orUnknown(ch.cidName)).
		Add(prefix+"ConnectedLineNum", orUnknown(ch.clNum)).
		Add(prefix+"ConnectedLineName", orUnknown(ch.clName)).
		Add(prefix+"Language", "en").
		Add(prefix+"AccountCode", "").
		Add(prefix+"Context", ch.context).
		Add(prefix+"Exten", ch.exten).
		Add(prefix+"Priority", strconv.Itoa(ch.prio)).
		Add(prefix+"Uniqueid", ch.uid).
		Add(prefix+"Linkedid", ch.lid)
}

func (c *call) chanEvent(name, class string, ch *channel) *ami.Message {
	m := ev(name, class)
	snap(m, "", ch)
	return m
}

// newUniqueid is `<epoch>.<seq>` with the epoch of the channel's creation.
func (c *call) newUniqueid() string {
	u := fmt.Sprintf("%d.%d", c.wall().Unix(), c.gen.seq)
	c.gen.seq++
	return u
}

func (c *call) newSuffix() string {
	s := fmt.Sprintf("%08x", c.gen.chanSeq)
	c.gen.chanSeq++
	return s
}

// newBridgeID is a version-4-shaped UUID, unique per Generator and start time.
func (c *call) newBridgeID() string {
	c.gen.bridges++
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", c.start.UnixNano(), c.gen.bridges)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// alloc creates a channel; requestor (may be nil) passes on its Linkedid, as
// __ast_channel_alloc does.
func (c *call) alloc(name, context, exten string, state int, requestor *channel, uid string) *channel {
	if uid == "" {
		uid = c.newUniqueid()
	}
	ch := &channel{name: name, uid: uid, lid: uid, state: state, context: context, exten: exten, prio: 1, created: c.now}
	if requestor != nil {
		ch.lid = requestor.lid
	}
	c.lids[ch.lid]++
	c.chans = append(c.chans, ch)
	return ch
}

// announce sends CHAN_START and Newchannel.
func (c *call) announce(ch *channel) {
	c.cel("CHAN_START", ch, "", "")
	c.emit(c.chanEvent("Newchannel", "call", ch))
}

// newLocal creates a Local channel pair Local/<target>-XXXXXXXX;1 (Down) and ;2 (Ring, in
// context/exten), both with the requestor's Linkedid.
func (c *call) newLocal(target, context, exten string, requestor *channel, uid1, uid2 string) (*channel, *channel) {
	base := "Local/" + target + "-" + c.newSuffix()
	one := c.alloc(base+";1", context, exten, stDown, requestor, uid1)
	if uid1 != "" && uid2 == "" {
		uid2 = uid1 + ";2" // core_local: the ;2 of an assigned id
	}
	two := c.alloc(base+";2", context, exten, stRing, one, uid2)
	one.peer, two.peer = two, one
	c.announce(one)
	c.announce(two)
	return one, two
}

// newPJSIP creates PJSIP/<endpoint>-XXXXXXXX.
func (c *call) newPJSIP(endpoint, context, exten string, state int, requestor *channel, uid string) *channel {
	return c.alloc("PJSIP/"+endpoint+"-"+c.newSuffix(), context, exten, state, requestor, uid)
}

func (c *call) setCallerID(ch *channel, num, name string) {
	ch.cidNum, ch.cidName = num, name
	m := c.chanEvent("NewCallerid", "call", ch)
	m.Add("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
	c.emit(m)
}

func (c *call) setConnected(ch *channel, num, name string) {
	ch.clNum, ch.clName = num, name
	c.emit(c.chanEvent("NewConnectedLine", "call", ch))
}

func (c *call) localBridge(one, two *channel, optimize bool) {
	m := ev("LocalBridge", "call")
	snap(m, "LocalOne", one)
	snap(m, "LocalTwo", two)
	opt := "No"
	if optimize {
		opt = "Yes"
	}
	m.Add("Context", one.context).Add("Exten", two.exten).Add("LocalOptimization", opt)
	c.emit(m)
}

func (c *call) newstate(ch *channel, st int) {
	if ch.state == st {
		return
	}
	ch.state = st
	c.emit(c.chanEvent("Newstate", "call", ch))
}

// answer marks ch answered: CEL ANSWER and Newstate Up.
func (c *call) answer(ch *channel) {
	if ch.answered {
		return
	}
	ch.answered, ch.answeredAt = true, c.now
	ch.state = stUp
	c.cel("ANSWER", ch, "", "")
	c.emit(c.chanEvent("Newstate", "call", ch))
}

func (c *call) newexten(ch *channel, app, data string) {
	ch.prio++
	ch.app, ch.appData = app, data
	m := c.chanEvent("Newexten", "dialplan", ch)
	m.Add("Extension", ch.exten).Add("Application", app).Add("AppData", data)
	c.emit(m)
}

// goTo moves ch to the start of context,exten (a transfer or Redirect), with its first Newexten.
func (c *call) goTo(ch *channel, context, exten, app, data string) {
	ch.context, ch.exten, ch.prio = context, exten, 0
	c.newexten(ch, app, data)
}

func (c *call) varSet(ch *channel, name, value string) {
	m := c.chanEvent("VarSet", "dialplan", ch)
	m.Add("Variable", name).Add("Value", value)
	c.emit(m)
}

// appStart starts a CEL-tracked application (Dial, Queue).
func (c *call) appStart(ch *channel, app, data string) {
	c.newexten(ch, app, data)
	ch.celApp = true
	c.cel("APP_START", ch, "", "")
}

func (c *call) appEnd(ch *channel) {
	if !ch.celApp {
		return
	}
	ch.celApp = false
	c.cel("APP_END", ch, "", "")
}

func (c *call) dialEvent(name string, caller, dest *channel, extra ...string) {
	m := ev(name, "call")
	if caller != nil {
		snap(m, "", caller)
	}
	snap(m, "Dest", dest)
	for i := 0; i+1 < len(extra); i += 2 {
		m.Add(extra[i], extra[i+1])
	}
	c.emit(m)
}

// dialBegin starts a leg; a dialling channel (caller != nil) gets a Cdr for it.
func (c *call) dialBegin(caller, dest *channel, dialString string) {
	c.dialEvent("DialBegin", caller, dest, "DialString", dialString)
	if caller != nil {
		start := caller.created
		if n := len(caller.legs); n > 0 && caller.legs[n-1].answered {
			start = caller.legs[n-1].end // a new pairing after a transfer
		}
		caller.legs = append(caller.legs, &cdrLeg{dest: dest, start: start, app: caller.app, data: caller.appData})
	}
}

func (c *call) dialState(caller, dest *channel, status string) {
	c.dialEvent("DialState", caller, dest, "DialStatus", status)
}

func (c *call) dialEnd(caller, dest *channel, status string) {
	c.dialEvent("DialEnd", caller, dest, "DialStatus", status)
	if caller == nil {
		return
	}
	caller.dialStatus = status
	if leg := caller.leg(dest); leg != nil && !leg.ended && !leg.answered {
		switch status {
		case "ANSWER":
			leg.answered, leg.answer, leg.disposition = true, c.now, "ANSWERED"
		case "BUSY":
			leg.ended, leg.end, leg.disposition = true, c.now, "BUSY"
		default:
			leg.ended, leg.end, leg.disposition = true, c.now, "NO ANSWER"
		}
	}
}

// leg finds the Cdr leg of a dialled channel.
func (ch *channel) leg(dest *channel) *cdrLeg {
	for i := len(ch.legs) - 1; i >= 0; i-- {
		if ch.legs[i].dest == dest {
			return ch.legs[i]
		}
	}
	return nil
}

// endLeg closes ch's Cdr leg to dest when they stop talking.
func (c *call) endLeg(ch, dest *channel) {
	if leg := ch.leg(dest); leg != nil && !leg.ended {
		leg.ended, leg.end = true, c.now
	}
}

func bridgeBlock(m *ami.Message, prefix string, b *bridge) {
	m.Add(prefix+"BridgeUniqueid", b.id).
		Add(prefix+"BridgeType", "basic").
		Add(prefix+"BridgeTechnology", "simple_bridge").
		Add(prefix+"BridgeCreator", "<unknown>").
		Add(prefix+"BridgeName", "<unknown>").
		Add(prefix+"BridgeNumChannels", strconv.Itoa(len(b.chans))).
		Add(prefix+"BridgeVideoSourceMode", "none")
}

func (c *call) bridgeCreate() *bridge {
	b := &bridge{id: c.newBridgeID()}
	m := ev("BridgeCreate", "call")
	bridgeBlock(m, "", b)
	c.emit(m)
	return b
}

func (b *bridge) extra() string {
	return `{"bridge_id":"` + b.id + `","bridge_technology":"simple_bridge"}`
}

// bridgeEnter puts ch in b. A basic bridge gives every channel in it the oldest Linkedid
// (ast_bridge_channel_update_linkedids), which merges the calls of an attended transfer.
func (c *call) bridgeEnter(b *bridge, ch *channel) {
	b.chans = append(b.chans, ch)
	ch.bridge = b
	oldest := ch.lid
	for _, o := range b.chans {
		if olderUniqueid(o.lid, oldest) {
			oldest = o.lid
		}
	}
	var peer *channel
	for _, o := range b.chans {
		if o.lid != oldest {
			c.relink(o, oldest)
		}
		if o != ch && peer == nil {
			peer = o
		}
	}
	m := ev("BridgeEnter", "call")
	bridgeBlock(m, "", b)
	snap(m, "", ch)
	c.emit(m)
	c.cel("BRIDGE_ENTER", ch, peerName(peer), b.extra())
}

func peerName(ch *channel) string {
	if ch == nil {
		return ""
	}
	return ch.name
}

// relink changes ch's Linkedid; CEL retires the old one when ch held its last reference.
func (c *call) relink(ch *channel, lid string) {
	old := ch.lid
	ch.lid = lid
	c.lids[lid]++
	c.lids[old]--
	if c.lids[old] == 0 {
		delete(c.lids, old)
		saved := ch.lid
		ch.lid = old // LINKEDID_END carries the channel as it was
		c.cel("LINKEDID_END", ch, "", "")
		ch.lid = saved
	}
}

// bridgeLeave takes ch out of its bridge; the last one out destroys the bridge.
func (c *call) bridgeLeave(ch *channel) {
	b := ch.bridge
	if b == nil {
		return
	}
	if c.onLeave != nil {
		c.onLeave(ch)
	}
	for i, o := range b.chans {
		if o == ch {
			b.chans = append(b.chans[:i], b.chans[i+1:]...)
			break
		}
	}
	ch.bridge = nil
	m := ev("BridgeLeave", "call")
	bridgeBlock(m, "", b)
	snap(m, "", ch)
	c.emit(m)
	var peer *channel
	if len(b.chans) > 0 {
		peer = b.chans[0]
	}
	c.cel("BRIDGE_EXIT", ch, peerName(peer), b.extra())
	if len(b.chans) == 0 {
		m := ev("BridgeDestroy", "call")
		bridgeBlock(m, "", b)
		c.emit(m)
	}
}

func (c *call) hangupRequest(ch *channel, cause int) {
	m := c.chanEvent("HangupRequest", "call", ch)
	m.Add("Cause", strconv.Itoa(cause))
	c.emit(m)
}

func (c *call) softHangup(ch *channel, cause int) {
	m := c.chanEvent("SoftHangupRequest", "call", ch)
	m.Add("Cause", strconv.Itoa(cause))
	c.emit(m)
}

// hangup destroys ch: Hangup, CEL HANGUP and CHAN_END (LINKEDID_END after the last channel of a
// Linkedid), and its Cdr records.
func (c *call) hangup(ch *channel, cause int) {
	if ch.dead {
		return
	}
	if ch.busy {
		cause = 17
	}
	ch.dead = true
	if ch.bridge != nil {
		c.bridgeLeave(ch)
	}
	c.appEnd(ch) // a Dial cut short by the hangup ends before the channel does
	m := c.chanEvent("Hangup", "call", ch)
	m.Add("Cause", strconv.Itoa(cause)).Add("Cause-txt", causeText(cause))
	c.emit(m)
	c.cel("HANGUP", ch, "", fmt.Sprintf(`{"hangupcause":%d,"hangupsource":"%s","dialstatus":"%s"}`, cause, ch.hangupSource, ch.dialStatus))
	c.cel("CHAN_END", ch, "", "")
	c.lids[ch.lid]--
	if c.lids[ch.lid] <= 0 {
		delete(c.lids, ch.lid)
		c.cel("LINKEDID_END", ch, "", "")
	}
	c.cdrs(ch, cause)
}

func (c *call) celTime(d time.Duration) string { return c.start.Add(d).UTC().Format(celLayout) }

func (c *call) cel(name string, ch *channel, peer, extra string) {
	app, data := ch.app, ch.appData
	num, cname := ch.cidNum, ch.cidName
	if name == "CHAN_START" {
		app, data, num, cname = "", "", "", ""
	}
	m := ev("CEL", "call")
	m.Add("EventName", name).Add("AccountCode", "").
		Add("CallerIDnum", num).Add("CallerIDname", cname).Add("CallerIDani", "").
		Add("CallerIDrdnis", "").Add("CallerIDdnid", "").
		Add("Exten", ch.exten).Add("Context", ch.context).Add("Channel", ch.name).
		Add("Application", app).Add("AppData", data).
		Add("EventTime", c.celTime(c.now)).Add("AMAFlags", "DOCUMENTATION").
		Add("UniqueID", ch.uid).Add("LinkedID", ch.lid).Add("Userfield", "").
		Add("Peer", peer).Add("PeerAccount", "").Add("Extra", extra)
	c.emit(m)
}

// cdrs sends the Cdr records of a channel that hangs up: one per Dial leg (and one more when its
// Dial failed and the dialplan went on), or one of its own for a device end.
func (c *call) cdrs(ch *channel, cause int) {
	if len(ch.legs) > 0 {
		for _, l := range ch.legs {
			if !l.ended {
				l.ended, l.end = true, c.now
			}
			disp := l.disposition
			if disp == "" {
				disp = "NO ANSWER"
			}
			ans := l.answer
			answered := l.answered
			if !answered && ch.answered && ch.answeredAt <= l.start {
				answered, ans = true, ch.answeredAt // a queue caller is answered before it rings anyone
			}
			c.cdr(ch, l.dest, l.start, ans, answered, l.end, disp, l.app, l.data)
		}
		if ch.failedDial {
			c.cdr(ch, nil, ch.created, 0, false, c.now, "NO ANSWER", ch.app, ch.appData)
		}
		return
	}
	if !ch.cdrOwn {
		return
	}
	disp := "NO ANSWER"
	switch {
	case ch.answered:
		disp = "ANSWERED"
	case ch.busy:
		disp = "BUSY"
	case cause == 0:
		disp = "FAILED"
	}
	c.cdr(ch, nil, ch.created, ch.answeredAt, ch.answered, c.now, disp, ch.app, ch.appData)
}

func (c *call) cdr(ch, dest *channel, start, answer time.Duration, answered bool, end time.Duration, disp, app, data string) {
	m := ev("Cdr", "cdr")
	ans := ""
	bill := 0
	if answered {
		ans = c.celTime(answer)
		bill = secondsBetween(c.start, answer, end)
	}
	cid := fmt.Sprintf("%q <%s>", ch.cidName, ch.cidNum)
	m.Add("AccountCode", "").Add("Source", ch.cidNum).Add("Destination", ch.exten).
		Add("DestinationContext", ch.context).Add("CallerID", cid).Add("Channel", ch.name).
		Add("DestinationChannel", peerName(dest)).Add("LastApplication", app).Add("LastData", data).
		Add("StartTime", c.celTime(start)).Add("AnswerTime", ans).Add("EndTime", c.celTime(end)).
		Add("Duration", strconv.Itoa(secondsBetween(c.start, start, end))).
		Add("BillableSeconds", strconv.Itoa(bill)).Add("Disposition", disp).
		Add("AMAFlags", "DOCUMENTATION").Add("UniqueID", ch.uid).Add("UserField", "")
	c.emit(m)
}

// secondsBetween is the whole seconds between two offsets as the PBX's second clock shows them.
func secondsBetween(start time.Time, a, b time.Duration) int {
	return int(start.Add(b).Unix() - start.Add(a).Unix())
}

// olderUniqueid orders Uniqueids by creation: epoch, then sequence (ids that are not
// epoch.seq, such as an Originate's ChannelId, count as older than any other).
func olderUniqueid(a, b string) bool {
	ea, sa, oka := splitUniqueid(a)
	eb, sb, okb := splitUniqueid(b)
	switch {
	case !oka || !okb:
		return !oka && okb
	case ea != eb:
		return ea < eb
	}
	return sa < sb
}

func splitUniqueid(u string) (int64, int64, bool) {
	u = trailingUniqueid(u)
	e, s, ok := strings.Cut(u, ".")
	if !ok {
		return 0, 0, false
	}
	ei, err1 := strconv.ParseInt(e, 10, 64)
	si, err2 := strconv.ParseInt(s, 10, 64)
	return ei, si, err1 == nil && err2 == nil
}
