package callflow_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/connector-bx/callflow"
	"github.com/ringbridge/ringbridge/internal/callevent"
	bxsim "github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

// expectation is what the portal must receive for one recording, once, whatever the delivery:
// registration by whom, then the cards, then the finish, then the recording.
type expectation struct {
	regUser int // 0: no register (internal call skipped, click-to-call registered by Bitrix24)
	cards   []string
	finish  string // "" when the call never reaches Bitrix24
	record  bool
}

// fixtureWant are the requests each Asterisk 22 recording must make (extension 10N is user N).
var fixtureWant = map[string]expectation{
	"inbound-answered":             {regUser: 1, cards: []string{"show 1"}, finish: "user=1 status=200 duration=12"},
	"inbound-missed":               {regUser: 1, cards: []string{"show 1"}, finish: "user=1 status=304 duration=0"},
	"inbound-abandoned-ringing":    {regUser: 1, cards: []string{"show 1"}, finish: "user=1 status=304 duration=0"},
	"inbound-busy":                 {regUser: 3, finish: "user=3 status=486 duration=0"},
	"inbound-with-recording":       {regUser: 2, cards: []string{"show 2"}, finish: "user=2 status=200 duration=10", record: true},
	"ringgroup-answered-by-second": {regUser: 1, cards: []string{"show 1", "show 2", "hide 1"}, finish: "user=2 status=200 duration=11"},
	"queue-answered":               {regUser: 2, cards: []string{"show 2", "show 1", "hide 1"}, finish: "user=2 status=200 duration=13"},
	"queue-abandoned":              {regUser: 1, cards: []string{"show 1", "show 2"}, finish: "user=1 status=304 duration=0"},
	"blind-transfer":               {regUser: 1, cards: []string{"show 1", "show 2", "hide 1"}, finish: "user=2 status=200 duration=20"},
	"blind-transfer-redirect":      {regUser: 1, cards: []string{"show 1", "show 2", "hide 1"}, finish: "user=2 status=200 duration=21"},
	"attended-transfer":            {regUser: 1, cards: []string{"show 1", "show 2", "hide 1"}, finish: "user=2 status=200 duration=31"},
	"outbound-answered":            {regUser: 1, cards: []string{"show 1"}, finish: "user=1 status=200 duration=16", record: true},
	// Unanswered outgoing calls carry a status: never "skipped" in Bitrix24 (§3.4 #3).
	"outbound-noanswer": {regUser: 2, finish: "user=2 status=603-S duration=0"},
	"internal-call":     {},
	// Registered by Bitrix24 (ONEXTERNALCALLSTART): finished with its CALL_ID, never registered.
	"click-to-call-originate": {finish: "user=1 status=200 duration=10", record: true},
}

func (e expectation) lines(ended *callevent.Event, endedOnly bool) []string {
	var out []string
	if e.regUser > 0 {
		user := e.regUser
		if endedOnly {
			fmt.Sscanf(e.finish, "user=%d", &user)
		}
		typ := 2
		if ended.Direction != callevent.Inbound {
			typ = 1
		}
		out = append(out, fmt.Sprintf("register user=%d type=%d phone=%s line=%s ext=%s show=0", user, typ, ended.External, ended.Line, ended.CallID))
	}
	if !endedOnly {
		out = append(out, e.cards...)
	}
	if e.finish != "" {
		out = append(out, "finish "+e.finish)
	}
	if e.record {
		out = append(out, "attachRecord content "+filepath.Base(ended.Recording))
	}
	return out
}

// TestFixtures: every Asterisk 22 recording's call events make exactly the expected requests —
// in order, handled twice, with only the ended event (the rest lost), in reverse order, and by
// two replicas at once.
func TestFixtures(t *testing.T) {
	names := fixtureNames(t)
	for _, name := range names {
		want, ok := fixtureWant[name]
		if !ok {
			t.Errorf("recording %s has no expectation: add it to fixtureWant", name)
			continue
		}
		variants := []struct {
			name      string
			endedOnly bool
			order     func([]*callevent.Event) []*callevent.Event
			replicas  int
		}{
			{name: "in-order", order: func(e []*callevent.Event) []*callevent.Event { return e }},
			{name: "redelivered", order: func(e []*callevent.Event) []*callevent.Event {
				var out []*callevent.Event
				for _, x := range e {
					out = append(out, x, x)
				}
				return append(out, e...)
			}},
			{name: "ended-only", endedOnly: true, order: func(e []*callevent.Event) []*callevent.Event { return e[len(e)-1:] }},
			{name: "reversed", endedOnly: true, order: func(e []*callevent.Event) []*callevent.Event {
				out := slices.Clone(e)
				slices.Reverse(out)
				return out
			}},
			{name: "two-replicas", replicas: 2, order: func(e []*callevent.Event) []*callevent.Event { return e }},
		}
		for _, v := range variants {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, bxsim.Options{NoRateLimit: true}, nil)
				evs := fixtureEvents(t, name)
				h.writeRecordings(evs)
				reps := []replica{h.replica()}
				for len(reps) < v.replicas {
					reps = append(reps, h.replica())
				}
				if evs[0].CRMCallID != "" {
					// The portal registers a click-to-call itself and tells the connector its CALL_ID.
					ctx := ctxT(t, 10*time.Second)
					id, err := h.sim.SendExternalCallStart(ctx, okServer(t), bxsim.CallStartFields{UserID: 1, PhoneNumber: "+79161112233"})
					if err != nil {
						t.Fatal(err)
					}
					if _, _, err := reps[0].flow.StartClick(ctx, callflow.Click{CallID: id, UserID: 1, Number: "+79161112233"}); err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						ev.CRMCallID = id
					}
				}
				seq := v.order(evs)
				var wg sync.WaitGroup
				for _, r := range reps {
					wg.Add(1)
					go func() {
						defer wg.Done()
						handleAll(t, r.flow, seq)
					}()
				}
				wg.Wait()
				ended := evs[len(evs)-1]
				equalLines(t, h.journal(), want.lines(ended, v.endedOnly))
				if want.finish == "" {
					return
				}
				st, found, err := reps[0].flow.State(ctxT(t, 5*time.Second), ended.PBX, ended.CallID)
				if err != nil || !found || !st.Finished || st.CallID == "" {
					t.Fatalf("state %+v found=%v err=%v", st, found, err)
				}
				calls := h.sim.Calls()
				if len(calls) != 1 || calls[0].Finish == nil || !calls[0].Finish.StatusSent || len(calls[0].ShownTo) != 0 {
					t.Errorf("portal calls: %+v", calls)
				}
			})
		}
	}
}
