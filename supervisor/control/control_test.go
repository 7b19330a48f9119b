package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/supervisor/retry"
	"github.com/ringbridge/ringbridge/supervisor/update"
)

type fakeSupervisor struct{ started string }

func (f *fakeSupervisor) Status(context.Context) (*Status, error) {
	return &Status{Installed: "1.0.0", Channel: "stable", Services: []Container{{Service: "ami-gateway", Version: "1.0.0", State: "running", Health: "healthy"}}}, nil
}

func (f *fakeSupervisor) Plan(_ context.Context, to string) (*Plan, error) {
	if to == "9.9.9" {
		return nil, errors.New("unknown version: 9.9.9 is not in the release index")
	}
	return &Plan{From: "1.0.0", Steps: []Step{{Version: "1.1.0", Why: "carries a config migration", Migration: true}, {Version: "1.2.0", Why: "target"}}}, nil
}

func (f *fakeSupervisor) StartUpdate(_ context.Context, to string) (string, error) {
	if to == "busy" {
		return "", retry.Temporary(update.ErrBusy)
	}
	f.started = "1.2.0"
	return f.started, nil
}

func (f *fakeSupervisor) StartRollback(context.Context) error { return nil }

func (f *fakeSupervisor) Backup(context.Context) (string, error) { return "20261125T000000Z-abc", nil }

func (f *fakeSupervisor) StartRestore(_ context.Context, id string) error {
	if id != "20261125T000000Z-abc" {
		return errors.New("backup " + id + " is incomplete or missing")
	}
	return nil
}

func unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func TestRPCAndEvents(t *testing.T) {
	log, _ := test.NewNullLogger()
	b, err := bus.New(bus.Config{URL: testenv.RabbitURL(t), Name: "supervisor-test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	ctx, cancel := context.WithCancel(context.Background())
	queue := unique("supervisor.rpc.test")
	spec := bus.QueueSpec{Name: queue}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ctx, spec, Handler(&fakeSupervisor{}, log)) }()

	// Progress events: a test queue bound to supervisor.events.
	events := unique("supervisor.events.test")
	var mu sync.Mutex
	var got []update.Event
	consumed := make(chan error, 1)
	go func() {
		consumed <- b.Consume(ctx, bus.QueueSpec{Name: events, Exchange: bus.ExchangeSupervisorEvents, Keys: []string{"update.#"}},
			func(_ context.Context, d bus.Delivery) error {
				var e update.Event
				if err := json.Unmarshal(d.Body, &e); err != nil {
					return bus.Permanent(err)
				}
				mu.Lock()
				got = append(got, e)
				mu.Unlock()
				return nil
			})
	}()
	t.Cleanup(func() {
		cancel()
		<-served
		<-consumed
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_ = b.DeleteQueue(dctx, spec)
		_ = b.DeleteQueue(dctx, bus.QueueSpec{Name: events, Exchange: bus.ExchangeSupervisorEvents, Keys: []string{"update.#"}})
	})

	call := func(req Request) Reply {
		t.Helper()
		body, _ := json.Marshal(req)
		var raw []byte
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for {
			cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
			raw, err = b.Call(cctx, "", queue, body)
			ccancel()
			// The queue is declared by Serve: until then the request is unroutable.
			if !errors.Is(err, bus.ErrUnroutable) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("call %+v: %v", req, err)
		}
		var rep Reply
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatalf("reply %s: %v", raw, err)
		}
		return rep
	}

	cases := []struct {
		name  string
		req   Request
		check func(Reply) bool
	}{
		{"status", Request{Verb: VerbStatus}, func(r Reply) bool { return r.Status != nil && r.Status.Installed == "1.0.0" }},
		{"check", Request{Verb: VerbCheck}, func(r Reply) bool { return r.Plan != nil && len(r.Plan.Steps) == 2 && r.Plan.Steps[0].Migration }},
		{"plan unknown", Request{Verb: VerbPlan, To: "9.9.9"}, func(r Reply) bool { return r.Error != "" && !r.Retry }},
		{"plan without to", Request{Verb: VerbPlan}, func(r Reply) bool { return r.Error != "" }},
		{"update", Request{Verb: VerbUpdate}, func(r Reply) bool { return r.Started == "1.2.0" && r.Error == "" }},
		{"update while busy", Request{Verb: VerbUpdate, To: "busy"}, func(r Reply) bool { return r.Retry && r.Error != "" }},
		{"rollback", Request{Verb: VerbRollback}, func(r Reply) bool { return r.Error == "" }},
		{"backup", Request{Verb: VerbBackup}, func(r Reply) bool { return r.Backup == "20261125T000000Z-abc" }},
		{"restore", Request{Verb: VerbRestore, Backup: "20261125T000000Z-abc"}, func(r Reply) bool { return r.Error == "" }},
		{"restore unknown", Request{Verb: VerbRestore, Backup: "nope"}, func(r Reply) bool { return r.Error != "" }},
		{"unknown verb", Request{Verb: "reboot"}, func(r Reply) bool { return r.Error != "" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if rep := call(c.req); !c.check(rep) {
				t.Fatalf("reply %+v", rep)
			}
		})
	}

	t.Run("progress events reach a bound queue", func(t *testing.T) {
		p := NewPublisher(b, log)
		deadline := time.Now().Add(10 * time.Second)
		for {
			p.Emit(update.Event{Update: "u1", To: "1.2.0", Time: time.Now(), Stage: "pull", Service: "ami-gateway", Message: "1/2 layers"})
			time.Sleep(200 * time.Millisecond)
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no event arrived")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if got[0].Stage != "pull" || got[0].Service != "ami-gateway" || got[0].To != "1.2.0" {
			t.Fatalf("event %+v", got[0])
		}
	})
}
