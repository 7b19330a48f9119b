package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	bxsim "github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

// BenchmarkSustainedCalls is issue 4's load target, as a benchmark (not a timed test): calls
// arrive at a steady rate against the cloud's real limit (2 requests/s, burst 50), each rings an
// extension, is answered a second later and ends two seconds after that. It reports the calls
// per second the portal took (registered and finished), the HTTP requests per call, and the p95
// time from a ringing event to its card's show request reaching the portal.
//
//	go test ./connector-bx -run x -bench SustainedCalls -benchtime 1x
//
// RINGBRIDGE_LOAD_RATE and RINGBRIDGE_LOAD_SECONDS change the load's shape (default 20 calls/s for
// 20 s).
func BenchmarkSustainedCalls(b *testing.B) {
	rate, seconds := envInt("RINGBRIDGE_LOAD_RATE", 20), envInt("RINGBRIDGE_LOAD_SECONDS", 20)
	for range b.N {
		runLoad(b, rate, seconds)
	}
}

func runLoad(b *testing.B, rate, seconds int) {
	s := newStack(b, bxsim.Options{}, func(c *config.Config) {
		c.Bitrix.Workers = 128
		c.Log.Level = "warn"
	})
	in := s.start()
	s.install(in)
	base := s.events("inbound-answered") // started, ringing 101, answered 101, ended
	total := rate * seconds
	var mu sync.Mutex
	ringAt := map[string]time.Time{}
	mk := func(i int, ev *callevent.Event) *callevent.Event {
		e := *ev
		e.CallID = fmt.Sprintf("1795800000.%d", i)
		e.ID = callevent.EventID(e.PBX, e.CallID, e.Kind, e.Extension)
		e.External = fmt.Sprintf("+7926%07d", i)
		return &e
	}
	start := time.Now()
	var lastEnded time.Time
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range total {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.publish(mk(i, base[0]), mk(i, base[1]))
			mu.Lock()
			ringAt[mk(i, base[1]).CallID] = time.Now()
			mu.Unlock()
			time.Sleep(time.Second)
			s.publish(mk(i, base[2]))
			time.Sleep(2 * time.Second)
			s.publish(mk(i, base[3]))
			mu.Lock()
			lastEnded = time.Now()
			mu.Unlock()
		}()
	}
	tick.Stop()
	offered := time.Since(start)
	wg.Wait()
	s.waitFinished(total, 5*time.Minute)
	done := time.Now()
	took, lag := done.Sub(start), done.Sub(lastEnded)

	// Card latency: from the ringing event's publication to its show request at the portal.
	shownAt := map[string]time.Time{}
	callOf := map[string]string{}
	for _, c := range s.sim.Calls() {
		callOf[c.CallID] = c.ExternalCallID
	}
	for _, r := range s.commands("telephony.externalcall.show") {
		if ext := callOf[r.Param("CALL_ID")]; ext != "" {
			if _, ok := shownAt[ext]; !ok {
				shownAt[ext] = r.Time
			}
		}
	}
	var lat []time.Duration
	for id, at := range ringAt {
		if sh, ok := shownAt[id]; ok {
			lat = append(lat, sh.Sub(at))
		}
	}
	slices.Sort(lat)
	p95 := time.Duration(0)
	if len(lat) > 0 {
		p95 = lat[len(lat)*95/100]
	}
	httpReqs := 0
	for _, r := range s.sim.Requests(0) {
		if strings.HasPrefix(r.Path, "/rest/") {
			httpReqs++
		}
	}
	// The portal kept up when every call was finished soon after the last one ended.
	b.ReportMetric(float64(total)/offered.Seconds(), "calls/s-offered")
	b.ReportMetric(float64(lag.Milliseconds()), "finish-lag-ms")
	b.ReportMetric(float64(httpReqs)/float64(total), "requests/call")
	b.ReportMetric(float64(p95.Milliseconds()), "p95-card-ms")
	b.ReportMetric(float64(len(lat))/float64(total)*100, "%-cards-shown")
	b.Logf("%d calls offered at %d/s over %ds: all finished %s after the last one ended (%s in all); %d HTTP requests for %d calls; cards shown for %d, p95 %s",
		total, rate, seconds, lag.Round(time.Millisecond), took.Round(time.Millisecond), httpReqs, total, len(lat), p95)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
