package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The exchanges of the system (docs/architecture.md, "Messages").
const (
	// ExchangeCalls carries call events; routing key call.<pbx>.<kind>.
	ExchangeCalls = "calls"
	// ExchangeCommands carries commands to one service instance; routing key e.g. originate.<pbx>.
	ExchangeCommands = "commands"
	// ExchangeSupervisorEvents carries update progress and other supervisor events.
	ExchangeSupervisorEvents = "supervisor.events"
)

// Exchange is an exchange the Bus declares on every connection. Exchanges are always durable and
// never auto-deleted: they are the fixed addresses services publish to.
type Exchange struct {
	Name string
	Kind string // "topic", "direct", "fanout", "headers"
}

// StandardExchanges are the exchanges every service declares, so whichever service starts first
// creates them and no publish ever fails on a missing exchange.
func StandardExchanges() []Exchange {
	return []Exchange{
		{Name: ExchangeCalls, Kind: amqp.ExchangeTopic},
		{Name: ExchangeCommands, Kind: amqp.ExchangeDirect},
		{Name: ExchangeSupervisorEvents, Kind: amqp.ExchangeTopic},
	}
}

// QueueSpec describes a consumer's durable queue, its bindings, its retry and parking queues, and
// how it is consumed.
//
// For a queue Q, DeclareQueue (and Consume) declare:
//
//	Q           durable; dead-letters to Q.parked, so a message rejected outside this package
//	            is parked rather than dropped
//	Q.retry.N   durable; x-message-ttl RetryDelays[N-1]; dead-letters back to Q through the
//	            default exchange
//	Q.parked    durable; no TTL, no consumer: messages wait there for an operator
//
// The arguments of these queues are part of their identity in RabbitMQ: declaring Q.retry.1 with
// another TTL than the existing one fails with PRECONDITION_FAILED. To change the delays of a
// running system, delete the retry queues when they are empty, then deploy.
type QueueSpec struct {
	// Name is the queue name, conventionally <service>.<purpose>, e.g. "connector-bx.calls".
	Name string
	// Exchange and Keys are the bindings; an empty Exchange means no binding (messages arrive
	// through the default exchange, addressed by queue name).
	Exchange string
	Keys     []string
	// RetryDelays overrides Config.RetryDelays for this queue.
	RetryDelays []time.Duration

	// Workers is the number of handler goroutines (default 1). Prefetch is the QoS of the
	// consumer's channel (default max(Config.Prefetch, Workers)). Both are consumer settings,
	// not part of the queue.
	Workers  int
	Prefetch int
}

// RetryQueueName is the name of the n-th (1-based) retry queue of queue q.
func RetryQueueName(q string, n int) string { return fmt.Sprintf("%s.retry.%d", q, n) }

// ParkedQueueName is the name of the parking queue of queue q.
func ParkedQueueName(q string) string { return q + ".parked" }

func (s QueueSpec) validate() error {
	if s.Name == "" {
		return errors.New("queue spec has no name")
	}
	if strings.HasPrefix(s.Name, "amq.") {
		return fmt.Errorf("queue %q: the amq. prefix is reserved by RabbitMQ", s.Name)
	}
	if s.Exchange != "" && len(s.Keys) == 0 {
		return fmt.Errorf("queue %q: exchange %q given without routing keys", s.Name, s.Exchange)
	}
	if s.Workers < 0 || s.Prefetch < 0 {
		return fmt.Errorf("queue %q: negative workers or prefetch", s.Name)
	}
	if err := validateDelays(s.RetryDelays); err != nil {
		return fmt.Errorf("queue %q: %w", s.Name, err)
	}
	return nil
}

// normalize fills the consumer defaults from the Bus config.
func (s QueueSpec) normalize(c Config) QueueSpec {
	if len(s.RetryDelays) == 0 {
		s.RetryDelays = c.RetryDelays
	}
	if s.Workers == 0 {
		s.Workers = 1
	}
	if s.Prefetch == 0 {
		s.Prefetch = max(c.Prefetch, s.Workers)
	}
	return s
}

// declareExchanges declares the exchanges. Declaring an existing exchange with the same kind and
// flags is a no-op, which is what makes it safe for every service to do on every connection.
func declareExchanges(ch *amqp.Channel, exs []Exchange) error {
	for _, ex := range exs {
		if err := ch.ExchangeDeclare(ex.Name, ex.Kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %q (%s): %w", ex.Name, ex.Kind, err)
		}
	}
	return nil
}

// declareQueue declares Q, its retry queues and its parking queue, and binds Q. The parking queue
// is declared first and Q last, so a dead-letter target always exists before its source.
func declareQueue(ch *amqp.Channel, s QueueSpec) error {
	parked := ParkedQueueName(s.Name)
	if _, err := ch.QueueDeclare(parked, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %q: %w", parked, err)
	}
	for i, d := range s.RetryDelays {
		name := RetryQueueName(s.Name, i+1)
		args := amqp.Table{
			"x-message-ttl": d.Milliseconds(),
			// Through the default exchange straight back to Q, not to the original exchange:
			// re-publishing there would hand the message again to every other bound queue.
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": s.Name,
		}
		if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare queue %q: %w", name, err)
		}
	}
	args := amqp.Table{
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": parked,
	}
	if _, err := ch.QueueDeclare(s.Name, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %q: %w", s.Name, err)
	}
	for _, key := range s.Keys {
		if err := ch.QueueBind(s.Name, key, s.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to exchange %q with key %q: %w", s.Name, s.Exchange, key, err)
		}
	}
	return nil
}

// declareRPCQueue declares a request queue for Serve: durable, bound, with neither retry nor
// parking queues. A request is worth nothing once its caller has given up, and the caller learns
// of every failure (timeout, error reply), so nothing is lost silently by not parking requests.
func declareRPCQueue(ch *amqp.Channel, s QueueSpec) error {
	if _, err := ch.QueueDeclare(s.Name, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %q: %w", s.Name, err)
	}
	for _, key := range s.Keys {
		if err := ch.QueueBind(s.Name, key, s.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to exchange %q with key %q: %w", s.Name, s.Exchange, key, err)
		}
	}
	return nil
}

// DeclareRPCQueue declares the request queue Serve will consume, so a service can say it is ready
// only once requests sent to it are routable.
func (b *Bus) DeclareRPCQueue(ctx context.Context, spec QueueSpec) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("bus: declare rpc queue: %w", err)
	}
	if err := b.withChannel(ctx, func(ch *amqp.Channel) error { return declareRPCQueue(ch, spec) }); err != nil {
		return b.errorf("declare rpc queue %q: %w", spec.Name, err)
	}
	return nil
}

// DeclareQueue declares the queue of spec with its retry and parking queues and bindings, and
// remembers it so it is declared again on every reconnection (a broker that lost its data, or a
// new node, gets the queue back before anything is published). Publishers call it for the queues
// they must not publish past; Consume calls it itself.
func (b *Bus) DeclareQueue(ctx context.Context, spec QueueSpec) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("bus: declare queue: %w", err)
	}
	spec = spec.normalize(b.cfg)
	err := b.withChannel(ctx, func(ch *amqp.Channel) error { return declareQueue(ch, spec) })
	if err != nil {
		return b.errorf("declare queue %q: %w", spec.Name, err)
	}
	b.mu.Lock()
	b.queues[spec.Name] = spec
	b.mu.Unlock()
	return nil
}

// DeleteQueue deletes a queue declared from spec together with its retry and parking queues,
// messages included, and forgets it. It exists for tests and for an operator removing a service
// for good; a running service never needs it.
func (b *Bus) DeleteQueue(ctx context.Context, spec QueueSpec) error {
	spec = spec.normalize(b.cfg)
	b.mu.Lock()
	delete(b.queues, spec.Name)
	b.mu.Unlock()
	names := []string{spec.Name, ParkedQueueName(spec.Name)}
	for i := range spec.RetryDelays {
		names = append(names, RetryQueueName(spec.Name, i+1))
	}
	err := b.withChannel(ctx, func(ch *amqp.Channel) error {
		for _, n := range names {
			if _, err := ch.QueueDelete(n, false, false, false); err != nil {
				return fmt.Errorf("delete queue %q: %w", n, err)
			}
		}
		return nil
	})
	if err != nil {
		return b.errorf("delete queue %q: %w", spec.Name, err)
	}
	return nil
}

// declareAll declares the exchanges and every remembered queue on a fresh connection.
func (b *Bus) declareAll(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := declareExchanges(ch, b.cfg.Exchanges); err != nil {
		return err
	}
	b.mu.Lock()
	specs := make([]QueueSpec, 0, len(b.queues))
	for _, s := range b.queues {
		specs = append(specs, s)
	}
	b.mu.Unlock()
	for _, s := range specs {
		if err := declareQueue(ch, s); err != nil {
			return err
		}
	}
	return nil
}

// isFatalDeclareError reports whether a declaration failed for a reason that retrying cannot fix:
// the queue exists with other arguments (406) or the user may not touch it (403).
func isFatalDeclareError(err error) bool {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Code == amqp.PreconditionFailed || ae.Code == amqp.AccessRefused
	}
	return false
}

// isChannelError reports whether an AMQP error closed only a channel (the connection is fine), as
// opposed to a connection loss.
func isChannelError(err *amqp.Error) bool {
	if err == nil || !err.Server {
		return false
	}
	switch err.Code {
	case amqp.ContentTooLarge, amqp.NoConsumers, amqp.AccessRefused, amqp.NotFound, amqp.ResourceLocked, amqp.PreconditionFailed:
		return true
	}
	return false
}

// isConnectionError reports whether err, which closed a channel, means the whole connection is
// going away (the connection loop then reconnects; nothing to do per channel).
func isConnectionError(err error) bool {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return !isChannelError(ae)
	}
	return errors.Is(err, amqp.ErrClosed)
}
