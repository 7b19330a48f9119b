package bus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringbridge/ringbridge/internal/testenv"
)

// The broker restarts while a publisher streams 2000 messages: every message arrives at the
// consumer at least once, and every publish is confirmed. Not parallel: it restarts the broker
// under every other test of the package (see testenv.RestartRabbit).
func TestBrokerRestartMidStream(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, _ := newTestBus(t, func(c *Config) { c.Registerer = reg; c.PublishBuffer = 256 })
	spec, key := testQueue(t, b, func(s *QueueSpec) { s.Workers = 4 })
	rec := newRecorder()
	startConsumer(t, b, spec, func(ctx context.Context, d Delivery) error { rec.add(d); return nil })
	// An RPC server and client must come back too.
	rpcName := uniqueName(t) + "-rpc"
	rpcSpec := QueueSpec{Name: rpcName}
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- b.Serve(serveCtx, rpcSpec, func(ctx context.Context, req Delivery) ([]byte, error) { return req.Body, nil })
	}()
	t.Cleanup(func() {
		stopServe()
		<-served
		_ = b.DeleteQueue(context.Background(), QueueSpec{Name: rpcName, RetryDelays: []time.Duration{}})
	})

	// The stream runs until at least n messages are out and the restart is over, so it crosses
	// the restart however long the restart (or the wait for other test processes) takes.
	const n = 2000
	var published atomic.Int32
	var restarted atomic.Bool
	ctx := ctxTimeout(t, 45*time.Second)
	errs := make(chan error, 1)
	var confs []*Confirmation
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		afterRestart := 0
		for i := 0; i < n || afterRestart < 200; i++ {
			c, err := b.PublishAsync(ctx, ExchangeCalls, key, Message{ID: fmt.Sprintf("m-%05d", i), Body: []byte(`{}`)})
			if err != nil {
				errs <- err
				return
			}
			confs = append(confs, c)
			published.Add(1)
			if restarted.Load() {
				afterRestart++
			}
			time.Sleep(time.Millisecond) // a stream, not a burst
		}
	}()

	eventually(t, 10*time.Second, "the stream under way", func() bool { return published.Load() >= 300 })
	before := published.Load()
	testenv.RestartRabbit(t)
	restarted.Store(true)
	t.Logf("restart began at %d and ended at %d messages published", before, published.Load())

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("PublishAsync: %v", err)
	}
	for i, c := range confs {
		if err := c.Wait(ctx); err != nil {
			t.Errorf("publish %d: %v", i, err)
		}
	}
	total := len(confs)
	rec.waitFor(t, 30*time.Second, fmt.Sprintf("all %d message ids at the consumer", total), func() bool { return rec.distinct() == total })
	all, _ := rec.snapshot()
	t.Logf("%d deliveries for %d messages (%d duplicates: at least once)", len(all), total, len(all)-total)

	if v := counterValue(t, reg, "ringbridge_bus_reconnects_total"); v < 1 {
		t.Errorf("reconnects_total = %v", v)
	}
	if err := b.Ready(); err != nil {
		t.Errorf("Ready() after the restart: %v", err)
	}
	reply, err := b.Call(ctxTimeout(t, 10*time.Second), "", rpcName, []byte("after restart"))
	if err != nil || string(reply) != "after restart" {
		t.Errorf("RPC after the restart: %q, %v", reply, err)
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += metricValue(m)
		}
	}
	return sum
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return 0
}
