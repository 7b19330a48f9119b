package amo

import (
	"sync"
	"time"
)

// RateLimit is the account's API limit: at most PerSecond requests in any Window (amoCRM: 7 per
// second per account, crm-apis.md §2.6); the requests over it get 429. Optionally a client that
// keeps hitting the limit is banned: BanAfter 429s within BanWindow block the API with 403 for
// BanFor. The real cloud restricts "suspicious" clients but its thresholds are not documented,
// so the ban is off unless set.
type RateLimit struct {
	PerSecond int           // 0: 7; negative: no limit
	Window    time.Duration // 0: 1s (tests shorten it)
	BanAfter  int           // 0: never ban
	BanWindow time.Duration // 0: 1 minute
	BanFor    time.Duration // 0: 1 minute
}

func (r RateLimit) withDefaults() RateLimit {
	if r.PerSecond == 0 {
		r.PerSecond = 7
	}
	if r.Window <= 0 {
		r.Window = time.Second
	}
	if r.BanWindow <= 0 {
		r.BanWindow = time.Minute
	}
	if r.BanFor <= 0 {
		r.BanFor = time.Minute
	}
	return r
}

// limiter is a sliding-window log: the admitted requests of the last Window. Rejected requests
// do not count toward the limit (a client backing off recovers after one window), they count
// toward the ban.
type limiter struct {
	mu       sync.Mutex
	cfg      RateLimit
	admitted []time.Time
	rejected []time.Time
	banned   time.Time // banned until
}

type verdict int

const (
	admit verdict = iota
	tooMany
	banned
)

func newLimiter(cfg RateLimit) *limiter { return &limiter{cfg: cfg.withDefaults()} }

func (l *limiter) take(now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.PerSecond < 0 {
		return admit
	}
	if now.Before(l.banned) {
		return banned
	}
	l.admitted = since(l.admitted, now.Add(-l.cfg.Window))
	if len(l.admitted) < l.cfg.PerSecond {
		l.admitted = append(l.admitted, now)
		return admit
	}
	if l.cfg.BanAfter > 0 {
		l.rejected = append(since(l.rejected, now.Add(-l.cfg.BanWindow)), now)
		if len(l.rejected) >= l.cfg.BanAfter {
			l.banned = now.Add(l.cfg.BanFor)
			l.rejected = nil
		}
	}
	return tooMany
}

func (l *limiter) set(cfg RateLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg.withDefaults()
	l.admitted, l.rejected, l.banned = nil, nil, time.Time{}
}

// since drops the times not after cut (the slice is in time order).
func since(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}
