package calls

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
	"github.com/ringbridge/ringbridge/connector-amo/internal/amotest"
	"github.com/ringbridge/ringbridge/connector-amo/recordings"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	amosim "github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

const prefix = "ringbridge:connector-amo:test"

// env is one account, one Redis database and any number of connector replicas.
type env struct {
	t     *testing.T
	acct  *amotest.Account
	redis config.Redis
	cfg   config.Amo
}

func newEnv(t *testing.T, opts amosim.Options, edit func(*config.Amo)) *env {
	t.Helper()
	e := &env{t: t, acct: amotest.NewAccount(t, opts), redis: testenv.RedisDB(t)}
	e.cfg = e.acct.AmoConfig()
	e.cfg.Recordings = config.AmoRecordings{PublicURL: "https://pbx.example.com/amo", Dir: "/var/spool/asterisk/monitor", LinkTTL: 24 * time.Hour, SigningKey: "0123456789abcdef0123456789abcdef"}
	if edit != nil {
		edit(&e.cfg)
	}
	// Install once, as the OAuth redirect would.
	_, o := e.replica()
	if _, err := o.Install(context.Background(), e.acct.AuthorizationCode()); err != nil {
		t.Fatal(err)
	}
	return e
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// replica is one connector process: its own Redis client, token source, client and handler.
func (e *env) replica() (*Handler, *amo.OAuth) {
	e.t.Helper()
	log := quietLog()
	st, err := store.New(context.Background(), e.redis, log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	in := amo.Integration{BaseURL: e.cfg.Account, ClientID: e.cfg.ClientID, ClientSecret: e.cfg.ClientSecret, RedirectURI: e.cfg.RedirectURI}
	o := amo.NewOAuth(st, amo.NewExchanger(in, nil, e.cfg.RequestTimeout), log, amo.OAuthOptions{Prefix: prefix})
	c, err := amo.New(amo.Options{BaseURL: e.cfg.Account, Tokens: o, Limiter: amo.NewRedisLimiter(st.Client(), prefix+":rate", e.cfg.RateLimit), Timeout: e.cfg.RequestTimeout, Logger: log})
	if err != nil {
		e.t.Fatal(err)
	}
	h := New(Options{Amo: e.cfg, Country: "RU", Prefix: prefix, Settle: 3 * e.cfg.RequestTimeout}, c, st, recordings.New(e.cfg.Recordings, nil), log)
	return h, o
}

// play handles events in order, failing the test on an error.
func play(t *testing.T, h *Handler, events []callevent.Event) {
	t.Helper()
	for i := range events {
		if err := h.Handle(context.Background(), &events[i]); err != nil {
			t.Fatalf("event %s: %v", events[i].ID, err)
		}
	}
}

func (e *env) requests(method string) []crmsim.Request {
	var out []crmsim.Request
	for _, r := range e.acct.Requests(0) {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// TestFixtures: every call of the real Asterisk 22 recordings becomes exactly one call in
// amoCRM, with the right direction, status, duration, responsible and recording link; handled
// again (a redelivery of every event), nothing is added.
func TestFixtures(t *testing.T) {
	e := newEnv(t, amosim.Options{}, func(c *config.Amo) { c.MissedCallTask.Enabled = true })
	h, _ := e.replica()
	recs := amotest.Recordings(t)
	ids := map[string]string{}
	for _, r := range recs {
		id := r.Ended().CallID
		if other, dup := ids[id]; dup || id == "" {
			t.Fatalf("recordings %s and %s share call id %q", r.Name, other, id)
		}
		ids[id] = r.Name
		play(t, h, r.Events)
	}
	unknown := map[string]bool{}
	for _, n := range amotest.UnknownNumbers {
		unknown[n] = true
	}
	for _, r := range recs {
		end := r.Ended()
		t.Run(r.Name, func(t *testing.T) {
			calls := e.acct.CallsByUniq(end.CallID)
			st, _, err := h.States().Get(context.Background(), end.PBX, end.CallID)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case end.Direction == callevent.Internal:
				if len(calls) != 0 || st.Skipped != "internal call" {
					t.Fatalf("internal call: %d calls in amoCRM, skipped %q", len(calls), st.Skipped)
				}
				return
			case unknown[end.External] && end.Direction == callevent.Outbound:
				if len(calls) != 0 || !strings.Contains(st.Skipped, "unknown_numbers") {
					t.Fatalf("outbound to an unknown number: %d calls, skipped %q", len(calls), st.Skipped)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("%d calls with uniq %s in amoCRM, want exactly 1", len(calls), end.CallID)
			}
			c := calls[0]
			if c.Direction != string(end.Direction) {
				t.Errorf("direction %q, want %q", c.Direction, end.Direction)
			}
			if want := callStatus(end.Disposition); c.CallStatus != want && !unknown[end.External] {
				t.Errorf("call_status %d, want %d (%s)", c.CallStatus, want, end.Disposition)
			}
			if c.Duration != end.TalkSeconds {
				t.Errorf("duration %d, want talk seconds %d", c.Duration, end.TalkSeconds)
			}
			wantUser := map[string]int{"101": amotest.User101, "102": amotest.User102, "103": amotest.User103}[end.Extension]
			if unknown[end.External] {
				// an incoming lead: the call's responsible is its call_responsible
				if c.CallResponsible != wantUser && c.CallResponsible != map[string]int{"101": amotest.User101, "102": amotest.User102}[end.AnsweredBy] {
					t.Errorf("call_responsible %v, want %d", c.CallResponsible, wantUser)
				}
			} else if c.ResponsibleUserID != wantUser || c.CreatedBy != wantUser {
				t.Errorf("responsible %d, created_by %d, want %d (extension %s)", c.ResponsibleUserID, c.CreatedBy, wantUser, end.Extension)
			}
			if end.Recording != "" {
				if !strings.HasPrefix(c.Link, "https://pbx.example.com/amo/recordings/"+end.Recording+"?") {
					t.Errorf("link %q does not serve %s", c.Link, end.Recording)
				}
			} else if c.Link != "" {
				t.Errorf("link %q for a call without a recording", c.Link)
			}
			if c.Source != "ringbridge" || c.Phone != end.External {
				t.Errorf("source %q phone %q", c.Source, c.Phone)
			}
			if !st.Done || st.Pending != nil {
				t.Errorf("state %+v", st)
			}
			if r.Name == "inbound-with-recording" && (c.EntityType != "leads" || c.EntityID != 2001) {
				t.Errorf("call on %s %d, want the contact's one open lead 2001", c.EntityType, c.EntityID)
			}
		})
	}
	t.Run("unknown-inbound-numbers-got-incoming-leads", func(t *testing.T) {
		var uids []string
		for _, u := range e.acct.Unsorted() {
			uids = append(uids, u.SourceUID)
		}
		if len(uids) != 2 {
			t.Fatalf("unsorted %v, want one per unknown inbound caller (2)", uids)
		}
		for _, c := range e.acct.Contacts() {
			if c.ID < 1000 && !c.IsUnsorted {
				t.Errorf("a contact was created outside Unsorted: %+v", c)
			}
		}
	})
	t.Run("missed-call-tasks", func(t *testing.T) {
		tasks := e.acct.Tasks()
		// inbound-missed, inbound-busy, inbound-abandoned-ringing, queue-abandoned
		if len(tasks) != 4 {
			t.Fatalf("%d tasks, want 4: %+v", len(tasks), tasks)
		}
		for _, task := range tasks {
			if task.ResponsibleUserID == 0 || task.CompleteTill-task.CreatedAt < 3500 || !strings.HasPrefix(task.Text, "Call back +7") {
				t.Errorf("task %+v", task)
			}
		}
	})
	t.Run("redelivery-adds-nothing", func(t *testing.T) {
		before := len(e.acct.Requests(0))
		for _, r := range recs {
			play(t, h, r.Events)
		}
		if after := len(e.acct.Requests(0)); after != before {
			t.Fatalf("%d requests for redelivered events: %v", after-before, e.acct.Requests(before))
		}
	})
}

// TestReplicas: two replicas handling the same events at once (a redelivery to another
// consumer) log each call once.
func TestReplicas(t *testing.T) {
	e := newEnv(t, amosim.Options{}, nil)
	a, _ := e.replica()
	b, _ := e.replica()
	recs := amotest.Recordings(t)
	var wg sync.WaitGroup
	for _, h := range []*Handler{a, b, a} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range recs {
				play(t, h, r.Events)
			}
		}()
	}
	wg.Wait()
	for _, r := range recs {
		end := r.Ended()
		if n := len(e.acct.CallsByUniq(end.CallID)); n > 1 {
			t.Errorf("%s: %d calls", r.Name, n)
		}
	}
	if n := len(e.acct.Calls()); n != 13 {
		t.Fatalf("%d calls in amoCRM, want 13 (15 recordings less the internal call and the outbound call to an unknown number)", n)
	}
}

// ended is a synthetic ended event, for the cases the recordings do not have.
func ended(callID, external string, dir callevent.Direction, disp callevent.Disposition) callevent.Event {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ev := callevent.Event{
		Schema: 1, ID: "pbx1/" + callID + "/ended", Kind: callevent.Ended, PBX: "pbx1", CallID: callID,
		Direction: dir, External: external, Line: "+74951234567", Extension: "101", ExtensionsRang: []string{"101"},
		Disposition: disp, StartedAt: start, At: start.Add(40 * time.Second),
	}
	if disp == callevent.DispAnswered {
		ev.AnsweredBy, ev.TalkSeconds = "101", 30
	}
	return ev
}

// TestAddCall: each thing amoCRM may do to a call, end to end through the handler.
func TestAddCall(t *testing.T) {
	ctx := context.Background()
	known := "+79161234567" // stored as 8 916 123-45-67
	cases := []struct {
		name  string
		opts  amosim.Options
		edit  func(*config.Amo)
		setup func(e *env)
		// run handles the event(s); the default handles ended(call, known) once and wants no error.
		run   func(t *testing.T, e *env, h *Handler)
		check func(t *testing.T, e *env, h *Handler)
	}{
		{
			name: "known-number-any-form",
			check: func(t *testing.T, e *env, _ *Handler) {
				c := e.acct.CallsByUniq("c1")
				if len(c) != 1 || c[0].EntityType != "contacts" || c[0].EntityID != 1001 {
					t.Fatalf("calls %+v", c)
				}
				if n := len(e.requests("GET /api/v4/contacts")); n != 0 {
					t.Fatalf("%d contact searches for a known number", n)
				}
			},
		},
		{
			name: "error-500-applied-no-answer",
			// amoCRM applies the call but the answer never comes (the client's timeout): the retry
			// finds the call's note and does not send it again.
			setup: func(e *env) {
				e.acct.AddFault(crmsim.Fault{Method: "POST /api/v4/calls", Delay: 3 * e.cfg.RequestTimeout / 2, Count: 1})
			},
			run: func(t *testing.T, e *env, h *Handler) {
				ev := ended("c1", known, callevent.Inbound, callevent.DispAnswered)
				err := h.Handle(ctx, &ev)
				if k, _ := amo.KindOf(err); k != amo.KindTransport {
					t.Fatalf("first attempt: %v, want no answer", err)
				}
				st, _, _ := h.States().Get(ctx, "pbx1", "c1")
				if st.Pending == nil || st.Pending.What != "call" {
					t.Fatalf("state %+v does not say a call is under way", st)
				}
				if err := h.Handle(ctx, &ev); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, e *env, h *Handler) {
				if n := len(e.acct.CallsByUniq("c1")); n != 1 {
					t.Fatalf("%d calls, want 1", n)
				}
				if n := len(e.requests("POST /api/v4/calls")); n != 1 {
					t.Fatalf("the call was sent %d times", n)
				}
				st, _, _ := h.States().Get(ctx, "pbx1", "c1")
				if st.NoteID == 0 || st.EntityID != 1001 || !st.Done {
					t.Fatalf("state %+v", st)
				}
			},
		},
		{
			name:  "connection-dropped-not-applied",
			setup: func(e *env) { e.acct.AddFault(crmsim.Fault{Method: "POST /api/v4/calls", Drop: true, Count: 1}) },
			run: func(t *testing.T, e *env, h *Handler) {
				ev := ended("c1", known, callevent.Inbound, callevent.DispAnswered)
				if err := h.Handle(ctx, &ev); err == nil {
					t.Fatal("no error for a dropped request")
				}
				if err := h.Handle(ctx, &ev); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, e *env, _ *Handler) {
				if n := len(e.acct.CallsByUniq("c1")); n != 1 {
					t.Fatalf("%d calls, want 1", n)
				}
			},
		},
		{
			name:  "error-429-storm",
			setup: func(e *env) { e.acct.AddFault(crmsim.Fault{Method: "POST /api/v4/calls", Status: 429, Count: 3}) },
			check: func(t *testing.T, e *env, _ *Handler) {
				if n := len(e.acct.CallsByUniq("c1")); n != 1 {
					t.Fatalf("%d calls, want 1", n)
				}
			},
		},
		{
			name:  "error-402-then-paid",
			setup: func(e *env) { e.acct.SetAccountState(amosim.Unpaid) },
			run: func(t *testing.T, e *env, h *Handler) {
				ev := ended("c1", known, callevent.Inbound, callevent.DispAnswered)
				err := h.Handle(ctx, &ev)
				if k, _ := amo.KindOf(err); k != amo.KindPaymentRequired {
					t.Fatalf("unpaid: %v", err)
				}
				st, _ := amo.StatusOf("acct", err)
				if st.State != amo.StateUnpaid || !strings.Contains(st.Message, "not paid") {
					t.Fatalf("status %+v", st)
				}
				e.acct.SetAccountState(amosim.Active)
				if err := h.Handle(ctx, &ev); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, e *env, _ *Handler) {
				if n := len(e.acct.CallsByUniq("c1")); n != 1 {
					t.Fatalf("%d calls, want 1", n)
				}
			},
		},
		{
			name:  "expired-access-token",
			setup: func(e *env) { e.acct.ExpireAccessTokens() },
			check: func(t *testing.T, e *env, _ *Handler) {
				if n := len(e.acct.CallsByUniq("c1")); n != 1 {
					t.Fatalf("%d calls, want 1", n)
				}
				if n := len(e.requests("POST /oauth2/access_token")); n != 2 { // install + one refresh
					t.Fatalf("%d token requests", n)
				}
			},
		},
		{
			name: "error-400-is-permanent",
			edit: func(c *config.Amo) { c.Users = []config.AmoUser{{Extension: "101", UserID: 999}} }, // not a user of the account
			run: func(t *testing.T, e *env, h *Handler) {
				ev := ended("c1", known, callevent.Inbound, callevent.DispAnswered)
				err := h.Handle(ctx, &ev)
				ae, ok := amo.AsError(err)
				if !ok || ae.Kind != amo.KindInvalid || ae.Retryable() || !strings.Contains(err.Error(), "field responsible_user_id") {
					t.Fatalf("err %v", err)
				}
			},
		},
		{
			name: "unknown-number-unsorted",
			run: func(t *testing.T, e *env, h *Handler) {
				for i, id := range []string{"u1", "u2", "u3"} {
					ev := ended(id, "+79990001122", callevent.Inbound, []callevent.Disposition{callevent.DispAnswered, callevent.DispNoAnswer, callevent.DispAnswered}[i])
					play(t, h, []callevent.Event{ev, ev})
				}
			},
			check: func(t *testing.T, e *env, h *Handler) {
				if u := e.acct.Unsorted(); len(u) != 1 || u[0].SourceUID != "ringbridge:pbx1:u1" {
					t.Fatalf("unsorted %+v, want one incoming lead for the number", u)
				}
				contacts := 0
				for _, c := range e.acct.Contacts() {
					for _, p := range c.Phones {
						if samePhone(p.Value, "+79990001122") {
							contacts++
						}
					}
				}
				if contacts != 1 {
					t.Fatalf("%d contacts with the number, want 1", contacts)
				}
				for _, id := range []string{"u1", "u2", "u3"} {
					if n := len(e.acct.CallsByUniq(id)) + countNotes(e, id); n != 1 {
						t.Fatalf("call %s is in amoCRM %d times", id, n)
					}
				}
			},
		},
		{
			name: "unknown-number-contact",
			edit: func(c *config.Amo) { c.UnknownNumbers = "contact" },
			run: func(t *testing.T, e *env, h *Handler) {
				// Three calls from one new number at once, on two replicas.
				h2, _ := e.replica()
				var wg sync.WaitGroup
				for i, id := range []string{"n1", "n2", "n3"} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ev := ended(id, "+79990003344", callevent.Outbound, callevent.DispAnswered)
						play(t, []*Handler{h, h2}[i%2], []callevent.Event{ev})
					}()
				}
				wg.Wait()
			},
			check: func(t *testing.T, e *env, _ *Handler) {
				var ids []int
				for _, c := range e.acct.Contacts() {
					for _, p := range c.Phones {
						if samePhone(p.Value, "+79990003344") {
							ids = append(ids, c.ID)
						}
					}
				}
				if len(ids) != 1 {
					t.Fatalf("contacts %v with the number, want exactly one", ids)
				}
				for _, id := range []string{"n1", "n2", "n3"} {
					if n := len(e.acct.CallsByUniq(id)); n != 1 {
						t.Fatalf("call %s logged %d times", id, n)
					}
				}
			},
		},
		{
			name: "unknown-number-none",
			edit: func(c *config.Amo) { c.UnknownNumbers = "none" },
			run: func(t *testing.T, e *env, h *Handler) {
				ev := ended("x1", "+79990005566", callevent.Inbound, callevent.DispAnswered)
				play(t, h, []callevent.Event{ev})
			},
			check: func(t *testing.T, e *env, h *Handler) {
				if len(e.acct.Calls()) != 0 || len(e.acct.Unsorted()) != 0 || len(e.acct.Contacts()) != 10 {
					t.Fatal("something was created for an unknown number with unknown_numbers: none")
				}
				st, _, _ := h.States().Get(ctx, "pbx1", "x1")
				if !st.Done || !strings.Contains(st.Skipped, "no contact") {
					t.Fatalf("state %+v", st)
				}
			},
		},
		{
			name: "missed-call-task",
			edit: func(c *config.Amo) {
				c.MissedCallTask = config.AmoTask{Enabled: true, Deadline: 2 * time.Hour, Text: "Перезвонить {phone}", TaskTypeID: 1}
			},
			run: func(t *testing.T, e *env, h *Handler) {
				ev := ended("m1", known, callevent.Inbound, callevent.DispNoAnswer)
				play(t, h, []callevent.Event{ev, ev})
			},
			check: func(t *testing.T, e *env, _ *Handler) {
				tasks := e.acct.Tasks()
				if len(tasks) != 1 {
					t.Fatalf("%d tasks", len(tasks))
				}
				task := tasks[0]
				if task.ResponsibleUserID != amotest.User101 || task.EntityType != "contacts" || task.EntityID != 1001 || task.Text != "Перезвонить "+known {
					t.Fatalf("task %+v", task)
				}
				if d := task.CompleteTill - task.CreatedAt; d < 7190 || d > 7210 {
					t.Fatalf("deadline in %ds, want 2h", d)
				}
			},
		},
		{
			name: "ringing-notification",
			run: func(t *testing.T, e *env, h *Handler) {
				ring := ended("r1", known, callevent.Inbound, callevent.DispAnswered)
				ring.Kind, ring.ID, ring.Extension = callevent.Ringing, "pbx1/r1/ringing/102", "102"
				ring104 := ring
				ring104.ID, ring104.Extension = "pbx1/r1/ringing/104", "104" // no amoCRM user
				end := ended("r1", known, callevent.Inbound, callevent.DispAnswered)
				late := ring
				late.ID = "pbx1/r1/ringing/102-again"
				play(t, h, []callevent.Event{ring, ring, ring104, end, late})
			},
			check: func(t *testing.T, e *env, _ *Handler) {
				ns := e.acct.Notifications()
				if len(ns) != 1 || len(ns[0].Users) != 1 || ns[0].Users[0] != amotest.User102 || ns[0].EntityID != 1001 {
					t.Fatalf("notifications %+v, want one for user 102's phone", ns)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.opts, c.edit)
			h, _ := e.replica()
			if c.setup != nil {
				c.setup(e)
			}
			if c.run != nil {
				c.run(t, e, h)
			} else {
				ev := ended("c1", known, callevent.Inbound, callevent.DispAnswered)
				if err := h.Handle(ctx, &ev); err != nil {
					t.Fatal(err)
				}
			}
			if c.check != nil {
				c.check(t, e, h)
			}
		})
	}
}

func countNotes(e *env, uniq string) int {
	n := 0
	for _, note := range e.acct.Notes() {
		if fmt.Sprint(note.Params["uniq"]) == uniq {
			n++
		}
	}
	// A call through /api/v4/calls has a note too: count the notes made directly only.
	return n - len(e.acct.CallsByUniq(uniq))
}

// TestMapping covers the event → call mapping on its own.
func TestMapping(t *testing.T) {
	cases := []struct {
		name   string
		disp   callevent.Disposition
		dir    callevent.Direction
		status int
		result string
	}{
		{"answered", callevent.DispAnswered, callevent.Inbound, amo.CallStatusTalked, "Answered by 101, talked 30 s"},
		{"missed", callevent.DispNoAnswer, callevent.Inbound, amo.CallStatusNoAnswer, "Missed; rang 101"},
		{"busy", callevent.DispBusy, callevent.Inbound, amo.CallStatusBusy, "Busy; rang 101"},
		{"failed", callevent.DispFailed, callevent.Outbound, amo.CallStatusNotAvailable, "Failed"},
		{"outbound-no-answer", callevent.DispNoAnswer, callevent.Outbound, amo.CallStatusNoAnswer, "No answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := ended("m", "+79161234567", c.dir, c.disp)
			if got := callStatus(ev.Disposition); got != c.status {
				t.Errorf("status %d, want %d", got, c.status)
			}
			if got := callResult(&ev); got != c.result {
				t.Errorf("result %q, want %q", got, c.result)
			}
		})
	}
	t.Run("search-forms", func(t *testing.T) {
		got := strings.Join(searchForms("RU", "+79161234567"), " ")
		if got != "9161234567 79161234567 89161234567 +79161234567" {
			t.Fatalf("forms %s", got)
		}
		if got := strings.Join(searchForms("RU", "102"), " "); got != "102" {
			t.Fatalf("short number forms %s", got)
		}
	})
	t.Run("skip", func(t *testing.T) {
		ev := ended("s", "", callevent.Inbound, callevent.DispAnswered)
		if skipReason(&ev) == "" {
			t.Fatal("an anonymous call was not skipped")
		}
	})
}
