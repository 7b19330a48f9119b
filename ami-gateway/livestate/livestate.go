// Package livestate keeps the gateway's calls in progress in Redis, so a gateway killed mid-call
// and restarted (or replaced by a new version) still publishes exactly one correct ended event.
//
// One Redis hash per PBX holds one field per call in progress (its Linkedid) with the call's saved
// form; an ended call's field is deleted. Writes of one batch go in one MULTI/EXEC, so a crash
// leaves the hash as it was before or after the batch, never between.
package livestate

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/ringbridge/ringbridge/ami-gateway/calls"
)

// Store saves and loads one PBX's calls in progress.
type Store struct {
	rdb redis.Cmdable
	key string
}

// New returns the store of one PBX.
func New(rdb redis.Cmdable, pbx string) *Store {
	return &Store{rdb: rdb, key: "ringbridge:ami-gateway:" + pbx + ":calls"}
}

// Key is the Redis hash the store uses.
func (s *Store) Key() string { return s.key }

// Save writes the changed calls (their saved form, by call id) and deletes the ended ones,
// atomically.
func (s *Store) Save(ctx context.Context, changed map[string][]byte, ended []string) error {
	if len(changed) == 0 && len(ended) == 0 {
		return nil
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(changed) > 0 {
			vals := make([]any, 0, 2*len(changed))
			for id, b := range changed {
				vals = append(vals, id, b)
			}
			p.HSet(ctx, s.key, vals...)
		}
		if len(ended) > 0 {
			p.HDel(ctx, s.key, ended...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %d calls in progress to redis: %w", len(changed)+len(ended), err)
	}
	return nil
}

// Load reads every saved call. A field that cannot be read is reported, not silently skipped:
// the caller logs it and goes on with the others.
func (s *Store) Load(ctx context.Context) (loaded []*calls.Call, bad []error, err error) {
	all, err := s.rdb.HGetAll(ctx, s.key).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("load calls in progress from redis: %w", err)
	}
	for id, raw := range all {
		call, err := calls.Decode([]byte(raw))
		if err != nil {
			bad = append(bad, fmt.Errorf("saved call %s: %w", id, err))
			continue
		}
		loaded = append(loaded, call)
	}
	return loaded, bad, nil
}

// Drop deletes a saved call that cannot be read, so it is not reported again.
func (s *Store) Drop(ctx context.Context, id string) error {
	return s.rdb.HDel(ctx, s.key, id).Err()
}
