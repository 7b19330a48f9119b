// Package expect holds what one test call must make a CRM do, and what it must not: the requests
// that must happen (method and the parameters that matter, in order where order matters), the
// ones that must not (a second register, a finish for a skipped call), and how a crmsim journal
// is compared with them. A mismatch is reported per request, expected against got.
//
// Expectations are written in YAML beside a suite's test call (see Parse for the format); the
// runner substitutes the call's own values ({call_id}, {pbx}, ...) before matching, because each
// play of a call has fresh ids.
package expect

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Call is what one test call must and must not make the CRM do.
type Call struct {
	// File names where the expectations were written, for messages.
	File string
	// Requests must happen, each exactly Count times.
	Requests []Request
	// Forbid must not happen at all.
	Forbid []Request
	// Ordered: Requests happen in the order written (each one's matches after the previous
	// one's), except that a request marked WithPrevious may come before or after the one written
	// before it: requests that happen at the same moment (the phones of a ring group ringing)
	// reach the CRM in either order.
	Ordered bool
	// AllowOthers accepts requests that no expectation names. Off by default: every request the
	// call causes is checked, so a duplicate or a stray request fails the call.
	AllowOthers bool
	// Ignore lists methods never compared (token refreshes, account probes), on top of what the
	// runner ignores for every call of a CRM. A trailing * makes a prefix.
	Ignore []string
}

// Request is one expected (or forbidden) request.
type Request struct {
	// Method is the simulator's name of the API method: "POST /api/v4/calls" for amoCRM,
	// "telephony.externalcall.register" for Bitrix24 (compared without regard to case).
	Method string
	// Path, when set, is compared with the request's URL path: for a method whose name is a
	// route with a placeholder (amoCRM's "POST /api/v4/{entity}/notes").
	Path *Value
	// Params are the parameters that matter, in the order written; the others are not compared.
	Params []Param
	// Count is how many requests must match (default 1). A forbidden request has none.
	Count int
	// WithPrevious (with ordered) puts the request in one step with the request written before
	// it: the two may come in either order, and both after the step before them.
	WithPrevious bool
	// Line is where the request was written in File.
	Line int
}

// Param is one parameter and what its value must be.
type Param struct {
	Key  string
	Want Value
}

// ValueKind says how a Value is compared.
type ValueKind int

// The ways a parameter's value is compared.
const (
	// Exact: the value equals Text (after placeholders are filled in).
	Exact ValueKind = iota
	// Pattern: the value matches the regular expression Text (written "~REGEXP").
	Pattern
	// Present: the parameter is there, whatever its value (written "*").
	Present
	// Absent: the parameter is not there (written ~ or null).
	Absent
)

// Value is what a parameter's value must be.
type Value struct {
	Kind ValueKind
	Text string
}

func (v Value) String() string {
	switch v.Kind {
	case Pattern:
		return "~" + v.Text
	case Present:
		return "(any value)"
	case Absent:
		return "(absent)"
	}
	return fmt.Sprintf("%q", v.Text)
}

// placeholderRe finds {name} in expected values.
var placeholderRe = regexp.MustCompile(`\{([a-z_][a-z0-9_]*)\}`)

// fill replaces placeholders by the call's values; inside a pattern the values are quoted, so a
// call id's dots match only dots.
func (v Value) fill(vars map[string]string) (Value, error) {
	var missing []string
	out := placeholderRe.ReplaceAllStringFunc(v.Text, func(m string) string {
		name := m[1 : len(m)-1]
		val, ok := vars[name]
		if !ok {
			missing = append(missing, m)
			return m
		}
		if v.Kind == Pattern {
			return regexp.QuoteMeta(val)
		}
		return val
	})
	if len(missing) > 0 {
		return v, fmt.Errorf("unknown placeholder %s: write one of %s", strings.Join(missing, ", "), varList(vars))
	}
	v.Text = out
	return v, nil
}

func varList(vars map[string]string) string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, "{"+k+"}")
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// check tells whether a parameter's value (ok: the parameter is there) is what v wants.
func (v Value) check(got string, ok bool) bool {
	switch v.Kind {
	case Absent:
		return !ok
	case Present:
		return ok
	case Pattern:
		if !ok {
			return false
		}
		re, err := regexp.Compile(v.Text)
		return err == nil && re.MatchString(got)
	}
	return ok && got == v.Text
}

// methodMatches compares a method name with a pattern: exact without regard to case, or a
// prefix with a trailing *.
func methodMatches(pattern, method string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(strings.ToLower(method), strings.ToLower(p))
	}
	return strings.EqualFold(pattern, method)
}

// where names a request's place in the file.
func (r Request) where(file string) string {
	if r.Line > 0 {
		return fmt.Sprintf("%s:%d", file, r.Line)
	}
	return file
}
