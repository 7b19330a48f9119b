// Package callflow turns call events into Bitrix24 telephony — register, show, hide, finish,
// attachRecord — exactly once per call, and runs click-to-call (ONEXTERNALCALLSTART).
//
// Exactly once: every call has its state in Redis (internal/callstate), updated under the call's
// lock. Each CRM request that succeeds is recorded in the state at once (tx.Save), so a
// redelivered event, a second replica or a restarted connector sees it done and does not repeat
// it. The one window left — a crash between Bitrix24's answer and the save — is closed on the
// portal's side: register is sent with EXTERNAL_CALL_ID = the call's id, so a repeat returns the
// same CALL_ID (the 30-minute rule), and a finish repeated after its answer was lost gets "Call is
// not found", which counts as done once the call has a CALL_ID.
//
// Ordering: events may arrive late or twice (retries, redeliveries); each is judged by the state,
// not by the order. A `ringing` older than the last answer shows no card; anything after `ended`
// only completes what `ended` left (the recording). The `ended` event carries the whole call, so
// a call whose earlier events were lost is still registered and finished from it alone.
package callflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/callstate"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
)

// State is what connector-bx did in Bitrix24 for one call.
type State struct {
	// CallID is Bitrix24's CALL_ID, once registered (or given by Bitrix24 for click-to-call).
	CallID string `json:"call_id,omitempty"`
	// ByCRM: Bitrix24 registered the call itself (click-to-call); it is only finished here.
	ByCRM   bool `json:"by_crm,omitempty"`
	RegUser int  `json:"reg_user,omitempty"`
	// Shown are the users whose screen shows the card now.
	Shown []int `json:"shown,omitempty"`
	// AnsweredAt is the time of the latest answer: a ringing event older than it is stale.
	AnsweredAt time.Time `json:"answered_at,omitempty"`
	Finished   bool      `json:"finished,omitempty"`
	FinishUser int       `json:"finish_user,omitempty"`
	Status     string    `json:"status,omitempty"`
	// Attached: the recording is attached, or AttachSkipped says why it never will be.
	Attached      bool   `json:"attached,omitempty"`
	AttachSkipped string `json:"attach_skipped,omitempty"`
	// Events are the ids of the events handled (not ended: its work is tracked by the flags).
	Events []string `json:"events,omitempty"`
	Lead   int      `json:"lead,omitempty"`
}

// CRM is the part of the Bitrix24 client the flow uses.
type CRM interface {
	Register(ctx context.Context, r bitrix.RegisterRequest) (bitrix.Registration, error)
	Show(ctx context.Context, callID string, users []int) (bool, error)
	Hide(ctx context.Context, callID string, users []int) (bool, error)
	Finish(ctx context.Context, f bitrix.FinishRequest) (bitrix.Finished, error)
	AttachRecordURL(ctx context.Context, callID, fileName, recordURL string) (bitrix.Attached, error)
	AttachRecordContent(ctx context.Context, callID, fileName string, content []byte) (bitrix.Attached, error)
	AttachRecordUpload(ctx context.Context, callID, fileName string, content []byte) (bitrix.Attached, error)
	SearchCRM(ctx context.Context, phone string) ([]bitrix.CRMEntity, error)
}

// Users maps extensions and users (directory.Directory).
type Users interface {
	User(ctx context.Context, ext, callID string) (int, bool, error)
	Extension(ctx context.Context, userID int) (string, bool, error)
}

// Options configure a Flow.
type Options struct {
	Config config.Bitrix
	// Country is classify.country, for numbers.
	Country string
	// Prefix starts the Redis keys (default ringbridge:connector-bx).
	Prefix string
	// StateTTL is how long a call's state is kept after its last event (default a day).
	StateTTL   time.Duration
	Logger     *logrus.Entry
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Flow handles call events.
type Flow struct {
	crm    CRM
	users  Users
	st     *store.Store
	states *callstate.Store[State]
	rules  Rules
	cfg    config.Bitrix
	prefix string
	log    *logrus.Entry
	m      *metrics
	now    func() time.Time
}

// New builds a Flow.
func New(opt Options, crm CRM, users Users, st *store.Store) *Flow {
	if opt.Prefix == "" {
		opt.Prefix = "ringbridge:connector-bx"
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Flow{
		crm: crm, users: users, st: st,
		states: callstate.New[State](st, opt.Prefix, opt.StateTTL),
		rules:  NewRules(opt.Config, opt.Country),
		cfg:    opt.Config,
		prefix: opt.Prefix,
		log:    opt.Logger,
		m:      newMetrics(opt.Registerer),
		now:    opt.Now,
	}
}

// State returns a call's state (admin's journal, tests).
func (f *Flow) State(ctx context.Context, pbx, callID string) (*State, bool, error) {
	return f.states.Get(ctx, pbx, callID)
}

// Consume is the bus handler of the calls queue: a message that is not a valid call event, and an
// error retrying cannot fix, are parked at once; other errors go to the retry queues.
func (f *Flow) Consume(ctx context.Context, d bus.Delivery) error {
	ev, err := callevent.Unmarshal(d.Body)
	if err != nil {
		return bus.Permanent(err)
	}
	err = f.Handle(ctx, ev)
	if err != nil && (bitrix.IsPermanent(err) || errors.Is(err, errPermanent)) {
		return bus.Permanent(err)
	}
	return err
}

// errPermanent marks the flow's own errors that no retry fixes (a call with no user at all).
var errPermanent = errors.New("permanent")

type permanentf struct{ msg string }

func (p permanentf) Error() string        { return p.msg }
func (p permanentf) Is(target error) bool { return target == errPermanent }

// Handle applies one call event.
func (f *Flow) Handle(ctx context.Context, ev *callevent.Event) error {
	log := f.log.WithFields(logrus.Fields{"call_id": ev.CallID, "pbx": ev.PBX, "event": string(ev.Kind), "event_id": ev.ID})
	if reason := f.rules.Skip(ev); reason != "" {
		f.m.skipped.WithLabelValues(reason).Inc()
		log.WithField("reason", reason).Debug("call skipped by the rules")
		return nil
	}
	start := f.now()
	err := f.states.Update(ctx, ev.PBX, ev.CallID, func(ctx context.Context, tx *callstate.Tx[State]) error {
		c := &callTx{f: f, tx: tx, st: tx.State, ev: ev, log: log}
		return c.apply(ctx)
	})
	f.m.events.WithLabelValues(string(ev.Kind), outcome(err)).Inc()
	f.m.latency.WithLabelValues(string(ev.Kind)).Observe(f.now().Sub(start).Seconds())
	if err != nil {
		log.WithError(err).Warn("call event not done")
	}
	return err
}

// callTx is one event applied to one call under its lock.
type callTx struct {
	f   *Flow
	tx  *callstate.Tx[State]
	st  *State
	ev  *callevent.Event
	log *logrus.Entry
}

func (c *callTx) save(ctx context.Context) error { return c.tx.Save(ctx) }

func (c *callTx) apply(ctx context.Context) error {
	ev, st := c.ev, c.st
	if ev.Kind != callevent.Ended && slices.Contains(st.Events, ev.ID) {
		return nil // done before: a redelivery
	}
	if st.Finished {
		if ev.Kind == callevent.Ended {
			return c.attach(ctx)
		}
		return nil // late: the call is over in Bitrix24
	}
	var err error
	switch ev.Kind {
	case callevent.Started, callevent.Transferred:
		_, err = c.ensureRegistered(ctx, false)
	case callevent.Ringing:
		err = c.ringing(ctx)
	case callevent.Answered:
		err = c.answered(ctx)
	case callevent.Ended:
		return c.ended(ctx)
	}
	if err != nil {
		return err
	}
	callstate.Seen(&st.Events, ev.ID)
	return nil
}

// ensureRegistered registers the call once it can name a user: the first event that names a
// mapped extension, or at the latest the ended event (final), which always names someone.
func (c *callTx) ensureRegistered(ctx context.Context, final bool) (bool, error) {
	ev, st := c.ev, c.st
	if st.CallID != "" {
		return true, nil
	}
	if ev.CRMCallID != "" {
		// Click-to-call: Bitrix24 registered it and showed the card to who clicked.
		st.CallID, st.ByCRM = ev.CRMCallID, true
		if cl, ok, _ := c.f.click(ctx, ev.CRMCallID); ok {
			st.RegUser = cl.UserID
			st.Shown = []int{cl.UserID}
		}
		c.log.WithField("crm_call_id", ev.CRMCallID).Info("click-to-call: the call is registered by Bitrix24; it is only finished here")
		return true, c.save(ctx)
	}
	user, ok, err := c.registerUser(ctx, final)
	if err != nil {
		return false, err
	}
	if !ok {
		if final {
			return false, c.f.errNoUser(ev)
		}
		return false, nil
	}
	number := c.f.rules.Number(ev.External)
	if ev.Direction == callevent.Internal {
		number = c.otherExtension()
	}
	if number == "" {
		if !final {
			return false, nil
		}
		return false, permanentf{fmt.Sprintf("call %s has no outside number to register in Bitrix24", ev.CallID)}
	}
	lead, source := c.f.rules.Lead(ev)
	req := bitrix.RegisterRequest{
		UserID: user, PhoneNumber: number, Type: c.f.rules.Type(ev), StartedAt: ev.StartedAt,
		CRMCreate: lead, CRMSource: source, Show: false, AddToChat: c.f.cfg.Calls.Chat,
		LineNumber: c.f.rules.Number(ev.Line), ExternalCallID: ev.CallID,
	}
	if ev.StartedAt.IsZero() {
		req.StartedAt = ev.At
	}
	reg, err := c.f.crm.Register(ctx, req)
	if err != nil {
		return false, fmt.Errorf("register call %s: %w", ev.CallID, err)
	}
	st.CallID, st.RegUser, st.Lead = reg.CallID, user, reg.CRMCreatedLead
	c.f.m.registered.Inc()
	log := c.log.WithFields(logrus.Fields{"crm_call_id": reg.CallID, "user_id": user})
	if reg.LeadCreationError != "" {
		c.f.m.leadErrors.Inc()
		log.WithField("lead_creation_error", reg.LeadCreationError).
			Warn("Bitrix24 did not create a lead for the unknown number: " + reg.LeadCreationError)
	}
	log.Info("call registered in Bitrix24")
	return true, c.save(ctx)
}

// registerUser picks the user a call is registered for: the extension the event names, the
// first one dialled, or for the ended event whoever the call ends with.
func (c *callTx) registerUser(ctx context.Context, final bool) (int, bool, error) {
	ev := c.ev
	if final {
		u, err := c.finishUser(ctx)
		return u, u > 0, err
	}
	var exts []string
	switch ev.Kind {
	case callevent.Ringing, callevent.Answered, callevent.Transferred:
		if ev.Direction != callevent.Internal {
			exts = append(exts, ev.Extension)
		}
	case callevent.Started:
		if ev.Direction == callevent.Inbound {
			exts = append(exts, ev.ExtensionsRang...)
		}
	}
	if ev.Direction == callevent.Internal {
		return 0, false, nil // the caller is named only at the end
	}
	for _, x := range exts {
		if u, ok, err := c.f.users.User(ctx, x, ev.CallID); err != nil || ok {
			return u, ok, err
		}
	}
	return 0, false, nil
}

// otherExtension is the number an internal call is registered with: the called extension.
func (c *callTx) otherExtension() string {
	if c.ev.AnsweredBy != "" {
		return c.ev.AnsweredBy
	}
	if len(c.ev.ExtensionsRang) > 0 {
		return c.ev.ExtensionsRang[0]
	}
	return ""
}

func (c *callTx) ringing(ctx context.Context) error {
	ev, st := c.ev, c.st
	ok, err := c.ensureRegistered(ctx, false)
	if err != nil || !ok {
		return err
	}
	if c.f.cfg.Calls.ShowCard != "ringing" {
		return nil
	}
	if !st.AnsweredAt.IsZero() && ev.At.Before(st.AnsweredAt) {
		c.log.Debug("ringing older than the answer: no card")
		return nil
	}
	user, ok, err := c.f.users.User(ctx, ev.Extension, ev.CallID)
	if err != nil || !ok || slices.Contains(st.Shown, user) {
		return err
	}
	return c.show(ctx, user)
}

func (c *callTx) show(ctx context.Context, user int) error {
	shown, err := c.f.crm.Show(ctx, c.st.CallID, []int{user})
	if err != nil {
		return fmt.Errorf("show call %s to user %d: %w", c.ev.CallID, user, err)
	}
	if !shown {
		c.log.WithField("user_id", user).Warn("Bitrix24 does not know the call any more (show answered false)")
	}
	c.st.Shown = append(c.st.Shown, user)
	c.f.m.shown.Inc()
	return c.save(ctx)
}

// answered shows the card to who answered and hides it from everyone else it was shown to.
func (c *callTx) answered(ctx context.Context) error {
	ev, st := c.ev, c.st
	ok, err := c.ensureRegistered(ctx, false)
	if err != nil || !ok {
		return err
	}
	if ev.At.After(st.AnsweredAt) {
		st.AnsweredAt = ev.At
	}
	user, mapped, err := c.f.users.User(ctx, ev.Extension, ev.CallID)
	if err != nil {
		return err
	}
	if mapped && c.f.cfg.Calls.ShowCard != "never" && !slices.Contains(st.Shown, user) {
		if err := c.show(ctx, user); err != nil {
			return err
		}
	}
	var others []int
	for _, u := range st.Shown {
		if !mapped || u != user {
			others = append(others, u)
		}
	}
	if len(others) == 0 {
		return nil
	}
	if _, err := c.f.crm.Hide(ctx, st.CallID, others); err != nil {
		return fmt.Errorf("hide call %s from users %v: %w", ev.CallID, others, err)
	}
	st.Shown = slices.DeleteFunc(st.Shown, func(u int) bool { return slices.Contains(others, u) })
	return c.save(ctx)
}

// ended registers the call if nothing did yet, finishes it, and attaches the recording.
func (c *callTx) ended(ctx context.Context) error {
	ev, st := c.ev, c.st
	if _, err := c.ensureRegistered(ctx, true); err != nil {
		return err
	}
	user, err := c.finishUser(ctx)
	if err != nil {
		return err
	}
	if user == 0 {
		user = st.RegUser
	}
	if st.ByCRM {
		if done, err := c.f.crmFinished(ctx, st.CallID); err != nil {
			return err
		} else if done {
			st.Finished = true
			c.log.WithField("crm_call_id", st.CallID).Info("click-to-call finished already (its originate failed)")
			return c.save(ctx)
		}
	}
	code, reason := c.f.rules.Status(ev)
	_, err = c.f.crm.Finish(ctx, bitrix.FinishRequest{CallID: st.CallID, UserID: user, Duration: c.f.rules.Duration(ev),
		StatusCode: code, FailedReason: reason, AddToChat: c.f.cfg.Calls.Chat})
	switch {
	case bitrix.IsCallNotFound(err):
		// Ours was finished by an earlier attempt whose answer was lost, or by the click path.
		c.log.WithField("crm_call_id", st.CallID).Warn("Bitrix24 holds the call as finished already; not finishing it again")
	case err != nil:
		return fmt.Errorf("finish call %s: %w", ev.CallID, err)
	default:
		c.f.m.finished.WithLabelValues(code).Inc()
	}
	st.Finished, st.FinishUser, st.Status, st.Shown = true, user, code, nil
	if st.ByCRM {
		c.f.markCRMFinished(ctx, st.CallID)
	}
	c.log.WithFields(logrus.Fields{"crm_call_id": st.CallID, "user_id": user, "status": code, "duration": c.f.rules.Duration(ev)}).
		Info("call finished in Bitrix24")
	if err := c.save(ctx); err != nil {
		return err
	}
	return c.attach(ctx)
}

// finishUser is who the call is finished for: for an answered call who talked (last, or first
// by config); for an outgoing one who placed it; for a missed inbound call the responsible by
// the rules (the line's own, default, the CRM entity's, or the first that rang).
func (c *callTx) finishUser(ctx context.Context) (int, error) {
	ev, st, cfg := c.ev, c.st, c.f.cfg
	try := func(exts ...string) (int, error) {
		for _, x := range exts {
			if x == "" {
				continue
			}
			u, ok, err := c.f.users.User(ctx, x, ev.CallID)
			if err != nil || ok {
				return u, err
			}
		}
		return 0, nil
	}
	fallback := func() int {
		switch {
		case st.RegUser > 0:
			return st.RegUser
		case cfg.Missed.DefaultUserID > 0:
			return cfg.Missed.DefaultUserID
		}
		return 0
	}
	if ev.Disposition == callevent.DispAnswered {
		u, err := try(c.f.rules.answeredExtensions(ev)...)
		if err != nil || u > 0 {
			return u, err
		}
		return fallback(), nil
	}
	if ev.Direction != callevent.Inbound {
		u, err := try(ev.Extension)
		if err != nil || u > 0 {
			return u, err
		}
		return fallback(), nil
	}
	if u := c.f.rules.lineUser(ev.Line); u > 0 {
		return u, nil
	}
	switch cfg.Missed.Responsible {
	case "default":
		if cfg.Missed.DefaultUserID > 0 {
			return cfg.Missed.DefaultUserID, nil
		}
	case "crm":
		if ev.External != "" {
			hits, err := c.f.crm.SearchCRM(ctx, c.f.rules.Number(ev.External))
			if err != nil {
				c.log.WithError(err).Warn("cannot look up the caller's responsible in the CRM; using the first that rang")
			}
			for _, h := range hits {
				if h.AssignedByID > 0 {
					return h.AssignedByID, nil
				}
			}
		}
	}
	u, err := try(append([]string{ev.Extension}, ev.ExtensionsRang...)...)
	if err != nil || u > 0 {
		return u, err
	}
	return fallback(), nil
}

func (f *Flow) errNoUser(ev *callevent.Event) error {
	if ev.Extension == "" && len(ev.ExtensionsRang) == 0 && ev.AnsweredBy == "" {
		return permanentf{fmt.Sprintf("call %s from %s reached no extension (it ended in the IVR or a queue before any phone rang) "+
			"and bitrix.missed.default_user_id is not set: set it to record such calls in Bitrix24 as missed, then requeue the message", ev.CallID, ev.External)}
	}
	return permanentf{fmt.Sprintf("call %s: none of its extensions (%s %v) has a Bitrix24 user and bitrix.missed.default_user_id is not set: "+
		"set the Internal phone of the users in Bitrix24 or map the extensions in bitrix.users, then requeue the message", ev.CallID, ev.Extension, ev.ExtensionsRang)}
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return bitrix.KindOf(err).String()
}
