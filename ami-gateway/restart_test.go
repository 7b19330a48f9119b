package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringbridge/ringbridge/ami-gateway/livestate"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/amisim"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// gatewayBinary builds ami-gateway once per test run, so a test can kill it for real (SIGKILL).
func gatewayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ami-gateway-test")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "ami-gateway")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// process runs the built gateway with the stack's config.
func (s *stack) process() *exec.Cmd {
	s.t.Helper()
	path := filepath.Join(s.t.TempDir(), "config.yaml")
	if err := config.Save(path, s.cfg); err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(gatewayBinary(s.t), "run", "--config", path)
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// answeredAt is the index of the packet after which the recording's call is answered.
func answeredAt(rec *amisim.Recording) int {
	for i, m := range rec.Messages() {
		if m.Event() == "BridgeEnter" && m.Get("Context") == "from-trunk" {
			return i + 1
		}
	}
	return rec.Len() / 2
}

// waitSaved waits until the live state in Redis holds the call with an answer.
func (s *stack) waitSaved(callID string) {
	s.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.cfg.Redis.Address, DB: s.cfg.Redis.DB})
	defer rdb.Close()
	store := livestate.New(rdb, s.pbx)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		loaded, _, err := store.Load(context.Background())
		if err == nil {
			for _, c := range loaded {
				if c.ID == callID && c.AnsweredBy != "" {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("call %s never saved as answered", callID)
}

// TestKilledMidCall: the gateway is killed (SIGKILL) while a call is in progress and started
// again; the call still gets exactly one ended event, and it is the right one — whether the call
// ends after the restart or while no gateway runs.
func TestKilledMidCall(t *testing.T) {
	for _, tc := range []struct {
		name          string
		endsWhileDown bool
	}{{"call-ends-after-restart", false}, {"call-ends-while-down", true}} {
		for _, file := range []string{"inbound-answered", "blind-transfer", "ringgroup-answered-by-second"} {
			t.Run(tc.name+"/"+file, func(t *testing.T) {
				s := newStack(t)
				raw, err := amisim.LoadRecording(filepath.Join(fixtures, "ami-asterisk22", file+".ami"))
				if err != nil {
					t.Fatal(err)
				}
				rec := raw.Fresh(int(time.Now().UnixNano()%1000) + 2000).Retime(time.Now().UTC().Truncate(time.Second))
				want := expected(t, s.cfg, []amisim.Scheduled{{Rec: rec}})
				var callID string
				for id := range want {
					callID = id
				}

				a := s.process()
				s.waitReady(20 * time.Second)
				p := s.sim.NewPlayer(rec, 0)
				cut := answeredAt(rec)
				if err := p.Step(context.Background(), cut); err != nil {
					t.Fatal(err)
				}
				s.waitSaved(callID)
				kill(t, a)
				if tc.endsWhileDown {
					if err := p.Rest(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				s.process()
				s.waitReady(20 * time.Second)
				if !tc.endsWhileDown {
					if err := p.Rest(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				got := s.collect(1, 20*time.Second)
				w := want[callID]
				if tc.endsWhileDown {
					// The end time is the resync's: the gateway cannot know when it happened.
					var ended []callevent.Event
					for _, e := range got[callID] {
						if e.Kind == callevent.Ended {
							ended = append(ended, e)
						}
					}
					if len(ended) != 1 {
						t.Fatalf("%d ended events", len(ended))
					}
					e := ended[0]
					if e.AnsweredBy != w.AnsweredBy || e.Disposition != w.Disposition || e.External != w.External || e.Direction != w.Direction {
						t.Errorf("got %s\nwant %s", summary(e), summary(w))
					}
					return
				}
				check(t, got, want)
			})
		}
	}
}

// TestRabbitRestartMidStream: RabbitMQ restarts while calls are played; every call event reaches
// the consumer (publisher confirms and the bounded local buffer), and each call ends once.
func TestRabbitRestartMidStream(t *testing.T) {
	s := newStack(t)
	stop := s.start()
	defer stop()
	s.waitReady(10 * time.Second)
	recs := recordings(t, 2, 300*time.Millisecond)
	want := expected(t, s.cfg, recs)
	wantIDs := map[string]bool{}
	{
		cl, _ := newCorrelatorFor(s.cfg)
		for _, r := range recs {
			c := cl()
			for _, m := range r.Rec.Messages() {
				for _, e := range c.Handle(m) {
					wantIDs[e.ID] = true
				}
			}
		}
	}
	played := make(chan error, 1)
	go func() { played <- s.sim.PlayAll(context.Background(), recs, 8) }()
	time.Sleep(1500 * time.Millisecond)
	testenv.RestartRabbit(t)
	if err := <-played; err != nil {
		t.Fatal(err)
	}
	got := s.collect(len(want), 60*time.Second)
	check(t, got, want)
	seen := map[string]bool{}
	for _, evs := range got {
		for _, e := range evs {
			seen[e.ID] = true
		}
	}
	for id := range wantIDs {
		if !seen[id] {
			t.Errorf("event %s lost", id)
		}
	}
	t.Logf("%d calls, %d distinct events, all delivered across the restart", len(want), len(seen))
}
