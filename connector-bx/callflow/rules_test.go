package callflow_test

import (
	"testing"

	"github.com/ringbridge/ringbridge/connector-bx/callflow"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
)

func rules(mod func(*config.Bitrix)) callflow.Rules {
	c := config.DefaultBitrix()
	if mod != nil {
		mod(&c)
	}
	return callflow.NewRules(c, "RU")
}

func TestSkip(t *testing.T) {
	in := &callevent.Event{Direction: callevent.Inbound, External: "+79161234567", Line: "+74951234567"}
	internal := &callevent.Event{Direction: callevent.Internal}
	click := &callevent.Event{Direction: callevent.Internal, CRMCallID: "externalCall.1"}
	out := &callevent.Event{Direction: callevent.Outbound, External: "+79161234567"}
	cases := []struct {
		name string
		mod  func(*config.Bitrix)
		ev   *callevent.Event
		want string
	}{
		{"inbound-passes", nil, in, ""},
		{"internal-skipped-by-default", nil, internal, "internal"},
		{"internal-registered-by-config", func(c *config.Bitrix) { c.Calls.Internal = "register" }, internal, ""},
		{"click-to-call-never-skipped", nil, click, ""},
		{"number-black-list-national-form", func(c *config.Bitrix) { c.Skip.Numbers = []string{"89161234567"} }, in, "number-skipped"},
		{"line-black-list", func(c *config.Bitrix) { c.Skip.Lines = []string{"74951234567"} }, in, "line-skipped"},
		{"line-white-list-other", func(c *config.Bitrix) { c.Skip.OnlyLns = []string{"+74950000000"} }, in, "line-not-listed"},
		{"line-white-list-listed", func(c *config.Bitrix) { c.Skip.OnlyLns = []string{"+74951234567"} }, in, ""},
		{"white-list-spares-calls-without-line", func(c *config.Bitrix) { c.Skip.OnlyLns = []string{"+74950000000"} }, out, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := rules(tc.mod).Skip(tc.ev); got != tc.want {
				t.Fatalf("Skip = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNumber(t *testing.T) {
	cases := []struct{ format, in, want string }{
		{"e164", "+79161234567", "+79161234567"},
		{"e164", "89161234567", "+79161234567"},
		{"digits", "+79161234567", "79161234567"},
		{"national", "+79161234567", "89161234567"},
		{"national", "+4930123456", "4930123456"},
		{"e164", "101", "101"},
		{"e164", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.format+"/"+tc.in, func(t *testing.T) {
			got := rules(func(c *config.Bitrix) { c.Calls.NumberFormat = tc.format }).Number(tc.in)
			if got != tc.want {
				t.Fatalf("Number(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestStatus: finish always carries a status; an unanswered outgoing call is never "skipped".
func TestStatus(t *testing.T) {
	cases := []struct {
		name string
		ev   callevent.Event
		code string
		dur  int
	}{
		{"inbound-answered", callevent.Event{Direction: callevent.Inbound, Disposition: callevent.DispAnswered, TalkSeconds: 12}, "200", 12},
		{"inbound-missed", callevent.Event{Direction: callevent.Inbound, Disposition: callevent.DispNoAnswer, TalkSeconds: 0}, "304", 0},
		{"inbound-busy", callevent.Event{Direction: callevent.Inbound, Disposition: callevent.DispBusy}, "486", 0},
		{"inbound-failed", callevent.Event{Direction: callevent.Inbound, Disposition: callevent.DispFailed}, "304", 0},
		{"outbound-answered", callevent.Event{Direction: callevent.Outbound, Disposition: callevent.DispAnswered, TalkSeconds: 3}, "200", 3},
		{"outbound-noanswer", callevent.Event{Direction: callevent.Outbound, Disposition: callevent.DispNoAnswer}, "603-S", 0},
		{"outbound-busy", callevent.Event{Direction: callevent.Outbound, Disposition: callevent.DispBusy}, "486", 0},
		{"outbound-failed", callevent.Event{Direction: callevent.Outbound, Disposition: callevent.DispFailed}, "503", 0},
		{"click-employee-never-answered", callevent.Event{Direction: callevent.Outbound, Disposition: callevent.DispNoAnswer, CRMCallID: "x"}, "603-S", 0},
		{"talk-time-of-unanswered-ignored", callevent.Event{Direction: callevent.Inbound, Disposition: callevent.DispNoAnswer, TalkSeconds: 5}, "304", 0},
	}
	r := rules(nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := r.Status(&tc.ev)
			if code != tc.code || code == "" {
				t.Errorf("status %q, want %q", code, tc.code)
			}
			if d := r.Duration(&tc.ev); d != tc.dur {
				t.Errorf("duration %d, want %d", d, tc.dur)
			}
		})
	}
}

func TestLead(t *testing.T) {
	in := &callevent.Event{Direction: callevent.Inbound, Line: "+74951234567"}
	sales := &callevent.Event{Direction: callevent.Inbound, Line: "+74951234500"}
	out := &callevent.Event{Direction: callevent.Outbound, Line: "+74951234500"}
	perLine := func(c *config.Bitrix) {
		c.Leads.Source = "CALL"
		c.Leads.Lines = []config.BitrixLeadLine{{Line: "84951234500", Inbound: false, Outbound: true, Source: "WEB"}}
	}
	cases := []struct {
		name   string
		mod    func(*config.Bitrix)
		ev     *callevent.Event
		create bool
		source string
	}{
		{"inbound-default-on", nil, in, true, ""},
		{"outbound-default-off", nil, &callevent.Event{Direction: callevent.Outbound}, false, ""},
		{"internal-never", nil, &callevent.Event{Direction: callevent.Internal}, false, ""},
		{"source", func(c *config.Bitrix) { c.Leads.Source = "CALL" }, in, true, "CALL"},
		{"line-rule-off-inbound", perLine, sales, false, "WEB"},
		{"line-rule-on-outbound", perLine, out, true, "WEB"},
		{"other-line-direction-rule", perLine, in, true, "CALL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			create, source := rules(tc.mod).Lead(tc.ev)
			if create != tc.create || source != tc.source {
				t.Fatalf("Lead = %v %q, want %v %q", create, source, tc.create, tc.source)
			}
		})
	}
}
