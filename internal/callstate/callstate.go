// Package callstate keeps a connector's per-call state in Redis and serializes the work on one
// call across workers and replicas, so a redelivered event, a connector killed mid-call or two
// replicas never make a CRM request twice.
//
// Update takes the call's lock, loads its state, runs the caller's function, and saves the state
// before releasing the lock. The function records in the state what it did in the CRM (e.g. the
// CALL_ID a register returned) right after each request succeeds, by calling Save; a crash after a
// CRM request but before Save is the one window left, and the CRM-side idempotency keys
// (EXTERNAL_CALL_ID, uniq) close it.
package callstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringbridge/ringbridge/internal/store"
)

// Store is the state of one connector's calls.
type Store[T any] struct {
	st      *store.Store
	prefix  string
	ttl     time.Duration
	lockTTL time.Duration
}

// New makes a store whose keys start with prefix (e.g. "ringbridge:connector-bx"). ttl is how long
// a call's state lives after its last update: long enough for late redeliveries and retries
// (a day by default).
func New[T any](st *store.Store, prefix string, ttl time.Duration) *Store[T] {
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &Store[T]{st: st, prefix: prefix, ttl: ttl, lockTTL: 2 * time.Minute}
}

func (s *Store[T]) key(pbx, callID string) string { return s.prefix + ":call:" + pbx + ":" + callID }

// Tx is one locked update of a call's state.
type Tx[T any] struct {
	s     *Store[T]
	key   string
	lock  *store.Lock
	State *T
	// Found is false when the call had no state yet.
	Found bool
}

// Save writes the state now, inside the update: call it right after each CRM request that
// succeeded, so a crash later in the update does not repeat it.
func (tx *Tx[T]) Save(ctx context.Context) error {
	if err := tx.lock.Extend(ctx, tx.s.lockTTL); err != nil {
		return fmt.Errorf("save call state %s: the lock was lost (the update took too long): %w", tx.key, err)
	}
	if err := tx.s.st.SetJSON(ctx, tx.key, tx.State, tx.s.ttl); err != nil {
		return fmt.Errorf("save call state %s: %w", tx.key, err)
	}
	return nil
}

// Update runs fn on the call's state under the call's lock and saves the state when fn returns
// nil. When fn returns an error the state is saved too (what was done stays done), and the error
// is returned for the consumer to retry or park.
func (s *Store[T]) Update(ctx context.Context, pbx, callID string, fn func(ctx context.Context, tx *Tx[T]) error) error {
	key := s.key(pbx, callID)
	lock, err := s.st.Lock(ctx, key+":lock", s.lockTTL)
	if err != nil {
		return fmt.Errorf("lock call %s: %w", callID, err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	tx := &Tx[T]{s: s, key: key, lock: lock, State: new(T)}
	tx.Found, err = s.st.GetJSON(ctx, key, tx.State)
	if err != nil {
		return fmt.Errorf("load call %s: %w", callID, err)
	}
	ferr := fn(ctx, tx)
	if serr := tx.Save(context.WithoutCancel(ctx)); serr != nil {
		return errors.Join(ferr, serr)
	}
	return ferr
}

// Get reads a call's state without locking, for admin's journal and tests.
func (s *Store[T]) Get(ctx context.Context, pbx, callID string) (*T, bool, error) {
	v := new(T)
	found, err := s.st.GetJSON(ctx, s.key(pbx, callID), v)
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, err
	}
	return v, found, nil
}

// Seen records an event id in a set per call and reports whether it was new. Connectors use it to
// skip a redelivered event whose work is done.
func Seen(ids *[]string, id string) bool {
	for _, x := range *ids {
		if x == id {
			return false
		}
	}
	*ids = append(*ids, id)
	return true
}
