package amisim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Style is how the generated PBX names its channels.
type Style string

const (
	// StyleLocal is the test PBX of shared/fixtures/ami-asterisk22: every device is a Local
	// channel pair (Local/<DID>@from-trunk, Local/1XX@phones, Local/<number>@trunk-out, ...), as
	// its replay.yaml classifies them.
	StyleLocal Style = "local"
	// StylePJSIP is a FreePBX-style PBX: phones PJSIP/101-0000001a, trunk legs
	// PJSIP/<trunk>-0000001b, inbound calls in context from-pstn, calls placed by phones in
	// from-internal, and Local channels only for ring-group and queue members.
	StylePJSIP Style = "pjsip"
)

// Direction of a scenario's call, seen from the company.
type Direction string

const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
	Internal Direction = "internal"
)

// Transfer kinds.
const (
	TransferBlind    = "blind"    // BlindTransfer event (phone transfer key or SIP REFER)
	TransferAttended = "attended" // consultation call, then AttendedTransfer
	TransferRedirect = "redirect" // AMI Redirect of the caller's channel: no transfer event
)

// Who ends an answered call.
const (
	HangupCallee = "callee" // the answering party (the extension; outbound: the called number)
	HangupCaller = "caller" // the calling party (inbound: the customer; outbound: the extension)
)

// Click-to-call phone outcomes.
const (
	PhoneAnswer   = "answer"
	PhoneNoAnswer = "no_answer"
	PhoneBusy     = "busy"
)

// Scenario describes one call; Generate turns it into the AMI events Asterisk 20/22 sends for it.
// Durations count from the call's start unless noted.
type Scenario struct {
	Name  string
	Style Style
	// Start is when the call begins; zero means when it is generated.
	Start     time.Time
	Direction Direction
	// From is the caller: the customer's number (inbound) or the calling extension.
	From     string
	FromName string
	// To is the DID (inbound), the number dialled (outbound) or the extension called (internal).
	To string
	// Trunk names the pjsip trunk (PJSIP/<Trunk>-XXXXXXXX); default "trunk".
	Trunk string
	// Ring lists the extensions dialled together: one (a direct line) or several (a ring group).
	// Internal calls default to To.
	Ring        []string
	RingTimeout time.Duration // the Dial timeout; default 20s, outbound 30s
	Queue       *Queue        // instead of Ring: a ringall queue
	Answer      *Answer       // nil: nobody answers
	// Busy: the (only) extension dialled, or the number dialled, is busy.
	Busy bool
	// CallerHangsUpAfter: the caller gives up this long after the start (click-to-call: after
	// the number is dialled), while it rings.
	CallerHangsUpAfter time.Duration
	// Talk is how long the answering party talks with the caller; after a transfer, how long
	// the transfer target does.
	Talk      time.Duration
	HangupBy  string // HangupCallee (default) or HangupCaller
	Transfer  *Transfer
	Recording string // MixMonitor file name pattern; empty: not recorded
	// ClickToCall makes an outbound call a CRM click-to-call: an Originate rings the
	// extension's phone first, then dials the number (see GenerateOriginate).
	ClickToCall *ClickToCall
}

// Queue is a ringall queue: all members ring together for MemberTimeout, then after Retry all
// ring again, until someone answers, the caller hangs up, or MaxWait passes.
type Queue struct {
	Name          string
	Members       []string
	MemberTimeout time.Duration // default 15s
	Retry         time.Duration // default 3s
	MaxWait       time.Duration // default 120s
}

// Answer says who answers and when.
type Answer struct {
	By string // an extension that rings; outbound: the number (may be left empty)
	// After counts from the start of the call; in a click-to-call, from when the number is
	// dialled (the phone's answer).
	After time.Duration
}

// Transfer moves the answered call to another extension.
type Transfer struct {
	Kind    string        // TransferBlind, TransferAttended or TransferRedirect
	To      string        // the target extension
	After   time.Duration // talk time before the transfer, from the answer
	Ring    time.Duration // how long the target rings before it answers; default 3s
	Consult time.Duration // attended: talk with the target before completing; default 5s
}

// ClickToCall is the employee's side of a click-to-call.
type ClickToCall struct {
	Phone     string        // PhoneAnswer (default), PhoneNoAnswer or PhoneBusy
	PhoneRing time.Duration // how long the phone rings before it answers; default 3s
	Timeout   time.Duration // the Originate's Timeout when the action has none; default 30s
}

// Scenario defaults.
const (
	DefaultRingTimeout         = 20 * time.Second
	DefaultOutboundRingTimeout = 30 * time.Second
	DefaultMemberTimeout       = 15 * time.Second
	DefaultQueueRetry          = 3 * time.Second
	DefaultQueueMaxWait        = 120 * time.Second
	DefaultTransferRing        = 3 * time.Second
	DefaultConsult             = 5 * time.Second
	DefaultPhoneRing           = 3 * time.Second
	DefaultOriginateTimeout    = 30 * time.Second
	DefaultTrunk               = "trunk"
	maxScenarioDuration        = 24 * time.Hour
)

// recordingFields are the placeholders a recording pattern may hold.
var recordingFields = []string{"date", "time", "from", "to", "uniqueid", "linkedid"}

var (
	placeholderRe = regexp.MustCompile(`\{([^{}]*)\}`)
	extensionRe   = regexp.MustCompile(`^[0-9]{2,6}$`)
	numberRe      = regexp.MustCompile(`^\+?[0-9]{3,20}$`)
	trunkRe       = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.]{0,39}$`)
	nameRe        = regexp.MustCompile(`^[A-Za-z0-9_.]{1,40}$`)
)

// LoadScenario reads a scenario file; its name defaults to the file's base name.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("amisim: load scenario: %w", err)
	}
	sc, err := ParseScenario(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return sc, nil
}

// LoadScenarios reads every *.yaml and *.yml file of dir, in name order.
func LoadScenarios(dir string) ([]*Scenario, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("amisim: load scenarios: %w", err)
	}
	var out []*Scenario
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		sc, err := LoadScenario(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// ScenarioError is a mistake in a scenario: the field, the line, and how to fix it.
type ScenarioError struct {
	Line  int    // 0 when unknown
	Field string // dotted path, e.g. "transfer.kind"
	Msg   string // what is wrong and the fix
}

func (e *ScenarioError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("scenario: line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("scenario: %s: %s", e.Field, e.Msg)
}

// ParseScenario reads one scenario from YAML and checks it. An error is a *ScenarioError that
// names the field and the fix.
func ParseScenario(data []byte) (sc *Scenario, err error) {
	var doc yaml.Node
	if err := safeUnmarshal(data, &doc); err != nil {
		return nil, &ScenarioError{Field: "(file)", Msg: fmt.Sprintf("not valid YAML (%v): fix the syntax", err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &ScenarioError{Field: "(file)", Msg: "empty: write at least direction, from and to"}
	}
	p := &parser{sc: &Scenario{}}
	p.top(doc.Content[0])
	if p.err != nil {
		return nil, p.err
	}
	if err := p.sc.check(); err != nil {
		return nil, err
	}
	return p.sc, nil
}

// safeUnmarshal turns a panic of the YAML library on hostile input into an error: a test
// system should report a bad file, not crash.
func safeUnmarshal(data []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: ParseScenario names what is missing
		}
		return err
	}
	// A second document is a mistake (one scenario per file), not something to ignore.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return errors.New("more than one document (---): put one scenario per file")
	}
	return nil
}

// parser walks the YAML tree and keeps the first error.
type parser struct {
	sc  *Scenario
	err *ScenarioError
}

func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	if p.err != nil {
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	p.err = &ScenarioError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// mapping calls f for every key of a mapping node, and rejects keys not in known.
func (p *parser) mapping(n *yaml.Node, field string, known []string, f func(key string, v *yaml.Node)) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		p.fail(n, orTop(field), "expected a mapping of keys (key: value), got %s: write it as keys", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		path := key
		if field != "" {
			path = field + "." + key
		}
		if !contains(known, key) {
			hint := ""
			if s := closest(key, known); s != "" {
				hint = fmt.Sprintf("; did you mean %s?", s)
			}
			p.fail(k, path, "unknown key (known here: %s)%s", strings.Join(known, ", "), hint)
			return
		}
		if seen[key] {
			p.fail(k, path, "given twice: keep one")
			return
		}
		seen[key] = true
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		f(key, v)
		if p.err != nil {
			return
		}
	}
}

func orTop(field string) string {
	if field == "" {
		return "(file)"
	}
	return field
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "an empty value"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

var topKeys = []string{"name", "style", "start", "direction", "from", "from_name", "to", "trunk", "ring",
	"ring_timeout", "queue", "answer", "busy", "caller_hangs_up_after", "talk", "hangup", "transfer",
	"recording", "click_to_call"}

func (p *parser) top(n *yaml.Node) {
	sc := p.sc
	p.mapping(n, "", topKeys, func(key string, v *yaml.Node) {
		switch key {
		case "name":
			sc.Name = p.str(v, key)
		case "style":
			sc.Style = Style(p.str(v, key))
		case "start":
			s := p.str(v, key)
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil && p.err == nil {
				p.fail(v, key, "%q is not a time: write RFC 3339, e.g. 2026-11-25T19:26:53Z", s)
			}
			sc.Start = t
		case "direction":
			sc.Direction = Direction(p.str(v, key))
		case "from":
			sc.From = p.str(v, key)
		case "from_name":
			sc.FromName = p.str(v, key)
		case "to":
			sc.To = p.str(v, key)
		case "trunk":
			sc.Trunk = p.str(v, key)
		case "ring":
			sc.Ring = p.list(v, key)
			if sc.Ring == nil && p.err == nil {
				sc.Ring = []string{} // present but empty: check() names it
			}
		case "ring_timeout":
			sc.RingTimeout = p.dur(v, key)
		case "queue":
			sc.Queue = p.queue(v)
		case "answer":
			sc.Answer = p.answer(v)
		case "busy":
			sc.Busy = p.boolean(v, key)
		case "caller_hangs_up_after":
			sc.CallerHangsUpAfter = p.dur(v, key)
		case "talk":
			sc.Talk = p.dur(v, key)
		case "hangup":
			sc.HangupBy = p.str(v, key)
		case "transfer":
			sc.Transfer = p.transfer(v)
		case "recording":
			sc.Recording = p.str(v, key)
		case "click_to_call":
			sc.ClickToCall = p.clickToCall(v)
		}
	})
}

func (p *parser) queue(n *yaml.Node) *Queue {
	q := &Queue{}
	p.mapping(n, "queue", []string{"name", "members", "member_timeout", "retry", "max_wait"}, func(key string, v *yaml.Node) {
		f := "queue." + key
		switch key {
		case "name":
			q.Name = p.str(v, f)
		case "members":
			q.Members = p.list(v, f)
		case "member_timeout":
			q.MemberTimeout = p.dur(v, f)
		case "retry":
			q.Retry = p.dur(v, f)
		case "max_wait":
			q.MaxWait = p.dur(v, f)
		}
	})
	return q
}

func (p *parser) answer(n *yaml.Node) *Answer {
	a := &Answer{}
	p.mapping(n, "answer", []string{"by", "after"}, func(key string, v *yaml.Node) {
		switch key {
		case "by":
			a.By = p.str(v, "answer.by")
		case "after":
			a.After = p.dur(v, "answer.after")
		}
	})
	return a
}

func (p *parser) transfer(n *yaml.Node) *Transfer {
	t := &Transfer{}
	p.mapping(n, "transfer", []string{"kind", "to", "after", "ring", "consult"}, func(key string, v *yaml.Node) {
		f := "transfer." + key
		switch key {
		case "kind":
			t.Kind = p.str(v, f)
		case "to":
			t.To = p.str(v, f)
		case "after":
			t.After = p.dur(v, f)
		case "ring":
			t.Ring = p.dur(v, f)
		case "consult":
			t.Consult = p.dur(v, f)
		}
	})
	return t
}

func (p *parser) clickToCall(n *yaml.Node) *ClickToCall {
	c := &ClickToCall{}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		if p.boolean(n, "click_to_call") {
			return c
		}
		return nil
	}
	p.mapping(n, "click_to_call", []string{"phone", "phone_ring", "timeout"}, func(key string, v *yaml.Node) {
		f := "click_to_call." + key
		switch key {
		case "phone":
			c.Phone = p.str(v, f)
		case "phone_ring":
			c.PhoneRing = p.dur(v, f)
		case "timeout":
			c.Timeout = p.dur(v, f)
		}
	})
	return c
}

// str reads a scalar as text; numbers are kept as written (a DID stays "4951234567").
func (p *parser) str(n *yaml.Node, field string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, field, "expected a value, got %s: write e.g. %s: value", kindName(n), lastPart(field))
		return ""
	}
	return n.Value
}

func lastPart(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[i+1:]
	}
	return field
}

// list reads a list of scalars; a single scalar is a list of one.
func (p *parser) list(n *yaml.Node, field string) []string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "expected a list, got %s: write e.g. %s: [101, 102]", kindName(n), lastPart(field))
		return nil
	}
	var out []string
	for i, it := range n.Content {
		if it.Kind == yaml.AliasNode {
			it = it.Alias
		}
		if it == nil || it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
			p.fail(it, fmt.Sprintf("%s[%d]", field, i), "expected an extension, got %s: write a number like 101", kindName(it))
			return nil
		}
		out = append(out, it.Value)
	}
	return out
}

func (p *parser) boolean(n *yaml.Node, field string) bool {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			return true
		case "false", "no", "off":
			return false
		}
	}
	p.fail(n, field, "expected true or false, got %s: write %s: true", kindName(n), lastPart(field))
	return false
}

// dur reads a duration: Go syntax (4s, 1m30s, 2.5s) or a plain number of seconds.
func (p *parser) dur(n *yaml.Node, field string) time.Duration {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, field, "expected a duration, got %s: write e.g. %s: 4s", kindName(n), lastPart(field))
		return 0
	}
	d, err := parseDuration(n.Value)
	if err != nil {
		p.fail(n, field, "%q is not a duration (%v): write e.g. 4s, 1m30s or 4", n.Value, err)
		return 0
	}
	return d
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > maxScenarioDuration.Seconds() {
			return 0, fmt.Errorf("out of range 0..%s", maxScenarioDuration)
		}
		return time.Duration(f * float64(time.Second)).Round(time.Millisecond), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("unknown form")
	}
	if d < 0 || d > maxScenarioDuration {
		return 0, fmt.Errorf("out of range 0..%s", maxScenarioDuration)
	}
	return d.Round(time.Millisecond), nil
}

// closest returns the known key nearest to key (a typo), or "".
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// check fills defaults and rejects contradictions; each error names the field and the fix.
func (sc *Scenario) check() error {
	bad := func(field, format string, args ...any) error {
		return &ScenarioError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if len(sc.Name) > 80 || strings.ContainsAny(sc.Name, "\r\n") {
		return bad("name", "longer than 80 characters or on several lines: write a short name")
	}
	switch sc.Style {
	case "":
		sc.Style = StylePJSIP
	case StyleLocal, StylePJSIP:
	default:
		return bad("style", "%q is not known: write local or pjsip", sc.Style)
	}
	switch sc.Direction {
	case Inbound, Outbound, Internal:
	case "":
		return bad("direction", "missing: write inbound, outbound or internal")
	default:
		return bad("direction", "%q is not known: write inbound, outbound or internal", sc.Direction)
	}
	if sc.From == "" {
		return bad("from", "missing: write the caller's number (inbound) or the calling extension")
	}
	if sc.To == "" {
		return bad("to", "missing: write the DID (inbound), the number dialled (outbound) or the extension called (internal)")
	}
	if len(sc.FromName) > 80 || strings.ContainsAny(sc.FromName, "\r\n\"<>") {
		return bad("from_name", "%q has line breaks, quotes or <>, or is longer than 80: write a plain name", sc.FromName)
	}
	if sc.Trunk == "" {
		sc.Trunk = DefaultTrunk
	} else if !trunkRe.MatchString(sc.Trunk) {
		return bad("trunk", "%q is not a trunk name: start with a letter, then letters, digits, _ or . (as in PJSIP/<trunk>-0000001b)", sc.Trunk)
	}
	switch sc.Direction {
	case Inbound:
		if !numberRe.MatchString(sc.From) {
			return bad("from", "%q is not a phone number: write digits, e.g. 79161234567", sc.From)
		}
		if !numberRe.MatchString(sc.To) {
			return bad("to", "%q is not a DID: write digits, e.g. 4951234567", sc.To)
		}
	case Outbound:
		if !extensionRe.MatchString(sc.From) {
			return bad("from", "%q is not an extension: write 2 to 6 digits, e.g. 101", sc.From)
		}
		if !numberRe.MatchString(sc.To) || extensionRe.MatchString(sc.To) {
			return bad("to", "%q is not an outside number: write 7 or more digits, e.g. 89161234567", sc.To)
		}
	case Internal:
		if !extensionRe.MatchString(sc.From) {
			return bad("from", "%q is not an extension: write 2 to 6 digits, e.g. 101", sc.From)
		}
		if !extensionRe.MatchString(sc.To) {
			return bad("to", "%q is not an extension: write 2 to 6 digits, e.g. 102", sc.To)
		}
		if sc.Ring == nil {
			sc.Ring = []string{sc.To}
		}
	}
	if sc.Style == StyleLocal {
		// The test PBX's dialplan only has phones 1XX.
		for _, e := range append(append([]string{}, sc.Ring...), sc.queueMembers()...) {
			if len(e) != 3 || e[0] != '1' {
				return bad("ring", "%q: the local style's phones are 100-199 (Local/1XX@phones): use those or style: pjsip", e)
			}
		}
	}
	if err := sc.checkRinging(bad); err != nil {
		return err
	}
	if err := sc.checkOutcome(bad); err != nil {
		return err
	}
	if err := sc.checkTransfer(bad); err != nil {
		return err
	}
	if err := sc.checkRecording(bad); err != nil {
		return err
	}
	return sc.checkClickToCall(bad)
}

func (sc *Scenario) queueMembers() []string {
	if sc.Queue == nil {
		return nil
	}
	return sc.Queue.Members
}

type badFunc func(field, format string, args ...any) error

func (sc *Scenario) checkRinging(bad badFunc) error {
	if sc.Direction == Outbound {
		if sc.Ring != nil {
			return bad("ring", "an outbound call rings the number dialled, not extensions: remove ring")
		}
		if sc.Queue != nil {
			return bad("queue", "an outbound call has no queue: remove queue")
		}
	}
	if sc.Direction == Internal && sc.Queue != nil {
		return bad("queue", "an internal call rings the extension called: remove queue, or make the call inbound")
	}
	if sc.Direction == Inbound {
		switch {
		case sc.Ring == nil && sc.Queue == nil:
			return bad("ring", "missing: list the extensions that ring (ring: [101]) or give a queue")
		case sc.Ring != nil && sc.Queue != nil:
			return bad("queue", "given with ring: keep one of ring (extensions dialled together) or queue")
		}
	}
	if sc.Ring != nil {
		if len(sc.Ring) == 0 {
			return bad("ring", "empty: list at least one extension, e.g. ring: [101]")
		}
		if err := checkExtensions("ring", sc.Ring, bad); err != nil {
			return err
		}
	}
	if sc.RingTimeout == 0 {
		sc.RingTimeout = DefaultRingTimeout
		if sc.Direction == Outbound {
			sc.RingTimeout = DefaultOutboundRingTimeout
		}
	} else if sc.RingTimeout < time.Second {
		return bad("ring_timeout", "%s is too short: write at least 1s", sc.RingTimeout)
	}
	if q := sc.Queue; q != nil {
		if q.Name == "" {
			q.Name = "support"
		} else if !nameRe.MatchString(q.Name) {
			return bad("queue.name", "%q is not a queue name: use letters, digits, _ or .", q.Name)
		}
		if len(q.Members) == 0 {
			return bad("queue.members", "missing: list the member extensions, e.g. members: [101, 102]")
		}
		if err := checkExtensions("queue.members", q.Members, bad); err != nil {
			return err
		}
		if q.MemberTimeout == 0 {
			q.MemberTimeout = DefaultMemberTimeout
		} else if q.MemberTimeout < time.Second {
			return bad("queue.member_timeout", "%s is too short: write at least 1s", q.MemberTimeout)
		}
		if q.Retry == 0 {
			q.Retry = DefaultQueueRetry
		}
		if q.MaxWait == 0 {
			q.MaxWait = DefaultQueueMaxWait
		} else if q.MaxWait < time.Second {
			return bad("queue.max_wait", "%s is too short: write at least 1s", q.MaxWait)
		}
		// Every round creates new member channels: keep a generated call bounded.
		if rounds := q.rounds(); rounds > 50 {
			return bad("queue.max_wait", "%s makes %d ringing rounds: shorten max_wait or lengthen member_timeout/retry", q.MaxWait, rounds)
		}
	}
	return nil
}

// rounds is how many ringing rounds fit in MaxWait.
func (q *Queue) rounds() int {
	period := q.MemberTimeout + q.Retry
	if period <= 0 {
		return 1
	}
	return int((q.MaxWait + period - 1) / period)
}

func checkExtensions(field string, exts []string, bad badFunc) error {
	seen := map[string]bool{}
	for i, e := range exts {
		if !extensionRe.MatchString(e) {
			return bad(fmt.Sprintf("%s[%d]", field, i), "%q is not an extension: write 2 to 6 digits, e.g. 101", e)
		}
		if seen[e] {
			return bad(fmt.Sprintf("%s[%d]", field, i), "%s is listed twice: list each extension once", e)
		}
		seen[e] = true
	}
	if len(exts) > 20 {
		return bad(field, "%d extensions: list at most 20", len(exts))
	}
	return nil
}

// ringers are the extensions that ring first.
func (sc *Scenario) ringers() []string {
	if sc.Queue != nil {
		return sc.Queue.Members
	}
	return sc.Ring
}

func (sc *Scenario) checkOutcome(bad badFunc) error {
	outcomes := 0
	for _, set := range []bool{sc.Answer != nil, sc.Busy, sc.CallerHangsUpAfter > 0} {
		if set {
			outcomes++
		}
	}
	if outcomes > 1 {
		return bad("answer", "answer, busy and caller_hangs_up_after exclude each other: keep one")
	}
	switch sc.HangupBy {
	case "":
		sc.HangupBy = HangupCallee
	case HangupCallee, HangupCaller:
	default:
		return bad("hangup", "%q is not known: write callee or caller", sc.HangupBy)
	}
	if sc.Busy {
		if sc.Queue != nil {
			return bad("busy", "a queue does not ring busy members: remove busy (ring: [103] with busy: true rings one busy phone)")
		}
		if len(sc.Ring) > 1 {
			return bad("busy", "every extension of a ring group would be busy: ring one extension, or remove busy")
		}
		if sc.ClickToCall != nil && sc.clickPhone() != PhoneAnswer {
			return bad("busy", "the phone never reaches the number: remove busy or set click_to_call.phone: answer")
		}
	}
	limit := sc.RingTimeout
	limitName := "ring_timeout"
	if sc.Queue != nil {
		limit, limitName = sc.Queue.MaxWait, "queue.max_wait"
	}
	if d := sc.CallerHangsUpAfter; d > 0 && d >= limit {
		return bad("caller_hangs_up_after", "%s is not before %s (%s): the call would end first; shorten it", d, limitName, limit)
	}
	if a := sc.Answer; a != nil {
		if sc.Direction == Outbound {
			if a.By != "" && a.By != sc.To && a.By != "external" {
				return bad("answer.by", "%q: an outbound call is answered by the number dialled: write %s or remove by", a.By, sc.To)
			}
			a.By = sc.To
		} else {
			if a.By == "" {
				if r := sc.ringers(); len(r) == 1 {
					a.By = r[0]
				} else {
					return bad("answer.by", "missing: write which of %s answers", strings.Join(r, ", "))
				}
			}
			if !contains(sc.ringers(), a.By) {
				return bad("answer.by", "%q does not ring in this call: write one of %s", a.By, strings.Join(sc.ringers(), ", "))
			}
		}
		if a.After <= 0 {
			return bad("answer.after", "missing: write how long it rings before the answer, e.g. after: 4s")
		}
		if a.After >= limit {
			return bad("answer.after", "%s is not before %s (%s): nobody would answer; shorten answer.after or raise %s", a.After, limitName, limit, limitName)
		}
		if q := sc.Queue; q != nil {
			period := q.MemberTimeout + q.Retry
			in := a.After % period
			if in >= q.MemberTimeout {
				start := a.After - in + q.MemberTimeout
				return bad("answer.after", "%s falls in the retry pause (%s to %s) when no member rings: pick a time when members ring", a.After, start, start+q.Retry)
			}
		}
		if sc.Talk <= 0 {
			return bad("talk", "missing: write how long the call is talked after the answer, e.g. talk: 12s")
		}
	} else {
		if sc.Talk > 0 {
			return bad("talk", "nobody answers (no answer): remove talk or add answer")
		}
		if sc.HangupBy == HangupCaller && sc.CallerHangsUpAfter == 0 {
			return bad("hangup", "nobody answers (no answer): write caller_hangs_up_after to make the caller hang up")
		}
	}
	return nil
}

func (sc *Scenario) checkTransfer(bad badFunc) error {
	t := sc.Transfer
	if t == nil {
		return nil
	}
	if sc.Answer == nil {
		return bad("transfer", "only an answered call can be transferred: add answer or remove transfer")
	}
	if sc.Direction == Outbound {
		return bad("transfer", "transfers of outbound calls are not generated: remove transfer")
	}
	switch t.Kind {
	case TransferBlind, TransferAttended, TransferRedirect:
	case "":
		return bad("transfer.kind", "missing: write blind, attended or redirect")
	default:
		return bad("transfer.kind", "%q is not known: write blind, attended or redirect", t.Kind)
	}
	if !extensionRe.MatchString(t.To) {
		return bad("transfer.to", "%q is not an extension: write 2 to 6 digits, e.g. 102", t.To)
	}
	if sc.Style == StyleLocal && (len(t.To) != 3 || t.To[0] != '1') {
		return bad("transfer.to", "%q: the local style's phones are 100-199: use one of those or style: pjsip", t.To)
	}
	if t.To == sc.Answer.By {
		return bad("transfer.to", "%s already talks with the caller: transfer to another extension", t.To)
	}
	if sc.Direction == Internal && t.To == sc.From {
		return bad("transfer.to", "%s is the caller: transfer to another extension", t.To)
	}
	if t.After <= 0 {
		return bad("transfer.after", "missing: write how long the call is talked before the transfer, e.g. after: 6s")
	}
	if t.Ring == 0 {
		t.Ring = DefaultTransferRing
	}
	if t.Kind == TransferAttended {
		if t.Consult == 0 {
			t.Consult = DefaultConsult
		}
	} else if t.Consult != 0 {
		return bad("transfer.consult", "only an attended transfer has a consultation: remove consult or write kind: attended")
	}
	return nil
}

func (sc *Scenario) checkRecording(bad badFunc) error {
	if sc.Recording == "" {
		return nil
	}
	if strings.ContainsAny(sc.Recording, "\r\n\\") || strings.HasPrefix(sc.Recording, "/") ||
		strings.Contains(sc.Recording, "..") || len(sc.Recording) > 200 {
		return bad("recording", "%q is not a file name under the monitor folder: write e.g. in-{date}-{time}-{from}-{uniqueid}.wav", sc.Recording)
	}
	for _, m := range placeholderRe.FindAllStringSubmatch(sc.Recording, -1) {
		if !contains(recordingFields, m[1]) {
			return bad("recording", "{%s} is not known: use %s", m[1], "{"+strings.Join(recordingFields, "}, {")+"}")
		}
	}
	if rest := placeholderRe.ReplaceAllString(sc.Recording, ""); strings.ContainsAny(rest, "{}") {
		return bad("recording", "unbalanced { or } in %q: write placeholders as {date}", sc.Recording)
	}
	return nil
}

func (sc *Scenario) clickPhone() string {
	if sc.ClickToCall == nil || sc.ClickToCall.Phone == "" {
		return PhoneAnswer
	}
	return sc.ClickToCall.Phone
}

func (sc *Scenario) checkClickToCall(bad badFunc) error {
	c := sc.ClickToCall
	if c == nil {
		return nil
	}
	if sc.Direction != Outbound {
		return bad("click_to_call", "a click-to-call is an outbound call: write direction: outbound or remove click_to_call")
	}
	switch c.Phone {
	case "":
		c.Phone = PhoneAnswer
	case PhoneAnswer, PhoneNoAnswer, PhoneBusy:
	default:
		return bad("click_to_call.phone", "%q is not known: write answer, no_answer or busy", c.Phone)
	}
	if c.PhoneRing == 0 {
		c.PhoneRing = DefaultPhoneRing
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultOriginateTimeout
	}
	if c.Phone == PhoneAnswer && c.PhoneRing >= c.Timeout {
		return bad("click_to_call.phone_ring", "%s is not before the originate timeout (%s): shorten it or raise click_to_call.timeout", c.PhoneRing, c.Timeout)
	}
	if c.Phone != PhoneAnswer && (sc.Answer != nil || sc.Busy) {
		return bad("answer", "the phone does not answer (click_to_call.phone: %s), so the number is never dialled: remove answer/busy", c.Phone)
	}
	return nil
}
