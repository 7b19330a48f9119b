package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/connector-amo/internal/amotest"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	amosim "github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

// TestLoadBurst: a burst of 100 ended calls against an account with amoCRM's real limit (7
// requests in any second, 429 beyond) and two replicas: every call logged once, none lost, no 429,
// and the throughput close to the limit.
func TestLoadBurst(t *testing.T) {
	const n = 100
	s := newStack(t, amosim.Options{RateLimit: amosim.RateLimit{PerSecond: 7}}, func(c *config.Config) {
		c.Amo.Notify = false
		c.Amo.Workers = 8
	})
	a, _ := s.start(), s.start()
	s.install(a)
	s.waitFor("ready", 10*time.Second, func() bool { code, _ := get(t, a.health+"/readyz"); return code == 200 })
	known := []string{"+79161234567", "+79035556677", "+79267778899", "+79161112233", "+79175551234"}
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var evs []callevent.Event
	for i := range n {
		id := fmt.Sprintf("1795700000.%d", i)
		evs = append(evs, callevent.Event{
			Schema: 1, ID: s.pbx + "/" + id + "/ended", Kind: callevent.Ended, PBX: s.pbx, CallID: id,
			Direction: callevent.Inbound, External: known[i%len(known)], Line: "+74951234567", Extension: "101",
			ExtensionsRang: []string{"101"}, AnsweredBy: "101", Disposition: callevent.DispAnswered,
			StartedAt: start.Add(time.Duration(i) * time.Second), At: start.Add(time.Duration(i)*time.Second + 40*time.Second), TalkSeconds: 30,
		})
	}
	before := len(s.acct.Requests(0))
	t0 := time.Now()
	s.publish(evs...)
	s.waitFor("every call", 60*time.Second, func() bool { return len(s.acct.Calls()) >= n })
	elapsed := time.Since(t0)
	time.Sleep(500 * time.Millisecond)
	tooMany := 0
	reqs := s.acct.Requests(before)
	for _, r := range reqs {
		if r.Status == 429 {
			tooMany++
		}
	}
	dups := 0
	for _, e := range evs {
		if c := len(s.acct.CallsByUniq(e.CallID)); c != 1 {
			dups++
		}
	}
	rate := float64(n) / elapsed.Seconds()
	t.Logf("burst of %d calls on 2 replicas: all logged in %s (%.2f calls/s, %d requests, %d answered 429), %d lost or duplicated",
		n, elapsed.Round(time.Millisecond), rate, len(reqs), tooMany, dups)
	if dups != 0 || len(s.acct.Calls()) != n || s.parked() != 0 {
		t.Fatalf("%d calls lost or duplicated, %d in amoCRM, %d parked", dups, len(s.acct.Calls()), s.parked())
	}
	if tooMany != 0 {
		t.Errorf("%d requests over amoCRM's limit", tooMany)
	}
	if rate < 5.5 {
		t.Errorf("%.2f calls/s: too far under the limit of 7", rate)
	}
	_ = amotest.User101
}
