package calls

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
	"github.com/ringbridge/ringbridge/connector-amo/internal/amotest"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	amosim "github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

// TestAmoConnector holds the cases issue 5 names, each against the simulator.
func TestAmoConnector(t *testing.T) {
	ctx := context.Background()
	known := "+79161234567"
	call := func(id string) callevent.Event { return ended(id, known, callevent.Inbound, callevent.DispAnswered) }

	t.Run("not-connected", func(t *testing.T) {
		// No install yet: nothing is sent, and the error says so (the service holds the queue).
		e := &env{t: t, acct: amotest.NewAccount(t, amosim.Options{}), redis: testenv.RedisDB(t)}
		e.cfg = e.acct.AmoConfig()
		h, _ := e.replica()
		ev := call("c1")
		err := h.Handle(ctx, &ev)
		st, stopped := amo.StatusOf("company.amocrm.ru", err)
		if !stopped || st.State != amo.StateNotConnected || !strings.Contains(st.Message, "install the integration") {
			t.Fatalf("err %v, status %+v", err, st)
		}
		if len(e.acct.Requests(0)) != 0 {
			t.Fatal("a request went out without a token")
		}
	})

	t.Run("no-params", func(t *testing.T) {
		// Only what the call has: an extension without a user, no recording, nobody answered.
		e := newEnv(t, amosim.Options{}, func(c *config.Amo) { c.Recordings = config.AmoRecordings{} })
		h, _ := e.replica()
		ev := ended("c1", known, callevent.Inbound, callevent.DispNoAnswer)
		ev.Extension, ev.ExtensionsRang, ev.StartedAt = "199", []string{"199"}, ev.StartedAt.AddDate(-100, 0, 0)
		play(t, h, []callevent.Event{ev})
		r := e.requests("POST /api/v4/calls")[0]
		for _, k := range []string{"0.link", "0.responsible_user_id", "0.created_by", "0.call_responsible"} {
			if _, ok := r.Params[k]; ok {
				t.Errorf("%s sent: %v", k, r.Params)
			}
		}
		c := e.acct.CallsByUniq("c1")
		if len(c) != 1 || c[0].ResponsibleUserID != amotest.Admin || c[0].CallStatus != amo.CallStatusNoAnswer || c[0].Duration != 0 {
			t.Fatalf("calls %+v", c)
		}
	})

	t.Run("with-params", func(t *testing.T) {
		e := newEnv(t, amosim.Options{}, nil)
		h, _ := e.replica()
		ev := call("c1")
		ev.Recording, ev.AnsweredBy, ev.Extension = "2026/11/25/in-1.wav", "102", "101"
		ev.Transfers = []callevent.Transfer{{Kind: callevent.Blind, From: "102", To: "101"}}
		play(t, h, []callevent.Event{ev})
		c := e.acct.CallsByUniq("c1")[0]
		if c.ResponsibleUserID != amotest.User101 || c.CreatedBy != amotest.User101 || c.CallResponsible != amotest.User102 ||
			c.CreatedAt != ev.StartedAt.Unix() || !strings.Contains(c.Link, "/recordings/2026/11/25/in-1.wav?expires=") ||
			c.CallResult != "Answered by 102, talked 30 s; blind transfer 102 → 101" {
			t.Fatalf("call %+v", c)
		}
	})

	for _, c := range []struct {
		name   string
		status int
		kind   amo.Kind
	}{
		{"error-401", 401, amo.KindUnauthorized},
		{"error-402", 402, amo.KindPaymentRequired},
		{"error-403", 403, amo.KindBlocked},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, amosim.Options{}, nil)
			h, _ := e.replica()
			e.acct.AddFault(crmsim.Fault{Method: "POST /api/v4/calls", Status: c.status})
			ev := call("c1")
			err := h.Handle(ctx, &ev)
			if k, _ := amo.KindOf(err); k != c.kind {
				t.Fatalf("err %v, want %v", err, c.kind)
			}
			if _, stopped := amo.StatusOf("x", err); !stopped {
				t.Fatal("the account is not stopped")
			}
			st, _, _ := h.States().Get(ctx, "pbx1", "c1")
			if st.Pending != nil || st.Done {
				t.Fatalf("state %+v after a refusal", st)
			}
			e.acct.ClearFaults()
			if err := h.Handle(ctx, &ev); err != nil {
				t.Fatal(err)
			}
			if n := len(e.acct.CallsByUniq("c1")); n != 1 {
				t.Fatalf("%d calls", n)
			}
		})
	}

	t.Run("error-429", func(t *testing.T) {
		e := newEnv(t, amosim.Options{}, nil)
		h, _ := e.replica()
		e.acct.AddFault(crmsim.Fault{Method: "POST /api/v4/calls", Status: 429}) // more than the client rides out
		ev := call("c1")
		err := h.Handle(ctx, &ev)
		ae, ok := amo.AsError(err)
		if !ok || ae.Kind != amo.KindRateLimited || !ae.Retryable() {
			t.Fatalf("err %v", err)
		}
		e.acct.ClearFaults()
		if err := h.Handle(ctx, &ev); err != nil {
			t.Fatal(err)
		}
		if n := len(e.acct.CallsByUniq("c1")); n != 1 {
			t.Fatalf("%d calls", n)
		}
	})

	t.Run("token-rotation-race", func(t *testing.T) {
		e := newEnv(t, amosim.Options{}, nil)
		var hs []*Handler
		for range 4 {
			h, _ := e.replica()
			hs = append(hs, h)
		}
		e.acct.ExpireAccessTokens()
		var wg sync.WaitGroup
		for i, h := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev := call("r" + string(rune('0'+i)))
				if err := h.Handle(ctx, &ev); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := len(e.requests("POST /oauth2/access_token")); n != 2 { // the install, one refresh
			t.Fatalf("%d token requests", n)
		}
		if n := len(e.acct.Calls()); n != 4 {
			t.Fatalf("%d calls", n)
		}
	})
}
