package amo

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// RedisLimiter is the account's request rate shared by every replica through Redis (GCRA, the
// clock being Redis's own, so replicas on machines with skewed clocks agree).
//
// amoCRM allows 7 requests in any second (crm-apis.md §2.6); how it counts is not documented.
// Spacing requests evenly (burst 1) keeps any one-second window at or under the limit, where a
// burst of 7 followed by the steady rate would put up to 13 into one window. A 5% margin on the
// spacing absorbs network jitter between here and amoCRM: 7/s is sent as one request every 150ms.
type RedisLimiter struct {
	l     *redis_rate.Limiter
	key   string
	limit redis_rate.Limit
}

// NewRedisLimiter limits to perSecond requests per second under key (one key per account).
func NewRedisLimiter(rdb *redis.Client, key string, perSecond int) *RedisLimiter {
	if perSecond < 1 {
		perSecond = 1
	}
	return &RedisLimiter{
		l:     redis_rate.NewLimiter(rdb),
		key:   key,
		limit: redis_rate.Limit{Rate: perSecond, Burst: 1, Period: time.Second * 105 / 100},
	}
}

// Wait returns when a request may be sent, or ctx's error.
func (r *RedisLimiter) Wait(ctx context.Context) error {
	for {
		res, err := r.l.Allow(ctx, r.key, r.limit)
		if err != nil {
			return fmt.Errorf("rate limit in redis: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		d := res.RetryAfter
		if d <= 0 {
			d = time.Millisecond
		}
		if err := sleepCtx(ctx, d); err != nil {
			return err
		}
	}
}
