package expect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Keys are the top-level keys of a test call file that hold its expectations; Decode reads them
// and leaves the others to the caller.
//
//	ordered: true              # expect's requests happen in this order (default false)
//	others: fail               # fail (default): a request nobody expected fails the call; allow
//	ignore: [GET /api/v4/account]   # methods not compared in this call (trailing * = prefix)
//	expect:                    # requests that must happen
//	  - method: POST /api/v4/calls
//	    count: 1               # default 1: exactly once
//	    with_previous: true    # (ordered) either order with the request written before it
//	    path: /api/v4/leads/notes   # optional: the URL path, exact or ~REGEXP
//	    params:                # only these are compared
//	      0.uniq: "{call_id}"  # exact (placeholders filled in); numbers and booleans as written
//	      0.link: "~^https?://.*\.wav\?"   # ~ then a regular expression
//	      0.call_result: "*"   # present, any value
//	      0.call_responsible: ~   # absent
//	forbid:                    # requests that must not happen: a method, or method + params
//	  - POST /api/v4/tasks
//	  - {method: POST /api/v4/calls, params: {0.call_status: 4}}
var Keys = []string{"expect", "forbid", "ordered", "others", "ignore"}

// Error is a mistake in an expectations file: where, which field, and the fix.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
}

// Parse reads a file that holds only expectations (the keys of Keys). vars are the placeholder
// names the runner fills in; any other {name} is an error.
func Parse(file string, data []byte, vars []string) (*Call, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{File: file, Field: "(file)", Msg: fmt.Sprintf("not valid YAML (%v): fix the syntax", err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: file, Field: "(file)", Msg: "empty: write at least one request under expect"}
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: top.Line, Field: "(file)", Msg: "not a mapping: write keys like expect: and forbid:"}
	}
	for i := 0; i < len(top.Content); i += 2 {
		k := top.Content[i]
		if !contains(Keys, k.Value) {
			return nil, &Error{File: file, Line: k.Line, Field: k.Value, Msg: "unknown key: write one of " + strings.Join(Keys, ", ")}
		}
	}
	return Decode(file, top, vars)
}

// Decode reads the expectation keys (Keys) of a call file's top-level mapping; other keys are not
// looked at. vars are the placeholder names the runner fills in.
func Decode(file string, top *yaml.Node, vars []string) (*Call, error) {
	d := &decoder{file: file, vars: vars}
	c := &Call{File: file}
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if !contains(Keys, k.Value) {
			continue
		}
		if line, dup := seen[k.Value]; dup {
			return nil, d.fail(k, k.Value, "written twice (also line %d): keep one", line)
		}
		seen[k.Value] = k.Line
		var err error
		switch k.Value {
		case "expect":
			c.Requests, err = d.requests(v, "expect", false)
			if err == nil && len(c.Requests) > 0 && c.Requests[0].WithPrevious {
				err = d.fail(v.Content[0], "expect[0].with_previous", "the first request has no request before it: remove with_previous")
			}
		case "forbid":
			c.Forbid, err = d.requests(v, "forbid", true)
		case "ordered":
			c.Ordered, err = d.boolean(v, "ordered")
		case "others":
			switch v.Value {
			case "fail":
			case "allow":
				c.AllowOthers = true
			default:
				err = d.fail(v, "others", "%q: write fail (a request nobody expected fails the call) or allow", v.Value)
			}
		case "ignore":
			c.Ignore, err = d.methods(v, "ignore")
		}
		if err != nil {
			return nil, err
		}
	}
	if len(c.Requests) == 0 && len(c.Forbid) == 0 && c.AllowOthers {
		return nil, &Error{File: file, Line: top.Line, Field: "others", Msg: "allow with nothing expected or forbidden checks nothing: list the requests under expect (or write expect: [] for a call that must make none)"}
	}
	return c, nil
}

type decoder struct {
	file string
	vars []string
}

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) error {
	return &Error{File: d.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) boolean(n *yaml.Node, field string) (bool, error) {
	b, err := strconv.ParseBool(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return false, d.fail(n, field, "%q is not true or false", n.Value)
	}
	return b, nil
}

func (d *decoder) methods(n *yaml.Node, field string) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.fail(n, field, "not a list: write [METHOD, ...], e.g. [GET /api/v4/account]")
	}
	var out []string
	for i, e := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if e.Kind != yaml.ScalarNode || strings.TrimSpace(e.Value) == "" {
			return nil, d.fail(e, f, "not a method name: write e.g. GET /api/v4/account or user.get")
		}
		out = append(out, strings.TrimSpace(e.Value))
	}
	return out, nil
}

// requests reads a list of requests; forbidden ones may be a bare method name and have no count.
func (d *decoder) requests(n *yaml.Node, field string, forbid bool) ([]Request, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.fail(n, field, "not a list: write one \"- method: ...\" item per request")
	}
	out := []Request{}
	for i, e := range n.Content {
		r, err := d.request(e, fmt.Sprintf("%s[%d]", field, i), forbid)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

var requestKeys = []string{"method", "path", "params", "count", "with_previous"}

func (d *decoder) request(n *yaml.Node, field string, forbid bool) (Request, error) {
	r := Request{Line: n.Line, Count: 1}
	if forbid {
		r.Count = 0
	}
	if n.Kind == yaml.ScalarNode && forbid {
		if strings.TrimSpace(n.Value) == "" {
			return r, d.fail(n, field, "empty: write the method that must not be called, e.g. POST /api/v4/tasks")
		}
		r.Method = strings.TrimSpace(n.Value)
		return r, nil
	}
	if n.Kind != yaml.MappingNode {
		return r, d.fail(n, field, "not a mapping: write {method: ..., params: {...}}")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		if !contains(requestKeys, k.Value) {
			return r, d.fail(k, f, "unknown key: write method, path, params, count or with_previous")
		}
		if seen[k.Value] {
			return r, d.fail(k, f, "written twice: keep one")
		}
		seen[k.Value] = true
		switch k.Value {
		case "method":
			if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
				return r, d.fail(v, f, "empty: write the simulator's method name, e.g. POST /api/v4/calls or telephony.externalcall.register")
			}
			r.Method = strings.TrimSpace(v.Value)
		case "count":
			if forbid {
				return r, d.fail(k, f, "a forbidden request must happen 0 times: remove count")
			}
			c, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || c < 1 || c > 1000 {
				return r, d.fail(v, f, "%q is not a count: write how many times it must happen, 1 or more (to forbid it, list it under forbid)", v.Value)
			}
			r.Count = c
		case "path":
			pv, err := d.value(v, f)
			if err != nil {
				return r, err
			}
			if pv.Kind != Exact && pv.Kind != Pattern {
				return r, d.fail(v, f, "write the path, e.g. /api/v4/leads/notes, or ~ and a regular expression")
			}
			r.Path = &pv
		case "with_previous":
			if forbid {
				return r, d.fail(k, f, "a forbidden request has no place in the order: remove with_previous")
			}
			b, err := d.boolean(v, f)
			if err != nil {
				return r, err
			}
			r.WithPrevious = b
		case "params":
			ps, err := d.params(v, f)
			if err != nil {
				return r, err
			}
			r.Params = ps
		}
	}
	if r.Method == "" {
		return r, d.fail(n, field+".method", "missing: write the method, e.g. POST /api/v4/calls")
	}
	return r, nil
}

func (d *decoder) params(n *yaml.Node, field string) ([]Param, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, d.fail(n, field, "not a mapping: write one \"name: value\" per parameter, e.g. 0.uniq: \"{call_id}\"")
	}
	var out []Param
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return nil, d.fail(k, field, "a parameter name must be text, e.g. 0.uniq or CALL_ID")
		}
		if seen[k.Value] {
			return nil, d.fail(k, f, "written twice: keep one")
		}
		seen[k.Value] = true
		val, err := d.value(v, f)
		if err != nil {
			return nil, err
		}
		out = append(out, Param{Key: k.Value, Want: val})
	}
	return out, nil
}

func (d *decoder) value(n *yaml.Node, field string) (Value, error) {
	if n.Kind != yaml.ScalarNode {
		return Value{}, d.fail(n, field, "a %s: write one value (text, a number, \"~REGEXP\", \"*\" for any, or ~ for absent); list items are separate parameters (users.0, users.1)", kindName(n))
	}
	var v Value
	switch {
	case n.Tag == "!!null":
		return Value{Kind: Absent}, nil
	case n.Value == "*":
		return Value{Kind: Present}, nil
	case strings.HasPrefix(n.Value, "~") && n.Tag == "!!str":
		v = Value{Kind: Pattern, Text: n.Value[1:]}
	default:
		v = Value{Kind: Exact, Text: n.Value}
	}
	// Check the placeholders and the pattern now, not when the call has been played.
	probe := map[string]string{}
	for _, name := range d.vars {
		probe[name] = "0"
	}
	filled, err := v.fill(probe)
	if err != nil {
		return v, d.fail(n, field, "%v", err)
	}
	if v.Kind == Pattern {
		if _, err := regexp.Compile(filled.Text); err != nil {
			return v, d.fail(n, field, "%q is not a regular expression (%v): fix it, or quote it without the leading ~ for an exact value", v.Text, err)
		}
	}
	return v, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}
