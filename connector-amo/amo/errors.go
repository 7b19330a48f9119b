package amo

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Kind says what an error means for the caller: whether a retry can help, and whether the whole
// account has stopped working (then nothing should be sent until it works again).
type Kind int

const (
	// KindInvalid: amoCRM refused this request (400, 404, ...); sending it again gives the same
	// answer.
	KindInvalid Kind = iota
	// KindRateLimited: 429 after the client's own retries; retry later.
	KindRateLimited
	// KindServer: a 5xx; retry later. For a request that changes data the change may have been
	// made (504 "too many entity mutations" is known not to, others are unknown).
	KindServer
	// KindTransport: no HTTP answer (timeout, connection reset). Sent reports whether the request
	// may have reached amoCRM.
	KindTransport
	// KindUnauthorized: the token is refused even after a refresh, or the refresh token is dead
	// (revoked, expired, the integration uninstalled). The account needs an admin.
	KindUnauthorized
	// KindNotConnected: no token yet: the integration was never installed here.
	KindNotConnected
	// KindPaymentRequired: 402, the account (or the integration) is not paid.
	KindPaymentRequired
	// KindBlocked: 403, the account is blocked or the API refuses this server's address.
	KindBlocked
	// KindBadResponse: a 2xx answer this client cannot read.
	KindBadResponse
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid request"
	case KindRateLimited:
		return "rate limited"
	case KindServer:
		return "server error"
	case KindTransport:
		return "no answer"
	case KindUnauthorized:
		return "unauthorized"
	case KindNotConnected:
		return "not connected"
	case KindPaymentRequired:
		return "not paid"
	case KindBlocked:
		return "blocked"
	case KindBadResponse:
		return "unreadable answer"
	}
	return "error " + strconv.Itoa(int(k))
}

// Error is an amoCRM API error: the request, the status, amoCRM's own words (problem+json title,
// detail, hint) and every invalid field it named.
type Error struct {
	Kind   Kind
	Route  string // "POST /api/v4/calls"
	Status int    // 0 when there was no HTTP answer
	Title  string
	Detail string
	Hint   string
	// Fields are the validation errors, by item and field path.
	Fields []FieldError
	// Sent is false only when the request certainly never reached amoCRM (e.g. connection
	// refused): a request that changes data may have been applied when Sent is true and the
	// answer was lost.
	Sent bool
	// Body is the raw answer (bounded), for methods that read an error answer themselves (the
	// calls batch reports unmatched phones in a 400 with a normal body).
	Body []byte
	Err  error // the transport error, if any
}

// FieldError is one invalid field of one item of a batch.
type FieldError struct {
	RequestID string // the item's request_id (its index when the client sent none)
	Path      string // the field, e.g. "phone" or "_embedded.contacts.0.name"
	Code      string // amoCRM's code: NotBlank, InvalidType, NotSupportedChoice, ...
	Detail    string
}

func (f FieldError) String() string {
	var b strings.Builder
	if f.RequestID != "" {
		b.WriteString("item " + f.RequestID + ": ")
	}
	path := f.Path
	if path == "" {
		path = "(item)"
	}
	b.WriteString("field " + path)
	if f.Code != "" {
		b.WriteString(": " + f.Code)
	}
	if f.Detail != "" {
		b.WriteString(": " + f.Detail)
	}
	return b.String()
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("amoCRM ")
	b.WriteString(e.Route)
	b.WriteString(": ")
	if e.Status == 0 {
		b.WriteString("no answer")
		if e.Err != nil {
			b.WriteString(": " + e.Err.Error())
		}
		if e.Sent {
			b.WriteString(" (the request may have been applied)")
		}
		return b.String()
	}
	b.WriteString(strconv.Itoa(e.Status))
	words := []string{}
	for _, w := range []string{e.Title, e.Detail, e.Hint} {
		if w != "" && !containsFold(words, w) {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		words = append(words, http.StatusText(e.Status))
	}
	b.WriteString(" " + strings.Join(words, ": "))
	for _, f := range e.Fields {
		b.WriteString("; " + f.String())
	}
	if e.Kind == KindBadResponse && e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func containsFold(ws []string, w string) bool {
	for _, x := range ws {
		if strings.EqualFold(x, w) {
			return true
		}
	}
	return false
}

// Retryable reports whether sending the same request later may work.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindServer, KindTransport:
		return true
	}
	return false
}

// AccountStopped reports whether the error stops the whole account (not paid, blocked, no valid
// token): nothing should be sent until an admin or amoCRM changes that.
func (e *Error) AccountStopped() bool {
	switch e.Kind {
	case KindUnauthorized, KindNotConnected, KindPaymentRequired, KindBlocked:
		return true
	}
	return false
}

// MaybeApplied reports whether a request that changes data may have been applied although it
// failed: its outcome is unknown, and the caller must find out before sending it again.
func (e *Error) MaybeApplied() bool {
	switch e.Kind {
	case KindTransport:
		return e.Sent
	case KindServer:
		// 504 is amoCRM's "too many entity mutations": refused before anything was done.
		return e.Status != http.StatusGatewayTimeout
	case KindBadResponse:
		return true // a 2xx we cannot read: it was applied, we do not know the ids
	}
	return false
}

// AsError finds an *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf is the Kind of err's *Error, and false when err is not an amoCRM error.
func KindOf(err error) (Kind, bool) {
	if e, ok := AsError(err); ok {
		return e.Kind, true
	}
	return 0, false
}

// kindOfStatus maps an HTTP status (other than 2xx, 401 before the refresh, and 429 before the
// client's retries) to a Kind.
func kindOfStatus(status int) Kind {
	switch {
	case status == http.StatusUnauthorized:
		return KindUnauthorized
	case status == http.StatusPaymentRequired:
		return KindPaymentRequired
	case status == http.StatusForbidden:
		return KindBlocked
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status >= 500:
		return KindServer
	}
	return KindInvalid
}

// problem is amoCRM's application/problem+json body. Every field is read leniently: a field of an
// unexpected type is skipped rather than failing the whole body, because the error must still be
// reported in words.
type problem struct {
	Title, Type, Detail, Hint string
	Status                    int
	Fields                    []FieldError
}

// maxFields bounds the validation errors kept from one answer (a 250-item batch can name
// thousands).
const maxFields = 50

// parseProblem reads a problem+json (or any JSON object with title/detail) body. ok is false when
// the body is not a JSON object.
func parseProblem(body []byte) (p problem, ok bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return p, false
	}
	p.Title = rawString(m["title"])
	p.Type = rawString(m["type"])
	p.Detail = rawString(m["detail"])
	p.Hint = rawString(m["hint"])
	p.Status, _ = rawInt(m["status"])
	if p.Title == "" && p.Detail == "" {
		// Older endpoints (v2) answer {"response":{"error":"..."}} or {"error":"..."}.
		for _, k := range []string{"error", "message"} {
			if s := rawString(m[k]); s != "" {
				p.Detail = s
				break
			}
		}
		if r, ok := m["response"]; ok {
			var inner map[string]json.RawMessage
			if json.Unmarshal(r, &inner) == nil {
				if s := rawString(inner["error"]); s != "" {
					p.Detail = s
				}
			}
		}
	}
	var items []json.RawMessage
	if json.Unmarshal(m["validation-errors"], &items) == nil {
	items:
		for i, raw := range items {
			var item map[string]json.RawMessage
			if json.Unmarshal(raw, &item) != nil {
				continue
			}
			rid := rawString(item["request_id"])
			if rid == "" {
				if n, ok := rawInt(item["request_id"]); ok {
					rid = strconv.Itoa(n)
				} else {
					rid = strconv.Itoa(i)
				}
			}
			var errs []map[string]json.RawMessage
			if json.Unmarshal(item["errors"], &errs) != nil {
				continue
			}
			for _, fe := range errs {
				if len(p.Fields) >= maxFields {
					break items
				}
				p.Fields = append(p.Fields, FieldError{
					RequestID: rid,
					Path:      rawString(fe["path"]),
					Code:      rawString(fe["code"]),
					Detail:    rawString(fe["detail"]),
				})
			}
		}
	}
	return p, true
}

// rawString reads a JSON string, or a number as its text; anything else is "".
func rawString(r json.RawMessage) string {
	if len(r) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return clip(s, 500)
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		return n.String()
	}
	return ""
}

// rawInt reads a JSON integer, or a string holding one.
func rawInt(r json.RawMessage) (int, bool) {
	if len(r) == 0 {
		return 0, false
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		if i, err := n.Int64(); err == nil && i >= -1<<31 && i < 1<<31 {
			return int(i), true
		}
		return 0, false
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		if i, err := strconv.Atoi(s); err == nil {
			return i, true
		}
	}
	return 0, false
}

// clip shortens s to n bytes at a rune boundary: an error text quoted from an HTML error page must
// not flood a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// maxErrorBody bounds the answer an Error keeps.
const maxErrorBody = 64 << 10

// newHTTPError builds the Error of a non-2xx answer.
func newHTTPError(route string, status int, body []byte) *Error {
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}
	e := &Error{Kind: kindOfStatus(status), Route: route, Status: status, Sent: true, Body: body}
	if p, ok := parseProblem(body); ok {
		e.Title, e.Detail, e.Hint, e.Fields = p.Title, p.Detail, p.Hint, p.Fields
	} else if s := strings.TrimSpace(string(body)); s != "" && !strings.HasPrefix(s, "<") {
		e.Detail = clip(s, 200) // plain text; an HTML page says nothing useful
	}
	return e
}

// badResponse is the Error of a 2xx answer that cannot be read.
func badResponse(route string, status int, err error) *Error {
	return &Error{Kind: KindBadResponse, Route: route, Status: status, Sent: true, Err: fmt.Errorf("reading the answer: %w", err)}
}
