package expect

import (
	"fmt"
	"sort"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	"github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

// Options are what the runner knows about the journal being compared.
type Options struct {
	// Vars fill the placeholders of expected values: call_id, pbx, ... (see the runner).
	Vars map[string]string
	// Ignore lists methods the CRM's simulator journals but no call expects (token refreshes,
	// account probes, directory reads); added to the call's own ignore list.
	Ignore []string
	// Batched expands Bitrix24 batch requests into their commands (bitrix.ExpandBatch), so a
	// command sent in a batch compares like the same command sent alone.
	Batched bool
}

// ProblemKind names what went wrong with a request.
type ProblemKind string

// The kinds of mismatch.
const (
	Missing    ProblemKind = "missing"      // an expected request did not happen (as written)
	TooMany    ProblemKind = "too many"     // it happened more often than Count
	OutOfOrder ProblemKind = "out of order" // it happened, but before the one written before it
	Forbidden  ProblemKind = "forbidden"    // a forbidden request happened
	Unexpected ProblemKind = "unexpected"   // a request no expectation names
	Setup      ProblemKind = "setup"        // the expectation itself cannot be applied
)

// ParamDiff is one expected parameter against what a request had.
type ParamDiff struct {
	Key     string
	Want    Value
	Got     string
	Present bool
	OK      bool
}

// Problem is one mismatch.
type Problem struct {
	Kind     ProblemKind
	Expected *Request        // the expectation concerned (nil for Unexpected)
	Got      *crmsim.Request // the request concerned, or for Missing the closest one (nil: none)
	Diffs    []ParamDiff     // Missing: the closest request's parameters against the expected ones
	Detail   string
}

// Match is one expected request and the journal entries that matched it.
type Match struct {
	Expected Request
	Got      []crmsim.Request
}

// Result is a call's journal compared with its expectations.
type Result struct {
	File     string
	Matches  []Match
	Problems []Problem
	// Compared are the requests compared (batches expanded, ignored methods left out).
	Compared []crmsim.Request
	// Ignored counts the requests left out by the ignore lists.
	Ignored int
}

// OK reports whether the journal is what the call expects.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

// Compare checks the requests one call caused (the journal entries from when the call started
// until the CRM settled) against c.
func Compare(c *Call, journal []crmsim.Request, opt Options) *Result {
	res := &Result{File: c.File}
	if opt.Batched {
		journal = bitrix.ExpandBatch(journal)
	}
	ignore := append(append([]string(nil), opt.Ignore...), c.Ignore...)
	for _, r := range journal {
		if matchesAny(ignore, r.Method) {
			res.Ignored++
			continue
		}
		res.Compared = append(res.Compared, r)
	}
	want, forbid, setup := fillAll(c, opt.Vars)
	res.Problems = append(res.Problems, setup...)

	reqs := res.Compared
	owner := make([]int, len(reqs)) // index+1 of the expectation a request went to; -1 duplicate
	got := make([][]int, len(want))
	take := func(e, i int) { owner[i] = e + 1; got[e] = append(got[e], i) }

	if c.Ordered {
		// Steps: a request and those after it marked with_previous. A step's requests match
		// from where the previous step's matches ended, in any order among themselves.
		cursor, stepStart, stepEnd := 0, 0, 0
		for e, w := range want {
			if e == 0 || !w.WithPrevious {
				stepStart, cursor = e, stepEnd
			}
			for i := cursor; i < len(reqs) && len(got[e]) < w.Count; i++ {
				if owner[i] == 0 && w.matches(reqs[i]) {
					take(e, i)
					stepEnd = max(stepEnd, i+1)
				}
			}
			// Found before the step it belongs to: there, but out of order.
			for i := 0; i < len(reqs) && len(got[e]) < w.Count; i++ {
				if owner[i] == 0 && w.matches(reqs[i]) {
					take(e, i)
					prev := "the start"
					if stepStart > 0 {
						prev = want[stepStart-1].Method + " (" + want[stepStart-1].where(c.File) + ")"
					}
					r := reqs[i]
					res.Problems = append(res.Problems, Problem{Kind: OutOfOrder, Expected: &c.Requests[e], Got: &r,
						Detail: "came before " + prev + ", which is written before it; ordered: true wants them in the order written"})
				}
			}
		}
	} else {
		// The most specific expectations choose first, so a general one cannot take a request
		// only a specific one matches.
		idx := make([]int, len(want))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return len(want[idx[a]].Params) > len(want[idx[b]].Params) })
		for _, e := range idx {
			for i := 0; i < len(reqs) && len(got[e]) < want[e].Count; i++ {
				if owner[i] == 0 && want[e].matches(reqs[i]) {
					take(e, i)
				}
			}
		}
	}

	for e, w := range want {
		m := Match{Expected: c.Requests[e]}
		for _, i := range got[e] {
			m.Got = append(m.Got, reqs[i])
		}
		res.Matches = append(res.Matches, m)
		if len(got[e]) < w.Count {
			p := Problem{Kind: Missing, Expected: &c.Requests[e]}
			if w.Count > 1 {
				p.Detail = fmt.Sprintf("expected %d times, matched %d", w.Count, len(got[e]))
			}
			if ci := closest(w, reqs, owner); ci >= 0 {
				r := reqs[ci]
				p.Got, p.Diffs = &r, w.diff(r)
				if owner[ci] == 0 {
					owner[ci] = -1 // shown here, expected against got; not again as unexpected
				}
			} else {
				p.Detail = joinDetail(p.Detail, "no "+w.Method+" request at all")
			}
			res.Problems = append(res.Problems, p)
			continue
		}
		// More of the same: a duplicate register, a call logged twice.
		for i := range reqs {
			if owner[i] == 0 && w.matches(reqs[i]) {
				owner[i] = -1
				r := reqs[i]
				res.Problems = append(res.Problems, Problem{Kind: TooMany, Expected: &c.Requests[e], Got: &r,
					Detail: fmt.Sprintf("expected %d, this is one more", w.Count)})
			}
		}
	}

	for i, r := range reqs {
		for f, w := range forbid {
			if w.matches(r) {
				r := r
				res.Problems = append(res.Problems, Problem{Kind: Forbidden, Expected: &c.Forbid[f], Got: &r})
				owner[i] = -1
				break
			}
		}
	}
	if !c.AllowOthers {
		for i, r := range reqs {
			if owner[i] == 0 {
				r := r
				res.Problems = append(res.Problems, Problem{Kind: Unexpected, Got: &r})
			}
		}
	}
	sort.SliceStable(res.Problems, func(a, b int) bool { return seqOf(res.Problems[a]) < seqOf(res.Problems[b]) })
	return res
}

// seqOf orders problems by where they are in the journal; missing requests (which have no
// place) come first.
func seqOf(p Problem) int {
	if p.Kind == Missing || p.Kind == Setup || p.Got == nil {
		return -1
	}
	return p.Got.Seq
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// fillAll puts the call's values into the expectations; one that cannot be filled is a Setup
// problem and is left out of the comparison.
func fillAll(c *Call, vars map[string]string) (want, forbid []Request, problems []Problem) {
	fill := func(rs []Request) []Request {
		out := make([]Request, 0, len(rs))
		for i, r := range rs {
			f := r
			f.Params = make([]Param, len(r.Params))
			ok := true
			if r.Path != nil {
				v, err := r.Path.fill(vars)
				if err != nil {
					problems = append(problems, Problem{Kind: Setup, Expected: &rs[i], Detail: "path: " + err.Error()})
					ok = false
				}
				f.Path = &v
			}
			for j, p := range r.Params {
				v, err := p.Want.fill(vars)
				if err != nil {
					problems = append(problems, Problem{Kind: Setup, Expected: &rs[i], Detail: p.Key + ": " + err.Error()})
					ok = false
				}
				f.Params[j] = Param{Key: p.Key, Want: v}
			}
			if !ok {
				f.Method = "\x00never" // matches nothing; the Setup problem says why
			}
			out = append(out, f)
		}
		return out
	}
	return fill(c.Requests), fill(c.Forbid), problems
}

func (w Request) matches(r crmsim.Request) bool {
	if !methodMatches(w.Method, r.Method) {
		return false
	}
	if w.Path != nil && !w.Path.check(r.Path, true) {
		return false
	}
	for _, p := range w.Params {
		v, ok := r.Params[p.Key]
		if !p.Want.check(v, ok) {
			return false
		}
	}
	return true
}

func (w Request) diff(r crmsim.Request) []ParamDiff {
	out := make([]ParamDiff, 0, len(w.Params)+1)
	if w.Path != nil {
		out = append(out, ParamDiff{Key: "(path)", Want: *w.Path, Got: r.Path, Present: true, OK: w.Path.check(r.Path, true)})
	}
	for _, p := range w.Params {
		v, ok := r.Params[p.Key]
		out = append(out, ParamDiff{Key: p.Key, Want: p.Want, Got: v, Present: ok, OK: p.Want.check(v, ok)})
	}
	return out
}

// closest is the request of the expected method that differs in the fewest parameters,
// preferring one no other expectation took; -1 when no request has the method.
func closest(w Request, reqs []crmsim.Request, owner []int) int {
	best, bestScore := -1, 0
	for i, r := range reqs {
		if !methodMatches(w.Method, r.Method) {
			continue
		}
		score := 0
		for _, d := range w.diff(r) {
			if !d.OK {
				score += 2
			}
		}
		if owner[i] != 0 {
			score++
		}
		if best < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

func matchesAny(patterns []string, method string) bool {
	for _, p := range patterns {
		if methodMatches(p, method) {
			return true
		}
	}
	return false
}
