package amo

import (
	"strings"
	"testing"
)

func TestCalls(t *testing.T) {
	cases := []struct {
		name       string
		body       string
		status     int
		entityType string // of the first call added
		entityID   int
		errors     int // items in "errors"
		errPath    string
	}{
		{name: "contact-with-one-active-lead-goes-to-lead", status: 200, entityType: "leads", entityID: 21,
			body: `[{"direction":"inbound","uniq":"1700000000.1","duration":42,"source":"ringbridge","phone":"79161111111","call_status":4,"call_result":"Разговор","responsible_user_id":502,"created_by":502,"link":"https://rb.example/r/1.mp3"}]`},
		{name: "8-prefix-matches-by-last-10-digits", status: 200, entityType: "leads", entityID: 21,
			body: `[{"direction":"outbound","duration":0,"source":"rb","phone":"8 (916) 111-11-11","call_status":6}]`},
		{name: "two-active-leads-go-to-contact", status: 200, entityType: "contacts", entityID: 12,
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"+79162222222"}]`},
		{name: "only-closed-lead-goes-to-contact", status: 200, entityType: "contacts", entityID: 13,
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"89163333333"}]`},
		{name: "no-lead-goes-to-contact", status: 200, entityType: "contacts", entityID: 14,
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"9164444444"}]`},
		{name: "company-phone", status: 200, entityType: "companies", entityID: 41,
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"+74955555555"}]`},
		{name: "unknown-number-not-added", status: 400, errors: 1,
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"+79990000000","request_id":"x"}]`},
		{name: "partly-unknown-batch", status: 200, entityType: "leads", entityID: 21, errors: 1,
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"79161111111"},{"direction":"inbound","duration":1,"source":"rb","phone":"79990000000"}]`},
		{name: "missing-direction", status: 400, errPath: "direction",
			body: `[{"duration":1,"source":"rb","phone":"79161111111"}]`},
		{name: "bad-direction", status: 400, errPath: "direction",
			body: `[{"direction":"in","duration":1,"source":"rb","phone":"79161111111"}]`},
		{name: "call-status-8-undocumented", status: 400, errPath: "call_status",
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"79161111111","call_status":8}]`},
		{name: "duration-as-string", status: 400, errPath: "duration",
			body: `[{"direction":"inbound","duration":"1","source":"rb","phone":"79161111111"}]`},
		{name: "missing-source", status: 400, errPath: "source",
			body: `[{"direction":"inbound","duration":1,"phone":"79161111111"}]`},
		{name: "unknown-responsible-user", status: 400, errPath: "responsible_user_id",
			body: `[{"direction":"inbound","duration":1,"source":"rb","phone":"79161111111","responsible_user_id":9}]`},
		{name: "not-an-array", status: 400, body: `{"direction":"inbound"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			r := e.do("POST", "/api/v4/calls", c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.errPath != "" {
				if got := r.get("validation-errors", 0, "errors", 0, "path"); got != c.errPath || r.get("title") != "Bad Request" {
					t.Errorf("validation error at %v, want %s: %s", got, c.errPath, r.raw)
				}
				if len(e.s.Calls()) != 0 {
					t.Error("a call was added from an invalid batch")
				}
				return
			}
			if errs, _ := r.get("errors").([]any); len(errs) != c.errors {
				t.Errorf("errors %v, want %d", r.get("errors"), c.errors)
			}
			if c.entityType == "" {
				if len(e.s.Calls()) != 0 {
					t.Errorf("calls added: %+v", e.s.Calls())
				}
				return
			}
			if r.get("_embedded", "calls", 0, "entity_type") != c.entityType || num(r.get("_embedded", "calls", 0, "entity_id")) != c.entityID {
				t.Errorf("call landed on %v %v, want %s %d", r.get("_embedded", "calls", 0, "entity_type"), r.get("_embedded", "calls", 0, "entity_id"), c.entityType, c.entityID)
			}
			calls := e.s.Calls()
			if len(calls) == 0 || calls[0].EntityType != c.entityType || calls[0].NoteID == 0 || r.get("_embedded", "calls", 0, "request_id") != "0" {
				t.Errorf("state %+v, answer %s", calls, r.raw)
			}
			notes := e.s.Notes()
			if len(notes) == 0 || !strings.HasPrefix(notes[0].NoteType, "call_") || notes[0].EntityID != c.entityID {
				t.Errorf("notes %+v", notes)
			}
		})
	}
}

// A second call with the same uniq is a second call: the API documents no deduplication.
func TestCallsSameUniq(t *testing.T) {
	e := newEnv(t, Options{})
	body := `[{"direction":"inbound","uniq":"1700000000.7","duration":10,"source":"rb","phone":"79161111111","call_status":4}]`
	for i := 0; i < 2; i++ {
		if r := e.do("POST", "/api/v4/calls", body); r.status != 200 {
			t.Fatalf("call %d: %d %s", i, r.status, r.raw)
		}
	}
	got := e.s.CallsByUniq("1700000000.7")
	if len(got) != 2 || got[0].ID == got[1].ID {
		t.Fatalf("calls with the uniq: %+v", got)
	}
	if n := len(e.s.Notes()); n != 2 {
		t.Errorf("%d notes", n)
	}
}

func TestUnsortedSIP(t *testing.T) {
	sip := func(sourceUID, from string) string {
		return `[{"source_uid":"` + sourceUID + `","source_name":"ringbridge","metadata":{"uniq":"u-` + sourceUID + `","from":"` + from + `","phone":"101","called_at":1772366400,"duration":12,"link":"https://rb.example/r.mp3","service_code":"ringbridge","is_call_event_needed":true},
		"_embedded":{"contacts":[{"first_name":"Неизвестный","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"` + from + `"}]}]}]}}]`
	}
	t.Run("created-and-hidden-until-accepted", func(t *testing.T) {
		e := newEnv(t, Options{})
		r := e.do("POST", "/api/v4/leads/unsorted/sip", sip("s1", "+79168880000"))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		uid, _ := r.get("_embedded", "unsorted", 0, "uid").(string)
		leadID := num(r.get("_embedded", "unsorted", 0, "_embedded", "leads", 0, "id"))
		if uid == "" || leadID == 0 || num(r.get("_embedded", "unsorted", 0, "_embedded", "contacts", 0, "id")) == 0 {
			t.Fatalf("answer %s", r.raw)
		}
		if s := e.do("GET", "/api/v4/contacts?query=9168880000", nil); s.status != 204 {
			t.Errorf("unsorted contact visible in search: %d", s.status)
		}
		if c := e.do("POST", "/api/v4/calls", `[{"direction":"inbound","duration":1,"source":"rb","phone":"79168880000"}]`); c.status != 400 {
			t.Errorf("call matched an unsorted contact: %d %s", c.status, c.raw)
		}
		calls := e.s.Calls()
		if len(calls) != 1 || calls[0].EntityType != "leads" || calls[0].EntityID != leadID || calls[0].Uniq != "u-s1" {
			t.Errorf("call event %+v", calls)
		}
		if a := e.do("POST", "/api/v4/leads/unsorted/"+uid+"/accept", `{}`); a.status != 200 {
			t.Fatalf("accept: %d %s", a.status, a.raw)
		}
		if s := e.do("GET", "/api/v4/contacts?query=9168880000", nil); s.status != 200 {
			t.Errorf("accepted contact not found: %d", s.status)
		}
	})
	t.Run("same-source-uid-twice", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.do("POST", "/api/v4/leads/unsorted/sip", sip("s2", "+79168880001"))
		r := e.do("POST", "/api/v4/leads/unsorted/sip", sip("s2", "+79168880001"))
		if r.status != 400 || r.get("validation-errors", 0, "errors", 0, "path") != "source_uid" {
			t.Errorf("%d %s", r.status, r.raw)
		}
		if n := len(e.s.Unsorted()); n != 1 {
			t.Errorf("%d unsorted", n)
		}
	})
	t.Run("no-call-event", func(t *testing.T) {
		e := newEnv(t, Options{})
		r := e.do("POST", "/api/v4/leads/unsorted/sip", `[{"source_uid":"s3","source_name":"rb","metadata":{"uniq":"u3","from":79160000000,"is_call_event_needed":false}}]`)
		if r.status != 200 || len(e.s.Calls()) != 0 || e.s.Unsorted()[0].Metadata["called_at"] == nil {
			t.Errorf("%d %s calls %+v", r.status, r.raw, e.s.Calls())
		}
	})
	t.Run("missing-required", func(t *testing.T) {
		e := newEnv(t, Options{})
		r := e.do("POST", "/api/v4/leads/unsorted/sip", `[{"metadata":{}}]`)
		if r.status != 400 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		paths := map[string]bool{}
		for _, fe := range r.get("validation-errors", 0, "errors").([]any) {
			paths[dig(fe, "path").(string)] = true
		}
		for _, p := range []string{"source_uid", "source_name", "metadata.uniq", "metadata.from"} {
			if !paths[p] {
				t.Errorf("no error at %s: %s", p, r.raw)
			}
		}
	})
}
