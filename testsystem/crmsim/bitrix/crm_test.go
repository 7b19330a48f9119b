package bitrix

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestUserGet(t *testing.T) {
	opts := seedOptions()
	for i := 4; i <= 120; i++ { // 120 users, 119 active (user 3 is dismissed)
		opts.Users = append(opts.Users, User{ID: i, Name: fmt.Sprintf("User%d", i), PhoneInner: fmt.Sprint(100 + i)})
	}
	opts.Users = append(opts.Users, User{ID: 500, Name: "Mail", UserType: "email"})
	cases := []struct {
		name  string
		form  url.Values
		json  map[string]any
		ids   []string // first ids of the page
		count int
		next  int // -1: absent
		total int // -1: absent
	}{
		{name: "first-page", form: url.Values{}, ids: []string{"1", "2", "3"}, count: 50, next: 50, total: 120},
		{name: "second-page", form: url.Values{"start": {"50"}}, ids: []string{"51"}, count: 50, next: 100, total: 120},
		{name: "last-page", form: url.Values{"start": {"100"}}, ids: []string{"101"}, count: 20, next: -1, total: 120},
		{name: "no-count", form: url.Values{"start": {"-1"}}, ids: []string{"1"}, count: 50, next: -1, total: -1},
		{name: "active-only", form: url.Values{"FILTER[ACTIVE]": {"true"}}, ids: []string{"1", "2", "4"}, count: 50, next: 50, total: 119},
		{name: "by-extension-form", form: url.Values{"FILTER[UF_PHONE_INNER]": {"102"}}, ids: []string{"2"}, count: 1, next: -1, total: 1},
		{name: "by-extension-json", json: map[string]any{"filter": map[string]any{"UF_PHONE_INNER": "101", "ACTIVE": true}},
			ids: []string{"1"}, count: 1, next: -1, total: 1},
		{name: "top-level-filter", form: url.Values{"UF_PHONE_INNER": {"103"}}, ids: []string{"3"}, count: 1, next: -1, total: 1},
		{name: "dismissed-excluded", form: url.Values{"FILTER[UF_PHONE_INNER]": {"103"}, "FILTER[ACTIVE]": {"Y"}}, count: 0, next: -1, total: 0},
		{name: "in-list", json: map[string]any{"filter": map[string]any{"@UF_PHONE_INNER": []string{"101", "220"}}},
			ids: []string{"1", "120"}, count: 2, next: -1, total: 2},
		{name: "like-prefix", json: map[string]any{"filter": map[string]any{"NAME": "User11%"}}, ids: []string{"11", "110"}, count: 11, next: -1, total: 11},
		{name: "sort-desc", form: url.Values{"sort": {"ID"}, "order": {"DESC"}}, ids: []string{"120", "119"}, count: 50, next: 50, total: 120},
	}
	p := newPortal(t, opts)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var a answer
			if c.json != nil {
				a = p.json("user.get", c.json)
			} else {
				a = p.form("user.get", c.form)
			}
			list, _ := a.result().([]any)
			if a.status != 200 || len(list) != c.count {
				t.Fatalf("got %d, %d users: %.300s", a.status, len(list), a.raw)
			}
			for i, id := range c.ids {
				if u := list[i].(map[string]any); u["ID"] != id {
					t.Errorf("user %d is %v, want %s", i, u["ID"], id)
				}
			}
			gotNext, gotTotal := -1, -1
			if v, ok := a.body["next"]; ok {
				gotNext = num(v)
			}
			if v, ok := a.body["total"]; ok {
				gotTotal = num(v)
			}
			if gotNext != c.next || gotTotal != c.total {
				t.Errorf("next %d total %d, want %d %d", gotNext, gotTotal, c.next, c.total)
			}
		})
	}
	t.Run("fields", func(t *testing.T) {
		a := p.form("user.get", url.Values{"ID": {"2"}})
		u := a.result().([]any)[0].(map[string]any)
		if u["ACTIVE"] != true || u["UF_PHONE_INNER"] != "102" || u["NAME"] != "Oleg" || u["USER_TYPE"] != "employee" {
			t.Errorf("user %v", u)
		}
	})
}

func TestCRM(t *testing.T) {
	cases := []struct {
		name   string
		method string
		form   url.Values
		json   map[string]any
		status int
		want   []string // substrings of the raw answer
		check  func(t *testing.T, p *portal)
	}{
		{name: "lead-add-form", method: "crm.lead.add", form: url.Values{"FIELDS[TITLE]": {"Missed call"},
			"FIELDS[PHONE][0][VALUE]": {"+79001234567"}, "FIELDS[PHONE][0][VALUE_TYPE]": {"WORK"}, "FIELDS[SOURCE_ID]": {"CALL"}},
			status: 200, want: []string{`"result":31`}, check: func(t *testing.T, p *portal) {
				l := p.s.Leads()[1]
				if l.Title != "Missed call" || len(l.Phones) != 1 || l.Phones[0] != "+79001234567" || l.AssignedByID != 1 || l.CreatedBy != "crm.lead.add" {
					t.Errorf("lead %+v", l)
				}
			}},
		{name: "lead-add-json-lowercase-fields", method: "crm.lead.add", json: map[string]any{"fields": map[string]any{
			"TITLE": "J", "ASSIGNED_BY_ID": 2, "PHONE": []map[string]string{{"VALUE": "8 900 765-43-21"}}}},
			status: 200, want: []string{`"result":31`}, check: func(t *testing.T, p *portal) {
				if l := p.s.Leads()[1]; l.AssignedByID != 2 || l.Phones[0] != "8 900 765-43-21" {
					t.Errorf("lead %+v", l)
				}
			}},
		{name: "lead-list-by-phone", method: "crm.lead.list", form: url.Values{"filter[PHONE]": {"+79035556677"},
			"select[]": {"ID", "TITLE", "PHONE"}}, status: 200,
			want: []string{`"ID":"30"`, `"PHONE":[{"ID":`, `"VALUE":"89035556677"`, `"total":1`}},
		{name: "contact-list-by-responsible", method: "crm.contact.list", json: map[string]any{"filter": map[string]any{"ASSIGNED_BY_ID": 2}},
			status: 200, want: []string{`"ID":"10"`, `"total":1`}},
		{name: "contact-list-no-phone-unless-selected", method: "crm.contact.list", form: url.Values{}, status: 200,
			want: []string{`"result":[{"ASSIGNED_BY_ID":"2"`}},
		{name: "company-list-empty", method: "crm.company.list", form: url.Values{"filter[PHONE]": {"123"}}, status: 200,
			want: []string{`"result":[]`, `"total":0`}},
		{name: "findbycomm-all-types", method: "crm.duplicate.findbycomm", json: map[string]any{"type": "PHONE",
			"values": []string{"+79161234567", "84951112233"}}, status: 200, want: []string{`"result":{"CONTACT":[10],"COMPANY":[20]}`}},
		{name: "findbycomm-one-type", method: "crm.duplicate.findbycomm", form: url.Values{"type": {"PHONE"},
			"entity_type": {"LEAD"}, "values[]": {"+79035556677"}}, status: 200, want: []string{`"result":{"LEAD":[30]}`}},
		{name: "findbycomm-nothing", method: "crm.duplicate.findbycomm", form: url.Values{"type": {"PHONE"}, "values[]": {"1"}},
			status: 200, want: []string{`"result":[]`}},
		{name: "findbycomm-no-type", method: "crm.duplicate.findbycomm", form: url.Values{"values[]": {"1"}}, status: 400,
			want: []string{`{"error":"Communication type is not defined","error_description":"Parameter 'type' is required."}`}},
		{name: "findbycomm-no-values", method: "crm.duplicate.findbycomm", form: url.Values{"type": {"PHONE"}}, status: 400,
			want: []string{`"error":"Communication values is not defined"`}},
		{name: "profile", method: "profile", form: url.Values{}, status: 200, want: []string{`"ADMIN":true`, `"NAME":"Anna"`}},
		{name: "app-info", method: "app.info", form: url.Values{}, status: 200, want: []string{`"CODE":"local.ringbridge.test"`, `"INSTALLED":true`}},
		{name: "user-current", method: "user.current", form: url.Values{}, status: 200, want: []string{`"ID":"1"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			var a answer
			if c.json != nil {
				a = p.json(c.method, c.json)
			} else {
				a = p.form(c.method, c.form)
			}
			if a.status != c.status {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			for _, w := range c.want {
				if !strings.Contains(a.raw, w) {
					t.Errorf("answer lacks %s:\n%s", w, a.raw)
				}
			}
			if c.check != nil {
				c.check(t, p)
			}
		})
	}
}
