package expect

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

var testVars = []string{"call_id", "pbx", "phone"}

func mustParse(t *testing.T, src string) *Call {
	t.Helper()
	c, err := Parse("calls/test.yaml", []byte(src), testVars)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// req builds a journal entry; params alternate key, value.
func req(seq int, method string, params ...string) crmsim.Request {
	r := crmsim.Request{Seq: seq, Method: method, Status: 200, Params: map[string]string{}}
	for i := 0; i+1 < len(params); i += 2 {
		r.Params[params[i]] = params[i+1]
	}
	return r
}

const inbound = `
ordered: true
expect:
  - method: POST /api/v2/events
    params: {add.0.phone_number: "+79161234567", add.0.users.0: 701}
  - method: POST /api/v4/calls
    params:
      0.uniq: "{call_id}"
      0.duration: 20
      0.call_status: 4
      0.link: '~^http://127\.0\.0\.1:\d+/recordings/.*\.wav\?expires=\d+&sig=.+$'
      0.call_responsible: "*"
      0.created_by: ~
forbid:
  - POST /api/v4/tasks
  - {method: POST /api/v4/leads/unsorted/sip, params: {0.metadata.uniq: "{call_id}"}}
`

// ringGroup: two phones ring at once, so their notifications come in either order, both
// before the call.
const ringGroup = `
ordered: true
expect:
  - {method: POST /api/v2/events, params: {add.0.users.0: 701}}
  - {method: POST /api/v2/events, params: {add.0.users.0: 702}, with_previous: true}
  - {method: POST /api/v4/calls}
`

func TestCompare(t *testing.T) {
	vars := map[string]string{"call_id": "1795634906.26", "pbx": "ts", "phone": "+79161234567"}
	link := "http://127.0.0.1:28103/recordings/in-1.wav?expires=1&sig=abc"
	events := req(1, "POST /api/v2/events", "add.0.phone_number", "+79161234567", "add.0.users.0", "701")
	call := req(2, "POST /api/v4/calls", "0.uniq", "1795634906.26", "0.duration", "20", "0.call_status", "4",
		"0.link", link, "0.call_responsible", "701")
	cases := []struct {
		name    string
		src     string
		journal []crmsim.Request
		opt     Options
		ok      bool
		// report holds substrings the report must have.
		report []string
	}{
		{name: "all-as-expected", src: inbound, journal: []crmsim.Request{events, call}, ok: true,
			report: []string{"ok          POST /api/v4/calls #2"}},
		{name: "wrong-duration-shows-want-and-got", src: inbound, journal: []crmsim.Request{events,
			req(2, "POST /api/v4/calls", "0.uniq", "1795634906.26", "0.duration", "19", "0.call_status", "4", "0.link", link, "0.call_responsible", "701")},
			report: []string{"MISSING     POST /api/v4/calls (calls/test.yaml:6)", "closest: #2 POST /api/v4/calls → 200",
				`✗ 0.duration`, `want "20", got "19"`, `0.call_status       "4"`}},
		{name: "placeholder-is-the-calls-id", src: inbound, journal: []crmsim.Request{events,
			req(2, "POST /api/v4/calls", "0.uniq", "1795634906.25", "0.duration", "20", "0.call_status", "4", "0.link", link, "0.call_responsible", "701")},
			report: []string{`✗ 0.uniq              want "1795634906.26", got "1795634906.25"`}},
		{name: "absent-param-present", src: inbound, journal: []crmsim.Request{events,
			req(2, "POST /api/v4/calls", "0.uniq", "1795634906.26", "0.duration", "20", "0.call_status", "4", "0.link", link, "0.call_responsible", "701", "0.created_by", "701")},
			report: []string{`✗ 0.created_by        want (absent), got "701"`}},
		{name: "present-param-missing", src: inbound, journal: []crmsim.Request{events,
			req(2, "POST /api/v4/calls", "0.uniq", "1795634906.26", "0.duration", "20", "0.call_status", "4", "0.link", link)},
			report: []string{`✗ 0.call_responsible  want (any value), got (absent)`}},
		{name: "pattern-fails", src: inbound, journal: []crmsim.Request{events,
			req(2, "POST /api/v4/calls", "0.uniq", "1795634906.26", "0.duration", "20", "0.call_status", "4", "0.link", "", "0.call_responsible", "701")},
			report: []string{`✗ 0.link`, `want ~^http://`}},
		{name: "duplicate-call", src: inbound, journal: []crmsim.Request{events, call, func() crmsim.Request { c := call; c.Seq = 3; return c }()},
			report: []string{"TOO MANY    #3 POST /api/v4/calls → 200 (calls/test.yaml:6): expected 1, this is one more"}},
		{name: "forbidden-task", src: inbound, journal: []crmsim.Request{events, call, req(3, "POST /api/v4/tasks", "0.text", "Call back")},
			report: []string{"FORBIDDEN   #3 POST /api/v4/tasks → 200 (calls/test.yaml:15)", `0.text="Call back"`}},
		{name: "forbidden-with-params-other-call-is-fine", src: inbound + "others: allow\n", journal: []crmsim.Request{events, call,
			req(3, "POST /api/v4/leads/unsorted/sip", "0.metadata.uniq", "other")}, ok: true},
		{name: "unexpected-request", src: inbound, journal: []crmsim.Request{events, call, req(3, "GET /api/v4/contacts", "query", "9161234567")},
			report: []string{"UNEXPECTED  #3 GET /api/v4/contacts → 200", `query="9161234567"`}},
		{name: "ignored-by-runner", src: inbound, journal: []crmsim.Request{req(1, "GET /api/v4/account"), events, call},
			opt: Options{Ignore: []string{"GET /api/v4/account"}}, ok: true},
		{name: "ignored-by-call-prefix", src: inbound + "ignore: [GET /api/v4/*]\n", journal: []crmsim.Request{events, req(2, "GET /api/v4/contacts"), func() crmsim.Request { c := call; c.Seq = 3; return c }()}, ok: true},
		{name: "out-of-order", src: inbound, journal: []crmsim.Request{func() crmsim.Request { c := call; c.Seq = 1; return c }(), func() crmsim.Request { e := events; e.Seq = 2; return e }()},
			report: []string{"OUT OF ORDER #1 POST /api/v4/calls", "came before POST /api/v2/events (calls/test.yaml:4)"}},
		{name: "unordered-accepts-any-order", src: strings.Replace(inbound, "ordered: true", "ordered: false", 1),
			journal: []crmsim.Request{func() crmsim.Request { c := call; c.Seq = 1; return c }(), func() crmsim.Request { e := events; e.Seq = 2; return e }()}, ok: true},
		{name: "ring-group-either-order", src: ringGroup, journal: []crmsim.Request{
			req(1, "POST /api/v2/events", "add.0.users.0", "702"), req(2, "POST /api/v2/events", "add.0.users.0", "701"), req(3, "POST /api/v4/calls")}, ok: true},
		{name: "ring-group-written-order", src: ringGroup, journal: []crmsim.Request{
			req(1, "POST /api/v2/events", "add.0.users.0", "701"), req(2, "POST /api/v2/events", "add.0.users.0", "702"), req(3, "POST /api/v4/calls")}, ok: true},
		{name: "ring-group-call-before-a-notification", src: ringGroup, journal: []crmsim.Request{
			req(1, "POST /api/v2/events", "add.0.users.0", "701"), req(2, "POST /api/v4/calls"), req(3, "POST /api/v2/events", "add.0.users.0", "702")},
			report: []string{"OUT OF ORDER #2 POST /api/v4/calls"}},
		{name: "path-compared", src: "expect:\n  - {method: \"POST /api/v4/{entity}/notes\", path: /api/v4/leads/notes, params: {0.params.uniq: \"{call_id}\"}}\n",
			journal: []crmsim.Request{func() crmsim.Request {
				r := req(1, "POST /api/v4/{entity}/notes", "0.params.uniq", "1795634906.26")
				r.Path = "/api/v4/leads/notes"
				return r
			}()}, ok: true},
		{name: "path-differs", src: "expect:\n  - {method: \"POST /api/v4/{entity}/notes\", path: '~^/api/v4/leads/'}\n",
			journal: []crmsim.Request{func() crmsim.Request {
				r := req(1, "POST /api/v4/{entity}/notes")
				r.Path = "/api/v4/contacts/notes"
				return r
			}()}, report: []string{`✗ (path)  want ~^/api/v4/leads/, got "/api/v4/contacts/notes"`}},
		{name: "nothing-sent", src: inbound, journal: nil,
			report: []string{"MISSING     POST /api/v2/events (calls/test.yaml:4): no POST /api/v2/events request at all"}},
		{name: "call-that-must-make-none", src: "expect: []\n", journal: nil, ok: true},
		{name: "call-that-must-make-none-made-one", src: "expect: []\n", journal: []crmsim.Request{call}, report: []string{"UNEXPECTED  #2 POST /api/v4/calls"}},
		{name: "count-two", src: "expect:\n  - {method: GET /api/v4/contacts, count: 2}\n",
			journal: []crmsim.Request{req(1, "GET /api/v4/contacts", "query", "a"), req(2, "GET /api/v4/contacts", "query", "b")}, ok: true},
		{name: "count-two-got-one", src: "expect:\n  - {method: GET /api/v4/contacts, count: 2}\n",
			journal: []crmsim.Request{req(1, "GET /api/v4/contacts", "query", "a")}, report: []string{"expected 2 times, matched 1"}},
		{name: "specific-expectation-chooses-first", src: "expect:\n  - {method: GET /api/v4/contacts}\n  - {method: GET /api/v4/contacts, params: {query: b}}\n",
			journal: []crmsim.Request{req(1, "GET /api/v4/contacts", "query", "b"), req(2, "GET /api/v4/contacts", "query", "a")}, ok: true},
		{name: "method-case-insensitive", src: "expect:\n  - method: Telephony.ExternalCall.Finish\n", journal: []crmsim.Request{req(1, "telephony.externalcall.finish")}, ok: true},
		{name: "bitrix-batch-compares-like-single-commands", src: `
ordered: true
expect:
  - {method: telephony.externalcall.finish, params: {CALL_ID: externalCall.1, USER_ID: 1, DURATION: 20}}
  - {method: telephony.externalcall.attachRecord, params: {CALL_ID: externalCall.1}}
forbid: [telephony.externalcall.register]
`, opt: Options{Batched: true}, journal: []crmsim.Request{batch(1,
			"finish", "telephony.externalcall.finish?CALL_ID=externalCall.1&USER_ID=1&DURATION=20",
			"rec", "telephony.externalcall.attachRecord?CALL_ID=externalCall.1&FILENAME=a.wav")}, ok: true},
		{name: "bitrix-batch-second-register-is-caught", src: `
expect:
  - {method: telephony.externalcall.register, params: {USER_PHONE_INNER: 101}}
`, opt: Options{Batched: true}, journal: []crmsim.Request{
			req(1, "telephony.externalcall.register", "USER_PHONE_INNER", "101"),
			batch(2, "again", "telephony.externalcall.register?USER_PHONE_INNER=101")},
			report: []string{"TOO MANY    #2 telephony.externalcall.register"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opt := c.opt
			opt.Vars = vars
			res := Compare(mustParse(t, c.src), c.journal, opt)
			rep := res.Report()
			if res.OK() != c.ok {
				t.Fatalf("OK() = %v, want %v; report:\n%s", res.OK(), c.ok, rep)
			}
			for _, s := range c.report {
				if !strings.Contains(rep, s) {
					t.Errorf("report lacks %q; report:\n%s", s, rep)
				}
			}
		})
	}
}

// batch is a journaled Bitrix24 batch: key, command pairs, each answered.
func batch(seq int, cmds ...string) crmsim.Request {
	form := url.Values{}
	var keys []string
	results := map[string]any{}
	for i := 0; i+1 < len(cmds); i += 2 {
		keys = append(keys, "cmd["+cmds[i]+"]="+url.QueryEscape(cmds[i+1]))
		form.Set("cmd["+cmds[i]+"]", cmds[i+1])
		results[cmds[i]] = true
	}
	resp, _ := json.Marshal(map[string]any{"result": map[string]any{"result": results, "result_error": []any{}}})
	r := crmsim.Request{Seq: seq, Method: "batch", HTTP: "POST", Path: "/rest/batch.json", Status: 200,
		Form: strings.Join(keys, "&"), Response: resp, Params: map[string]string{}}
	for k, v := range form {
		r.Params[k] = v[0]
	}
	return r
}

func TestCompareUnknownPlaceholderAtRunTime(t *testing.T) {
	c := mustParse(t, "expect:\n  - {method: POST /api/v4/calls, params: {0.uniq: \"{call_id}\"}}\n")
	res := Compare(c, []crmsim.Request{req(1, "POST /api/v4/calls", "0.uniq", "x")}, Options{Vars: map[string]string{"pbx": "p"}})
	if res.OK() || !strings.Contains(res.Report(), "SETUP") || !strings.Contains(res.Report(), "unknown placeholder {call_id}: write one of {pbx}") {
		t.Fatalf("want a setup problem naming the placeholder; report:\n%s", res.Report())
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, src string
		// want is the whole message: file, line, field and the fix.
		want string
	}{
		{"unknown-top-key", "expects: []\n", "calls/test.yaml:1: expects: unknown key: write one of expect, forbid, ordered, others, ignore"},
		{"expect-not-a-list", "expect: {method: x}\n", `calls/test.yaml:1: expect: not a list: write one "- method: ..." item per request`},
		{"missing-method", "expect:\n  - params: {a: 1}\n", "calls/test.yaml:2: expect[0].method: missing: write the method, e.g. POST /api/v4/calls"},
		{"unknown-request-key", "expect:\n  - {method: a, parms: {}}\n", "calls/test.yaml:2: expect[0].parms: unknown key: write method, path, params, count or with_previous"},
		{"path-any", "expect:\n  - {method: a, path: \"*\"}\n", "calls/test.yaml:2: expect[0].path: write the path"},
		{"with-previous-first", "ordered: true\nexpect:\n  - {method: a, with_previous: true}\n", "calls/test.yaml:3: expect[0].with_previous: the first request has no request before it: remove with_previous"},
		{"with-previous-in-forbid", "forbid:\n  - {method: a, with_previous: true}\n", "calls/test.yaml:2: forbid[0].with_previous: a forbidden request has no place in the order: remove with_previous"},
		{"bad-count", "expect:\n  - {method: a, count: 0}\n", `calls/test.yaml:2: expect[0].count: "0" is not a count: write how many times it must happen, 1 or more (to forbid it, list it under forbid)`},
		{"count-in-forbid", "forbid:\n  - {method: a, count: 2}\n", "calls/test.yaml:2: forbid[0].count: a forbidden request must happen 0 times: remove count"},
		{"list-value", "expect:\n  - method: a\n    params: {users: [1, 2]}\n", "calls/test.yaml:3: expect[0].params.users: a list: write one value"},
		{"bad-pattern", "expect:\n  - method: a\n    params: {x: '~a('}\n", `calls/test.yaml:3: expect[0].params.x: "a(" is not a regular expression`},
		{"unknown-placeholder", "expect:\n  - method: a\n    params:\n      x: \"{callid}\"\n", "calls/test.yaml:4: expect[0].params.x: unknown placeholder {callid}: write one of {call_id} {pbx} {phone}"},
		{"bad-others", "others: maybe\nexpect: []\n", `calls/test.yaml:1: others: "maybe": write fail`},
		{"bad-ordered", "ordered: yes please\n", `calls/test.yaml:1: ordered: "yes please" is not true or false`},
		{"allow-checks-nothing", "others: allow\n", "calls/test.yaml:1: others: allow with nothing expected or forbidden checks nothing"},
		{"twice", "expect: []\nexpect: []\n", "calls/test.yaml:2: expect: written twice (also line 1): keep one"},
		{"duplicate-param", "expect:\n  - method: a\n    params:\n      x: 1\n      x: 2\n", "calls/test.yaml:5: expect[0].params.x: written twice: keep one"},
		{"not-yaml", "expect: [\n", "calls/test.yaml: (file): not valid YAML"},
		{"ignore-not-list", "ignore: GET /x\nexpect: []\n", "calls/test.yaml:1: ignore: not a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("calls/test.yaml", []byte(c.src), testVars)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error:\n  %v\nwant it to start with:\n  %s", err, c.want)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	c := mustParse(t, `
expect:
  - method: m
    params: {a: 1, b: true, c: "{pbx}", d: '~^\d+$', e: "*", f: ~, g: null, h: "~"}
`)
	want := []Value{{Exact, "1"}, {Exact, "true"}, {Exact, "{pbx}"}, {Pattern, `^\d+$`}, {Kind: Present}, {Kind: Absent}, {Kind: Absent}, {Pattern, ""}}
	for i, p := range c.Requests[0].Params {
		if p.Want != want[i] {
			t.Errorf("%s = %+v, want %+v", p.Key, p.Want, want[i])
		}
	}
	if c.Requests[0].Count != 1 || c.AllowOthers || c.Ordered {
		t.Errorf("defaults: count %d, allow others %v, ordered %v; want 1, false, false", c.Requests[0].Count, c.AllowOthers, c.Ordered)
	}
}
