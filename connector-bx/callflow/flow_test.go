package callflow_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/connector-bx/callflow"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/command"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	bxsim "github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

func deliver(t *testing.T, fl *callflow.Flow, ev *callevent.Event) error {
	t.Helper()
	b, err := callevent.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return fl.Consume(ctxT(t, 30*time.Second), bus.Delivery{Body: b, MessageID: ev.ID})
}

// TestMissedResponsible: who a missed inbound call is finished for, by the rules.
func TestMissedResponsible(t *testing.T) {
	cases := []struct {
		name     string
		mod      func(*config.Bitrix)
		contacts []bxsim.Contact
		users    []bxsim.User
		want     string // the finish line; "" with wantErr
		wantErr  string
	}{
		{name: "first-rang", want: "finish user=1 status=304 duration=0"},
		{name: "default", mod: func(c *config.Bitrix) { c.Missed.Responsible, c.Missed.DefaultUserID = "default", 4 },
			want: "finish user=4 status=304 duration=0"},
		{name: "per-line", mod: func(c *config.Bitrix) {
			c.Missed.Responsible, c.Missed.DefaultUserID = "default", 4
			c.Missed.Lines = []config.BitrixLineUser{{Line: "84951234567", UserID: 7}}
		}, want: "finish user=7 status=304 duration=0"},
		{name: "crm-responsible", mod: func(c *config.Bitrix) { c.Missed.Responsible = "crm" },
			contacts: []bxsim.Contact{{ID: 10, Name: "Ivan", Phones: []string{"89031112233"}, AssignedByID: 5}},
			want:     "finish user=5 status=304 duration=0"},
		{name: "crm-unknown-caller-falls-back", mod: func(c *config.Bitrix) { c.Missed.Responsible = "crm" },
			want: "finish user=1 status=304 duration=0"},
		{name: "unmapped-extension-default-user", mod: func(c *config.Bitrix) { c.Missed.DefaultUserID = 6 },
			users: simUsers()[1:], want: "finish user=6 status=304 duration=0"},
		{name: "unmapped-extension-no-default", users: simUsers()[1:],
			wantErr: "none of its extensions (101 [101]) has a Bitrix24 user"},
		{name: "override-maps-extension", mod: func(c *config.Bitrix) { c.Users = []config.BitrixUser{{Extension: "101", UserID: 8}} },
			users: simUsers()[1:], want: "finish user=8 status=304 duration=0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, bxsim.Options{NoRateLimit: true, Contacts: tc.contacts, Users: tc.users}, tc.mod)
			r := h.replica()
			var err error
			for _, ev := range fixtureEvents(t, "inbound-missed") {
				if err = deliver(t, r.flow, ev); err != nil {
					break
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !bus.IsPermanent(err) {
					t.Fatalf("err %v, want a permanent error saying %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "bitrix.users") {
					t.Errorf("the error does not say how to fix it: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			j := h.journal()
			if got := j[len(j)-1]; got != tc.want {
				t.Errorf("journal %q, want it to end with %q", j, tc.want)
			}
			if count(j, "register") != 1 {
				t.Errorf("journal %q: want one register", j)
			}
		})
	}
}

// TestUnmappedExtensionReported: a ringing extension with no user is reported by name (log, and
// the list admin shows), and the call goes on for the others.
func TestUnmappedExtensionReported(t *testing.T) {
	users := simUsers()[1:] // no 101
	h := newHarness(t, bxsim.Options{NoRateLimit: true, Users: users}, nil)
	r := h.replica()
	handleAll(t, r.flow, fixtureEvents(t, "ringgroup-answered-by-second"))
	equalLines(t, h.journal(), []string{
		"register user=2 type=2 phone=+79057776655 line=+74951234500 ext=1795634883.20 show=0",
		"show 2",
		"finish user=2 status=200 duration=11",
	})
	if !strings.Contains(h.logs.String(), "extension 101 has no Bitrix24 user") {
		t.Error("no log line names the extension")
	}
	un, err := r.dir.Unmapped(context.Background())
	if err != nil || len(un) != 1 || un[0].Extension != "101" || un[0].CallID != "1795634883.20" {
		t.Errorf("unmapped %+v %v", un, err)
	}
}

// TestExpiredTokenMidCall: the token expires between ringing and the end: one refresh, and the
// call is finished exactly once.
func TestExpiredTokenMidCall(t *testing.T) {
	h := newHarness(t, bxsim.Options{}, nil)
	r := h.replica()
	evs := fixtureEvents(t, "queue-answered")
	handleAll(t, r.flow, evs[:2])
	h.sim.ExpireTokens()
	handleAll(t, r.flow, evs[2:])
	j := h.journal()
	if count(j, "register") != 1 || count(j, "finish") != 1 {
		t.Errorf("journal %q", j)
	}
	refreshes := 0
	for _, q := range h.sim.Requests(0) {
		if q.Method == "oauth.token" {
			refreshes++
		}
	}
	if refreshes != 1 {
		t.Errorf("%d refreshes", refreshes)
	}
}

// TestLeadCreation: CRM_CREATE by direction and line, CRM_SOURCE, and LEAD_CREATION_ERROR
// reported rather than ignored (§3.4 #8).
func TestLeadCreation(t *testing.T) {
	t.Run("inbound-unknown-number", func(t *testing.T) {
		h := newHarness(t, bxsim.Options{NoRateLimit: true}, func(c *config.Bitrix) { c.Leads.Source = "CALL" })
		handleAll(t, h.replica().flow, fixtureEvents(t, "inbound-answered"))
		leads := h.sim.Leads()
		if len(leads) != 1 || leads[0].SourceID != "CALL" || leads[0].AssignedByID != 1 {
			t.Fatalf("leads %+v", leads)
		}
	})
	t.Run("outbound-off", func(t *testing.T) {
		h := newHarness(t, bxsim.Options{NoRateLimit: true}, nil)
		handleAll(t, h.replica().flow, fixtureEvents(t, "outbound-answered"))
		if leads := h.sim.Leads(); len(leads) != 0 {
			t.Fatalf("leads %+v", leads)
		}
	})
	t.Run("line-off", func(t *testing.T) {
		h := newHarness(t, bxsim.Options{NoRateLimit: true}, func(c *config.Bitrix) {
			c.Leads.Lines = []config.BitrixLeadLine{{Line: "+74951234567"}}
		})
		handleAll(t, h.replica().flow, fixtureEvents(t, "inbound-answered"))
		if leads := h.sim.Leads(); len(leads) != 0 {
			t.Fatalf("leads %+v", leads)
		}
	})
	t.Run("lead-creation-error", func(t *testing.T) {
		h := newHarness(t, bxsim.Options{NoRateLimit: true, LeadCreationError: "Lead creation is disabled for local users"}, nil)
		handleAll(t, h.replica().flow, fixtureEvents(t, "inbound-answered"))
		if !strings.Contains(h.logs.String(), "Lead creation is disabled for local users") {
			t.Error("LEAD_CREATION_ERROR not reported")
		}
	})
}

// TestFinishAnswerLost: the portal finished the call but its answer never arrived; the retry gets
// "Call is not found", which counts as done: the call is finished once and the event acked.
func TestFinishAnswerLost(t *testing.T) {
	h := newHarness(t, bxsim.Options{NoRateLimit: true}, nil)
	r := h.replica()
	evs := fixtureEvents(t, "inbound-answered")
	handleAll(t, r.flow, evs[:len(evs)-1])
	// Empty error code and no closing parenthesis, as Itgrix saw it (b24-rest-docs #175).
	h.sim.AddFault(crmsim.Fault{Method: "telephony.externalcall.finish", Status: 400, Count: 1,
		Body: []byte(`{"error":"","error_description":"Call is not found (call should be registered prior to finishing"}`)})
	if err := deliver(t, r.flow, evs[len(evs)-1]); err != nil {
		t.Fatal(err)
	}
	st, _, _ := r.flow.State(context.Background(), evs[0].PBX, evs[0].CallID)
	if !st.Finished {
		t.Fatalf("state %+v", st)
	}
	if err := deliver(t, r.flow, evs[len(evs)-1]); err != nil { // a redelivery afterwards
		t.Fatal(err)
	}
	if n := count(h.journal(), "finish"); n != 1 {
		t.Errorf("%d finishes", n)
	}
}

// TestServerErrorsThenRetry: a 5xx burst fails the event with a temporary error (the bus retries
// it); once the portal is back, the redelivery completes the call without doing anything twice.
func TestServerErrorsThenRetry(t *testing.T) {
	h := newHarness(t, bxsim.Options{NoRateLimit: true}, nil)
	r := h.replica()
	evs := fixtureEvents(t, "ringgroup-answered-by-second")
	handleAll(t, r.flow, evs[:3]) // registered, shown to 101 and 102
	h.sim.AddFault(crmsim.Fault{Method: "telephony.externalcall.hide", Status: 502})
	err := deliver(t, r.flow, evs[3])
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err %v, want a temporary error", err)
	}
	h.sim.ClearFaults()
	for _, ev := range evs[3:] {
		if err := deliver(t, r.flow, ev); err != nil {
			t.Fatal(err)
		}
	}
	j := h.journal()
	if count(j, "register") != 1 || count(j, "show") != 2 || count(j, "finish") != 1 {
		t.Errorf("journal %q", j)
	}
}

// TestRecordings: url_base, a file too big for the request, a missing file, a wrong format, and a
// name that tries to leave the folder.
func TestRecordings(t *testing.T) {
	cases := []struct {
		name    string
		mod     func(*config.Bitrix)
		rec     string
		file    []byte // written under the recording's base name; nil: none
		endedAt time.Time
		want    string // last journal line
		wantErr bool
	}{
		{name: "url-base", mod: func(c *config.Bitrix) { c.Recordings.Folder, c.Recordings.URLBase = "", "https://pbx.example.com/rec/" },
			rec: "2026/11/25/a b.wav", want: "attachRecord url a b.wav"},
		{name: "inline", rec: "a.wav", file: []byte("RIFF"), want: "attachRecord content a.wav"},
		{name: "upload-url", mod: func(c *config.Bitrix) { c.Recordings.InlineMax = 2 }, rec: "a.mp3", file: []byte("ID3-big"), want: "attachRecord upload-url a.mp3"},
		{name: "absolute-asterisk-path", rec: "/var/spool/asterisk/monitor/a.wav", file: []byte("RIFF"), want: "attachRecord content a.wav"},
		{name: "missing-recent-retried", rec: "late.wav", endedAt: time.Now(), wantErr: true, want: "finish user=1 status=200 duration=12"},
		{name: "missing-old-given-up", rec: "gone.wav", endedAt: time.Now().Add(-time.Hour), want: "finish user=1 status=200 duration=12"},
		{name: "wrong-format", rec: "a.gsm", file: []byte("x"), want: "finish user=1 status=200 duration=12"},
		{name: "escape-attempt", rec: "../../../../etc/passwd.wav", want: "finish user=1 status=200 duration=12"},
		{name: "not-configured", mod: func(c *config.Bitrix) { c.Recordings.Folder = "" }, rec: "a.wav", file: []byte("RIFF"), want: "finish user=1 status=200 duration=12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, bxsim.Options{NoRateLimit: true}, tc.mod)
			r := h.replica()
			evs := fixtureEvents(t, "inbound-answered")
			end := evs[len(evs)-1]
			end.Recording = tc.rec
			if !tc.endedAt.IsZero() {
				end.EndedAt = &tc.endedAt
			}
			if tc.file != nil {
				if err := os.WriteFile(filepath.Join(h.recDir, filepath.Base(tc.rec)), tc.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			for _, ev := range evs {
				if err = deliver(t, r.flow, ev); err != nil {
					break
				}
			}
			if (err != nil) != tc.wantErr || (err != nil && bus.IsPermanent(err)) {
				t.Fatalf("err %v, want error %v (temporary)", err, tc.wantErr)
			}
			j := h.journal()
			if got := j[len(j)-1]; got != tc.want {
				t.Errorf("journal ends %q, want %q", got, tc.want)
			}
			if count(j, "finish") != 1 {
				t.Errorf("journal %q", j)
			}
		})
	}
}

type fakeOriginator struct {
	mu   sync.Mutex
	reqs []command.Originate
	rep  command.OriginateReply
	err  error
}

func (f *fakeOriginator) Originate(_ context.Context, req command.Originate) (command.OriginateReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return f.rep, f.err
}

// TestClickToCall: the originate asked of the gateway, and what is finished in Bitrix24 when the
// phone cannot be rung at all (otherwise the call's events finish it).
func TestClickToCall(t *testing.T) {
	cases := []struct {
		name   string
		user   int
		rep    command.OriginateReply
		err    error
		finish string // "" when nothing is finished here
	}{
		{name: "answered", user: 1, rep: command.OriginateReply{Result: command.ResultAnswered, CallID: "1.1"}},
		{name: "no-answer-events-finish-it", user: 1, rep: command.OriginateReply{Result: command.ResultNoAnswer}},
		{name: "asterisk-failed", user: 1, rep: command.OriginateReply{Result: command.ResultFailed}, finish: "finish user=1 status=480 duration=0"},
		{name: "gateway-down", user: 1, err: errors.New("no reply: context deadline exceeded"), finish: "finish user=1 status=503 duration=0"},
		{name: "user-without-extension", user: 9, finish: "finish user=9 status=404 duration=0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			users := append(simUsers(), bxsim.User{ID: 9, Name: "NoPhone"})
			h := newHarness(t, bxsim.Options{NoRateLimit: true, Users: users}, nil)
			r := h.replica()
			ctx := ctxT(t, 20*time.Second)
			id, err := h.sim.SendExternalCallStart(ctx, okServer(t), bxsim.CallStartFields{UserID: tc.user, PhoneNumber: "+7 (916) 111-22-33"})
			if err != nil {
				t.Fatal(err)
			}
			cl, fresh, err := r.flow.StartClick(ctx, callflow.Click{CallID: id, UserID: tc.user, Number: "+7 (916) 111-22-33"})
			if err != nil || !fresh {
				t.Fatalf("StartClick: %v %v", fresh, err)
			}
			if _, again, _ := r.flow.StartClick(ctx, callflow.Click{CallID: id, UserID: tc.user}); again {
				t.Fatal("the same click accepted twice")
			}
			orig := &fakeOriginator{rep: tc.rep, err: tc.err}
			r.flow.RunClick(ctx, cl, orig, 30*time.Second)
			if tc.user == 1 {
				if len(orig.reqs) != 1 {
					t.Fatalf("%d originates", len(orig.reqs))
				}
				o := orig.reqs[0]
				if o.Extension != "101" || o.Number != "+79161112233" || o.CRMCallID != id || o.RequestID == "" || o.TimeoutSeconds != 30 {
					t.Errorf("originate %+v", o)
				}
			}
			j := h.journal()
			if count(j, "register") != 0 {
				t.Errorf("a click-to-call was registered again: %q", j)
			}
			if tc.finish == "" {
				if len(j) != 0 {
					t.Errorf("journal %q, want nothing yet", j)
				}
				return
			}
			equalLines(t, j, []string{tc.finish})
			// The events that may still come finish nothing twice.
			ev := fixtureEvents(t, "click-to-call-originate")
			for _, e := range ev {
				e.CRMCallID = id
			}
			handleAll(t, r.flow, ev)
			if n := count(h.journal(), "finish"); n != 1 {
				t.Errorf("%d finishes", n)
			}
		})
	}
}

// TestOverlappingCallsSameNumbers: two calls from the same number on the same line to the same
// extension at the same time get two CALL_IDs and are finished each (b24-rest-docs #175, §3.4 #1).
func TestOverlappingCallsSameNumbers(t *testing.T) {
	h := newHarness(t, bxsim.Options{NoRateLimit: true}, nil)
	r := h.replica()
	a := fixtureEvents(t, "inbound-answered")
	b := fixtureEvents(t, "inbound-answered")
	for _, ev := range b {
		ev.CallID = "1795634813.99"
		ev.ID = callevent.EventID(ev.PBX, ev.CallID, ev.Kind, ev.Extension)
	}
	var seq []*callevent.Event
	for i := range a {
		seq = append(seq, a[i], b[i])
	}
	handleAll(t, r.flow, seq)
	calls := h.sim.Calls()
	if len(calls) != 2 || calls[0].CallID == calls[1].CallID {
		t.Fatalf("%d calls: %+v", len(calls), calls)
	}
	for _, c := range calls {
		if c.Finish == nil || c.Finish.StatusCode != "200" {
			t.Errorf("call %s not finished: %+v", c.CallID, c.Finish)
		}
	}
	for _, q := range h.sim.Requests(0) {
		if q.Status != 200 {
			t.Errorf("request %s answered %d: %s", q.Method, q.Status, q.Response)
		}
	}
}

// TestCallThatReachedNoExtension: a caller who hangs up in the IVR: with a default user the call
// is recorded as missed for them; without one it is parked with what to set (§3.4 #12).
func TestCallThatReachedNoExtension(t *testing.T) {
	ivr := func() []*callevent.Event {
		evs := fixtureEvents(t, "inbound-missed")
		end := evs[len(evs)-1]
		end.Extension, end.ExtensionsRang = "", nil
		return []*callevent.Event{evs[0], end}
	}
	t.Run("default-user", func(t *testing.T) {
		h := newHarness(t, bxsim.Options{NoRateLimit: true}, func(c *config.Bitrix) { c.Missed.DefaultUserID = 4 })
		handleAll(t, h.replica().flow, ivr())
		equalLines(t, h.journal(), []string{
			"register user=4 type=2 phone=+79031112233 line=+74951234567 ext=1795634836.8 show=0",
			"finish user=4 status=304 duration=0",
		})
	})
	t.Run("no-default-user", func(t *testing.T) {
		h := newHarness(t, bxsim.Options{NoRateLimit: true}, nil)
		r := h.replica()
		evs := ivr()
		if err := deliver(t, r.flow, evs[0]); err != nil {
			t.Fatal(err)
		}
		err := deliver(t, r.flow, evs[1])
		if !bus.IsPermanent(err) || !strings.Contains(err.Error(), "reached no extension") || !strings.Contains(err.Error(), "bitrix.missed.default_user_id") {
			t.Fatalf("err %v", err)
		}
	})
}
