package bitrix

import (
	"net/url"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	cases := []struct {
		name   string
		burst  int
		drain  float64
		first  int           // requests sent at once
		wait   time.Duration // simulated time before the next one
		next   int           // status of the next request
		method string
	}{
		{"burst-passes", 5, 2, 5, 0, 503, "profile"},
		{"over-burst-blocked", 5, 2, 6, 0, 503, "profile"},
		{"drained-after-half-second", 5, 2, 6, 500 * time.Millisecond, 200, "profile"},
		{"not-drained-yet", 5, 2, 6, 400 * time.Millisecond, 503, "profile"},
		{"enterprise-numbers", 250, 5, 250, 200 * time.Millisecond, 200, "profile"},
		{"batch-counts-once", 2, 2, 2, 0, 503, "batch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := seedOptions()
			opts.RateBurst, opts.RateDrain = c.burst, c.drain
			p := newPortal(t, opts)
			f := url.Values{}
			if c.method == "batch" {
				for i := 0; i < 20; i++ {
					f.Set("cmd[c"+string(rune('a'+i))+"]", "profile")
				}
			}
			for i := 0; i < c.first; i++ {
				a := p.form(c.method, f)
				switch {
				case i < c.burst && a.status != 200:
					t.Fatalf("request %d of the burst: %d %s", i+1, a.status, a.raw)
				case i >= c.burst:
					wantError(t, a, 503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
				}
			}
			p.s.Advance(c.wait)
			if a := p.form(c.method, f); a.status != c.next {
				t.Errorf("next request: %d %s, want %d", a.status, a.raw, c.next)
			}
		})
	}
	t.Run("real-time-drain", func(t *testing.T) {
		opts := seedOptions()
		opts.RateBurst, opts.RateDrain, opts.Now = 3, 20, time.Now
		p := newPortal(t, opts)
		for range 3 {
			p.form("profile", nil)
		}
		wantError(t, p.form("profile", nil), 503, "QUERY_LIMIT_EXCEEDED", "")
		time.Sleep(100 * time.Millisecond) // 2 requests drained
		if a := p.form("profile", nil); a.status != 200 {
			t.Errorf("after drain: %s", a.raw)
		}
	})
	t.Run("per-ip-off-shares-webhook-and-app", func(t *testing.T) {
		opts := seedOptions()
		opts.RateBurst = 2
		p := newPortal(t, opts)
		p.form("profile", nil)
		p.hook("profile", url.Values{})
		wantError(t, p.form("profile", nil), 503, "QUERY_LIMIT_EXCEEDED", "")
	})
}

func TestOperatingLimit(t *testing.T) {
	opts := seedOptions()
	opts.OperatingCost = map[string]time.Duration{"user.get": 200 * time.Second}
	p := newPortal(t, opts)
	// 200 s each: 0, 200, 400 counted before calls 1..3 pass; 600 > 480 blocks the 4th.
	for i := 1; i <= 3; i++ {
		a := p.form("user.get", nil)
		tm, _ := a.body["time"].(map[string]any)
		if a.status != 200 || num(tm["operating_reset_at"]) != int(p.s.now().Add(10*time.Minute).Unix()) {
			t.Fatalf("call %d: %d %s", i, a.status, a.raw)
		}
		if op, _ := tm["operating"].(interface{ Float64() (float64, error) }); op != nil {
			if v, _ := op.Float64(); v < float64(200*i) {
				t.Errorf("call %d: operating %v", i, v)
			}
		}
	}
	wantError(t, p.form("user.get", nil), 429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit")
	t.Run("other-methods-work", func(t *testing.T) {
		if a := p.form("profile", nil); a.status != 200 {
			t.Errorf("%s", a.raw)
		}
	})
	t.Run("blocked-inside-batch", func(t *testing.T) {
		a := p.form("batch", url.Values{"cmd[u]": {"user.get"}})
		if a.status != 200 || !contains(a.raw, `"result_error":{"u":{"error":"OPERATION_TIME_LIMIT"`) {
			t.Errorf("%s", a.raw)
		}
	})
	t.Run("unblocked-after-window", func(t *testing.T) {
		p.s.Advance(10*time.Minute + time.Second)
		if a := p.form("user.get", nil); a.status != 200 {
			t.Errorf("%s", a.raw)
		}
	})
}
