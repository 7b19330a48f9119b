package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sirupsen/logrus"
)

// replyTo is RabbitMQ's direct reply-to pseudo-queue: replies go straight to the calling channel,
// with no reply queue to declare, delete or leak.
const replyTo = "amq.rabbitmq.reply-to"

// HeaderRPCError carries the error text of a failed RPC handler in the reply.
const HeaderRPCError = "x-ringbridge-error"

// ErrConnectionLost is returned by Call when the connection dropped while waiting for the reply:
// the request may or may not have been executed.
var ErrConnectionLost = errors.New("connection lost while waiting for the reply; the request may have been executed")

// RemoteError is the error a Serve handler returned, as Call sees it.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return "remote: " + e.Message }

// RPCHandler answers one request. A returned error is sent to the caller as a RemoteError.
type RPCHandler func(ctx context.Context, req Delivery) (reply []byte, err error)

type rpcResult struct {
	body []byte
	err  error
}

// rpcClient is the calling side: one channel per connection, consuming from the direct reply-to
// pseudo-queue, on which all requests are published (direct reply-to requires that).
type rpcClient struct {
	mu   sync.Mutex
	sess *rpcSession
}

type rpcSession struct {
	ch      *amqp.Channel
	dead    chan struct{}
	mu      sync.Mutex
	pending map[string]chan rpcResult
}

func (s *rpcSession) register(id string) chan rpcResult {
	c := make(chan rpcResult, 1)
	s.mu.Lock()
	s.pending[id] = c
	s.mu.Unlock()
	return c
}

func (s *rpcSession) unregister(id string) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

func (s *rpcSession) deliver(id string, r rpcResult) {
	s.mu.Lock()
	c := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if c != nil {
		c <- r // buffered; a late reply to a call that gave up finds no channel
	}
}

// rpcSession returns the live RPC session, opening one on the current connection if needed. It
// waits for a connection without holding the lock, so every caller waits only as long as its own
// ctx allows.
func (b *Bus) rpcSession(ctx context.Context) (*rpcSession, error) {
	live := func() *rpcSession {
		if s := b.rpc.sess; s != nil {
			select {
			case <-s.dead:
			default:
				return s
			}
		}
		return nil
	}
	b.rpc.mu.Lock()
	s := live()
	b.rpc.mu.Unlock()
	if s != nil {
		return s, nil
	}
	conn, lost, err := b.connection(ctx)
	if err != nil {
		return nil, err
	}
	b.rpc.mu.Lock()
	defer b.rpc.mu.Unlock()
	if s := live(); s != nil {
		return s, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consume %s: %w", replyTo, err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	s = &rpcSession{ch: ch, dead: make(chan struct{}), pending: map[string]chan rpcResult{}}
	go func() {
		defer close(s.dead)
		defer ch.Close()
		for {
			select {
			case d, ok := <-replies:
				if !ok {
					return
				}
				var r rpcResult
				if msg, isErr := d.Headers[HeaderRPCError].(string); isErr {
					r.err = &RemoteError{Message: msg}
				}
				r.body = d.Body
				s.deliver(d.CorrelationId, r)
			case ret := <-returns:
				s.deliver(ret.CorrelationId, rpcResult{err: fmt.Errorf("%w (%d %s)", ErrUnroutable, ret.ReplyCode, ret.ReplyText)})
			case <-closed:
				return
			case <-lost:
				return
			case <-b.ctx.Done():
				return
			}
		}
	}()
	b.rpc.sess = s
	return s, nil
}

// Call sends body as a request to exchange/routingKey and waits for the reply until ctx is done.
// The request expires in the broker when ctx's deadline passes, so a server that comes back late
// does not execute a request nobody waits for. Errors: a *RemoteError when the handler failed,
// ErrUnroutable when no queue is bound for the key, ErrConnectionLost when the connection dropped
// meanwhile, ctx's error on timeout. Call waits for a connection; it does not retry a request (the
// server may have executed it).
func (b *Bus) Call(ctx context.Context, exchange, routingKey string, body []byte) ([]byte, error) {
	fail := func(err error) ([]byte, error) {
		return nil, b.red.Err(fmt.Errorf("bus: call exchange %q key %q: %w", exchange, routingKey, err))
	}
	s, err := b.rpcSession(ctx)
	if err != nil {
		return fail(err)
	}
	id := newID()
	result := s.register(id)
	defer s.unregister(id)

	pub := amqp.Publishing{
		ContentType:   "application/json",
		DeliveryMode:  amqp.Transient, // the reply-to pseudo-queue does not survive a restart either
		CorrelationId: id,
		MessageId:     id,
		ReplyTo:       replyTo,
		Timestamp:     time.Now(),
		AppId:         b.cfg.Name,
		Body:          body,
	}
	if dl, ok := ctx.Deadline(); ok {
		ms := time.Until(dl).Milliseconds()
		if ms < 1 {
			return fail(context.DeadlineExceeded)
		}
		pub.Expiration = strconv.FormatInt(ms, 10)
	}
	if err := s.ch.PublishWithContext(ctx, exchange, routingKey, true, false, pub); err != nil {
		return fail(err)
	}
	select {
	case r := <-result:
		if r.err != nil {
			_, err := fail(r.err)
			return r.body, err
		}
		return r.body, nil
	case <-s.dead:
		select {
		case r := <-result:
			if r.err != nil {
				_, err := fail(r.err)
				return r.body, err
			}
			return r.body, nil
		default:
		}
		return fail(ErrConnectionLost)
	case <-ctx.Done():
		return fail(fmt.Errorf("no reply: %w", ctx.Err()))
	}
}

// Serve answers requests from the queue of spec (declared durable and bound, without retry or
// parking queues: see declareRPCQueue) until ctx is done, with spec.Workers concurrent handlers.
// It replies to the request's reply_to with its correlation_id and acknowledges the request after
// the reply is confirmed; if the connection drops in between, the request is delivered again and
// the handler runs again, so handlers must be idempotent like every consumer. A panic becomes an
// error reply. Returns like Consume.
func (b *Bus) Serve(ctx context.Context, spec QueueSpec, h RPCHandler) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("bus: serve: %w", err)
	}
	if h == nil {
		return errors.New("bus: serve: nil handler")
	}
	spec = spec.normalize(b.cfg)
	return b.consumeLoop(ctx, spec, declareRPCQueue, func(ctx, sess context.Context, raw amqp.Delivery) {
		b.serveOne(ctx, sess, spec, h, raw)
	})
}

func (b *Bus) serveOne(ctx, sess context.Context, spec QueueSpec, h RPCHandler, raw amqp.Delivery) {
	log := b.log.WithFields(logrus.Fields{"queue": spec.Name, "message_id": raw.MessageId})
	if ctx.Err() != nil {
		_ = raw.Nack(false, true)
		return
	}
	if raw.ReplyTo == "" {
		log.Error("request without reply_to: nobody to answer; dropping it")
		_ = raw.Ack(false)
		return
	}
	d := toDelivery(raw, spec.Name)
	var reply []byte
	err := invoke(ctx, func(ctx context.Context, d Delivery) error {
		var err error
		reply, err = h(ctx, d)
		return err
	}, d)
	msg := Message{CorrelationID: raw.CorrelationId, Body: reply}
	if err != nil {
		var pe *PanicError
		if errors.As(err, &pe) {
			log.WithField("stack", string(pe.Stack)).Errorf("rpc handler panicked: %v", pe.Value)
		} else {
			log.WithError(err).Warn("rpc handler failed")
		}
		msg.Headers = map[string]any{HeaderRPCError: b.red.String(err.Error())}
	}
	perr := b.publishReply(sess, raw.ReplyTo, msg)
	switch {
	case perr == nil:
		b.m.consumed.WithLabelValues(spec.Name).Inc()
	case errors.Is(perr, ErrUnroutable):
		log.Info("rpc caller is gone, reply not delivered")
	case sess.Err() != nil:
		return // channel gone: the request is redelivered
	default:
		log.WithError(perr).Error("cannot publish the rpc reply; requeueing the request")
		_ = raw.Nack(false, true)
		return
	}
	_ = raw.Ack(false)
}

// publishReply publishes an RPC reply with a confirm. To the direct reply-to pseudo-queue it is not
// mandatory: RabbitMQ does not count amq.rabbitmq.reply-to.* as a queue for routing, so a
// mandatory reply would come back as unroutable although it was delivered. A reply to a caller
// that is gone is then dropped by the broker, which is harmless: that caller has given up.
func (b *Bus) publishReply(ctx context.Context, to string, msg Message) error {
	p, err := b.newPublishing("", to, msg)
	if err != nil {
		return err
	}
	p.mandatory = !strings.HasPrefix(to, replyTo)
	c, err := b.enqueue(ctx, p)
	if err != nil {
		return err
	}
	if err := c.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			p.abandoned.Store(true)
		}
		return err
	}
	return nil
}
