package ami

import (
	"errors"
	"strings"
)

// Errors of the Client. Test them with errors.Is.
var (
	// ErrLoginRejected: Asterisk answered the Login with an error (see *LoginError).
	ErrLoginRejected = errors.New("AMI login rejected")
	// ErrAuthFailed: the Login was rejected with "Authentication failed": wrong username or
	// secret (or the account's permit/deny list). Retrying will not help until the config changes.
	ErrAuthFailed = errors.New("wrong username or secret")
	// ErrNotConnected: an action was sent while no AMI session is up.
	ErrNotConnected = errors.New("AMI not connected")
	// ErrConnectionLost: the connection dropped while an action waited for its reply.
	ErrConnectionLost = errors.New("AMI connection lost")
	// ErrPingTimeout: no reply to the keep-alive Ping within Config.PingTimeout.
	ErrPingTimeout = errors.New("AMI keep-alive ping timed out")
	// ErrQueueOverflow: the consumer fell so far behind that the event queue was full; the
	// connection was dropped (see the package doc, overflow policy).
	ErrQueueOverflow = errors.New("AMI event queue full: consumer too slow")
	// ErrServerShutdown: Asterisk announced `Event: Shutdown` and then closed the connection.
	ErrServerShutdown = errors.New("Asterisk shut down")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("AMI client closed")
	// ErrInvalidAction: an action with an empty key, or a CR or LF in a key or value (which
	// would let data inject headers or actions).
	ErrInvalidAction = errors.New("invalid AMI action")
)

// LoginError is a Login that Asterisk rejected. It never holds the secret.
type LoginError struct {
	Username string
	Message  string // Asterisk's Message header, e.g. "Authentication failed"
}

// AuthFailed reports whether Asterisk said the credentials are wrong.
func (e *LoginError) AuthFailed() bool {
	return strings.EqualFold(strings.TrimSpace(e.Message), "Authentication failed")
}

func (e *LoginError) Error() string {
	if e.AuthFailed() {
		return "AMI login as " + e.Username + " rejected: wrong username or secret"
	}
	msg := e.Message
	if msg == "" {
		msg = "no reason given"
	}
	return "AMI login as " + e.Username + " rejected: " + msg
}

// Unwrap makes errors.Is match ErrLoginRejected, and ErrAuthFailed when the credentials are wrong.
func (e *LoginError) Unwrap() []error {
	if e.AuthFailed() {
		return []error{ErrLoginRejected, ErrAuthFailed}
	}
	return []error{ErrLoginRejected}
}

// ActionError is an action that Asterisk answered with `Response: Error`.
type ActionError struct {
	Action   string   // the Action header
	ActionID string   // the ActionID used
	Message  string   // Asterisk's Message header, e.g. "Permission denied"
	Response *Message // the whole reply
}

func (e *ActionError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no reason given"
	}
	return "AMI action " + e.Action + " (ActionID " + e.ActionID + ") failed: " + msg
}
