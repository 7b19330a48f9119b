package bitrix

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestBatch(t *testing.T) {
	regQuery := url.Values{"USER_ID": {"1"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}, "EXTERNAL_CALL_ID": {"b.1"}}.Encode()
	cases := []struct {
		name string
		form url.Values
		json map[string]any
		hook bool
		// want are substrings of the raw answer; not must be absent.
		want []string
		not  []string
		// status of the whole request.
		status int
	}{
		{name: "register-then-show-with-reference", form: url.Values{
			"cmd[reg]":  {"telephony.externalcall.register?" + regQuery},
			"cmd[show]": {"telephony.externalcall.show?CALL_ID=$result[reg][CALL_ID]&USER_ID[]=2"},
		}, status: 200, want: []string{`"result":{"reg":{"CALL_ID":"externalCall.`, `"show":true`, `"result_error":[]`,
			`"result_time":{"reg":{"start":`}},
		{name: "error-in-one-no-halt", form: url.Values{
			"halt":      {"0"},
			"cmd[a]":    {"telephony.externalcall.finish?CALL_ID=nope&USER_ID=1"},
			"cmd[b]":    {"user.get?ID=2"},
			"cmd[c]":    {"no.such.method"},
			"cmd[nest]": {"batch?cmd[x]=profile"},
		}, status: 200, want: []string{
			`"result":{"b":[{"ID":"2"`,
			`"result_error":{"a":{"error":"ERROR_CORE","error_description":"Call is not found (call should be registered prior to finishing)"}`,
			`"c":{"error":"ERROR_METHOD_NOT_FOUND","error_description":"Method not found!"}`,
			`"nest":{"error":"ERROR_BATCH_METHOD_NOT_ALLOWED"`,
			`"result_total":{"b":1}`, `"result_next":[]`}},
		{name: "halt-stops", form: url.Values{
			"halt":   {"1"},
			"cmd[a]": {"telephony.externalcall.finish?CALL_ID=nope&USER_ID=1"},
			"cmd[b]": {"user.get?ID=2"},
		}, status: 200, want: []string{`"result":[]`, `"result_error":{"a":`}, not: []string{`"b":`}},
		{name: "json-list-keys-print-as-lists", json: map[string]any{"halt": 0, "cmd": []string{"profile", "user.get?start=-1"}},
			status: 200, want: []string{`"result":[{"`, `"result_total":[]`}},
		{name: "list-paging-in-batch", json: map[string]any{"cmd": map[string]string{"users": "user.get"}},
			status: 200, want: []string{`"result_total":{"users":60}`, `"result_next":{"users":50}`}},
		{name: "webhook-register-denied", hook: true, form: url.Values{
			"cmd[reg]": {"telephony.externalcall.register?" + regQuery},
			"cmd[u]":   {"user.get?ID=1"},
		}, status: 200, want: []string{`"result_error":{"reg":{"error":"WRONG_AUTH_TYPE"`, `"result":{"u":[`}},
		{name: "too-long", form: func() url.Values {
			f := url.Values{}
			for i := 0; i <= maxBatch; i++ {
				f.Set(fmt.Sprintf("cmd[%d]", i), "profile")
			}
			return f
		}(), status: 400, want: []string{`"error":"ERROR_BATCH_LENGTH_EXCEEDED"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := seedOptions()
			for i := 0; i < 57; i++ {
				opts.Users = append(opts.Users, User{Name: fmt.Sprintf("U%d", i)})
			}
			p := newPortal(t, opts)
			var a answer
			switch {
			case c.hook:
				a = p.hook("batch", c.form)
			case c.json != nil:
				a = p.json("batch", c.json)
			default:
				a = p.form("batch", c.form)
			}
			if a.status != c.status {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			for _, w := range c.want {
				if !contains(a.raw, w) {
					t.Errorf("answer lacks %s:\n%s", w, a.raw)
				}
			}
			for _, n := range c.not {
				if contains(a.raw, n) {
					t.Errorf("answer has %s:\n%s", n, a.raw)
				}
			}
		})
	}
}

func TestExpandBatch(t *testing.T) {
	p := newPortal(t, seedOptions())
	id := p.register(url.Values{"EXTERNAL_CALL_ID": {"x.1"}})
	// Sent in this order (url.Values would sort the keys): the portal runs c2, c3, then halts.
	hide := url.QueryEscape("telephony.externalcall.hide?" + url.Values{"CALL_ID": {id}, "USER_ID[]": {"1"}}.Encode())
	p.post("/rest/batch", "application/x-www-form-urlencoded", "auth="+p.inst.AccessToken+"&halt=1&cmd%5Bc2%5D="+hide+
		"&cmd%5Bc3%5D="+url.QueryEscape("telephony.externalcall.finish?CALL_ID=nope&USER_ID=1")+"&cmd%5Bc10%5D=user.get%3FID%3D1")
	p.post("/rest/batch", "application/json", `{"auth":"`+p.inst.AccessToken+`","cmd":{"z":"profile","a":"scope"}}`)
	got := ExpandBatch(p.s.Requests(0))
	type row struct {
		method string
		status int
		param  string
		fault  string
	}
	want := []row{
		{"telephony.externalcall.register", 200, "x.1", ""},
		{"telephony.externalcall.hide", 200, id, ""},
		{"telephony.externalcall.finish", 400, "nope", ""},
		{"user.get", 0, "", "batch halted"},
		{"profile", 200, "", ""},
		{"scope", 200, "", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries: %+v", len(got), got)
	}
	for i, w := range want {
		r := got[i]
		t.Run(fmt.Sprintf("%d-%s", i, w.method), func(t *testing.T) {
			param := r.Param("EXTERNAL_CALL_ID") + r.Param("CALL_ID")
			if r.Method != w.method || r.Status != w.status || param != w.param || r.Fault != w.fault {
				t.Errorf("got %s %d %q %q, want %+v", r.Method, r.Status, param, r.Fault, w)
			}
			if w.status == 200 {
				var resp map[string]json.RawMessage
				if json.Unmarshal(r.Response, &resp) != nil || resp["result"] == nil {
					t.Errorf("response %s", r.Response)
				}
			}
		})
	}
	if got[1].Param("USER_ID[0]") != "1" || !strings.HasSuffix(got[1].Path, "#c2") {
		t.Errorf("sub-request params %+v path %s", got[1].Params, got[1].Path)
	}
}
