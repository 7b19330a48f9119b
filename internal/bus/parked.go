package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AllParked as the message id makes Requeue move every parked message.
const AllParked = "*"

// ParkedMessage is a message in a parking queue, for an operator to look at.
type ParkedMessage struct {
	Delivery
	// Reason is "permanent", "panic", "retries exhausted" or "retry publish failed"; empty for a
	// message the broker dead-lettered (see DeathReason).
	Reason    string
	LastError string
	ParkedAt  time.Time
	// DeathReason is the broker's reason ("rejected", "expired", "maxlen") for a message that
	// arrived by dead-lettering rather than from this package.
	DeathReason string
}

// Parked returns up to limit messages of the parking queue of queue, oldest first, without
// removing them: they are fetched unacknowledged and put back in place.
func (b *Bus) Parked(ctx context.Context, queue string, limit int) ([]ParkedMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	parked := ParkedQueueName(queue)
	var out []ParkedMessage
	err := b.withChannel(ctx, func(ch *amqp.Channel) error {
		var last uint64
		defer func() {
			if last > 0 {
				// Put them all back at their places, in one go.
				_ = ch.Nack(last, true, true)
			}
		}()
		for len(out) < limit {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, ok, err := ch.Get(parked, false)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			last = d.DeliveryTag
			out = append(out, toParked(d, queue))
		}
		return nil
	})
	if err != nil {
		return out, b.errorf("list parked messages of %q: %w", queue, err)
	}
	return out, nil
}

func toParked(d amqp.Delivery, queue string) ParkedMessage {
	p := ParkedMessage{Delivery: toDelivery(d, queue)}
	p.Reason, _ = p.Headers[HeaderParkedReason].(string)
	p.LastError, _ = p.Headers[HeaderLastError].(string)
	p.ParkedAt, _ = p.Headers[HeaderParkedAt].(time.Time)
	if deaths, ok := p.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		if t, ok := deaths[0].(amqp.Table); ok {
			if q, _ := t["queue"].(string); q == queue {
				p.DeathReason, _ = t["reason"].(string)
			}
		}
	}
	return p
}

// Requeue moves parked messages of queue back to queue: the one(s) with message id messageID, or
// all with AllParked. They go straight to the queue through the default exchange (not to their
// original exchange, which would deliver them again to every other bound queue), with the attempt
// count reset, so they get the full set of retries again. Each is published with a confirm before
// it is removed from the parking queue. It returns how many it moved.
func (b *Bus) Requeue(ctx context.Context, queue, messageID string) (int, error) {
	if messageID == "" {
		return 0, errors.New("bus: requeue: no message id (use AllParked to requeue everything)")
	}
	parked := ParkedQueueName(queue)
	moved := 0
	err := b.withChannel(ctx, func(ch *amqp.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return err
		}
		returns := ch.NotifyReturn(make(chan amqp.Return, 1))
		q, err := ch.QueueDeclarePassive(parked, true, false, false, false, nil)
		if err != nil {
			return err
		}
		// Only the messages there now: one parked again meanwhile is not looked at twice.
		for range q.Messages {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, ok, err := ch.Get(parked, false)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if messageID != AllParked && d.MessageId != messageID {
				continue // stays unacknowledged; closing the channel puts it back
			}
			headers := amqp.Table{}
			for k, v := range d.Headers {
				headers[k] = v
			}
			for _, k := range []string{HeaderAttempt, HeaderParkedReason, HeaderParkedAt} {
				delete(headers, k)
			}
			headers[HeaderRequeued] = int64(headerInt(d.Headers[HeaderRequeued]) + 1)
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{
				Headers:         headers,
				ContentType:     d.ContentType,
				ContentEncoding: d.ContentEncoding,
				DeliveryMode:    amqp.Persistent,
				CorrelationId:   d.CorrelationId,
				ReplyTo:         d.ReplyTo,
				MessageId:       d.MessageId,
				Timestamp:       d.Timestamp,
				Type:            d.Type,
				AppId:           d.AppId,
				Body:            d.Body,
			})
			if err != nil {
				return err
			}
			acked, err := dc.WaitContext(ctx)
			if err != nil {
				return err
			}
			select {
			case r, ok := <-returns:
				if ok {
					return fmt.Errorf("queue %q: %w (%d %s)", queue, ErrUnroutable, r.ReplyCode, r.ReplyText)
				}
			default:
			}
			if !acked {
				return ErrNacked
			}
			if err := d.Ack(false); err != nil {
				return err
			}
			moved++
			b.m.requeued.WithLabelValues(queue).Inc()
		}
		return nil
	})
	if err != nil {
		return moved, b.errorf("requeue parked messages of %q: %w", queue, err)
	}
	if moved > 0 {
		b.log.WithField("queue", queue).Infof("requeued %d parked message(s)", moved)
	}
	return moved, nil
}
