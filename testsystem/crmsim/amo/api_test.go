package amo

import (
	"net/http"
	"strings"
	"testing"
)

func TestLookups(t *testing.T) {
	e := newEnv(t, Options{})
	cases := []struct {
		name    string
		path    string
		status  int
		ids     []int // ids in _embedded.<key>, in order
		key     string
		checkFn func(t *testing.T, r reply)
	}{
		{name: "account", path: "/api/v4/account", status: 200, checkFn: func(t *testing.T, r reply) {
			if num(r.get("id")) != 31000001 || r.get("subdomain") != "ringbridge" || num(r.get("current_user_id")) != 501 {
				t.Errorf("account %s", r.raw)
			}
		}},
		{name: "contact-by-digits", path: "/api/v4/contacts?query=9161111111", status: 200, key: "contacts", ids: []int{11}},
		{name: "contact-formatted-query", path: "/api/v4/contacts?query=%2B7%20916%20111-11-11", status: 200, key: "contacts", ids: []int{11}},
		{name: "contact-8-form", path: "/api/v4/contacts?query=89162222222", status: 200, key: "contacts", ids: []int{12}},
		// Digits are matched as they are: 7... does not find a number stored as 8...
		{name: "contact-other-prefix-not-found", path: "/api/v4/contacts?query=79162222222", status: 204},
		{name: "contact-unknown-phone", path: "/api/v4/contacts?query=79990000000", status: 204},
		{name: "contact-by-name", path: "/api/v4/contacts?query=%D0%BF%D1%91%D1%82%D1%80", status: 200, key: "contacts", ids: []int{12}},
		{name: "contact-by-email", path: "/api/v4/contacts?query=olga@example", status: 200, key: "contacts", ids: []int{14}},
		{name: "contacts-with-leads", path: "/api/v4/contacts?query=89162222222&with=leads", status: 200, key: "contacts", ids: []int{12}, checkFn: func(t *testing.T, r reply) {
			if num(r.get("_embedded", "contacts", 0, "_embedded", "leads", 1, "id")) != 23 {
				t.Errorf("with=leads: %s", r.raw)
			}
		}},
		{name: "contact-phone-field", path: "/api/v4/contacts/11", status: 200, checkFn: func(t *testing.T, r reply) {
			f := r.get("custom_fields_values", 0)
			if dig(f, "field_code") != "PHONE" || dig(f, "values", 0, "enum_code") != "MOB" || dig(f, "values", 0, "value") != "+7 (916) 111-11-11" {
				t.Errorf("phone field %v", f)
			}
		}},
		{name: "contact-missing", path: "/api/v4/contacts/999", status: 204},
		{name: "contacts-page", path: "/api/v4/contacts?limit=2&page=2", status: 200, key: "contacts", ids: []int{13, 14}, checkFn: func(t *testing.T, r reply) {
			if r.get("_links", "next") != nil || num(r.get("_page")) != 2 || r.get("_links", "prev") == nil {
				t.Errorf("last page links: %v", r.get("_links"))
			}
		}},
		{name: "contacts-past-last-page", path: "/api/v4/contacts?limit=2&page=3", status: 204},
		{name: "leads-query", path: "/api/v4/leads?query=%D0%9F%D0%B5%D1%82%D1%80%D0%B0", status: 200, key: "leads", ids: []int{22, 23}},
		{name: "leads-query-none", path: "/api/v4/leads?query=nothing-like-this", status: 204},
		{name: "leads-with-contacts", path: "/api/v4/leads?filter%5Bid%5D%5B%5D=21&with=contacts", status: 200, key: "leads", ids: []int{21}, checkFn: func(t *testing.T, r reply) {
			if num(r.get("_embedded", "leads", 0, "_embedded", "contacts", 0, "id")) != 11 || r.get("_embedded", "leads", 0, "_embedded", "contacts", 0, "is_main") != true {
				t.Errorf("with=contacts: %s", r.raw)
			}
		}},
		{name: "company-by-phone", path: "/api/v4/companies?query=4955555555", status: 200, key: "companies", ids: []int{41}},
		{name: "users-page-1", path: "/api/v4/users?limit=2", status: 200, key: "users", ids: []int{501, 502}, checkFn: func(t *testing.T, r reply) {
			if num(r.get("_total_items")) != 3 || num(r.get("_page_count")) != 2 {
				t.Errorf("totals: %s", r.raw)
			}
			next, _ := r.get("_links", "next", "href").(string)
			if !strings.Contains(next, "page=2") || !strings.Contains(next, "limit=2") {
				t.Errorf("next link %q", next)
			}
			if r.get("_embedded", "users", 0, "rights", "is_admin") != true || r.get("_embedded", "users", 0, "phone") != nil {
				t.Errorf("user 0: %v", r.get("_embedded", "users", 0))
			}
		}},
		{name: "users-page-2", path: "/api/v4/users?limit=2&page=2", status: 200, key: "users", ids: []int{503}},
		{name: "user", path: "/api/v4/users/502", status: 200, checkFn: func(t *testing.T, r reply) {
			if r.get("email") != "boris@example.com" {
				t.Errorf("user %s", r.raw)
			}
		}},
		{name: "pipelines", path: "/api/v4/leads/pipelines", status: 200, checkFn: func(t *testing.T, r reply) {
			if num(r.get("_embedded", "pipelines", 0, "_embedded", "statuses", 0, "type")) != 1 {
				t.Errorf("the first status is not Unsorted: %s", r.raw)
			}
		}},
		{name: "unknown-path", path: "/api/v4/nothing", status: 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(http.MethodGet, c.path, nil)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.status == 204 && len(r.raw) != 0 {
				t.Errorf("204 with a body: %q", r.raw)
			}
			if c.status == 200 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/hal+json") {
				t.Errorf("content type %q", r.header.Get("Content-Type"))
			}
			if c.key != "" {
				items, _ := r.get("_embedded", c.key).([]any)
				var got []int
				for _, it := range items {
					got = append(got, num(dig(it, "id")))
				}
				if len(got) != len(c.ids) {
					t.Fatalf("ids %v, want %v", got, c.ids)
				}
				for i := range got {
					if got[i] != c.ids[i] {
						t.Fatalf("ids %v, want %v", got, c.ids)
					}
				}
			}
			if c.checkFn != nil {
				c.checkFn(t, r)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		check  func(t *testing.T, e *env, r reply)
	}{
		{name: "contact", path: "/api/v4/contacts", status: 200,
			body: `[{"name":"Новый","responsible_user_id":502,"custom_fields_values":[{"field_code":"PHONE","values":[{"value":"+79165550000","enum_code":"WORK"}]}],"request_id":"r1"}]`,
			check: func(t *testing.T, e *env, r reply) {
				if r.get("_embedded", "contacts", 0, "request_id") != "r1" {
					t.Errorf("request_id not echoed: %s", r.raw)
				}
				if s := e.do("GET", "/api/v4/contacts?query=9165550000", nil); s.status != 200 || num(s.get("_embedded", "contacts", 0, "responsible_user_id")) != 502 {
					t.Errorf("new contact not found by phone: %d %s", s.status, s.raw)
				}
			}},
		{name: "contact-request-id-is-index", path: "/api/v4/contacts", status: 200, body: `[{"name":"A"},{"name":"B"}]`,
			check: func(t *testing.T, e *env, r reply) {
				if r.get("_embedded", "contacts", 1, "request_id") != "1" {
					t.Errorf("request_id %v", r.get("_embedded", "contacts", 1, "request_id"))
				}
			}},
		{name: "contact-unknown-field", path: "/api/v4/contacts", status: 400,
			body: `[{"name":"X","custom_fields_values":[{"field_id":1,"values":[{"value":"x"}]}]}]`,
			check: func(t *testing.T, e *env, r reply) {
				if r.get("validation-errors", 0, "errors", 0, "path") != "custom_fields_values.0.field_id" || r.get("validation-errors", 0, "errors", 0, "code") != "NotSupportedChoice" {
					t.Errorf("validation errors: %s", r.raw)
				}
			}},
		{name: "contact-bad-enum", path: "/api/v4/contacts", status: 400,
			body: `[{"name":"X","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"1","enum_code":"MOBILE"}]}]}]`,
			check: func(t *testing.T, e *env, r reply) {
				if r.get("validation-errors", 0, "errors", 0, "path") != "custom_fields_values.0.values.0.enum_code" {
					t.Errorf("validation errors: %s", r.raw)
				}
			}},
		{name: "contact-object-not-array", path: "/api/v4/contacts", status: 400, body: `{"name":"X"}`},
		{name: "contact-empty-batch", path: "/api/v4/contacts", status: 400, body: `[]`},
		{name: "lead", path: "/api/v4/leads", status: 200, body: `[{"name":"L","price":100,"_embedded":{"contacts":[{"id":14}]}}]`,
			check: func(t *testing.T, e *env, r reply) {
				id := num(r.get("_embedded", "leads", 0, "id"))
				l := e.do("GET", "/api/v4/leads/"+itoa(id)+"?with=contacts", nil)
				if num(l.get("_embedded", "contacts", 0, "id")) != 14 || num(l.get("pipeline_id")) != 1001 || num(l.get("status_id")) != 10002 {
					t.Errorf("lead %s", l.raw)
				}
			}},
		{name: "lead-bad-status", path: "/api/v4/leads", status: 400, body: `[{"name":"L","status_id":5}]`},
		{name: "lead-price-string", path: "/api/v4/leads", status: 400, body: `[{"name":"L","price":"100"}]`,
			check: func(t *testing.T, e *env, r reply) {
				if r.get("validation-errors", 0, "errors", 0, "code") != "InvalidType" {
					t.Errorf("%s", r.raw)
				}
			}},
		{name: "complex", path: "/api/v4/leads/complex", status: 200,
			body: `[{"name":"Входящий","_embedded":{"contacts":[{"first_name":"Неизвестный","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"+79167770000"}]}]}]}}]`,
			check: func(t *testing.T, e *env, r reply) {
				cid := num(r.get(0, "contact_id"))
				if num(r.get(0, "id")) == 0 || cid == 0 || r.get(0, "merged") != false || dig(r.get(0, "request_id"), 0) != "0" {
					t.Fatalf("complex answer %s", r.raw)
				}
				// The contact is visible and the call now lands on the new lead.
				c := e.do("POST", "/api/v4/calls", `[{"direction":"inbound","duration":5,"source":"rb","phone":"89167770000"}]`)
				if c.get("_embedded", "calls", 0, "entity_type") != "leads" || num(c.get("_embedded", "calls", 0, "entity_id")) != num(r.get(0, "id")) {
					t.Errorf("call after complex: %s", c.raw)
				}
			}},
		{name: "complex-over-limit", path: "/api/v4/leads/complex", status: 400, body: "[" + strings.Repeat(`{"name":"x"},`, 50) + `{"name":"x"}]`},
		{name: "task", path: "/api/v4/tasks", status: 200,
			body: `[{"task_type_id":1,"text":"Перезвонить","complete_till":1772400000,"entity_id":21,"entity_type":"leads","responsible_user_id":502}]`,
			check: func(t *testing.T, e *env, r reply) {
				ts := e.s.Tasks()
				if len(ts) != 1 || ts[0].EntityID != 21 || ts[0].ResponsibleUserID != 502 || ts[0].Text != "Перезвонить" || num(r.get("_embedded", "tasks", 0, "id")) != ts[0].ID {
					t.Errorf("tasks %+v, answer %s", ts, r.raw)
				}
			}},
		{name: "task-missing-fields", path: "/api/v4/tasks", status: 400, body: `[{"entity_id":999,"entity_type":"leads","task_type_id":77}]`,
			check: func(t *testing.T, e *env, r reply) {
				paths := map[string]bool{}
				for _, fe := range r.get("validation-errors", 0, "errors").([]any) {
					paths[dig(fe, "path").(string)] = true
				}
				for _, p := range []string{"text", "complete_till", "entity_id", "task_type_id"} {
					if !paths[p] {
						t.Errorf("no error for %s: %s", p, r.raw)
					}
				}
			}},
		{name: "note-call-in", path: "/api/v4/contacts/notes", status: 200,
			body: `[{"entity_id":14,"note_type":"call_in","params":{"uniq":"1.1","duration":3,"source":"rb","phone":"79164444444"}}]`,
			check: func(t *testing.T, e *env, r reply) {
				ns := e.s.Notes()
				if len(ns) != 1 || ns[0].NoteType != "call_in" || ns[0].EntityID != 14 {
					t.Errorf("notes %+v", ns)
				}
			}},
		{name: "note-call-without-params", path: "/api/v4/contacts/notes", status: 400, body: `[{"entity_id":14,"note_type":"call_in"}]`},
		{name: "events-pop-up", path: "/api/v2/events", status: 202, body: `{"add":[{"type":"phone_call","phone_number":"+7 916 111 11 11","users":[502]}]}`,
			check: func(t *testing.T, e *env, r reply) {
				ns := e.s.Notifications()
				if len(ns) != 1 || ns[0].EntityType != "leads" || ns[0].EntityID != 21 || len(ns[0].Users) != 1 || ns[0].Users[0] != 502 {
					t.Errorf("notifications %+v", ns)
				}
			}},
		{name: "events-unknown-number", path: "/api/v2/events/", status: 202, body: `{"add":[{"type":"phone_call","phone_number":"100500"}]}`,
			check: func(t *testing.T, e *env, r reply) {
				if ns := e.s.Notifications(); len(ns) != 1 || ns[0].EntityID != 0 || ns[0].Users != nil {
					t.Errorf("notifications %+v", ns)
				}
			}},
		{name: "events-bad-type", path: "/api/v2/events", status: 400, body: `{"add":[{"type":"sms","phone_number":"1","users":[999]}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			r := e.do(http.MethodPost, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.status == 400 && (!strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") || num(r.get("status")) != 400) {
				t.Errorf("400 is not problem+json: %s %s", r.header.Get("Content-Type"), r.raw)
			}
			if c.check != nil {
				c.check(t, e, r)
			}
		})
	}
}

func TestAccountState(t *testing.T) {
	cases := []struct {
		name   string
		state  AccountState
		status int
	}{
		{"active", Active, 200},
		{"unpaid", Unpaid, 402},
		{"blocked", Blocked, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.s.SetAccountState(c.state)
			r := e.do("GET", "/api/v4/account", nil)
			if r.status != c.status {
				t.Fatalf("status %d, want %d", r.status, c.status)
			}
			if c.status != 200 && (num(r.get("status")) != c.status || r.get("type") != "https://httpstatus.es/"+itoa(c.status)) {
				t.Errorf("body %s", r.raw)
			}
		})
	}
}
