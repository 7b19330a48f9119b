package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/internal/callevent"
)

func TestDescribe(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 41, 0, time.UTC)
	cases := []struct {
		name string
		e    callevent.Event
		want []string
	}{
		{"inbound-ended", callevent.Event{Kind: callevent.Ended, PBX: "demo", Direction: callevent.Inbound, At: at,
			External: "+79001234567", Line: "+74951234567", Extension: "102", ExtensionsRang: []string{"101", "102"},
			AnsweredBy: "102", Disposition: callevent.DispAnswered, RingSeconds: 9, TalkSeconds: 31,
			Transfers: []callevent.Transfer{{Kind: callevent.Blind, From: "101", To: "102"}}},
			[]string{"+79001234567 -> +74951234567", "answered by 102", "rang 101,102", "talk 31s", "blind transfer 101->102"}},
		{"outbound-ringing", callevent.Event{Kind: callevent.Ringing, PBX: "demo", Direction: callevent.Outbound, At: at,
			External: "+79161112233", Extension: "101", CRMCallID: "c2c-1"},
			[]string{"ext 101 -> +79161112233", "crm c2c-1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := describe(&c.e)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
		})
	}
}
