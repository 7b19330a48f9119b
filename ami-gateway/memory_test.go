package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/testsystem/amisim"
)

// TestMemoryThousandCalls runs the real gateway binary with 1,000 calls in progress at once and
// checks its resident memory against the target (< 30 MB RSS).
func TestMemoryThousandCalls(t *testing.T) {
	s := newStack(t)
	s.cfg.Log.Level = "info" // the debug log of 1,000 calls is not what is measured
	cmd := s.process()
	s.waitReady(20 * time.Second)
	t.Logf("RSS idle: %.1f MB", vmRSS(t, cmd.Process.Pid))

	files, _ := filepath.Glob(filepath.Join(fixtures, "ami-asterisk22", "*.ami"))
	base := time.Now().UTC().Truncate(time.Second)
	var sched []amisim.Scheduled
	const calls = 1000
	for i := 0; i < calls; i++ {
		raw, err := amisim.LoadRecording(files[i%len(files)])
		if err != nil {
			t.Fatal(err)
		}
		rec := raw.Fresh(5000 + i)
		// Each call stops once answered: all of them are in progress together.
		msgs := rec.Messages()[:answeredAt(rec)]
		// A new call every 5 ms (200 calls/s, far above a real office PBX), played at twice real
		// time: a heavy but possible load, rather than 100,000 events at once, which the event
		// queue would rightly refuse (drop and resync) on a busy machine.
		at := time.Duration(i) * 5 * time.Millisecond
		sched = append(sched, amisim.Scheduled{Rec: amisim.NewRecording(rec.Name, msgs).Retime(base.Add(at)), At: at})
	}
	if err := s.sim.PlayAll(context.Background(), sched, 2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	var open int
	for {
		open = int(metric(t, s, "ringbridge_gateway_calls_in_progress"))
		if open >= calls || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if open < calls {
		t.Fatalf("%d calls in progress, want %d", open, calls)
	}
	time.Sleep(500 * time.Millisecond) // let the saver catch up
	rss := vmRSS(t, cmd.Process.Pid)
	t.Logf("RSS with %d calls in progress: %.1f MB", open, rss)
	for _, m := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes", "go_memstats_heap_alloc_bytes"} {
		t.Logf("%s %.1f MB", m, metric(t, s, m)/(1<<20))
	}
	if n := strings.Count(s.logs.String(), "resynced with CoreShowChannels"); n != 1 {
		t.Errorf("%d resyncs: the burst overflowed the event queue", n)
	}
	if rss >= 30 {
		t.Errorf("RSS %.1f MB with %d calls, target < 30 MB", rss, open)
	}
}

func metric(t *testing.T, s *stack, name string) float64 {
	resp, err := http.Get("http://" + s.cfg.HTTP["ami-gateway"].Listen + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v
		}
	}
	return 0
}

// vmRSS reads a process's resident set size in MB from /proc.
func vmRSS(t *testing.T, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
