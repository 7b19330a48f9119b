// Package ami speaks Asterisk's Manager Interface (AMI): framing, login, actions, event lists,
// keep-alive and reconnect. See shared/docs/reference/ami.md for the protocol.
//
// # Parser
//
// Reader frames a byte stream into Messages. It reads with a large buffer, finds line ends with
// bytes.IndexByte and makes one string per packet (keys, values and Output are substrings of it)
// plus the header slice. Lines may end in CRLF or LF; `Key:` with nothing after the colon is an
// empty value; keys may repeat. Legacy `Response: Follows` replies are read up to
// `--END COMMAND--` into Message.Output. Bad input (an overlong line or packet, a line without a
// colon, binary garbage in a key, a stream cut mid-packet) gives a typed *ParseError; the Reader
// then skips to the next blank line and goes on.
//
// # Client, reader goroutine and overflow policy
//
// Asterisk closes a session whose socket it cannot write to within writetimeout (100 ms by
// default), so the Client's socket reader never waits for the consumer. One goroutine per
// connection reads packets and dispatches them: responses and event-list items go to the waiting
// Action/ActionList call; every other event is put, without blocking, into a bounded queue that
// the consumer drains through Client.Events.
//
// Overflow policy: if the consumer falls so far behind that the queue holds Config.EventBuffer
// events, the Client does not drop events silently and does not block. It counts the overflow
// (metric ami_event_queue_overflows_total), logs it, and drops the connection: the event that did
// not fit and whatever Asterisk had not sent yet are lost, and the consumer learns it in-band. The
// queue then carries a StateChange{State: StateDisconnected, Err: ErrQueueOverflow} right after the
// last event that fitted. The Client reconnects only after the consumer has drained the queue to
// half, and a StateChange{State: StateConnected} marks where the new connection's events begin,
// so the consumer resyncs there (ami-gateway runs CoreShowChannels).
//
// Connection-state changes travel in the same queue as events (Event.State), so the consumer sees
// them in stream order: every event before a Disconnected came from the old connection, every
// event after the next Connected from the new one. The queue has room reserved for these notices.
//
// # Keep-alive and reconnect
//
// The Client sends Ping every PingInterval and drops the connection when the pong does not come
// within PingTimeout (half-open TCP, NAT). It reconnects with capped exponential backoff and full
// jitter, logs in again (plain or MD5 challenge), and fails actions still waiting when a
// connection drops with ErrConnectionLost. A rejected login is reported as a *LoginError that
// matches ErrAuthFailed, never confused with network errors. The secret never appears in logs or
// errors.
package ami
