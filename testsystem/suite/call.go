package suite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ringbridge/ringbridge/testsystem/amisim"
	"github.com/ringbridge/ringbridge/testsystem/expect"
)

// callKeys are the keys of a test call file besides the expectations (expect.Keys).
var callKeys = []string{"description", "scenario", "settle"}

// LoadCall reads one test call file:
//
//	description: An inbound call answered by 101 after 5 s, 20 s of talk.
//	scenario:                 # the call, in amisim's scenario format (testsystem/README.md)
//	  direction: inbound
//	  from: "79161234567"
//	  to: "74951234500"
//	  ring: [101]
//	  answer: {by: "101", after: 5s}
//	  talk: 20s
//	settle: 2s                # optional: how long the CRM must stay quiet before comparing
//	expect: [...]             # and forbid, ordered, others, ignore: see package expect
func LoadCall(file string) (*Call, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	fail := func(n *yaml.Node, field, format string, args ...any) error {
		line := 0
		if n != nil {
			line = n.Line
		}
		return &expect.Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fail(nil, "(file)", "not valid YAML (%v): fix the syntax", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fail(nil, "(file)", "empty or not a mapping: write scenario: (the call) and expect: (the CRM requests it must cause)")
	}
	top := doc.Content[0]
	c := &Call{Name: strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)), File: file}
	known := append(append([]string(nil), callKeys...), expect.Keys...)
	var scNode *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "description":
			if v.Kind != yaml.ScalarNode {
				return nil, fail(v, "description", "not text: write one line saying what the call is")
			}
			c.Description = strings.TrimSpace(v.Value)
		case "scenario":
			scNode = v
		case "settle":
			d, err := time.ParseDuration(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || d < 100*time.Millisecond || d > time.Minute {
				return nil, fail(v, "settle", "%q: write how long the CRM must get no request before the call is compared, 100ms to 1m, e.g. 3s", v.Value)
			}
			c.Settle = d
		default:
			if !contains(known, k.Value) {
				hint := ""
				if s := closest(k.Value, known); s != "" {
					hint = "; did you mean " + s + "?"
				}
				return nil, fail(k, k.Value, "unknown key: write one of %s%s", strings.Join(known, ", "), hint)
			}
		}
	}
	if scNode == nil {
		return nil, fail(top, "scenario", "missing: write the call for the simulated PBX (direction, from, to, ring, answer, talk, ...)")
	}
	sc, err := parseScenario(file, scNode)
	if err != nil {
		return nil, err
	}
	sc.Name = c.Name
	c.Scenario = sc
	if !hasAny(top, expect.Keys) {
		return nil, fail(top, "expect", "missing: write the CRM requests the call must cause (expect: [] for a call that must cause none)")
	}
	if c.Expect, err = expect.Decode(file, top, Vars); err != nil {
		return nil, err
	}
	return c, nil
}

// parseScenario hands the scenario to amisim's parser and puts its error back on the line of
// this file: amisim sees the scenario alone, so its line numbers are not this file's.
func parseScenario(file string, n *yaml.Node) (*amisim.Scenario, error) {
	if n.Kind != yaml.MappingNode {
		return nil, &expect.Error{File: file, Line: n.Line, Field: "scenario", Msg: "not a mapping: write the call's keys under it (direction, from, to, ...)"}
	}
	raw, err := yaml.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("%s: scenario: %w", file, err)
	}
	sc, err := amisim.ParseScenario(raw)
	if err == nil {
		return sc, nil
	}
	var se *amisim.ScenarioError
	if !errors.As(err, &se) {
		return nil, fmt.Errorf("%s: scenario: %w", file, err)
	}
	line := n.Line
	if at := lineOf(n, se.Field); at > 0 {
		line = at
	}
	field := "scenario"
	if se.Field != "" && se.Field != "(file)" {
		field += "." + se.Field
	}
	return nil, &expect.Error{File: file, Line: line, Field: field, Msg: se.Msg}
}

var indexRe = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

// lineOf finds the line of a dotted field (answer.by, ring[1]) under a mapping; 0 if absent.
func lineOf(n *yaml.Node, field string) int {
	line := 0
	for _, part := range strings.Split(field, ".") {
		idx := -1
		if m := indexRe.FindStringSubmatch(part); m != nil {
			part = m[1]
			idx, _ = strconv.Atoi(m[2])
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		if idx >= 0 && next.Kind == yaml.SequenceNode && idx < len(next.Content) {
			next = next.Content[idx]
			line = next.Line
		}
		n = next
	}
	return line
}

func hasAny(top *yaml.Node, keys []string) bool {
	for i := 0; i+1 < len(top.Content); i += 2 {
		if contains(keys, top.Content[i].Value) {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}

// closest suggests a known key for a misspelt one (at most two edits away).
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
