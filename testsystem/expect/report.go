package expect

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

// Report renders the comparison for a person: each expected request with what matched it, then
// each problem, expected against got, per request. It ends with a newline.
func (r *Result) Report() string {
	var b strings.Builder
	for _, m := range r.Matches {
		if len(m.Got) >= m.Expected.Count && len(m.Got) > 0 {
			seqs := make([]string, len(m.Got))
			for i, g := range m.Got {
				seqs[i] = fmt.Sprintf("#%d", g.Seq)
			}
			fmt.Fprintf(&b, "  ok          %s %s\n", m.Expected.Method, strings.Join(seqs, " "))
		}
	}
	for _, p := range r.Problems {
		writeProblem(&b, r.File, p)
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "  (%d requests compared, %d ignored; the journal: GET /_sim/requests)\n", len(r.Compared), r.Ignored)
	}
	return b.String()
}

func writeProblem(b *strings.Builder, file string, p Problem) {
	label := fmt.Sprintf("  %-11s ", strings.ToUpper(string(p.Kind)))
	switch p.Kind {
	case Missing:
		fmt.Fprintf(b, "%s%s (%s)", label, p.Expected.Method, p.Expected.where(file))
		if p.Detail != "" {
			fmt.Fprintf(b, ": %s", p.Detail)
		}
		if p.Got == nil {
			b.WriteString("\n")
			return
		}
		fmt.Fprintf(b, "\n              closest: %s\n", describe(*p.Got))
		writeDiffs(b, p.Diffs)
	case Setup:
		fmt.Fprintf(b, "%s%s (%s): %s\n", label, p.Expected.Method, p.Expected.where(file), p.Detail)
	case Unexpected:
		fmt.Fprintf(b, "%s%s\n", label, describe(*p.Got))
		writeParams(b, *p.Got)
	default: // TooMany, OutOfOrder, Forbidden: a request that matched an expectation it should not have
		fmt.Fprintf(b, "%s%s (%s)", label, describe(*p.Got), p.Expected.where(file))
		if p.Detail != "" {
			fmt.Fprintf(b, ": %s", p.Detail)
		}
		b.WriteString("\n")
		if p.Kind != OutOfOrder {
			writeParams(b, *p.Got)
		}
	}
}

// describe names a journal entry: sequence, method, status.
func describe(r crmsim.Request) string {
	s := fmt.Sprintf("#%d %s", r.Seq, r.Method)
	if r.Status != 0 {
		s += fmt.Sprintf(" → %d", r.Status)
	}
	if r.Fault != "" {
		s += " (fault " + r.Fault + ")"
	}
	return s
}

func writeDiffs(b *strings.Builder, diffs []ParamDiff) {
	w := 0
	for _, d := range diffs {
		w = max(w, len(d.Key))
	}
	for _, d := range diffs {
		mark := "  "
		if !d.OK {
			mark = "✗ "
		}
		got := "(absent)"
		if d.Present {
			got = fmt.Sprintf("%q", clip(d.Got, 120))
		}
		if d.OK {
			fmt.Fprintf(b, "              %s%-*s  %s\n", mark, w, d.Key, got)
			continue
		}
		fmt.Fprintf(b, "              %s%-*s  want %s, got %s\n", mark, w, d.Key, d.Want, got)
	}
}

// writeParams prints a request's parameters, so an unexpected one can be told apart from the
// expected ones. The host pseudo-parameter is left out: it is the same for every request.
func writeParams(b *strings.Builder, r crmsim.Request) {
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		if k != "_host" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if r.Path != "" && strings.Contains(r.Method, "{") {
		fmt.Fprintf(b, "                (path)=%q\n", r.Path)
	}
	const most = 30
	for i, k := range keys {
		if i == most {
			fmt.Fprintf(b, "                ... %d more\n", len(keys)-most)
			break
		}
		fmt.Fprintf(b, "                %s=%q\n", k, clip(r.Params[k], 100))
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
