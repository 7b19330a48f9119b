package bitrix

import (
	"math"
	"time"
)

// bucket is the request-intensity counter of limits.md: +1 per request, drained by RateDrain
// per second; a request that would take it above RateBurst is refused with 503 and not counted.
type bucket struct {
	level float64
	at    time.Time
}

// allow counts one REST request from ip and tells whether it may run. A batch is one request,
// however many commands it carries (limits.md: "The counter will increase by one").
func (s *Server) allow(ip string) bool {
	if s.opts.NoRateLimit {
		return true
	}
	key := "portal"
	if s.opts.RatePerIP {
		key = ip
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	b, ok := s.buckets[key]
	if !ok {
		b = &bucket{at: now}
		s.buckets[key] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.level = math.Max(0, b.level-dt*s.opts.RateDrain)
	}
	b.at = now
	if b.level+1 > float64(s.opts.RateBurst) {
		return false
	}
	b.level++
	return true
}

// opEntry is execution time spent in one method call.
type opEntry struct {
	at  time.Time
	dur time.Duration
}

// operatingWindow is the period the operating time is summed over (10 one-minute buckets).
const operatingWindow = 10 * time.Minute

func opKey(account, method string) string { return account + "|" + method }

// operatingLocked drops entries older than the window and sums the rest.
func (s *Server) operatingLocked(account, method string) (time.Duration, []opEntry) {
	k := opKey(account, method)
	cutoff := s.nowLocked().Add(-operatingWindow)
	es := s.operating[k]
	i := 0
	for i < len(es) && !es[i].at.After(cutoff) {
		i++
	}
	es = es[i:]
	s.operating[k] = es
	var sum time.Duration
	for _, e := range es {
		sum += e.dur
	}
	return sum, es
}

// operatingBlocked tells whether a method is blocked for an app/webhook (429 OPERATION_TIME_LIMIT).
func (s *Server) operatingBlocked(account, method string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum, _ := s.operatingLocked(account, method)
	return sum > s.opts.OperatingLimit
}

func (s *Server) addOperating(account, method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := opKey(account, method)
	s.operating[k] = append(s.operating[k], opEntry{at: s.nowLocked(), dur: d})
}

// operatingState gives the `operating` seconds and `operating_reset_at` of a time block: when
// the oldest time still counted leaves the window (now + 10 min when nothing is counted).
func (s *Server) operatingState(account, method string) (float64, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum, es := s.operatingLocked(account, method)
	reset := s.nowLocked().Add(operatingWindow)
	if len(es) > 0 {
		reset = es[0].at.Add(operatingWindow)
	}
	return sum.Seconds(), reset.Unix()
}
