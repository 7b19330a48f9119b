package bus

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message is what callers publish.
type Message struct {
	// ID becomes the AMQP message_id, the key consumers deduplicate on: publish the same event
	// twice with the same ID. Empty means a random one.
	ID string
	// Type is the AMQP type property, e.g. "call.ended".
	Type string
	// ContentType defaults to "application/json".
	ContentType string
	// Headers may hold strings, bools, integers, floats, []byte, time.Time and nested maps
	// ([]any and map[string]any); other types fail the publish.
	Headers map[string]any
	// Body is not copied: do not modify it until the publish is confirmed.
	Body []byte
	// Timestamp defaults to now. AMQP keeps whole seconds.
	Timestamp time.Time
	// CorrelationID and ReplyTo are for request/reply; Call and Serve set them.
	CorrelationID string
	ReplyTo       string
}

var (
	// ErrUnroutable: the broker returned a mandatory message because no queue is bound for it.
	ErrUnroutable = errors.New("unroutable: no queue is bound for this routing key")
	// ErrNacked: the broker refused the message (basic.nack), e.g. on an internal error.
	ErrNacked = errors.New("refused by the broker (nack)")
)

// PublishError is the error of a publish the broker did not accept. errors.Is(err, ErrUnroutable)
// and errors.Is(err, ErrNacked) tell the common cases apart; a channel error (e.g. 404 for a
// missing exchange) is wrapped as an *amqp091.Error.
type PublishError struct {
	Exchange   string
	RoutingKey string
	MessageID  string
	Err        error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("bus: publish %s to exchange %q with key %q: %v", e.MessageID, e.Exchange, e.RoutingKey, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// Confirmation is the future of one PublishAsync.
type Confirmation struct {
	p *publishing
	b *Bus
}

// Done is closed when the broker confirmed the message, refused it, or the Bus was closed.
func (c *Confirmation) Done() <-chan struct{} { return c.p.done }

// MessageID is the message_id the message was published with.
func (c *Confirmation) MessageID() string { return c.p.msg.MessageId }

// Err is the outcome once Done is closed: nil when the broker confirmed the message. Before that it
// returns errNotYet.
func (c *Confirmation) Err() error {
	select {
	case <-c.p.done:
		return c.p.err
	default:
		return errNotYet
	}
}

var errNotYet = errors.New("bus: publish not confirmed yet")

// Wait waits for the outcome. When ctx ends first it returns ctx's error with the reason the
// broker is not confirming (e.g. it is unreachable); the message stays queued and may still be
// published: use Publish to give up on it.
func (c *Confirmation) Wait(ctx context.Context) error {
	select {
	case <-c.p.done:
		return c.p.err
	case <-ctx.Done():
	}
	select {
	case <-c.p.done: // both ready: the outcome wins
		return c.p.err
	default:
	}
	why := ""
	if r := c.b.Ready(); r != nil {
		why = " (" + r.Error() + ")"
	}
	return fmt.Errorf("bus: publish %s to exchange %q with key %q: not confirmed%s: %w",
		c.p.msg.MessageId, c.p.exchange, c.p.key, why, ctx.Err())
}

// publishing is a message on its way: in the local buffer, in flight, or done.
type publishing struct {
	exchange, key string
	mandatory     bool
	msg           amqp.Publishing
	done          chan struct{}
	err           error
	resolved      atomic.Bool
	abandoned     atomic.Bool // the caller gave up: do not send it if it was not sent yet
	tag           uint64
	returned      *amqp.Return
	pub           *pubState
}

func (p *publishing) resolve(err error) {
	if !p.resolved.CompareAndSwap(false, true) {
		return
	}
	p.err = err
	close(p.done)
	p.pub.outstanding.Add(-1)
}

// pubState is the publisher's memory across connections.
type pubState struct {
	pending     chan *publishing // the bounded local buffer
	resend      []*publishing    // sent but unconfirmed when a channel died: sent again first
	resendN     atomic.Int64     // len(resend), for the gauge
	probe       int              // send this many of resend one at a time (see publishOnChannel)
	outstanding atomic.Int64     // accepted and not yet resolved, for Close
}

func (s *pubState) popResend() *publishing {
	p := s.resend[0]
	s.resend[0] = nil
	s.resend = s.resend[1:]
	s.resendN.Store(int64(len(s.resend)))
	return p
}

func (s *pubState) prependResend(ps []*publishing) {
	if len(ps) == 0 {
		return
	}
	s.resend = append(append(make([]*publishing, 0, len(ps)+len(s.resend)), ps...), s.resend...)
	s.resendN.Store(int64(len(s.resend)))
}

// failAll resolves everything still waiting; only after the publisher has stopped.
func (s *pubState) failAll(err error) {
	for _, p := range s.resend {
		p.resolve(err)
	}
	s.resend = nil
	s.resendN.Store(0)
	for {
		select {
		case p := <-s.pending:
			p.resolve(err)
		default:
			return
		}
	}
}

func (b *Bus) bufferedCount() float64 {
	return float64(len(b.pub.pending)) + float64(b.pub.resendN.Load())
}

// Publish publishes msg and returns once the broker has confirmed it: the message is then on disk
// in every queue it was routed to. An unroutable message (no queue bound for the key; every
// publish is mandatory) or a nack is an error. While the broker is unreachable the message waits
// in the local buffer and is sent after reconnection; when the buffer is full Publish blocks
// (back-pressure). A message unconfirmed at a connection loss is sent again, so a consumer may see
// it twice (same ID). When ctx ends first the message is dropped from the buffer if it was not
// sent yet, and Publish returns ctx's error with the reason.
//
// Concurrent Publish calls share one channel and are pipelined: throughput comes from many
// callers (or PublishAsync) with messages in flight together, not from one caller in a loop.
func (b *Bus) Publish(ctx context.Context, exchange, routingKey string, msg Message) error {
	c, err := b.PublishAsync(ctx, exchange, routingKey, msg)
	if err != nil {
		return err
	}
	if err := c.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			c.p.abandoned.Store(true)
		}
		return err
	}
	return nil
}

// PublishAsync queues msg for publishing and returns at once with its Confirmation, so one
// goroutine can have many messages in flight. It blocks only while the local buffer is full,
// until ctx is done. See Publish for the guarantees.
func (b *Bus) PublishAsync(ctx context.Context, exchange, routingKey string, msg Message) (*Confirmation, error) {
	p, err := b.newPublishing(exchange, routingKey, msg)
	if err != nil {
		return nil, err
	}
	return b.enqueue(ctx, p)
}

// enqueue puts p in the local buffer, blocking while it is full.
func (b *Bus) enqueue(ctx context.Context, p *publishing) (*Confirmation, error) {
	exchange, routingKey := p.exchange, p.key
	// closeMu makes Close wait for enqueues in progress, so nothing is enqueued after Close
	// drained the buffer.
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	select {
	case <-b.closing:
		return nil, ErrClosed
	default:
	}
	b.pub.outstanding.Add(1)
	select {
	case b.pub.pending <- p:
		return &Confirmation{p: p, b: b}, nil
	default:
	}
	select {
	case b.pub.pending <- p:
		return &Confirmation{p: p, b: b}, nil
	case <-ctx.Done():
		b.pub.outstanding.Add(-1)
		why := ""
		if r := b.Ready(); r != nil {
			why = "; " + r.Error()
		}
		return nil, fmt.Errorf("bus: publish %s to exchange %q with key %q: local buffer full (%d messages)%s: %w",
			p.msg.MessageId, exchange, routingKey, cap(b.pub.pending), why, ctx.Err())
	case <-b.closing:
		b.pub.outstanding.Add(-1)
		return nil, ErrClosed
	}
}

func (b *Bus) newPublishing(exchange, key string, msg Message) (*publishing, error) {
	var headers amqp.Table
	if len(msg.Headers) > 0 {
		// A copy: the message is sent later, maybe more than once, and the caller may reuse the map.
		headers = make(amqp.Table, len(msg.Headers))
		for k, v := range msg.Headers {
			headers[k] = normalizeHeader(v)
		}
		if err := headers.Validate(); err != nil {
			return nil, fmt.Errorf("bus: publish to exchange %q with key %q: headers: %w", exchange, key, err)
		}
	}
	if msg.ID == "" {
		msg.ID = newID()
	}
	if msg.ContentType == "" {
		msg.ContentType = "application/json"
	}
	if msg.Timestamp.IsZero() {
		msg.Timestamp = time.Now()
	}
	return &publishing{
		exchange:  exchange,
		key:       key,
		mandatory: true,
		done:      make(chan struct{}),
		pub:       &b.pub,
		msg: amqp.Publishing{
			Headers:       headers,
			ContentType:   msg.ContentType,
			DeliveryMode:  amqp.Persistent,
			CorrelationId: msg.CorrelationID,
			ReplyTo:       msg.ReplyTo,
			MessageId:     msg.ID,
			Timestamp:     msg.Timestamp,
			Type:          msg.Type,
			AppId:         b.cfg.Name,
			Body:          msg.Body,
		},
	}, nil
}

// normalizeHeader converts map[string]any (what callers naturally write) to amqp.Table, which is
// what the encoder accepts for a nested table.
func normalizeHeader(v any) any {
	switch x := v.(type) {
	case map[string]any:
		t := make(amqp.Table, len(x))
		for k, v := range x {
			t[k] = normalizeHeader(v)
		}
		return t
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = normalizeHeader(v)
		}
		return out
	case uint:
		return int64(x)
	case uint64:
		return int64(x)
	}
	return v
}

// publishLoop runs the publisher for one connection: channel after channel until the connection is
// lost. A channel error (the broker closes the channel, e.g. 404 for a publish to a missing
// exchange) costs only a new channel.
func (b *Bus) publishLoop(conn *amqp.Connection, lost <-chan struct{}) {
	failures := 0
	for {
		chErr, progressed := b.publishOnChannel(conn, lost)
		select {
		case <-lost:
			return
		case <-b.ctx.Done():
			return
		default:
		}
		if progressed {
			failures = 0
		}
		if isConnectionError(chErr) {
			// The connection is going: wait for the connection loop to notice, quietly.
			select {
			case <-lost:
			case <-b.ctx.Done():
			}
			return
		}
		delay := backoff(b.cfg.ReconnectMin, b.cfg.ReconnectMax, failures)
		failures++
		b.log.WithError(b.red.Err(chErr)).Warnf("rabbitmq %s: publisher channel closed, reopening in %s", b.addr, roundDelay(delay))
		select {
		case <-time.After(delay):
		case <-lost:
			return
		case <-b.ctx.Done():
			return
		}
	}
}

// publishOnChannel publishes on one confirm-mode channel until it closes, the connection is lost or
// the Bus is closed. Confirms come back in publish order (the library resequences them), so the
// in-flight messages are a FIFO matched one-to-one with confirmations.
//
// When the broker closes the channel because of a message (404 no such exchange, 406 message too
// large), every message in flight is lost for this channel and we cannot tell which one was at
// fault. With one in flight it is that one: it fails. With several, the next channel sends them
// one at a time (probe) so the culprit is found and failed alone, and the others go through.
func (b *Bus) publishOnChannel(conn *amqp.Connection, lost <-chan struct{}) (chErr error, progressed bool) {
	s := &b.pub
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err), false
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return fmt.Errorf("enable publisher confirms: %w", err), false
	}
	maxInFlight := b.cfg.MaxInFlight
	// Capacities cover every message in flight, so the library's reader never blocks on us.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, maxInFlight+1))
	returns := ch.NotifyReturn(make(chan amqp.Return, maxInFlight+1))
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))

	inflight := make([]*publishing, 0, maxInFlight)
	limit := maxInFlight
	if s.probe > 0 {
		limit = 1
	}

	send := func(p *publishing) bool {
		p.returned = nil
		p.tag = ch.GetNextPublishSeqNo()
		if err := ch.Publish(p.exchange, p.key, p.mandatory, false, p.msg); err != nil {
			s.prependResend([]*publishing{p})
			return false
		}
		inflight = append(inflight, p)
		b.m.published.Inc()
		return true
	}
	onReturn := func(r amqp.Return) {
		for _, p := range inflight {
			if p.returned == nil && p.msg.MessageId == r.MessageId && p.exchange == r.Exchange && p.key == r.RoutingKey {
				p.returned = &r
				return
			}
		}
	}
	// A basic.return precedes the ack of its message and the library hands both over in order
	// from one goroutine into buffered channels; draining returns before each ack makes sure the
	// return is seen first.
	drainReturns := func() {
		for {
			select {
			case r, ok := <-returns:
				if !ok {
					// Closed with the channel (ch.Close below): a closed channel would
					// answer at once forever.
					returns = nil
					return
				}
				onReturn(r)
			default:
				return
			}
		}
	}
	onConfirm := func(c amqp.Confirmation) {
		drainReturns()
		if len(inflight) == 0 {
			b.log.Errorf("bus: confirm %d for no message in flight", c.DeliveryTag)
			return
		}
		p := inflight[0]
		inflight[0] = nil
		inflight = inflight[1:]
		if p.tag != c.DeliveryTag {
			b.log.Errorf("bus: confirm tag %d for message with tag %d", c.DeliveryTag, p.tag)
		}
		progressed = true
		switch {
		case p.returned != nil:
			b.m.unroutable.Inc()
			p.resolve(&PublishError{Exchange: p.exchange, RoutingKey: p.key, MessageID: p.msg.MessageId,
				Err: fmt.Errorf("%w (%d %s)", ErrUnroutable, p.returned.ReplyCode, p.returned.ReplyText)})
		case !c.Ack:
			b.m.nacked.Inc()
			p.resolve(&PublishError{Exchange: p.exchange, RoutingKey: p.key, MessageID: p.msg.MessageId, Err: ErrNacked})
		default:
			b.m.confirmed.Inc()
			p.resolve(nil)
		}
		if s.probe > 0 {
			s.probe--
			if s.probe == 0 {
				limit = maxInFlight
			}
		}
	}

	var closeErr *amqp.Error
	func() {
		for {
			for len(inflight) < limit && len(s.resend) > 0 {
				p := s.popResend()
				if p.abandoned.Load() {
					p.resolve(context.Canceled)
					continue
				}
				if !send(p) {
					return
				}
			}
			var in chan *publishing
			if len(s.resend) == 0 && len(inflight) < limit {
				in = s.pending
			}
			select {
			case p := <-in:
				if p.abandoned.Load() {
					p.resolve(context.Canceled)
					continue
				}
				if !send(p) {
					return
				}
			case r, ok := <-returns:
				if !ok {
					returns = nil
					continue
				}
				onReturn(r)
			case c, ok := <-confirms:
				if !ok {
					closeErr = <-closed
					return
				}
				onConfirm(c)
			case e := <-closed:
				closeErr = e
				return
			case <-lost:
				return
			case <-b.ctx.Done():
				return
			}
		}
	}()

	// Collect the confirms that arrived before the end; Close makes the library close the
	// listener channel once its buffered confirms are read.
	_ = ch.Close()
	timeout := time.NewTimer(2 * time.Second)
collect:
	for {
		select {
		case c, ok := <-confirms:
			if !ok {
				break collect
			}
			onConfirm(c)
		case <-timeout.C:
			break collect
		}
	}
	timeout.Stop()

	if closeErr != nil && isChannelError(closeErr) && len(inflight) > 0 {
		if len(inflight) == 1 {
			p := inflight[0]
			inflight = nil
			b.m.nacked.Inc()
			p.resolve(&PublishError{Exchange: p.exchange, RoutingKey: p.key, MessageID: p.msg.MessageId, Err: closeErr})
			if s.probe > 0 {
				s.probe--
			}
			progressed = true
		} else {
			s.probe = len(inflight)
		}
	}
	s.prependResend(inflight)
	if closeErr != nil {
		return closeErr, progressed
	}
	return errors.New("channel closed"), progressed
}
