package bitrix

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

// maxBatch is the most commands one batch takes (batch.md).
const maxBatch = 50

// batchAnswer is batch's result (settings/how-to-call-rest-api/batch.md); each part is a PHP
// array, so an empty one prints as [].
type batchAnswer struct {
	Result      *omap `json:"result"`
	ResultError *omap `json:"result_error"`
	ResultTotal *omap `json:"result_total"`
	ResultNext  *omap `json:"result_next"`
	ResultTime  *omap `json:"result_time"`
}

type batchError struct {
	Error string `json:"error"`
	Desc  string `json:"error_description"`
}

// batch runs cmd[key]="method?query" in order with the caller's auth. halt=1 stops at the first
// error. Each command is checked and accounted like a call of its own (scope, app context,
// operating time); the HTTP request counts once against the request-intensity limit.
func (s *Server) batch(ctx context.Context, c *caller, p params) (result, error) {
	cmds, _ := mustGet(p, "cmd").(*omap)
	if cmds.len() > maxBatch {
		return result{}, errBatchLength()
	}
	halt := truthy(mustGet(p, "halt"))
	ans := batchAnswer{newOmap(), newOmap(), newOmap(), newOmap(), newOmap()}
	for _, key := range cmds.keysOrNil() {
		method, query, _ := strings.Cut(scalar(cmds.vals[key]), "?")
		sub := parseForm(query)
		substituteRefs(sub, ans.Result)
		start, realStart := s.now(), time.Now()
		res, err := s.call(ctx, c, strings.ToLower(strings.TrimSuffix(strings.TrimSpace(method), ".json")), params{sub}, true)
		if err != nil {
			ae := asAPIError(err)
			ans.ResultError.set(key, batchError{ae.Code, ae.Desc})
			if halt {
				break
			}
			continue
		}
		ans.Result.set(key, res.value)
		if res.total != nil {
			ans.ResultTotal.set(key, *res.total)
		}
		if res.next != nil {
			ans.ResultNext.set(key, *res.next)
		}
		ans.ResultTime.set(key, s.timing(start, time.Since(realStart)))
	}
	return result{value: ans}, nil
}

// substituteRefs replaces $result[key][field]... in command parameters with earlier results.
func substituteRefs(m *omap, results *omap) {
	re := regexp.MustCompile(`\$result\[([^\]]+)\]((?:\[[^\]]*\])*)`)
	for _, k := range m.keys {
		switch v := m.vals[k].(type) {
		case *omap:
			substituteRefs(v, results)
		case string:
			if strings.Contains(v, "$result[") {
				m.vals[k] = re.ReplaceAllStringFunc(v, func(ref string) string {
					sm := re.FindStringSubmatch(ref)
					return scalar(lookupResult(results, sm[1], sm[2]))
				})
			}
		}
	}
}

// lookupResult follows [a][b] into an earlier result, seen as the JSON the client would get.
func lookupResult(results *omap, key, path string) any {
	v, ok := results.get(key)
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	tree, err := decodeJSON(jsonDecoder(b))
	if err != nil {
		return nil
	}
	for _, seg := range strings.Split(strings.Trim(path, "[]"), "][") {
		if seg == "" {
			continue
		}
		m, ok := tree.(*omap)
		if !ok {
			return nil
		}
		tree, _ = m.get(seg)
	}
	return tree
}

func jsonDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	return dec
}

// ExpandBatch returns the journal with every batch request replaced by one entry per command —
// method, parameters, and the command's own result or error — so that a runner can compare the
// commands a connector sent whether it sent them alone or coalesced. A sub-entry keeps the
// batch's Seq and Time; its Path is the batch's with "#<key>"; a command not run because of halt
// has Status 0 and Fault "batch halted". Commands come in the order sent, which is the order
// the portal ran them.
func ExpandBatch(reqs []crmsim.Request) []crmsim.Request {
	var out []crmsim.Request
	for _, r := range reqs {
		if r.Method != "batch" {
			out = append(out, r)
			continue
		}
		var resp struct {
			Result struct {
				Result      json.RawMessage `json:"result"`
				ResultError json.RawMessage `json:"result_error"`
			} `json:"result"`
		}
		json.Unmarshal(r.Response, &resp) //nolint:errcheck // a failed batch has no result: every command is "not run"
		results, errs := rawItems(resp.Result.Result), rawItems(resp.Result.ResultError)
		for _, cmd := range batchCommands(r) {
			method, query, _ := strings.Cut(cmd.text, "?")
			sub := crmsim.Request{Seq: r.Seq, Time: r.Time, HTTP: r.HTTP, Path: r.Path + "#" + cmd.key,
				Method: strings.ToLower(strings.TrimSuffix(strings.TrimSpace(method), ".json")), Params: map[string]string{}}
			flattenParams("", parseForm(query), func(k, v string) { sub.Params[k] = v })
			switch {
			case results[cmd.key] != nil:
				sub.Status = http.StatusOK
				sub.Response, _ = json.Marshal(map[string]json.RawMessage{"result": results[cmd.key]})
			case errs[cmd.key] != nil:
				var e batchError
				json.Unmarshal(errs[cmd.key], &e) //nolint:errcheck // shape is ours
				sub.Status, sub.Response = errorStatus(e.Error), errs[cmd.key]
			default:
				sub.Fault = "batch halted"
			}
			out = append(out, sub)
		}
	}
	return out
}

type batchCmd struct{ key, text string }

// batchCommands reads cmd from a journaled batch in the order sent: from the JSON body or the
// raw urlencoded parameters (Request.Form); from Params in natural key order as a last resort.
func batchCommands(r crmsim.Request) []batchCmd {
	var all *omap
	if len(r.Body) > 0 {
		all, _ = parseJSON(r.Body)
	}
	if all == nil && r.Form != "" {
		all = parseForm(r.Form)
	}
	var cmds []batchCmd
	if c, ok := mustGet(params{all}, "cmd").(*omap); ok {
		for _, k := range c.keys {
			cmds = append(cmds, batchCmd{k, scalar(c.vals[k])})
		}
		return cmds
	}
	for k, v := range r.Params {
		if key, ok := strings.CutPrefix(k, "cmd["); ok && strings.HasSuffix(key, "]") {
			cmds = append(cmds, batchCmd{strings.TrimSuffix(key, "]"), v})
		}
	}
	slices.SortFunc(cmds, func(a, b batchCmd) int { return natCompare(a.key, b.key) })
	return cmds
}

// rawItems reads a PHP array printed as a list or an object.
func rawItems(b json.RawMessage) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	var list []json.RawMessage
	if json.Unmarshal(b, &list) == nil {
		for i, v := range list {
			out[strconv.Itoa(i)] = v
		}
		return out
	}
	json.Unmarshal(b, &out) //nolint:errcheck // neither list nor object: nothing
	return out
}

// errorStatus is the HTTP status a command's error would have had alone.
func errorStatus(code string) int {
	switch code {
	case "WRONG_AUTH_TYPE":
		return http.StatusForbidden
	case "ERROR_METHOD_NOT_FOUND":
		return http.StatusNotFound
	case "expired_token", "invalid_token", "NO_AUTH_FOUND", "insufficient_scope", "INVALID_CREDENTIALS":
		return http.StatusUnauthorized
	case "OPERATION_TIME_LIMIT":
		return http.StatusTooManyRequests
	case "ERROR_BATCH_METHOD_NOT_ALLOWED":
		return http.StatusMethodNotAllowed
	case "QUERY_LIMIT_EXCEEDED":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// natCompare orders "c2" before "c10": runs of digits compare as numbers.
func natCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da != "" && db != "" {
			na, _ := strconv.Atoi(da)
			nb, _ := strconv.Atoi(db)
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			if a[0] < b[0] {
				return -1
			}
			return 1
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && i < 18 && unicode.IsDigit(rune(s[i])) {
		i++
	}
	return s[:i]
}
