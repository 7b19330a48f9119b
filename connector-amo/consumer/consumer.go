// Package consumer consumes the call events for connector-amo, and holds them while the amoCRM
// account does not work.
//
// 402 (not paid), 403 (blocked) and a token that cannot be refreshed stop the whole account: every
// call would fail the same way, and retrying them would only park them. So the consumer stops
// consuming instead: the message in hand and those prefetched go back to the queue untouched, the
// account's status (in Redis, for admin and /readyz) says what is wrong in words, and one replica
// at a time asks amoCRM every amo.account_check_interval whether the account works again. When it
// does, every replica consumes again and the held calls go in, in the order of the queue.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/store"
)

// QueueName is connector-amo's queue of call events.
const QueueName = "connector-amo.calls"

// Spec is the queue: every call event of every PBX (call.<pbx>.<kind>).
func Spec(workers, prefetch int) bus.QueueSpec {
	return bus.QueueSpec{Name: QueueName, Exchange: bus.ExchangeCalls, Keys: []string{"call.*.*"}, Workers: workers, Prefetch: prefetch}
}

// Handle handles one call event (*calls.Handler).
type Handle func(ctx context.Context, ev *callevent.Event) error

// Options configure a Consumer.
type Options struct {
	Spec bus.QueueSpec
	// Host is the account's host, for the status's words.
	Host string
	// Prefix of the Redis keys (the probe lock).
	Prefix string
	// CheckInterval is how often a held consumer asks amoCRM whether the account works again.
	CheckInterval time.Duration
	// Poll is how often a held replica reads the shared status (default 1s, at most
	// CheckInterval).
	Poll time.Duration
}

// Consumer runs the queue.
type Consumer struct {
	opt    Options
	b      *bus.Bus
	st     *store.Store
	status *amo.StatusStore
	probe  func(ctx context.Context) error
	handle Handle
	log    logrus.FieldLogger

	mu     sync.Mutex
	cancel context.CancelFunc // stops the current Consume: the hold
	held   bool
}

// New returns a Consumer. probe is a cheap request that works only when the account does
// (GET /api/v4/account).
func New(opt Options, b *bus.Bus, st *store.Store, status *amo.StatusStore, probe func(ctx context.Context) error, handle Handle, log logrus.FieldLogger) *Consumer {
	if opt.CheckInterval <= 0 {
		opt.CheckInterval = 30 * time.Second
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	opt.Poll = min(opt.Poll, opt.CheckInterval)
	return &Consumer{opt: opt, b: b, st: st, status: status, probe: probe, handle: handle, log: log}
}

// Held reports whether the consumer holds the queue now.
func (c *Consumer) Held() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// Run consumes until ctx ends, holding the queue while the account is stopped.
func (c *Consumer) Run(ctx context.Context) error {
	c.Check(ctx) // the status left by an earlier run may be stale either way
	for {
		if err := c.waitWorking(ctx); err != nil {
			return nil // ctx done
		}
		cctx, cancel := context.WithCancel(ctx)
		c.mu.Lock()
		c.cancel, c.held = cancel, false
		c.mu.Unlock()
		err := c.b.Consume(cctx, c.opt.Spec, c.handler)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("consuming %s: %w", c.opt.Spec.Name, err)
		}
		c.log.Warn("holding the call events until the amoCRM account works again")
	}
}

// hold stops the current Consume; the bus requeues what the handlers give back.
func (c *Consumer) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = true
	if c.cancel != nil {
		c.cancel()
	}
}

// errHeld is what a handler returns for a message it does not handle while the account is
// stopped; the bus requeues it because the consume context is cancelled by then.
var errHeld = errors.New("held: the amoCRM account does not work")

func (c *Consumer) handler(ctx context.Context, d bus.Delivery) error {
	ev, err := callevent.Unmarshal(d.Body)
	if err != nil {
		return bus.Permanent(err) // a malformed event never becomes good
	}
	if ev.Kind != callevent.Ringing && ev.Kind != callevent.Ended {
		return nil
	}
	log := c.log.WithFields(logrus.Fields{"call_id": ev.CallID, "pbx": ev.PBX, "event": string(ev.Kind)})
	// Another replica may have found the account stopped: do not send into a wall.
	if st, err := c.status.Get(ctx); err == nil && st.State != amo.StateOK {
		c.hold()
		return errHeld
	}
	err = c.handle(ctx, ev)
	if err == nil {
		return nil
	}
	if st, stopped := amo.StatusOf(c.opt.Host, err); stopped {
		if changed, serr := c.status.Set(context.WithoutCancel(ctx), st); serr != nil {
			log.WithError(serr).Error("cannot store the amoCRM account status")
		} else if changed {
			log.WithField("state", st.State).Error(st.Message)
		}
		c.hold()
		return err
	}
	if e, ok := amo.AsError(err); ok && e.Kind == amo.KindInvalid {
		// amoCRM refused this call's data (400): the same request is refused again. Parked at
		// once with amoCRM's words, for an operator.
		log.WithError(err).Error("amoCRM refused the call")
		return bus.Permanent(err)
	}
	return err
}

// waitWorking returns once the account's status is OK, checking amoCRM (one replica at a time)
// every CheckInterval meanwhile.
func (c *Consumer) waitWorking(ctx context.Context) error {
	logged := false
	for {
		st, err := c.status.Get(ctx)
		if err == nil && st.State == amo.StateOK {
			if logged {
				c.log.Info("the amoCRM account works again: consuming the held call events")
			}
			return nil
		}
		if err != nil {
			c.log.WithError(err).Warn("cannot read the amoCRM account status")
		} else if !logged {
			c.log.WithFields(logrus.Fields{"state": st.State, "since": st.Since}).Warn(st.Message)
			logged = true
		}
		c.mu.Lock()
		c.held = true
		c.mu.Unlock()
		// One replica checks per interval; the others see its result in the status.
		if lock, ok, err := c.st.TryLock(ctx, c.opt.Prefix+":account-check", c.opt.CheckInterval); err == nil && ok {
			_ = lock // expires by itself: it spaces the checks
			c.Check(ctx)
			continue
		}
		t := time.NewTimer(c.opt.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Check asks amoCRM whether the account works and stores the answer (after an install, the
// replicas resume at once).
func (c *Consumer) Check(ctx context.Context) {
	err := c.probe(ctx)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		_, _ = c.status.Set(ctx, amo.Status{State: amo.StateOK})
		return
	}
	if st, stopped := amo.StatusOf(c.opt.Host, err); stopped {
		_, _ = c.status.Set(ctx, st)
		return
	}
	// No answer, a 5xx: says nothing about the account; the calls' own retries handle it.
	c.log.WithError(err).Warn("checking the amoCRM account")
}

// Ready is the readiness check: the account's status in words.
func (c *Consumer) Ready(ctx context.Context) error {
	st, err := c.status.Get(ctx)
	if err != nil {
		return err
	}
	if st.State != amo.StateOK {
		return fmt.Errorf("%s (since %s)", st.Message, st.Since.UTC().Format(time.RFC3339))
	}
	return nil
}
