package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sirupsen/logrus"
)

// Headers the bus sets on messages that failed. They travel with the message through the retry
// queues into the parking queue.
const (
	// HeaderAttempt counts failed handling attempts: absent on the first delivery, 1 after the
	// first failure, and so on.
	HeaderAttempt = "x-ringbridge-attempt"
	// HeaderLastError is the text of the last handler error.
	HeaderLastError = "x-ringbridge-last-error"
	// HeaderOriginalExchange and HeaderOriginalRoutingKey record where the message was first
	// published: a retried message comes back through the default exchange.
	HeaderOriginalExchange   = "x-ringbridge-original-exchange"
	HeaderOriginalRoutingKey = "x-ringbridge-original-routing-key"
	// HeaderParkedReason is "permanent", "panic" or "retries exhausted".
	HeaderParkedReason = "x-ringbridge-parked-reason"
	// HeaderParkedAt is when the message was parked.
	HeaderParkedAt = "x-ringbridge-parked-at"
	// HeaderRequeued counts how often an operator requeued the message from the parking queue.
	HeaderRequeued = "x-ringbridge-requeued"
)

// maxErrorHeader bounds the error text carried in a header: a huge error (an HTML error page
// quoted by a CRM client) must not make the message too large to park.
const maxErrorHeader = 2048

// Delivery is a message as a handler sees it.
type Delivery struct {
	MessageID     string
	Type          string
	ContentType   string
	CorrelationID string
	ReplyTo       string
	// Exchange and RoutingKey are where the message was originally published, also for a
	// retried message (which physically arrives through the default exchange).
	Exchange   string
	RoutingKey string
	// Queue is the queue it was consumed from.
	Queue     string
	Headers   map[string]any
	Timestamp time.Time
	Body      []byte
	// Redelivered is set when the broker delivers the message again after a consumer died
	// before acknowledging it: the work may have been done already.
	Redelivered bool
	// Attempt is the number of earlier failed attempts (0 on the first delivery).
	Attempt int
}

// Handler handles one delivery. Returning nil acknowledges it. An error sends it to the next
// retry queue, or to the parking queue when retries are exhausted or the error is Permanent. A
// panic is recovered and parks the message. Return an error when ctx is done: the message is then
// requeued for another consumer, not counted as a failure.
type Handler func(ctx context.Context, d Delivery) error

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks an error that retrying cannot fix (a malformed message, an unknown schema
// version, a CRM's 400): the message is parked at once instead of retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent (a recovered
// panic counts as permanent too).
func IsPermanent(err error) bool {
	var p *permanentError
	var pe *PanicError
	return errors.As(err, &p) || errors.As(err, &pe)
}

// PanicError is what a panicking handler turns into.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panic: %v", e.Value) }

// Consume consumes the queue of spec (declaring it, its retry and parking queues and bindings)
// with spec.Workers concurrent handlers, until ctx is done; it then stops taking deliveries, lets
// the handlers finish, and returns nil. It survives connection and channel losses: it re-declares
// and consumes again, and the broker redelivers what was not acknowledged. It returns an error
// only when it cannot ever work: an invalid spec, a queue that exists with other arguments (406),
// no permission (403), or the Bus closed.
func (b *Bus) Consume(ctx context.Context, spec QueueSpec, h Handler) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("bus: consume: %w", err)
	}
	if h == nil {
		return errors.New("bus: consume: nil handler")
	}
	spec = spec.normalize(b.cfg)
	return b.consumeLoop(ctx, spec, declareQueue, func(ctx, sess context.Context, raw amqp.Delivery) {
		b.handle(ctx, sess, spec, h, raw)
	})
}

// fatalError marks a consumer error that retrying cannot fix, so Consume returns it.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

type processFunc func(ctx, sess context.Context, raw amqp.Delivery)

func (b *Bus) consumeLoop(ctx context.Context, spec QueueSpec, declare func(*amqp.Channel, QueueSpec) error, process processFunc) error {
	log := b.log.WithField("queue", spec.Name)
	failures := 0
	for {
		conn, lost, err := b.connection(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bus: consume %q: %w", spec.Name, err)
		}
		started, err := b.consumeSession(ctx, conn, lost, spec, declare, process)
		if ctx.Err() != nil {
			return nil
		}
		if b.ctx.Err() != nil {
			return fmt.Errorf("bus: consume %q: %w", spec.Name, ErrClosed)
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return b.errorf("consume %q: %w", spec.Name, fatal.err)
		}
		if started {
			failures = 0
		}
		delay := backoff(b.cfg.ReconnectMin, b.cfg.ReconnectMax, failures)
		failures++
		if isConnectionError(err) {
			// The connection loop reconnects; connection() then waits for it.
			log.WithError(b.red.Err(err)).Info("consumer stopped by the connection loss, resuming after reconnection")
			select {
			case <-lost:
			case <-ctx.Done():
				return nil
			case <-b.ctx.Done():
				return fmt.Errorf("bus: consume %q: %w", spec.Name, ErrClosed)
			}
			continue
		}
		log.WithError(b.red.Err(err)).Warnf("consumer stopped, consuming again in %s", roundDelay(delay))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		case <-b.ctx.Done():
			return fmt.Errorf("bus: consume %q: %w", spec.Name, ErrClosed)
		}
	}
}

// consumeSession consumes on one channel until it closes or ctx is done. started reports whether
// the consumer got going (for the backoff).
func (b *Bus) consumeSession(ctx context.Context, conn *amqp.Connection, lost <-chan struct{}, spec QueueSpec,
	declare func(*amqp.Channel, QueueSpec) error, process processFunc) (started bool, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Qos(spec.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("set prefetch: %w", err)
	}
	if err := declare(ch, spec); err != nil {
		if isFatalDeclareError(err) {
			return false, &fatalError{err}
		}
		return false, err
	}
	tag := fmt.Sprintf("%s.%s.%d", b.cfg.Name, spec.Name, b.seq.Add(1))
	deliveries, err := ch.Consume(spec.Name, tag, false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume: %w", err)
	}
	b.log.WithFields(logrus.Fields{"queue": spec.Name, "workers": spec.Workers, "prefetch": spec.Prefetch}).Info("consuming")

	// sess is done when this channel is: a handler's retry publish that has not gone out by then
	// is abandoned, because the broker will redeliver the message anyway.
	sess, endSession := context.WithCancel(context.Background())
	defer endSession()

	var wg sync.WaitGroup
	for range spec.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range deliveries {
				process(ctx, sess, d)
			}
		}()
	}

	select {
	case <-ctx.Done():
		// Stop new deliveries; the handlers finish what they hold, and prefetched deliveries
		// they have not started are requeued by process (ctx is done).
		_ = ch.Cancel(tag, false)
		wg.Wait()
		return true, nil
	case e, ok := <-closed:
		err = errors.New("channel closed")
		if ok && e != nil {
			err = e
		}
	case <-lost:
		err = fmt.Errorf("connection lost: %w", amqp.ErrClosed)
	case <-b.ctx.Done():
		err = ErrClosed
	}
	endSession()
	_ = ch.Close() // closes deliveries, so the workers drain and stop
	wg.Wait()
	return true, fmt.Errorf("consumer channel: %w", err)
}

// toDelivery converts an amqp delivery, restoring the original exchange and routing key of a
// retried message.
func toDelivery(d amqp.Delivery, queue string) Delivery {
	out := Delivery{
		MessageID:     d.MessageId,
		Type:          d.Type,
		ContentType:   d.ContentType,
		CorrelationID: d.CorrelationId,
		ReplyTo:       d.ReplyTo,
		Exchange:      d.Exchange,
		RoutingKey:    d.RoutingKey,
		Queue:         queue,
		Headers:       map[string]any(d.Headers),
		Timestamp:     d.Timestamp,
		Body:          d.Body,
		Redelivered:   d.Redelivered,
	}
	if out.Headers == nil {
		out.Headers = map[string]any{}
	}
	if v, ok := out.Headers[HeaderOriginalRoutingKey].(string); ok {
		out.RoutingKey = v
		out.Exchange, _ = out.Headers[HeaderOriginalExchange].(string)
	}
	out.Attempt = headerInt(out.Headers[HeaderAttempt])
	return out
}

func headerInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int8:
		return int(x)
	case int16:
		return int(x)
	case int32:
		return int(x)
	case int64:
		return int(x)
	case uint8:
		return int(x)
	case uint16:
		return int(x)
	case uint32:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

// handle runs the handler on one delivery and settles it: ack, retry, park or requeue.
// Settling a failure is "publish the copy (confirmed), then ack the original", so at every
// moment the message exists in at least one queue.
func (b *Bus) handle(ctx, sess context.Context, spec QueueSpec, h Handler, raw amqp.Delivery) {
	log := b.log.WithFields(logrus.Fields{"queue": spec.Name, "message_id": raw.MessageId})
	if ctx.Err() != nil {
		// Shutting down: this delivery was prefetched but not started.
		_ = raw.Nack(false, true)
		return
	}
	if b.testHookDelivery != nil {
		b.testHookDelivery(raw)
	}
	d := toDelivery(raw, spec.Name)
	err := invoke(ctx, h, d)
	if err == nil {
		if aerr := raw.Ack(false); aerr != nil {
			log.WithError(aerr).Info("ack failed (channel closed): the broker will redeliver the message")
			return
		}
		b.m.consumed.WithLabelValues(spec.Name).Inc()
		return
	}
	var pe *PanicError
	isPanic := errors.As(err, &pe)
	if ctx.Err() != nil && !IsPermanent(err) {
		// The handler gave up because we are stopping, not because of the message.
		_ = raw.Nack(false, true)
		return
	}
	if isPanic {
		log.WithField("stack", string(pe.Stack)).Errorf("handler panicked: %v; parking the message", pe.Value)
	}

	attempt := d.Attempt + 1
	switch {
	case isPanic:
		b.settleFailure(sess, spec, raw, d, err, attempt, "panic", log)
	case IsPermanent(err):
		b.settleFailure(sess, spec, raw, d, err, attempt, "permanent", log)
	case attempt > len(spec.RetryDelays):
		b.settleFailure(sess, spec, raw, d, err, attempt, "retries exhausted", log)
	default:
		b.settleFailure(sess, spec, raw, d, err, attempt, "", log)
	}
}

// settleFailure sends a failed message to retry queue number attempt (parkReason == "") or to the
// parking queue, then acks the original. If that publish fails, the message is parked instead,
// and if even that fails it is requeued (after a pause, so a broken topology does not spin).
func (b *Bus) settleFailure(sess context.Context, spec QueueSpec, raw amqp.Delivery, d Delivery, herr error,
	attempt int, parkReason string, log logrus.FieldLogger) {
	if raw.Acknowledger == nil {
		return
	}
	errText := b.red.String(herr.Error())
	if len(errText) > maxErrorHeader {
		errText = errText[:maxErrorHeader] + "…"
	}
	headers := make(map[string]any, len(raw.Headers)+6)
	for k, v := range raw.Headers {
		headers[k] = v
	}
	headers[HeaderAttempt] = int64(attempt)
	headers[HeaderLastError] = errText
	if _, ok := headers[HeaderOriginalRoutingKey]; !ok {
		headers[HeaderOriginalExchange] = raw.Exchange
		headers[HeaderOriginalRoutingKey] = raw.RoutingKey
	}
	msg := Message{
		ID:            raw.MessageId,
		Type:          raw.Type,
		ContentType:   raw.ContentType,
		Headers:       headers,
		Body:          raw.Body,
		Timestamp:     raw.Timestamp,
		CorrelationID: raw.CorrelationId,
		ReplyTo:       raw.ReplyTo,
	}

	park := func(reason string) error {
		msg.Headers[HeaderParkedReason] = reason
		msg.Headers[HeaderParkedAt] = time.Now().UTC()
		return b.Publish(sess, "", ParkedQueueName(spec.Name), msg)
	}

	var err error
	if parkReason == "" {
		target := RetryQueueName(spec.Name, attempt)
		err = b.Publish(sess, "", target, msg)
		if err == nil {
			b.m.retried.WithLabelValues(spec.Name).Inc()
			log.WithFields(logrus.Fields{"attempt": attempt, "retry_in": spec.RetryDelays[attempt-1].String()}).
				Warnf("handler failed, retrying: %s", errText)
		} else if sess.Err() == nil {
			log.WithError(err).Errorf("cannot publish to retry queue %s, parking instead", target)
			parkReason = "retry publish failed"
			err = park(parkReason)
		}
	} else {
		err = park(parkReason)
	}
	if parkReason != "" && err == nil {
		b.m.parked.WithLabelValues(spec.Name).Inc()
		log.WithFields(logrus.Fields{"attempt": attempt, "reason": parkReason}).Errorf("message parked in %s: %s", ParkedQueueName(spec.Name), errText)
	}
	if err != nil {
		if sess.Err() != nil {
			// The channel is gone: the broker redelivers the original, nothing to settle.
			return
		}
		log.WithError(err).Error("cannot retry or park the message; requeueing it")
		select {
		case <-time.After(time.Second):
		case <-sess.Done():
		}
		_ = raw.Nack(false, true)
		return
	}
	if aerr := raw.Ack(false); aerr != nil {
		log.WithError(aerr).Info("ack after retry/park failed (channel closed): the message will be redelivered and may be handled twice")
	}
}

// invoke calls h and turns a panic into a *PanicError.
func invoke(ctx context.Context, h Handler, d Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h(ctx, d)
}
