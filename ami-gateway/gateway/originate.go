package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/ami-gateway/calls"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/command"
)

// OriginateOptions say how a click-to-call is placed on this PBX.
type OriginateOptions struct {
	// Channel is the employee's phone, with {extension} replaced: PJSIP/{extension} (default),
	// SIP/{extension}, Local/{extension}@from-internal.
	Channel string
	// Context is where the number is dialled once the phone answers: the employees' outbound
	// context (from-internal on FreePBX), so the call takes the normal outbound route.
	Context string
	// Timeout is how long the phone rings by default.
	Timeout time.Duration
	// Normalize turns the number into the form call events carry (E.164 by the country rules).
	Normalize func(string) string
}

func (o *OriginateOptions) setDefaults() {
	if o.Channel == "" {
		o.Channel = "PJSIP/{extension}"
	}
	if o.Context == "" {
		o.Context = "from-internal"
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Normalize == nil {
		o.Normalize = func(s string) string { return s }
	}
}

// Onceer makes a command idempotent across redeliveries and gateway replicas.
type Onceer interface {
	Once(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

// CommandQueue is the queue this PBX's gateways take originate commands from; two gateways of one
// PBX (during an update) share it, so each command is executed by one of them.
func CommandQueue(pbx string) bus.QueueSpec {
	return bus.QueueSpec{
		Name:     "ami-gateway." + pbx + ".commands",
		Exchange: bus.ExchangeCommands,
		Keys:     []string{command.OriginateKey(pbx)},
		Workers:  4,
	}
}

// HandleOriginate is the RPC handler of the originate command.
func (g *Gateway) HandleOriginate(once Onceer) bus.RPCHandler {
	return func(ctx context.Context, d bus.Delivery) ([]byte, error) {
		var req command.Originate
		if err := json.Unmarshal(d.Body, &req); err != nil {
			return reply(command.OriginateReply{Result: command.ResultRejected, Error: "request is not JSON: " + err.Error()})
		}
		if err := req.Validate(); err != nil {
			return reply(command.OriginateReply{Result: command.ResultRejected, Error: err.Error()})
		}
		first, err := once.Once(ctx, "ringbridge:ami-gateway:"+g.opt.PBX+":originate:"+req.RequestID, 24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("originate %s: idempotency check: %w", req.RequestID, err)
		}
		if !first {
			return reply(command.OriginateReply{Result: command.ResultDuplicate})
		}
		r := g.originate(ctx, req)
		g.met.originates.WithLabelValues(string(r.Result)).Inc()
		return reply(r)
	}
}

func reply(r command.OriginateReply) ([]byte, error) { return json.Marshal(r) }

func (g *Gateway) originate(ctx context.Context, req command.Originate) command.OriginateReply {
	o := g.opt.Originate
	timeout := o.Timeout
	if req.TimeoutSeconds > 0 {
		timeout = time.Duration(req.TimeoutSeconds) * time.Second
	}
	uid := newChannelID()
	actionID := "rb-originate-" + uid
	log := g.log.WithFields(logrus.Fields{"extension": req.Extension, "crm_call_id": req.CRMCallID, "call_id": uid})

	// The correlator must know the call before its first channel's events arrive.
	select {
	case g.expects <- expectation{uid: uid, e: calls.Expectation{External: o.Normalize(req.Number), CRMCallID: req.CRMCallID}}:
	case <-ctx.Done():
		return command.OriginateReply{Result: command.ResultFailed, Error: ctx.Err().Error()}
	}
	wait := make(chan *ami.Message, 1)
	g.waiters.Store(actionID, wait)
	defer g.waiters.Delete(actionID)

	callerID := req.Number
	if req.CallerName != "" {
		callerID = `"` + req.CallerName + `" <` + req.Number + `>`
	}
	act := (&ami.Message{}).
		Add("Action", "Originate").
		Add("ActionID", actionID).
		Add("Channel", strings.ReplaceAll(o.Channel, "{extension}", req.Extension)).
		Add("Context", o.Context).
		Add("Exten", req.Number).
		Add("Priority", "1").
		Add("CallerID", callerID).
		Add("Timeout", strconv.FormatInt(timeout.Milliseconds(), 10)).
		Add("Async", "true").
		Add("ChannelId", uid).
		Add("Variable", "CRM_CALL_ID="+req.CRMCallID)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err := g.ami.Action(actx, act)
	cancel()
	if err != nil {
		log.WithError(err).Warn("originate not sent")
		return command.OriginateReply{Result: command.ResultFailed, Error: "AMI: " + err.Error()}
	}
	if resp.Response() != "Success" {
		log.WithField("message", resp.Get("Message")).Warn("originate refused by Asterisk")
		return command.OriginateReply{Result: command.ResultFailed, Error: "Asterisk: " + resp.Get("Message")}
	}
	log.Info("originate queued")
	select {
	case ev := <-wait:
		reason, _ := strconv.Atoi(ev.Get("Reason"))
		r := command.OriginateReply{CallID: uid, Reason: reason}
		switch {
		case ev.Get("Response") == "Success":
			r.Result = command.ResultAnswered
		case reason == 5:
			r.Result = command.ResultBusy
		case reason == 3 || reason == 0:
			r.Result = command.ResultNoAnswer
		default:
			r.Result = command.ResultFailed
		}
		log.WithField("result", r.Result).Info("originate done")
		return r
	case <-time.After(timeout + 15*time.Second):
		return command.OriginateReply{Result: command.ResultFailed, CallID: uid, Error: "no OriginateResponse from Asterisk in time"}
	case <-ctx.Done():
		return command.OriginateReply{Result: command.ResultFailed, CallID: uid, Error: ctx.Err().Error()}
	}
}

// originateResponse hands an OriginateResponse to the command that waits for it.
func (g *Gateway) originateResponse(m *ami.Message) {
	if w, ok := g.waiters.Load(m.ActionID()); ok {
		select {
		case w.(chan *ami.Message) <- m:
		default:
		}
	}
}

// newChannelID makes a Uniqueid for the Originate's first channel in Asterisk's own shape
// (name-epoch.sequence), so the correlator orders it like any other channel.
func newChannelID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	n := uint64(0)
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return "rb-" + strconv.FormatInt(time.Now().Unix(), 10) + "." + strconv.FormatUint(n%1e12, 10)
}
