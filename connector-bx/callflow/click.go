package callflow

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/command"
	"github.com/ringbridge/ringbridge/internal/phone"
)

// Click is a click-to-call as ONEXTERNALCALLSTART tells it: Bitrix24 registered the call already
// (CallID) for the user who clicked; the PBX must ring that user's phone, then the number.
type Click struct {
	CallID    string    `json:"call_id"`
	UserID    int       `json:"user_id"`
	Number    string    `json:"number"`
	Extension string    `json:"extension,omitempty"`
	At        time.Time `json:"at"`
}

// Originator sends the originate command to the PBX's gateway and waits for its reply.
type Originator interface {
	Originate(ctx context.Context, req command.Originate) (command.OriginateReply, error)
}

// BusOriginator is the Originator over RabbitMQ RPC: routing key originate.<pbx> on the commands
// exchange.
type BusOriginator struct {
	Bus *bus.Bus
	PBX string
}

// Originate calls the gateway.
func (o BusOriginator) Originate(ctx context.Context, req command.Originate) (command.OriginateReply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return command.OriginateReply{}, err
	}
	out, err := o.Bus.Call(ctx, bus.ExchangeCommands, command.OriginateKey(o.PBX), body)
	if err != nil {
		return command.OriginateReply{}, err
	}
	var rep command.OriginateReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return command.OriginateReply{}, fmt.Errorf("the gateway's reply is not JSON: %w", err)
	}
	return rep, nil
}

func (f *Flow) clickKey(callID string) string   { return f.prefix + ":click:" + callID }
func (f *Flow) crmDoneKey(callID string) string { return f.prefix + ":crmcall:" + callID + ":finished" }

// clickTTL keeps a click as long as a call's state.
const clickTTL = 24 * time.Hour

// StartClick records a click: one Redis command, so the caller answers Bitrix24 at once and rings
// the phone in the background (RunClick). new is false when the same CALL_ID was clicked before
// (the event came twice): nothing is to be done then.
func (f *Flow) StartClick(ctx context.Context, cl Click) (Click, bool, error) {
	if cl.CallID == "" || cl.UserID <= 0 {
		return cl, false, fmt.Errorf("click-to-call: CALL_ID %q and USER_ID %d: both are needed", cl.CallID, cl.UserID)
	}
	if cl.At.IsZero() {
		cl.At = f.now()
	}
	b, _ := json.Marshal(cl)
	fresh, err := f.st.Client().SetNX(ctx, f.clickKey(cl.CallID), b, clickTTL).Result()
	if err != nil {
		return cl, false, fmt.Errorf("click-to-call: recording the click: %w", err)
	}
	return cl, fresh, nil
}

// click reads a recorded click.
func (f *Flow) click(ctx context.Context, callID string) (Click, bool, error) {
	var cl Click
	found, err := f.st.GetJSON(ctx, f.clickKey(callID), &cl)
	return cl, found, err
}

// RunClick rings the employee through the gateway. When the gateway cannot ring the phone at
// all (no extension, the gateway down, Asterisk refused), no call event will ever come, so the
// call Bitrix24 registered is finished here; otherwise the call's events finish it.
func (f *Flow) RunClick(ctx context.Context, cl Click, orig Originator, ringTimeout time.Duration) {
	if cl.Extension == "" {
		ext, ok, err := f.users.Extension(ctx, cl.UserID)
		if err != nil {
			f.log.WithError(err).WithField("crm_call_id", cl.CallID).Warn("click-to-call: cannot read the user directory")
		} else if ok {
			cl.Extension = ext
		}
	}
	log := f.log.WithFields(logrus.Fields{"crm_call_id": cl.CallID, "user_id": cl.UserID, "extension": cl.Extension})
	if cl.Extension == "" {
		f.m.clicks.WithLabelValues("no-extension").Inc()
		log.Warn("click-to-call: the user has no extension: set the Internal phone (UF_PHONE_INNER) in the user's Bitrix24 profile, or map it in bitrix.users")
		f.finishClick(ctx, cl, bitrix.StatusNotFound, fmt.Sprintf("user %d has no PBX extension", cl.UserID), log)
		return
	}
	number := phone.Digits(cl.Number)
	req := command.Originate{RequestID: "bitrix-" + cl.CallID, CRMCallID: cl.CallID, Extension: cl.Extension,
		Number: number, TimeoutSeconds: int(ringTimeout / time.Second)}
	if err := req.Validate(); err != nil {
		f.m.clicks.WithLabelValues("rejected").Inc()
		log.WithError(err).Warn("click-to-call: cannot ring this")
		f.finishClick(ctx, cl, bitrix.StatusNotFound, err.Error(), log)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, ringTimeout+30*time.Second)
	defer cancel()
	rep, err := orig.Originate(rctx, req)
	if err != nil {
		f.m.clicks.WithLabelValues("gateway-error").Inc()
		log.WithError(err).Error("click-to-call: the PBX gateway did not take the call")
		f.finishClick(ctx, cl, bitrix.StatusNoRoute, "the PBX gateway did not answer", log)
		return
	}
	f.m.clicks.WithLabelValues(string(rep.Result)).Inc()
	log = log.WithFields(logrus.Fields{"result": rep.Result, "call_id": rep.CallID})
	switch rep.Result {
	case command.ResultAnswered, command.ResultNoAnswer, command.ResultBusy, command.ResultDuplicate:
		log.Info("click-to-call: originated; the call's events finish it in Bitrix24")
	case command.ResultRejected:
		log.WithField("error", rep.Error).Warn("click-to-call: the gateway rejected the request")
		f.finishClick(ctx, cl, bitrix.StatusNotFound, "rejected: "+rep.Error, log)
	default:
		log.WithField("error", rep.Error).Warn("click-to-call: Asterisk could not ring the employee's phone")
		f.finishClick(ctx, cl, bitrix.StatusUnavailable, "the employee's phone could not be rung", log)
	}
}

// finishClick finishes a click-to-call that never became a call, once.
func (f *Flow) finishClick(ctx context.Context, cl Click, code, reason string, log *logrus.Entry) {
	if done, err := f.crmFinished(ctx, cl.CallID); err == nil && done {
		return
	}
	_, err := f.crm.Finish(ctx, bitrix.FinishRequest{CallID: cl.CallID, UserID: cl.UserID, StatusCode: code,
		FailedReason: reason, AddToChat: f.cfg.Calls.Chat})
	if err != nil && !bitrix.IsCallNotFound(err) {
		log.WithError(err).Error("click-to-call: cannot finish the call in Bitrix24; it stays open there")
		return
	}
	f.markCRMFinished(ctx, cl.CallID)
	f.m.finished.WithLabelValues(code).Inc()
	log.WithField("status", code).Info("click-to-call finished in Bitrix24 without a call")
}

func (f *Flow) crmFinished(ctx context.Context, callID string) (bool, error) {
	n, err := f.st.Client().Exists(ctx, f.crmDoneKey(callID)).Result()
	if err != nil {
		return false, fmt.Errorf("click-to-call state: %w", err)
	}
	return n > 0, nil
}

func (f *Flow) markCRMFinished(ctx context.Context, callID string) {
	if err := f.st.Client().Set(ctx, f.crmDoneKey(callID), f.now().UTC().Format(time.RFC3339), clickTTL).Err(); err != nil {
		f.log.WithError(err).WithField("crm_call_id", callID).Warn("cannot record the finished click-to-call")
	}
}

// Callback is a filled CRM callback form (ONEXTERNALCALLBACKSTART): no call exists yet; the
// connector picks the operator, registers the call (TYPE 4) and rings the operator, then the
// customer, like a click-to-call.
type Callback struct {
	Number        string
	LineNumber    string
	CRMEntityType string
	CRMEntityID   int
	// Stamp is the event's ts: with the number, it tells a repeated event from a new form.
	Stamp string
}

// StartCallback records a callback form once (one Redis command, so the event is answered at
// once); new is false for the same form posted again. The work is RunCallback's.
func (f *Flow) StartCallback(ctx context.Context, cb Callback) (bool, error) {
	if f.cfg.ClickToCall.CallbackUserID == 0 {
		return false, fmt.Errorf("callback forms are not called back: set bitrix.click_to_call.callback_user_id to the operator who should call")
	}
	digits := phone.Digits(cb.Number)
	if digits == "" {
		return false, fmt.Errorf("callback form: data[PHONE_NUMBER] %q is not a phone number", cb.Number)
	}
	fresh, err := f.st.Client().SetNX(ctx, f.prefix+":callback:"+digits+":"+cb.Stamp, f.now().UTC().Format(time.RFC3339), clickTTL).Result()
	if err != nil {
		return false, fmt.Errorf("callback form: recording it: %w", err)
	}
	return fresh, nil
}

// RunCallback registers the callback for the operator and rings them, then the customer; the
// call's events finish it (the CALL_ID rides on the originate as crm_call_id).
func (f *Flow) RunCallback(ctx context.Context, cb Callback, orig Originator, ringTimeout time.Duration) {
	user := f.cfg.ClickToCall.CallbackUserID
	log := f.log.WithFields(logrus.Fields{"user_id": user, "callback": true})
	lead, source := f.rules.Lead(&callevent.Event{Direction: callevent.Inbound, Line: cb.LineNumber})
	reg, err := f.crm.Register(ctx, bitrix.RegisterRequest{
		UserID: user, PhoneNumber: f.rules.Number(cb.Number), Type: bitrix.TypeCallback, StartedAt: f.now(),
		CRMCreate: lead, CRMSource: source, CRMEntityType: cb.CRMEntityType, CRMEntityID: cb.CRMEntityID,
		AddToChat: f.cfg.Calls.Chat, LineNumber: f.rules.Number(cb.LineNumber),
		ExternalCallID: "callback-" + cb.Stamp + "-" + strings.TrimPrefix(phone.Digits(cb.Number), "+"),
	})
	if err != nil {
		f.m.clicks.WithLabelValues("callback-register-failed").Inc()
		log.WithError(err).Error("callback form: cannot register the call in Bitrix24; call the customer back by hand")
		return
	}
	f.m.registered.Inc()
	cl := Click{CallID: reg.CallID, UserID: user, Number: cb.Number, At: f.now()}
	b, _ := json.Marshal(cl)
	if err := f.st.Client().Set(ctx, f.clickKey(cl.CallID), b, clickTTL).Err(); err != nil {
		log.WithError(err).Warn("callback form: cannot record the call")
	}
	log.WithField("crm_call_id", reg.CallID).Info("callback form: registered; ringing the operator")
	f.RunClick(ctx, cl, orig, ringTimeout)
}
