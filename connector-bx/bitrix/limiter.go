package bitrix

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/ringbridge/ringbridge/internal/store"
)

// Limiter holds requests to the portal's request-intensity limit (limits.md: a leaky bucket per
// portal, drained Rate per second, at most Burst). One limiter is shared by every replica through
// Redis, so N replicas together stay under the limit.
type Limiter interface {
	// Wait returns when one request may be sent, or ctx's error.
	Wait(ctx context.Context) error
	// Throttled tells the limiter the portal answered 503 QUERY_LIMIT_EXCEEDED: the portal's
	// bucket is fuller than ours (other applications on the same portal, or clock skew), so
	// everyone backs off.
	Throttled(ctx context.Context)
}

// RedisLimiter is GCRA over Redis (github.com/go-redis/redis_rate): Redis's own clock, one Lua
// call per request, exact across replicas.
type RedisLimiter struct {
	lim   *redis_rate.Limiter
	key   string
	limit redis_rate.Limit
}

// NewRedisLimiter limits the portal to perSecond requests per second with bursts of burst. The
// burst is kept a little under the portal's (4%, at least 1), so a request in flight while another replica
// counts does not overflow the portal's bucket.
func NewRedisLimiter(st *store.Store, prefix, portal string, perSecond, burst int) *RedisLimiter {
	b := max(1, burst-max(1, burst/25))
	return &RedisLimiter{
		lim:   redis_rate.NewLimiter(st.Client()),
		key:   prefix + ":" + portalHost(portal) + ":requests",
		limit: redis_rate.Limit{Rate: max(1, perSecond), Burst: b, Period: time.Second},
	}
}

// Wait polls the limiter, sleeping as long as it says.
func (l *RedisLimiter) Wait(ctx context.Context) error {
	for {
		res, err := l.lim.Allow(ctx, l.key, l.limit)
		if err != nil {
			return fmt.Errorf("rate limiter: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		d := max(res.RetryAfter, 5*time.Millisecond)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Throttled empties the shared bucket: every replica waits for the portal's drain rate.
func (l *RedisLimiter) Throttled(ctx context.Context) {
	_, _ = l.lim.AllowAtMost(ctx, l.key, l.limit, l.limit.Burst)
}

// pauses are the methods Bitrix24 blocked (429 OPERATION_TIME_LIMIT) and until when, shared by
// replicas through Redis, and the last operating_reset_at seen for each method, which says until
// when a block lasts.
type pauses struct {
	rdb    *redis.Client
	prefix string
	now    func() time.Time

	mu       sync.Mutex
	until    map[string]time.Time // known pauses
	checked  map[string]time.Time // when Redis was last asked about a method
	resetAt  map[string]time.Time // operating_reset_at of the last answer of each method
	fallback time.Duration
}

func newPauses(st *store.Store, prefix, portal string, now func() time.Time) *pauses {
	return &pauses{
		rdb:      st.Client(),
		prefix:   prefix + ":" + portalHost(portal) + ":paused:",
		now:      now,
		until:    map[string]time.Time{},
		checked:  map[string]time.Time{},
		resetAt:  map[string]time.Time{},
		fallback: time.Minute,
	}
}

// observe notes a successful answer's timing.
func (p *pauses) observe(method string, t Timing) {
	if t.OperatingResetAt.IsZero() {
		return
	}
	p.mu.Lock()
	p.resetAt[method] = t.OperatingResetAt
	p.mu.Unlock()
}

// pause blocks method until its operating count resets: the last operating_reset_at seen, or a
// minute from now when none is known (a probe then finds out whether the block still holds).
func (p *pauses) pause(ctx context.Context, method string) time.Time {
	now := p.now()
	p.mu.Lock()
	until := p.resetAt[method]
	if !until.After(now) {
		until = now.Add(p.fallback)
	}
	p.until[method] = until
	p.mu.Unlock()
	_ = p.rdb.Set(ctx, p.prefix+method, strconv.FormatInt(until.UnixMilli(), 10), until.Sub(now)).Err()
	return until
}

// pausedUntil returns when method may be called again (zero when it may now). Redis is asked at
// most once a second per method, so a pause another replica met is seen quickly and cheaply.
func (p *pauses) pausedUntil(ctx context.Context, method string) time.Time {
	now := p.now()
	p.mu.Lock()
	if u := p.until[method]; u.After(now) {
		p.mu.Unlock()
		return u
	}
	if now.Sub(p.checked[method]) < time.Second {
		p.mu.Unlock()
		return time.Time{}
	}
	p.checked[method] = now
	p.mu.Unlock()
	v, err := p.rdb.Get(ctx, p.prefix+method).Result()
	if err != nil {
		return time.Time{} // redis.Nil, or Redis trouble: the portal will tell us again
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	u := time.UnixMilli(ms)
	if !u.After(now) {
		return time.Time{}
	}
	p.mu.Lock()
	p.until[method] = u
	p.mu.Unlock()
	return u
}
