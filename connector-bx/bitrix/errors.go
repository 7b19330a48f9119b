package bitrix

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Kind says what the caller can do about an error.
type Kind int

const (
	// Permanent: the request is wrong for the portal (400-class); sending it again fails again.
	Permanent Kind = iota
	// Retry: the portal or the network failed (5xx, 503 QUERY_LIMIT_EXCEEDED, timeouts); a
	// later attempt may succeed.
	Retry
	// Expired: the access token expired; refresh it and send again.
	Expired
	// Auth: the portal refuses our credentials even after a refresh, or there are none. An
	// administrator has to act (install the application again, fix the webhook); messages wait in
	// the retry and parking queues meanwhile.
	Auth
	// Paused: Bitrix24 blocked this method for this application (429 OPERATION_TIME_LIMIT) until
	// Error.Until; other methods still work.
	Paused
	// WrongAuthType: the method needs an application and was called through a webhook. Only a
	// change of the configuration helps.
	WrongAuthType
)

func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case Retry:
		return "retry"
	case Expired:
		return "expired token"
	case Auth:
		return "authorization"
	case Paused:
		return "method paused"
	case WrongAuthType:
		return "wrong auth type"
	}
	return "unknown"
}

// Error is a failed REST call: the method, Bitrix24's answer (HTTP status, error code and
// description) or the transport failure, and what can be done about it. It never holds a token.
type Error struct {
	Method      string
	Status      int    // HTTP status, 0 when no answer came
	Code        string // Bitrix24's "error" (may be empty: issue #175 of b24-rest-docs)
	Description string // Bitrix24's "error_description"
	Kind        Kind
	// Until is when a Paused method may be called again.
	Until time.Time
	// Hint tells an administrator what to do, in words, when only they can fix it.
	Hint string
	// Err is the transport error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bitrix24 %s: ", e.Method)
	switch {
	case e.Err != nil && e.Status == 0:
		b.WriteString(e.Err.Error())
	default:
		var parts []string
		if e.Status != 0 {
			parts = append(parts, fmt.Sprintf("HTTP %d", e.Status))
		}
		if e.Code != "" {
			parts = append(parts, e.Code)
		}
		b.WriteString(strings.Join(parts, " "))
		if e.Description != "" {
			if len(parts) > 0 {
				b.WriteString(": ")
			}
			b.WriteString(e.Description)
		}
		if e.Err != nil {
			fmt.Fprintf(&b, " (%v)", e.Err)
		}
	}
	switch e.Kind {
	case Retry:
		b.WriteString(" [temporary: retrying helps]")
	case Paused:
		fmt.Fprintf(&b, " [method paused by Bitrix24 until %s]", e.Until.UTC().Format(time.RFC3339))
	case Permanent:
		b.WriteString(" [permanent: retrying does not help]")
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether a later attempt may succeed without anyone changing anything.
func (e *Error) Temporary() bool { return e.Kind == Retry || e.Kind == Paused || e.Kind == Expired }

// KindOf returns the Kind of err: an *Error's, Retry for a context timeout or a network error,
// Permanent for anything else.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Retry
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return Retry
	}
	return Permanent
}

// IsPermanent reports whether retrying err cannot help: a 400-class answer, or the webhook used
// for an application-only method. The consumer parks such a message at once.
func IsPermanent(err error) bool {
	k := KindOf(err)
	return k == Permanent || k == WrongAuthType
}

// IsCallNotFound reports whether err is finish's answer for a CALL_ID the portal holds as no call
// in progress: never registered, or finished already. The code may be ERROR_CORE or empty and the
// closing parenthesis may be missing (b24-rest-docs issue #175), so the start of the text decides.
func IsCallNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && strings.HasPrefix(strings.TrimSpace(e.Description), "Call is not found (call should be registered")
}

// wrongAuthHint is what an administrator reads when the incoming webhook is refused for a
// telephony method (reference §1.1: register and finish need an application since 2026-03).
const wrongAuthHint = "Bitrix24 accepts this method only from an application, not through an incoming webhook " +
	"(since March 2026 telephony.externalCall.register and .finish need an application's authorization). " +
	"Switch connector-bx to bitrix.mode: app — create a local application in Bitrix24 (Developer resources → Other → " +
	"Local application: server-side, no interface, scopes telephony, crm, user; install handler " +
	"https://<connector address>/bitrix/install), put its client_id and client_secret in bitrix.app, and install it"

// classify turns Bitrix24's answer into an *Error (reference §1.11, §1.12).
func classify(method string, status int, code, desc string) *Error {
	e := &Error{Method: method, Status: status, Code: code, Description: desc}
	switch strings.ToUpper(code) {
	case "QUERY_LIMIT_EXCEEDED":
		e.Kind = Retry
		return e
	case "OVERLOAD_LIMIT":
		e.Kind = Retry
		e.Hint = "Bitrix24 support blocked the application's requests; ask them to lift the block"
		return e
	case "OPERATION_TIME_LIMIT":
		e.Kind = Paused
		return e
	case "EXPIRED_TOKEN":
		e.Kind = Expired
		return e
	case "WRONG_AUTH_TYPE":
		e.Kind = WrongAuthType
		e.Hint = wrongAuthHint
		return e
	case "INVALID_TOKEN", "NO_AUTH_FOUND", "INVALID_CREDENTIALS":
		e.Kind = Auth
		e.Hint = "the portal does not accept the connector's credentials: install the application again (mode app) or check bitrix.webhook.url (mode webhook)"
		return e
	case "INSUFFICIENT_SCOPE":
		e.Kind = Auth
		e.Hint = "the application or webhook lacks a scope: give it telephony, crm and user, then install it again"
		return e
	case "PAYMENT_REQUIRED", "ACCESS_DENIED", "PORTAL_DELETED", "USER_ACCESS_ERROR":
		e.Kind = Auth
		e.Hint = "the portal refuses the application (" + code + "): check the portal's plan and the application's access in Bitrix24"
		return e
	case "INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER":
		e.Kind = Retry
		return e
	}
	switch {
	case status == http.StatusUnauthorized:
		e.Kind = Auth
		e.Hint = "the portal does not accept the connector's credentials: install the application again (mode app) or check bitrix.webhook.url (mode webhook)"
	case status == http.StatusTooManyRequests:
		e.Kind = Paused
	case status >= 500 || status == http.StatusRequestTimeout:
		e.Kind = Retry
	default:
		e.Kind = Permanent
	}
	return e
}

// transportError wraps a failure to get an answer. url.Error is unwrapped: it quotes the whole
// URL, and the OAuth server's URL carries the client secret and the refresh token.
func transportError(method string, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &Error{Method: method, Kind: Retry, Err: err}
}
