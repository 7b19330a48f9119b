// Package calls turns call events into amoCRM: the incoming-call notification while a phone
// rings, and on the end of the call the call itself (on the card amoCRM finds by the number), an
// incoming lead or a contact and lead for an unknown number, and a task after a missed call.
//
// Exactly once. amoCRM's uniq does not deduplicate calls: a call sent twice is logged twice. So
// the connector's own state in Redis (callstate: one record per call, updated under the call's
// lock, so redeliveries, retries and replicas are serialized) records what was done, and before
// each request that creates something it records that the request is under way. When a request
// has no answer (timeout, connection lost, the connector killed), the next attempt finds that mark
// and first looks in amoCRM whether the call is there (its note carries our uniq) before it sends
// anything again.
package calls

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/callstate"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/phone"
	"github.com/ringbridge/ringbridge/internal/store"
)

// API is what the flow needs of amoCRM (*amo.Client).
type API interface {
	AddCall(ctx context.Context, c amo.Call) (amo.AddedCall, error)
	AddUnsortedCall(ctx context.Context, u amo.UnsortedCall) (amo.UnsortedAdded, error)
	FindContacts(ctx context.Context, query string) ([]amo.Contact, error)
	AddLeadWithContact(ctx context.Context, lead amo.NewLead, contact amo.NewContact, requestID string) (amo.ComplexAdded, error)
	AddTask(ctx context.Context, t amo.Task) (int, error)
	AddCallNote(ctx context.Context, n amo.CallNote) (int, error)
	NotifyCall(ctx context.Context, phone string, users []int) error
	FindCallNote(ctx context.Context, uniq string, since time.Time) (amo.FoundNote, bool, error)
}

// Linker makes the recording link of a call ("" for none): *recordings.Links.
type Linker interface {
	Link(recording string) string
}

// State is what the connector did for one call, in Redis.
type State struct {
	// Notified are the ringing events whose notification was sent.
	Notified []string `json:"notified,omitempty"`
	// Done: the ended event was handled to the end.
	Done bool `json:"done,omitempty"`
	// Skipped says why the call was not logged (internal, no number, unknown number and
	// unknown_numbers: none).
	Skipped string `json:"skipped,omitempty"`
	// Where the call is in amoCRM: CallID from /api/v4/calls, NoteID when it went in as a note.
	CallID     int    `json:"call_id,omitempty"`
	NoteID     int    `json:"note_id,omitempty"`
	EntityType string `json:"entity_type,omitempty"`
	EntityID   int    `json:"entity_id,omitempty"`
	// What the connector created for an unknown number.
	UnsortedUID string `json:"unsorted_uid,omitempty"`
	ContactID   int    `json:"contact_id,omitempty"`
	LeadID      int    `json:"lead_id,omitempty"`
	TaskID      int    `json:"task_id,omitempty"`
	// Pending is a request sent whose outcome is not known yet.
	Pending *Attempt `json:"pending,omitempty"`
	// Logged is when the call was logged, for admin's journal.
	Logged time.Time `json:"logged,omitempty"`
}

// Attempt is a request under way.
type Attempt struct {
	What  string    `json:"what"` // call, note, unsorted, complex, task
	Since time.Time `json:"since"`
}

// logged reports whether the call is in amoCRM already.
func (s *State) logged() bool { return s.CallID > 0 || s.NoteID > 0 || s.UnsortedUID != "" }

// Options configure a Handler.
type Options struct {
	Amo config.Amo
	// Country normalizes numbers for the contact search (classify.country).
	Country string
	// Settle is how long after a request without an answer the connector waits before it looks
	// whether the request was applied: a request amoCRM received may still be running after the
	// client gave up. Default twice amo.request_timeout.
	Settle time.Duration
	// Prefix of the Redis keys, e.g. "ringbridge:connector-amo:company.amocrm.ru".
	Prefix     string
	Now        func() time.Time
	Registerer prometheus.Registerer
}

// Handler handles call events.
type Handler struct {
	opt    Options
	api    API
	st     *store.Store
	states *callstate.Store[State]
	links  Linker
	log    logrus.FieldLogger
	met    *metrics
}

// New returns a Handler. links may be nil (no recording links).
func New(opt Options, api API, st *store.Store, links Linker, log logrus.FieldLogger) *Handler {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Settle <= 0 {
		opt.Settle = 2 * opt.Amo.RequestTimeout
		if opt.Settle <= 0 {
			opt.Settle = 40 * time.Second
		}
	}
	// A call's state outlives the retries and a parked message requeued days later.
	states := callstate.New[State](st, opt.Prefix, 30*24*time.Hour)
	return &Handler{opt: opt, api: api, st: st, states: states, links: links, log: log, met: newMetrics(opt.Registerer)}
}

// States is the per-call state store, for admin's journal and tests.
func (h *Handler) States() *callstate.Store[State] { return h.states }

// Handle handles one call event. Its errors: an *amo.Error that stops the account (the caller
// holds the queue), a retryable one, or anything else for the bus to retry and park.
func (h *Handler) Handle(ctx context.Context, ev *callevent.Event) error {
	log := h.log.WithFields(logrus.Fields{"call_id": ev.CallID, "pbx": ev.PBX, "event": string(ev.Kind)})
	switch ev.Kind {
	case callevent.Ringing:
		if !h.opt.Amo.Notify || ev.Direction != callevent.Inbound || ev.External == "" {
			return nil
		}
		return h.states.Update(ctx, ev.PBX, ev.CallID, func(ctx context.Context, tx *callstate.Tx[State]) error {
			return h.ringing(ctx, ev, tx, log)
		})
	case callevent.Ended:
		start := time.Now()
		err := h.states.Update(ctx, ev.PBX, ev.CallID, func(ctx context.Context, tx *callstate.Tx[State]) error {
			return h.ended(ctx, ev, tx, log)
		})
		h.met.endedSeconds.Observe(time.Since(start).Seconds())
		return err
	}
	return nil
}

// ringing shows the incoming-call notification to the employee whose phone rings.
func (h *Handler) ringing(ctx context.Context, ev *callevent.Event, tx *callstate.Tx[State], log logrus.FieldLogger) error {
	s := tx.State
	if s.Done {
		return nil // the call is over: a late pop-up would only confuse
	}
	user := h.opt.Amo.UserOf(ev.Extension)
	if user == 0 {
		log.WithField("extension", ev.Extension).Debug("no amoCRM user for this extension: no notification")
		return nil
	}
	if !callstate.Seen(&s.Notified, ev.ID) {
		return nil
	}
	if err := h.api.NotifyCall(ctx, ev.External, []int{user}); err != nil {
		if e, ok := amo.AsError(err); ok && e.AccountStopped() {
			return err
		}
		// A notification retried seconds later is of no use; the call itself is what matters.
		log.WithError(err).Warn("incoming-call notification not shown")
		h.met.notifications.WithLabelValues("failed").Inc()
		return nil
	}
	h.met.notifications.WithLabelValues("sent").Inc()
	return nil
}

// ended logs the call, then the missed-call task.
func (h *Handler) ended(ctx context.Context, ev *callevent.Event, tx *callstate.Tx[State], log logrus.FieldLogger) error {
	s := tx.State
	if s.Done {
		log.Debug("call already handled")
		h.met.outcomes.WithLabelValues("duplicate").Inc()
		return nil
	}
	if why := skipReason(ev); why != "" {
		s.Skipped, s.Done = why, true
		h.met.outcomes.WithLabelValues("skipped").Inc()
		log.WithField("reason", why).Debug("call not logged")
		return nil
	}
	call := h.callOf(ev)
	if !s.logged() && s.Skipped == "" {
		if err := h.logCall(ctx, ev, call, tx, log); err != nil {
			return err
		}
	}
	if h.wantsTask(ev) && s.TaskID == 0 {
		if err := h.addTask(ctx, ev, tx); err != nil {
			return err
		}
	}
	s.Done = true
	outcome := "logged"
	if !s.logged() {
		outcome = "skipped"
	}
	h.met.outcomes.WithLabelValues(outcome).Inc()
	log.WithFields(logrus.Fields{"amo_call_id": s.CallID, "entity": s.EntityType, "entity_id": s.EntityID, "skipped": s.Skipped}).Info("call handled")
	return nil
}

// skipReason says why a call is not for amoCRM.
func skipReason(ev *callevent.Event) string {
	switch {
	case ev.Direction == callevent.Internal:
		return "internal call"
	case ev.Direction != callevent.Inbound && ev.Direction != callevent.Outbound:
		return "direction " + string(ev.Direction)
	case phone.Digits(ev.External) == "" || phone.Digits(ev.External) == "+":
		return "no outside number (anonymous caller)"
	}
	return ""
}

// callOf maps the ended event to amoCRM's call.
func (h *Handler) callOf(ev *callevent.Event) amo.Call {
	a := h.opt.Amo
	responsible := a.UserOf(ev.Extension)
	if responsible == 0 {
		responsible = a.DefaultUserID
	}
	c := amo.Call{
		Direction:         string(ev.Direction),
		Uniq:              ev.CallID,
		Duration:          max(ev.TalkSeconds, 0),
		Source:            a.Source,
		Phone:             ev.External,
		CallStatus:        callStatus(ev.Disposition),
		CallResult:        callResult(ev),
		ResponsibleUserID: responsible,
		CreatedBy:         responsible,
		RequestID:         ev.CallID,
	}
	if u := a.UserOf(ev.AnsweredBy); u > 0 {
		c.CallResponsible = u
	} else {
		c.CallResponsible = responsible
	}
	if !ev.StartedAt.IsZero() {
		c.CreatedAt = ev.StartedAt.Unix()
	}
	if h.links != nil && ev.Recording != "" {
		c.Link = h.links.Link(ev.Recording)
	}
	return c
}

// callStatus maps a disposition to amoCRM's call_status.
func callStatus(d callevent.Disposition) int {
	switch d {
	case callevent.DispAnswered:
		return amo.CallStatusTalked
	case callevent.DispBusy:
		return amo.CallStatusBusy
	case callevent.DispFailed:
		return amo.CallStatusNotAvailable
	}
	return amo.CallStatusNoAnswer
}

// callResult is the call's result in words, as the card's feed shows it.
func callResult(ev *callevent.Event) string {
	var parts []string
	switch ev.Disposition {
	case callevent.DispAnswered:
		p := "Answered"
		if ev.AnsweredBy != "" {
			p += " by " + ev.AnsweredBy
		}
		parts = append(parts, p+", talked "+strconv.Itoa(ev.TalkSeconds)+" s")
	case callevent.DispBusy:
		parts = append(parts, "Busy")
	case callevent.DispFailed:
		parts = append(parts, "Failed")
	default:
		if ev.Direction == callevent.Inbound {
			parts = append(parts, "Missed")
		} else {
			parts = append(parts, "No answer")
		}
	}
	if ev.Direction == callevent.Inbound && ev.Disposition != callevent.DispAnswered && len(ev.ExtensionsRang) > 0 {
		parts = append(parts, "rang "+strings.Join(ev.ExtensionsRang, ", "))
	}
	for _, t := range ev.Transfers {
		parts = append(parts, string(t.Kind)+" transfer "+t.From+" → "+t.To)
	}
	return strings.Join(parts, "; ")
}

// attempt runs one request that creates something in amoCRM, with the bookkeeping that makes it
// happen once: the mark "under way" is saved before it is sent, and cleared (with what f recorded
// into the state) as soon as the outcome is known. A request whose outcome is unknown keeps the
// mark, for the next attempt to look before sending again.
func (h *Handler) attempt(ctx context.Context, tx *callstate.Tx[State], what string, f func() error) error {
	tx.State.Pending = &Attempt{What: what, Since: h.opt.Now().UTC()}
	if err := tx.Save(ctx); err != nil {
		return fmt.Errorf("before %s: %w", what, err)
	}
	err := f()
	if e, ok := amo.AsError(err); ok && e.MaybeApplied() {
		h.met.uncertain.Inc()
		return err
	}
	tx.State.Pending = nil
	// Saved now, not only when the update ends: a crash in between would repeat the request.
	if serr := tx.Save(context.WithoutCancel(ctx)); serr != nil {
		return errors.Join(err, fmt.Errorf("after %s: %w", what, serr))
	}
	return err
}

// resolvePending finds out whether a request that got no answer was applied, waiting first until
// amoCRM must have finished with it.
func (h *Handler) resolvePending(ctx context.Context, ev *callevent.Event, tx *callstate.Tx[State], log logrus.FieldLogger) error {
	s := tx.State
	p := s.Pending
	if p == nil {
		return nil
	}
	if wait := p.Since.Add(h.opt.Settle).Sub(h.opt.Now()); wait > 0 {
		log.WithField("wait", wait.Round(time.Millisecond).String()).Info("a request for this call got no answer; waiting before looking whether amoCRM applied it")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	switch p.What {
	case "call", "note":
		since := p.Since
		if !ev.StartedAt.IsZero() && ev.StartedAt.Before(since) {
			since = ev.StartedAt // amoCRM dates the note by the call's created_at
		}
		n, found, err := h.api.FindCallNote(ctx, ev.CallID, since.Add(-10*time.Minute))
		if err != nil {
			return fmt.Errorf("looking whether the call was logged: %w", err)
		}
		if found {
			log.WithField("note_id", n.ID).Info("the call was logged although its request got no answer; not sending it again")
			s.NoteID, s.EntityType, s.EntityID, s.Logged = n.ID, n.EntityType, n.EntityID, h.opt.Now().UTC()
			h.met.reconciled.WithLabelValues("found").Inc()
		} else {
			h.met.reconciled.WithLabelValues("not_found").Inc()
		}
	case "task":
		// Tasks carry no key to find them by: a rare duplicate reminder is better than a missed
		// call nobody calls back, so the task is sent again.
		log.Warn("a missed-call task request got no answer; sending it again (it may appear twice)")
	}
	// unsorted: the same source_uid is refused, which tells it was applied; complex: the contact
	// search before creating finds it. Both are safe to run again.
	s.Pending = nil
	return tx.Save(ctx)
}

// logCall puts the call into amoCRM.
func (h *Handler) logCall(ctx context.Context, ev *callevent.Event, call amo.Call, tx *callstate.Tx[State], log logrus.FieldLogger) error {
	s := tx.State
	if err := h.resolvePending(ctx, ev, tx, log); err != nil {
		return err
	}
	if s.logged() {
		return nil
	}
	if s.LeadID > 0 {
		// A contact and lead were made for this call earlier; the call goes on that lead.
		return h.addCallOrNote(ctx, call, tx, s.LeadID)
	}
	err := h.attempt(ctx, tx, "call", func() error {
		added, err := h.api.AddCall(ctx, call)
		if err == nil {
			h.recordCall(s, added)
		}
		return err
	})
	if !amo.IsNotAdded(err) {
		return err
	}
	return h.unknownNumber(ctx, ev, call, tx, log)
}

func (h *Handler) recordCall(s *State, added amo.AddedCall) {
	s.CallID, s.EntityType, s.EntityID, s.Logged = added.ID, added.EntityType, added.EntityID, h.opt.Now().UTC()
}

// unknownNumber handles a call whose number amoCRM found on no card, by amo.unknown_numbers.
func (h *Handler) unknownNumber(ctx context.Context, ev *callevent.Event, call amo.Call, tx *callstate.Tx[State], log logrus.FieldLogger) error {
	s := tx.State
	switch {
	case h.opt.Amo.UnknownNumbers == "none":
		s.Skipped = "no contact or company has this number (amo.unknown_numbers: none)"
		return nil
	case h.opt.Amo.UnknownNumbers == "unsorted" && ev.Direction != callevent.Inbound:
		// Unsorted holds incoming requests; an outgoing call to a stranger makes none.
		s.Skipped = "outgoing call to a number on no card: Unsorted takes incoming calls only (amo.unknown_numbers: contact would make a contact)"
		return nil
	}
	mode := h.opt.Amo.UnknownNumbers
	// One call at a time per number: two calls from a new number at once must not make two
	// contacts. The call's lock is held already; the number's lock is always taken inside it.
	key := h.opt.Prefix + ":phone:" + phoneKey(ev.External)
	lock, err := h.st.Lock(ctx, key+":lock", 2*time.Minute)
	if err != nil {
		return fmt.Errorf("locking number %s: %w", ev.External, err)
	}
	defer lock.Release(context.WithoutCancel(ctx))

	// amoCRM's own matching found no card; search as well before creating one (a card made since,
	// or one its matching misses), in the forms the search needs.
	contacts, err := h.findByPhone(ctx, ev.External)
	if err != nil {
		return err
	}
	if len(contacts) > 0 {
		log.WithField("contact_id", contacts[0].ID).Info("the number is on a contact after all; sending the call again")
		err := h.attempt(ctx, tx, "call", func() error {
			added, err := h.api.AddCall(ctx, call)
			if err == nil {
				h.recordCall(s, added)
			}
			return err
		})
		if amo.IsNotAdded(err) {
			if leads := contacts[0].LeadIDs; len(leads) > 0 {
				return h.addCallOrNote(ctx, call, tx, leads[0])
			}
			return h.note(ctx, call, tx, "contacts", contacts[0].ID)
		}
		return err
	}
	var memo numberMemo
	if _, err := h.st.GetJSON(ctx, key, &memo); err != nil {
		return err
	}
	switch mode {
	case "unsorted":
		if memo.UnsortedLeadID > 0 {
			// The number has an incoming lead waiting in Unsorted (its contact is hidden until
			// accepted): this call goes onto that lead, not into a second one.
			err := h.note(ctx, call, tx, "leads", memo.UnsortedLeadID)
			if e, ok := amo.AsError(err); ok && e.Kind == amo.KindInvalid {
				log.WithError(err).Info("the number's incoming lead is gone; making a new one")
			} else {
				return err
			}
		}
		return h.unsorted(ctx, ev, call, tx, key)
	default: // contact
		if memo.LeadID > 0 {
			// Made by an earlier call, not yet found by amoCRM's search.
			return h.addCallOrNote(ctx, call, tx, memo.LeadID)
		}
		name := strings.ReplaceAll(h.opt.Amo.LeadName, "{phone}", ev.External)
		var made amo.ComplexAdded
		err := h.attempt(ctx, tx, "complex", func() error {
			var err error
			made, err = h.api.AddLeadWithContact(ctx,
				amo.NewLead{Name: name, PipelineID: h.opt.Amo.PipelineID, ResponsibleUserID: call.ResponsibleUserID},
				amo.NewContact{Name: ev.External, Phone: ev.External, ResponsibleUserID: call.ResponsibleUserID},
				ev.CallID)
			if err == nil {
				s.ContactID, s.LeadID = made.ContactID, made.LeadID
			}
			return err
		})
		if err != nil {
			return err
		}
		if err := h.st.SetJSON(ctx, key, numberMemo{ContactID: made.ContactID, LeadID: made.LeadID}, 30*24*time.Hour); err != nil {
			log.WithError(err).Warn("cannot remember the contact made for this number")
		}
		return h.addCallOrNote(ctx, call, tx, made.LeadID)
	}
}

// numberMemo is what the connector made for a number, in Redis: amoCRM hides the contact of an
// incoming lead until it is accepted, and its search may not see a new contact at once.
type numberMemo struct {
	UnsortedLeadID int    `json:"unsorted_lead_id,omitempty"`
	UnsortedUID    string `json:"unsorted_uid,omitempty"`
	ContactID      int    `json:"contact_id,omitempty"`
	LeadID         int    `json:"lead_id,omitempty"`
}

// unsorted makes an incoming lead with the call.
func (h *Handler) unsorted(ctx context.Context, ev *callevent.Event, call amo.Call, tx *callstate.Tx[State], key string) error {
	s := tx.State
	name := strings.ReplaceAll(h.opt.Amo.LeadName, "{phone}", ev.External)
	u := amo.UnsortedCall{
		SourceUID:       "ringbridge:" + ev.PBX + ":" + ev.CallID,
		SourceName:      h.opt.Amo.Source,
		PipelineID:      h.opt.Amo.PipelineID,
		Uniq:            ev.CallID,
		From:            ev.External,
		Phone:           lineOf(ev),
		CalledAt:        call.CreatedAt,
		Duration:        call.Duration,
		Link:            call.Link,
		CallResponsible: call.CallResponsible,
		Lead:            amo.NewLead{Name: name, PipelineID: h.opt.Amo.PipelineID, ResponsibleUserID: call.ResponsibleUserID},
		Contact:         amo.NewContact{Name: ev.External, Phone: ev.External, ResponsibleUserID: call.ResponsibleUserID},
	}
	if u.CalledAt == 0 {
		u.CalledAt = h.opt.Now().Unix()
	}
	var added amo.UnsortedAdded
	err := h.attempt(ctx, tx, "unsorted", func() error {
		var err error
		added, err = h.api.AddUnsortedCall(ctx, u)
		switch {
		case err == nil:
			s.UnsortedUID, s.EntityType, s.EntityID, s.Logged = added.UID, "leads", added.LeadID, h.opt.Now().UTC()
		case errors.Is(err, amo.ErrUnsortedExists):
			// Our own earlier request for this call was applied although its answer was lost.
			s.UnsortedUID, s.Logged = u.SourceUID, h.opt.Now().UTC()
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if added.LeadID > 0 {
		memo := numberMemo{UnsortedLeadID: added.LeadID, UnsortedUID: added.UID}
		if err := h.st.SetJSON(ctx, key, memo, 7*24*time.Hour); err != nil {
			h.log.WithError(err).Warn("cannot remember the incoming lead made for this number")
		}
	}
	return nil
}

// lineOf is the number the customer called (or was called from): the line, else the extension.
func lineOf(ev *callevent.Event) string {
	if ev.Line != "" {
		return ev.Line
	}
	return ev.Extension
}

// addCallOrNote sends the call through /api/v4/calls (amoCRM picks the card: the lead made for
// it, a contact with one active lead); if amoCRM still finds no card (its search lags behind a
// new contact), the call goes onto leadID as a note.
func (h *Handler) addCallOrNote(ctx context.Context, call amo.Call, tx *callstate.Tx[State], leadID int) error {
	s := tx.State
	err := h.attempt(ctx, tx, "call", func() error {
		added, err := h.api.AddCall(ctx, call)
		if err == nil {
			h.recordCall(s, added)
		}
		return err
	})
	if amo.IsNotAdded(err) {
		return h.note(ctx, call, tx, "leads", leadID)
	}
	return err
}

// note adds the call as a call note on a given card.
func (h *Handler) note(ctx context.Context, call amo.Call, tx *callstate.Tx[State], entityType string, id int) error {
	s := tx.State
	return h.attempt(ctx, tx, "note", func() error {
		nid, err := h.api.AddCallNote(ctx, amo.CallNote{EntityType: entityType, EntityID: id, Call: call})
		if err == nil {
			s.NoteID, s.EntityType, s.EntityID, s.Logged = nid, entityType, id, h.opt.Now().UTC()
		}
		return err
	})
}

// findByPhone searches contacts by the number in the forms amoCRM's search matches (it looks for
// the query's digits inside the stored value, so 79161234567 misses 8 916 123-45-67: the last ten
// digits find every form, the full forms cover a search that matches whole numbers), and keeps
// those that really have the number.
func (h *Handler) findByPhone(ctx context.Context, number string) ([]amo.Contact, error) {
	for _, q := range searchForms(h.opt.Country, number) {
		cs, err := h.api.FindContacts(ctx, q)
		if err != nil {
			return nil, err
		}
		var same []amo.Contact
		for _, c := range cs {
			for _, p := range c.Phones {
				if samePhone(p, number) {
					same = append(same, c)
					break
				}
			}
		}
		if len(same) > 0 {
			return same, nil
		}
	}
	return nil, nil
}

// searchForms are the queries for a number: its last ten digits, then the international and the
// national forms (+7/7/8 for RU).
func searchForms(country, number string) []string {
	d := strings.TrimPrefix(phone.Digits(phone.Normalize(country, number)), "+")
	if len(d) < 10 {
		return []string{d}
	}
	forms := []string{d[len(d)-10:], d}
	if p, ok := phone.Lookup(country); ok && strings.HasPrefix(d, p.CountryCode) && p.TrunkPrefix != "" {
		forms = append(forms, p.TrunkPrefix+d[len(p.CountryCode):])
	}
	forms = append(forms, "+"+d)
	out := forms[:0]
	seen := map[string]bool{}
	for _, f := range forms {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// samePhone compares numbers as amoCRM does for calls: by the last ten digits (short numbers
// whole).
func samePhone(a, b string) bool {
	da := strings.TrimPrefix(phone.Digits(a), "+")
	db := strings.TrimPrefix(phone.Digits(b), "+")
	if da == "" || db == "" {
		return false
	}
	if len(da) >= 10 && len(db) >= 10 {
		return da[len(da)-10:] == db[len(db)-10:]
	}
	return da == db
}

// phoneKey is the Redis key part of a number: its last ten digits.
func phoneKey(number string) string {
	d := strings.TrimPrefix(phone.Digits(number), "+")
	if len(d) > 10 {
		d = d[len(d)-10:]
	}
	return d
}

// wantsTask: a missed inbound call gets a task when configured.
func (h *Handler) wantsTask(ev *callevent.Event) bool {
	return h.opt.Amo.MissedCallTask.Enabled && ev.Direction == callevent.Inbound && ev.Disposition != callevent.DispAnswered
}

// addTask makes the missed-call task for the responsible employee.
func (h *Handler) addTask(ctx context.Context, ev *callevent.Event, tx *callstate.Tx[State]) error {
	s := tx.State
	t := h.opt.Amo.MissedCallTask
	responsible := h.opt.Amo.UserOf(ev.Extension)
	if responsible == 0 {
		responsible = h.opt.Amo.DefaultUserID
	}
	task := amo.Task{
		Text:              strings.ReplaceAll(t.Text, "{phone}", ev.External),
		CompleteTill:      h.opt.Now().Add(t.Deadline),
		TaskTypeID:        t.TaskTypeID,
		ResponsibleUserID: responsible,
		RequestID:         ev.CallID,
	}
	if s.EntityType != "" && s.EntityID > 0 {
		task.EntityType, task.EntityID = s.EntityType, s.EntityID
	}
	return h.attempt(ctx, tx, "task", func() error {
		id, err := h.api.AddTask(ctx, task)
		if err == nil {
			s.TaskID = id
		}
		return err
	})
}

type metrics struct {
	outcomes      *prometheus.CounterVec
	notifications *prometheus.CounterVec
	reconciled    *prometheus.CounterVec
	uncertain     prometheus.Counter
	endedSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_amo_calls_total",
			Help: "Ended calls by outcome: logged, skipped (internal, anonymous, unknown number with unknown_numbers none), duplicate (already handled).",
		}, []string{"outcome"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_amo_notifications_total",
			Help: "Incoming-call notifications by result.",
		}, []string{"result"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_amo_unanswered_requests_checked_total",
			Help: "Calls whose request got no answer, checked in amoCRM: found (not sent again) or not_found (sent again).",
		}, []string{"result"}),
		uncertain: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_amo_unanswered_requests_total",
			Help: "Requests that create something in amoCRM and got no answer (checked before any resend).",
		}),
		endedSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringbridge_amo_call_seconds",
			Help:    "Time to put one ended call into amoCRM (rate-limit waits included).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60},
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.outcomes, m.notifications, m.reconciled, m.uncertain, m.endedSeconds} {
			_ = reg.Register(c)
		}
	}
	return m
}
