// Package callevent holds the call event: the contract between ami-gateway and every service that
// reads calls (the connectors, admin's journal, the testsystem). See shared/docs/call-events.md.
//
// A field may be added in a later schema version; none is renamed or changes meaning without a new
// Schema number.
package callevent

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Schema is the version of the event format this package writes.
const Schema = 1

// Kind says what happened to the call.
type Kind string

const (
	Started     Kind = "started"
	Ringing     Kind = "ringing"
	Answered    Kind = "answered"
	Transferred Kind = "transferred"
	Ended       Kind = "ended"
)

// Direction is seen from the company: inbound comes from outside.
type Direction string

const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
	Internal Direction = "internal"
)

// Disposition is how the call ended.
type Disposition string

const (
	DispAnswered Disposition = "answered"
	DispNoAnswer Disposition = "no_answer"
	DispBusy     Disposition = "busy"
	DispFailed   Disposition = "failed"
)

// TransferKind is blind or attended.
type TransferKind string

const (
	Blind    TransferKind = "blind"
	Attended TransferKind = "attended"
)

// Transfer is one blind or attended transfer of the call.
type Transfer struct {
	Kind TransferKind `json:"kind"`
	From string       `json:"from"`
	To   string       `json:"to"`
	At   time.Time    `json:"at"`
}

// Event is one call event as published on the calls exchange and printed by `ami-gateway replay`.
type Event struct {
	Schema         int         `json:"schema"`
	ID             string      `json:"id"`
	Kind           Kind        `json:"kind"`
	PBX            string      `json:"pbx"`
	CallID         string      `json:"call_id"`
	At             time.Time   `json:"at"`
	Direction      Direction   `json:"direction"`
	External       string      `json:"external"`
	Line           string      `json:"line"`
	Extension      string      `json:"extension"`
	ExtensionsRang []string    `json:"extensions_rang"`
	AnsweredBy     string      `json:"answered_by"`
	Disposition    Disposition `json:"disposition,omitempty"`
	StartedAt      time.Time   `json:"started_at"`
	AnsweredAt     *time.Time  `json:"answered_at,omitempty"`
	EndedAt        *time.Time  `json:"ended_at,omitempty"`
	RingSeconds    int         `json:"ring_seconds"`
	TalkSeconds    int         `json:"talk_seconds"`
	Recording      string      `json:"recording"`
	Transfers      []Transfer  `json:"transfers"`
	// CRMCallID is the id a CRM gave the call when the CRM started it (click-to-call), carried
	// from the Originate's variables so the connector can bind the call to its CRM record.
	CRMCallID string `json:"crm_call_id,omitempty"`
}

// EventID builds the deterministic id of an event: the same event of the same call always gets
// the same id, so two gateways following one PBX (during an update) can be deduplicated downstream.
// part tells apart events of one kind within a call (the extension that rang, the n-th transfer).
func EventID(pbx, callID string, kind Kind, part string) string {
	if part == "" {
		return pbx + "/" + callID + "/" + string(kind)
	}
	return pbx + "/" + callID + "/" + string(kind) + "/" + part
}

// RoutingKey is the calls-exchange routing key of the event: call.<pbx>.<kind>.
func (e *Event) RoutingKey() string {
	return "call." + e.PBX + "." + string(e.Kind)
}

// Validate checks what a consumer relies on; it names the field that is wrong.
func (e *Event) Validate() error {
	switch {
	case e.Schema != Schema:
		return fmt.Errorf("call event %q: schema %d, this build reads %d", e.ID, e.Schema, Schema)
	case e.ID == "":
		return fmt.Errorf("call event: field id is empty")
	case e.PBX == "":
		return fmt.Errorf("call event %q: field pbx is empty", e.ID)
	case e.CallID == "":
		return fmt.Errorf("call event %q: field call_id is empty", e.ID)
	case strings.ContainsAny(e.PBX, ".*# "):
		return fmt.Errorf("call event %q: field pbx %q holds a character not allowed in a routing key", e.ID, e.PBX)
	}
	switch e.Kind {
	case Started, Ringing, Answered, Transferred, Ended:
	default:
		return fmt.Errorf("call event %q: field kind %q is not one of started, ringing, answered, transferred, ended", e.ID, e.Kind)
	}
	switch e.Direction {
	case Inbound, Outbound, Internal:
	default:
		return fmt.Errorf("call event %q: field direction %q is not one of inbound, outbound, internal", e.ID, e.Direction)
	}
	if e.Kind == Ended {
		switch e.Disposition {
		case DispAnswered, DispNoAnswer, DispBusy, DispFailed:
		default:
			return fmt.Errorf("call event %q: field disposition %q is not one of answered, no_answer, busy, failed", e.ID, e.Disposition)
		}
	}
	return nil
}

// Marshal encodes the event as one JSON object, with empty lists written as [] rather than null.
func Marshal(e *Event) ([]byte, error) {
	c := *e
	if c.ExtensionsRang == nil {
		c.ExtensionsRang = []string{}
	}
	if c.Transfers == nil {
		c.Transfers = []Transfer{}
	}
	return json.Marshal(&c)
}

// Unmarshal decodes and validates one event.
func Unmarshal(b []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode call event: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}
