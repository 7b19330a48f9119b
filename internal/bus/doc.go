// Package bus is ringbridge's RabbitMQ layer: one reconnecting connection per process, publishing
// with publisher confirms, consuming with manual acks, retry and parking queues, and RPC over
// direct reply-to. Services use it instead of amqp091-go directly, so every one of them gets the
// same delivery guarantees and the same topology.
//
// # Topology
//
// Exchanges, declared by every Bus on every connection (declaring is idempotent, so it does not
// matter which service starts first):
//
//	calls              topic, durable   call events, routing key call.<pbx>.<kind>
//	commands           direct, durable  commands to one instance, e.g. originate.<pbx>
//	supervisor.events  topic, durable   update progress and other supervisor events
//
// A consumer owns a durable queue Q (named <service>.<purpose>, e.g. "connector-bx.calls") bound
// to an exchange with its keys, and with it (see QueueSpec):
//
//	Q.retry.1 … Q.retry.N  durable, x-message-ttl = RetryDelays[i] (default 1s, 5s, 30s, 2m),
//	                       dead-lettering back to Q through the default exchange
//	Q.parked               durable, no TTL, no consumer: for an operator (Parked, Requeue)
//
// Q itself dead-letters to Q.parked, so even a message rejected by something other than this
// package lands in the parking queue rather than nowhere. The retry delay is a per-queue TTL, not a
// per-message one, because RabbitMQ only expires messages at the head of a queue: with one TTL
// per queue, the head is always the first to expire and no message waits behind a longer one.
//
// An RPC server (Serve) owns a plain durable request queue without retry or parking queues: a
// request is worthless once its caller gave up, and the caller is told of every failure. Requests
// carry an expiration equal to the caller's deadline, so a server that comes back late does not
// execute stale requests (e.g. ring a phone ten minutes after the click).
//
// # Delivery guarantees
//
// At least once, end to end; never silently dropped:
//
//   - Publish returns nil only after the broker confirmed the message (it is then on disk in every
//     queue it was routed to). Messages are persistent and mandatory: a message no queue is bound
//     for is an error (ErrUnroutable), not a loss. A nack is an error (ErrNacked).
//   - While the broker is unreachable, publishes wait in a bounded local buffer and go out after
//     reconnection; a full buffer blocks the caller until its context ends (back-pressure). A
//     message sent but unconfirmed when the connection drops is sent again on the next one, so a
//     consumer may see it twice: the MessageId is the deduplication key, and every consumer is
//     idempotent on it.
//   - A consumer acks after its handler returned nil. A handler error moves the message to the
//     next retry queue (header x-ringbridge-attempt counts the failures), the last failure or a
//     Permanent error or a panic parks it, with the error text and the original exchange and
//     routing key in headers. "Move" is publish-with-confirm, then ack: the message is in at least
//     one queue at every moment, so a crash in between duplicates rather than loses it.
//   - A delivery whose ack was lost (channel or connection died) is redelivered by the broker
//     with Redelivered set.
//   - After any connection loss the Bus reconnects (exponential backoff with jitter, capped),
//     declares the topology again, resumes every consumer and RPC server, and re-sends what was
//     unconfirmed. Ready says in words why the Bus is not connected.
//
// Ordering is not guaranteed across a retry, a redelivery or a reconnection; consumers must not
// depend on it (call events carry their own sequence).
//
// # Secrets
//
// The password in the URL never appears in a log line or an error: everything the package emits
// passes through a redactor (see RedactURL).
package bus
