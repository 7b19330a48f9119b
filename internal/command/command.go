// Package command holds the requests services send to ami-gateway over the commands exchange
// (routing key originate.<pbx>, RPC with reply_to and correlation_id) and their replies.
package command

import (
	"errors"
	"fmt"
	"strings"
)

// OriginateKey is the routing key of the originate command for one PBX.
func OriginateKey(pbx string) string { return "originate." + pbx }

// Originate asks the gateway to ring an employee's phone and, once it answers, dial a number
// (click-to-call from a CRM).
type Originate struct {
	// RequestID makes the request idempotent: a redelivered request with the same id never rings
	// the phone twice. Connectors use the CRM's call id.
	RequestID string `json:"request_id"`
	// CRMCallID is the CRM's id of the call, carried to the call events (crm_call_id).
	CRMCallID string `json:"crm_call_id,omitempty"`
	Extension string `json:"extension"`
	Number    string `json:"number"`
	// CallerName is shown on the employee's phone while it rings (e.g. the contact's name).
	CallerName string `json:"caller_name,omitempty"`
	// TimeoutSeconds is how long the employee's phone rings; 0 means the gateway's default.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// Validate names the field that is wrong.
func (o *Originate) Validate() error {
	var errs []error
	if o.RequestID == "" {
		errs = append(errs, errors.New("request_id is empty: send a unique id per click (the CRM's call id)"))
	}
	if !digits(o.Extension, false) {
		errs = append(errs, fmt.Errorf("extension %q is not an extension number: send digits, e.g. 101", o.Extension))
	}
	if !digits(o.Number, true) {
		errs = append(errs, fmt.Errorf("number %q is not a phone number: send digits, optionally with a leading +", o.Number))
	}
	if o.TimeoutSeconds < 0 || o.TimeoutSeconds > 300 {
		errs = append(errs, fmt.Errorf("timeout_seconds %d is out of range: send 0 (default) to 300", o.TimeoutSeconds))
	}
	if strings.ContainsAny(o.CallerName, "\r\n\"<>") {
		errs = append(errs, errors.New("caller_name holds a line break, quote or angle bracket: remove them"))
	}
	return errors.Join(errs...)
}

func digits(s string, plus bool) bool {
	if plus {
		s = strings.TrimPrefix(s, "+")
	}
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Result is how an originate ended, as far as the gateway saw: the employee's phone answered (the
// number is being dialled now), or it did not.
type Result string

const (
	ResultAnswered  Result = "answered"  // the employee picked up; the number is dialled next
	ResultNoAnswer  Result = "no_answer" // the employee's phone rang out
	ResultBusy      Result = "busy"      // the employee's phone was busy
	ResultFailed    Result = "failed"    // Asterisk could not ring the phone (unregistered, no such channel)
	ResultRejected  Result = "rejected"  // the request was invalid; Error says why
	ResultDuplicate Result = "duplicate" // this request id was already handled
)

// OriginateReply is the gateway's answer.
type OriginateReply struct {
	Result Result `json:"result"`
	// CallID is the call's id in the call events (the first channel's Uniqueid), when it exists.
	CallID string `json:"call_id,omitempty"`
	// Reason is Asterisk's OriginateResponse Reason code (4 answered, 5 busy, 3 no answer, 0/1/8 failed).
	Reason int    `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}
