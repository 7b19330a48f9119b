package amo

import (
	"context"
	"fmt"
	"time"

	"github.com/ringbridge/ringbridge/internal/store"
)

// State is whether the account takes requests.
type State string

const (
	StateOK           State = "ok"
	StateNotConnected State = "not_connected" // no token: the integration was never installed
	StateUnauthorized State = "unauthorized"  // the token is refused and cannot be refreshed
	StateUnpaid       State = "unpaid"        // 402
	StateBlocked      State = "blocked"       // 403
)

// Status is the account's state as every replica and admin see it, in Redis. Message says in words
// what is wrong and what to do; the calls wait in the queue meanwhile.
type Status struct {
	State   State     `json:"state"`
	Message string    `json:"message"`
	Detail  string    `json:"detail,omitempty"` // amoCRM's own words
	Since   time.Time `json:"since"`
	// CheckedAt is the last time a replica found the account in this state.
	CheckedAt time.Time `json:"checked_at"`
}

// StatusOf maps an error that stops the account to its Status; ok is false for any other error.
func StatusOf(host string, err error) (Status, bool) {
	e, isAmo := AsError(err)
	if !isAmo || !e.AccountStopped() {
		return Status{}, false
	}
	held := "; calls are kept in the queue and sent once this is fixed"
	detail := e.Error()
	var st Status
	switch e.Kind {
	case KindPaymentRequired:
		st = Status{State: StateUnpaid, Message: "the amoCRM account " + host + " is not paid (402 Payment Required): pay for the account or the integration" + held}
	case KindBlocked:
		st = Status{State: StateBlocked, Message: "the amoCRM account " + host + " refuses the API (403 Forbidden: the account is blocked, or this server's address is not allowed)" + held}
	case KindNotConnected:
		st = Status{State: StateNotConnected, Message: "ringbridge is not connected to the amoCRM account " + host + " yet: install the integration in amoCRM (it redirects here) or set amo.authorization_code" + held}
	default:
		st = Status{State: StateUnauthorized, Message: "amoCRM refuses ringbridge's token for " + host + ": install the integration again in amoCRM (or make a new long-lived token)" + held}
	}
	st.Detail = detail
	return st, true
}

// StatusStore keeps the account's Status in Redis.
type StatusStore struct {
	st  *store.Store
	key string
	now func() time.Time
}

// NewStatusStore keeps the status under prefix + ":status".
func NewStatusStore(st *store.Store, prefix string) *StatusStore {
	return &StatusStore{st: st, key: prefix + ":status", now: time.Now}
}

// Key is the Redis key admin reads.
func (s *StatusStore) Key() string { return s.key }

// Get returns the stored status; an account never seen failing is OK.
func (s *StatusStore) Get(ctx context.Context) (Status, error) {
	var st Status
	found, err := s.st.GetJSON(ctx, s.key, &st)
	if err != nil {
		return Status{}, fmt.Errorf("reading the amoCRM account status: %w", err)
	}
	if !found {
		return Status{State: StateOK, Message: "ok"}, nil
	}
	return st, nil
}

// Set stores st, keeping Since while the state does not change.
func (s *StatusStore) Set(ctx context.Context, st Status) (changed bool, err error) {
	old, err := s.Get(ctx)
	if err != nil {
		return false, err
	}
	now := s.now().UTC()
	st.CheckedAt = now
	if old.State == st.State && !old.Since.IsZero() {
		st.Since = old.Since
	} else {
		st.Since = now
	}
	if st.State == StateOK && st.Message == "" {
		st.Message = "ok"
	}
	if err := s.st.SetJSON(ctx, s.key, st, 0); err != nil {
		return false, fmt.Errorf("storing the amoCRM account status: %w", err)
	}
	return old.State != st.State, nil
}
