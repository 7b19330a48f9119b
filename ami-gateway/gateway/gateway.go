// Package gateway is the ami-gateway service: AMI events in, call events out on RabbitMQ, with
// the calls in progress kept in Redis.
//
// One goroutine owns the correlator and reads the AMI client's ordered stream of events and
// connection changes. Each batch of AMI events becomes call events, published asynchronously with
// publisher confirms; the batch's call state is saved to Redis only once every event of the batch
// is confirmed (a saver goroutine waits for them, in batch order). So a crash loses no event: at
// worst the restarted gateway derives some events again, with the same ids, and consumers drop
// the duplicates.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/ami-gateway/calls"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// AMI is what the gateway needs of the AMI client.
type AMI interface {
	Events() <-chan ami.Event
	Action(ctx context.Context, msg *ami.Message) (*ami.Message, error)
	ActionList(ctx context.Context, msg *ami.Message) ([]*ami.Message, error)
	Ready() error
}

// Publisher is what the gateway needs of the bus.
type Publisher interface {
	PublishAsync(ctx context.Context, exchange, routingKey string, msg bus.Message) (*bus.Confirmation, error)
}

// State is the live call store.
type State interface {
	Save(ctx context.Context, changed map[string][]byte, ended []string) error
	Load(ctx context.Context) (loaded []*calls.Call, bad []error, err error)
	Drop(ctx context.Context, id string) error
}

// Options configure the gateway.
type Options struct {
	PBX string
	// Batch is the most AMI events handled before the batch's state is handed to the saver.
	Batch int
	// ResyncTimeout bounds the CoreShowChannels after each (re)connection.
	ResyncTimeout time.Duration
	Originate     OriginateOptions
}

// Gateway runs the service loop.
type Gateway struct {
	opt   Options
	log   logrus.FieldLogger
	ami   AMI
	pub   Publisher
	state State
	corr  *calls.Correlator
	met   *metrics

	saves   chan savePoint
	expects chan expectation
	waiters sync.Map // Originate ActionID -> chan *ami.Message

	stateErr atomic.Pointer[error] // the last live-state save error, nil when saves work
	synced   atomic.Bool           // a resync has run on the current AMI connection
}

type expectation struct {
	uid string
	e   calls.Expectation
}

// savePoint is the state after one batch, to be written once its events are confirmed.
type savePoint struct {
	confirms []*bus.Confirmation
	ids      []string          // event ids, for the log when a publish fails
	changed  map[string][]byte // saved form of each changed call, taken at the end of the batch
	ended    []string
}

// New builds a gateway. corr must be fresh: Run restores it from the state store.
func New(opt Options, log logrus.FieldLogger, reg prometheus.Registerer, client AMI, pub Publisher, state State, corr *calls.Correlator) (*Gateway, error) {
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	if opt.ResyncTimeout <= 0 {
		opt.ResyncTimeout = 15 * time.Second
	}
	opt.Originate.setDefaults()
	met, err := newMetrics(reg, corr)
	if err != nil {
		return nil, err
	}
	return &Gateway{
		opt:     opt,
		log:     log.WithField("pbx", opt.PBX),
		ami:     client,
		pub:     pub,
		state:   state,
		corr:    corr,
		met:     met,
		saves:   make(chan savePoint, 64),
		expects: make(chan expectation, 64),
	}, nil
}

// Ready says whether the gateway follows its PBX: AMI logged in and resynced, and the live state
// saved. The error is in words, for /readyz.
func (g *Gateway) Ready() error {
	if err := g.ami.Ready(); err != nil {
		return err
	}
	if !g.synced.Load() {
		return errors.New("AMI connected, resync with CoreShowChannels not done yet")
	}
	if p := g.stateErr.Load(); p != nil && *p != nil {
		return fmt.Errorf("calls in progress are not being saved: %w", *p)
	}
	return nil
}

// Run restores the saved calls and follows the PBX until ctx ends or the AMI client closes.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.restore(ctx); err != nil {
		return err
	}
	saverDone := make(chan struct{})
	go func() {
		defer close(saverDone)
		g.saver(ctx)
	}()
	err := g.loop(ctx)
	close(g.saves)
	<-saverDone
	return err
}

func (g *Gateway) restore(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		loaded, bad, err := g.state.Load(ctx)
		if err == nil {
			for _, b := range bad {
				g.log.WithError(b).Error("a saved call in progress cannot be read; it is dropped")
			}
			g.corr.Restore(loaded)
			if len(loaded) > 0 {
				g.log.WithField("calls", len(loaded)).Info("restored calls in progress")
			}
			return nil
		}
		// Without the saved calls a restart would lose their ended events: wait for Redis.
		g.setStateErr(err)
		g.log.WithError(err).Warn("cannot load calls in progress, retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff(attempt)):
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 6)
	return min(d, 10*time.Second)
}

func (g *Gateway) setStateErr(err error) {
	if err == nil {
		g.stateErr.Store(nil)
		return
	}
	g.stateErr.Store(&err)
}

// loop is the one goroutine that owns the correlator.
func (g *Gateway) loop(ctx context.Context) error {
	events := g.ami.Events()
	var pending savePoint
	n := 0
	flush := func() {
		changed, ended := g.corr.TakeTouched()
		pending.changed = encode(changed, g.log)
		pending.ended = ended
		if len(pending.confirms) > 0 || len(pending.changed) > 0 || len(pending.ended) > 0 {
			select {
			case g.saves <- pending:
			case <-ctx.Done():
			}
		}
		pending = savePoint{}
		n = 0
	}
	for {
		// Expectations of our own originates first: the call's first events may be queued already.
		for drained := false; !drained; {
			select {
			case x := <-g.expects:
				g.corr.Expect(x.uid, x.e)
			default:
				drained = true
			}
		}
		var ev ami.Event
		var ok bool
		if n > 0 {
			// Take what is queued without waiting; flush when the queue is empty.
			select {
			case ev, ok = <-events:
			default:
				flush()
				continue
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case x := <-g.expects:
				g.corr.Expect(x.uid, x.e)
				continue
			case ev, ok = <-events:
			}
		}
		if !ok {
			flush()
			return errors.New("AMI client closed")
		}
		switch {
		case ev.State != nil && ev.State.State == ami.StateConnected:
			flush()
			g.synced.Store(false)
			g.resync(ctx, &pending)
			flush()
		case ev.State != nil:
			g.synced.Store(false)
			g.log.WithError(ev.State.Err).Warn("AMI connection lost")
		default:
			g.met.amiEvents.Inc()
			if ev.Msg.Event() == "OriginateResponse" {
				g.originateResponse(ev.Msg)
			}
			g.publish(ctx, &pending, g.corr.Handle(ev.Msg))
			n++
			if n >= g.opt.Batch {
				flush()
			}
		}
	}
}

// resync runs CoreShowChannels after a (re)connection and reconciles the calls with it.
func (g *Gateway) resync(ctx context.Context, pending *savePoint) {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, g.opt.ResyncTimeout)
		items, err := g.ami.ActionList(rctx, (&ami.Message{}).Add("Action", "CoreShowChannels"))
		cancel()
		if err == nil {
			before := g.corr.Calls()
			g.publish(ctx, pending, g.corr.Resync(items, time.Now()))
			g.synced.Store(true)
			g.met.resyncs.Inc()
			g.log.WithFields(logrus.Fields{"channels": len(items), "calls_before": before, "calls": g.corr.Calls()}).Info("resynced with CoreShowChannels")
			return
		}
		if ctx.Err() != nil || g.ami.Ready() != nil {
			// The connection went down again; the next Connected resyncs.
			return
		}
		g.log.WithError(err).Warn("CoreShowChannels failed, retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff(attempt)):
		}
	}
}

// publish sends call events without waiting for their confirms; the saver waits.
func (g *Gateway) publish(ctx context.Context, pending *savePoint, events []callevent.Event) {
	for i := range events {
		e := &events[i]
		body, err := callevent.Marshal(e)
		if err != nil {
			g.log.WithError(err).WithField("call_id", e.CallID).Error("cannot encode a call event")
			continue
		}
		for attempt := 0; ; attempt++ {
			conf, err := g.pub.PublishAsync(ctx, bus.ExchangeCalls, e.RoutingKey(), bus.Message{
				ID:        e.ID,
				Type:      "call." + string(e.Kind),
				Body:      body,
				Timestamp: e.At,
				Headers:   map[string]any{"pbx": e.PBX, "call_id": e.CallID},
			})
			if err == nil {
				pending.confirms = append(pending.confirms, conf)
				pending.ids = append(pending.ids, e.ID)
				g.met.published.WithLabelValues(string(e.Kind)).Inc()
				g.log.WithFields(logrus.Fields{"call_id": e.CallID, "event": e.Kind, "extension": e.Extension}).Debug("call event")
				break
			}
			if ctx.Err() != nil {
				return
			}
			g.log.WithError(err).WithField("call_id", e.CallID).Warn("publish failed, retrying")
			time.Sleep(backoff(attempt))
		}
	}
}

// encode takes the saved form of the changed calls now: the loop goes on changing them while the
// saver waits for confirms.
func encode(changed []*calls.Call, log logrus.FieldLogger) map[string][]byte {
	out := make(map[string][]byte, len(changed))
	for _, c := range changed {
		b, err := calls.Encode(c)
		if err != nil {
			log.WithError(err).WithField("call_id", c.ID).Error("cannot encode a call in progress")
			continue
		}
		out[c.ID] = b
	}
	return out
}

// saver writes the batches' state once their events are confirmed, in batch order. It merges the
// batches waiting into one write (only the latest state of a call matters, and every event before
// it is confirmed by then), and goes on merging while Redis is down, so the loop is never held up
// by Redis: calls keep being published, and the state catches up when Redis is back.
func (g *Gateway) saver(ctx context.Context) {
	merged := savePoint{changed: map[string][]byte{}}
	merge := func(sp savePoint) {
		g.confirmed(sp)
		for id, b := range sp.changed {
			merged.changed[id] = b
		}
		for _, id := range sp.ended {
			delete(merged.changed, id)
			merged.ended = append(merged.ended, id)
		}
	}
	open := true
	for attempt := 0; ; {
		if len(merged.changed) == 0 && len(merged.ended) == 0 {
			if !open {
				return
			}
			sp, ok := <-g.saves
			if !ok {
				return
			}
			merge(sp)
		}
	drain:
		for open {
			select {
			case sp, ok := <-g.saves:
				if !ok {
					open = false
					break drain
				}
				merge(sp)
			default:
				break drain
			}
		}
		err := g.state.Save(context.Background(), merged.changed, merged.ended)
		g.setStateErr(err)
		if err == nil {
			merged = savePoint{changed: map[string][]byte{}}
			attempt = 0
			continue
		}
		g.met.stateErrors.Inc()
		g.log.WithError(err).Warn("cannot save calls in progress, retrying")
		if !open && ctx.Err() != nil && attempt >= 3 {
			return // stopping, and Redis is gone: the restart resyncs
		}
		retry := time.NewTimer(backoff(attempt))
		attempt++
	wait:
		for {
			select {
			case <-retry.C:
				break wait
			case sp, ok := <-g.saves:
				if !ok {
					open = false
					<-retry.C
					break wait
				}
				merge(sp)
			}
		}
	}
}

// confirmed waits for the confirms of a batch's events.
func (g *Gateway) confirmed(sp savePoint) {
	for i, conf := range sp.confirms {
		err := conf.Wait(context.Background())
		switch {
		case errors.Is(err, bus.ErrUnroutable):
			// Nobody consumes this PBX's calls yet (no connector queue bound): nothing to
			// retry; the event is in the log for support.
			g.met.unroutable.Inc()
			g.log.WithField("event_id", sp.ids[i]).Warn("call event unroutable: no queue is bound to the calls exchange for it")
		case err != nil:
			g.log.WithError(err).WithField("event_id", sp.ids[i]).Error("call event not confirmed by RabbitMQ")
		}
	}
}
