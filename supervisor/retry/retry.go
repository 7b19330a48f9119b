// Package retry marks the supervisor's errors with whether trying again may help, the way
// alertmanager's notifiers return (retry bool, err): a registry that answered 503 or a network
// that dropped is worth another attempt, a bad signature or an unknown version never is. An error
// is permanent unless something on its chain says otherwise.
package retry

import (
	"context"
	"errors"
	"net"
)

// temporary is an error a retry may cure.
type temporary struct{ err error }

func (t *temporary) Error() string   { return t.err.Error() }
func (t *temporary) Unwrap() error   { return t.err }
func (t *temporary) Temporary() bool { return true }

// Temporary marks err as one that a later attempt may not meet (a network error, a registry or
// engine that is busy or restarting). Nil stays nil.
func Temporary(err error) error {
	if err == nil {
		return nil
	}
	return &temporary{err: err}
}

// Helps reports whether retrying the operation that returned err may succeed: err (or an error it
// wraps) was marked Temporary, or is a network timeout or a refused/reset connection. A cancelled
// context is not retried: whoever cancelled meant it.
func Helps(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// Describe is "retry may help" or "retrying will not help", for messages shown to an operator.
func Describe(err error) string {
	if Helps(err) {
		return "retry may help"
	}
	return "retrying will not help"
}
