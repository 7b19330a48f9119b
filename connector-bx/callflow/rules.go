package callflow

import (
	"slices"
	"strings"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/phone"
)

// Rules are the configured decisions about a call, apart from any state: whether it reaches
// Bitrix24 at all, how numbers are written, its type, lead creation, and its final status.
type Rules struct {
	cfg     config.Bitrix
	country string
}

// NewRules reads the bitrix section; country is classify.country (number normalization).
func NewRules(cfg config.Bitrix, country string) Rules { return Rules{cfg: cfg, country: country} }

// Skip returns why a call never reaches Bitrix24, or "". A call Bitrix24 started itself
// (click-to-call) is never skipped: it is registered there already and must be finished.
func (r Rules) Skip(ev *callevent.Event) string {
	if ev.CRMCallID != "" {
		return ""
	}
	if ev.Direction == callevent.Internal && r.cfg.Calls.Internal != "register" {
		return "internal"
	}
	if ev.External != "" && r.listed(r.cfg.Skip.Numbers, ev.External) {
		return "number-skipped"
	}
	if ev.Line != "" {
		if r.listed(r.cfg.Skip.Lines, ev.Line) {
			return "line-skipped"
		}
		// A call with no known line (an outbound call through an unnamed trunk) is not held to
		// the white list: it cannot be told to be on another line.
		if len(r.cfg.Skip.OnlyLns) > 0 && !r.listed(r.cfg.Skip.OnlyLns, ev.Line) {
			return "line-not-listed"
		}
	}
	return ""
}

// same compares numbers after normalization, so +74951234567 matches 84951234567.
func (r Rules) same(a, b string) bool {
	na, nb := phone.Normalize(r.country, a), phone.Normalize(r.country, b)
	return na != "" && na == nb
}

func (r Rules) listed(list []string, n string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return r.same(x, n) })
}

// Number writes a number the way the portal wants it (bitrix.calls.number_format): E.164 by the
// country's rules, its digits, or the national form with the trunk prefix (8 916… in RU).
func (r Rules) Number(n string) string {
	e := phone.Normalize(r.country, n)
	switch r.cfg.Calls.NumberFormat {
	case "digits":
		return strings.TrimPrefix(e, "+")
	case "national":
		if p, ok := phone.Lookup(r.country); ok && strings.HasPrefix(e, "+"+p.CountryCode) {
			return p.TrunkPrefix + strings.TrimPrefix(e, "+"+p.CountryCode)
		}
		return strings.TrimPrefix(e, "+")
	}
	return e
}

// Type is register's TYPE by direction.
func (r Rules) Type(ev *callevent.Event) int {
	if ev.Direction == callevent.Inbound {
		return bitrix.TypeIncoming
	}
	return bitrix.TypeOutgoing
}

// Lead says whether Bitrix24 creates a lead for an unknown number of this call, and its source:
// the line's own rule if it has one, else the rule of the direction.
func (r Rules) Lead(ev *callevent.Event) (create bool, source string) {
	for _, l := range r.cfg.Leads.Lines {
		if ev.Line != "" && r.same(l.Line, ev.Line) {
			src := l.Source
			if src == "" {
				src = r.cfg.Leads.Source
			}
			switch ev.Direction {
			case callevent.Inbound:
				return l.Inbound, src
			case callevent.Outbound:
				return l.Outbound, src
			}
			return false, src
		}
	}
	switch ev.Direction {
	case callevent.Inbound:
		return r.cfg.Leads.Inbound, r.cfg.Leads.Source
	case callevent.Outbound:
		return r.cfg.Leads.Outbound, r.cfg.Leads.Source
	}
	return false, ""
}

// Status is finish's STATUS_CODE and FAILED_REASON for how the call ended. Never empty: without
// a status Bitrix24 shows an unanswered outgoing call as "skipped" (reference §1.6, §3.4 #3).
func (r Rules) Status(ev *callevent.Event) (code, reason string) {
	in := ev.Direction == callevent.Inbound
	switch ev.Disposition {
	case callevent.DispAnswered:
		return bitrix.StatusSuccess, ""
	case callevent.DispBusy:
		return bitrix.StatusBusy, "busy"
	case callevent.DispNoAnswer:
		if in {
			return bitrix.StatusMissed, "no answer"
		}
		if ev.AnsweredBy == "" && ev.CRMCallID != "" && ev.External == "" {
			return bitrix.StatusCancelled, "the employee's phone did not answer"
		}
		return bitrix.StatusCancelled, "no answer"
	case callevent.DispFailed:
		if in {
			return bitrix.StatusMissed, "failed"
		}
		return bitrix.StatusNoRoute, "failed"
	}
	return bitrix.StatusOther, string(ev.Disposition)
}

// Duration is finish's DURATION: the talk time, 0 for a call nobody answered.
func (r Rules) Duration(ev *callevent.Event) int {
	if ev.Disposition != callevent.DispAnswered {
		return 0
	}
	return max(0, ev.TalkSeconds)
}

// answeredExtensions are the extensions an answered call may be finished for, in order of
// preference (bitrix.calls.finish_user).
func (r Rules) answeredExtensions(ev *callevent.Event) []string {
	if r.cfg.Calls.FinishUser == "first" {
		return []string{ev.AnsweredBy, ev.Extension}
	}
	return []string{ev.Extension, ev.AnsweredBy}
}

// lineUser is a line's own responsible for missed calls, or 0.
func (r Rules) lineUser(line string) int {
	for _, l := range r.cfg.Missed.Lines {
		if line != "" && r.same(l.Line, line) {
			return l.UserID
		}
	}
	return 0
}
