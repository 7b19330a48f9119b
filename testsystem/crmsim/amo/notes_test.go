package amo

import (
	"testing"
	"time"
)

// TestNotesList: a call logged through /api/v4/calls can be found again by its note's uniq.
func TestNotesList(t *testing.T) {
	e := newEnv(t, Options{})
	call := func(uniq, phone string) {
		t.Helper()
		r := e.do("POST", "/api/v4/calls", []any{map[string]any{"direction": "inbound", "uniq": uniq, "duration": 5, "source": "t", "phone": phone}})
		if r.status != 200 {
			t.Fatalf("add call: %d %s", r.status, r.raw)
		}
	}
	call("a.1", "+79161111111") // contact 11, which has one active lead
	from := e.clock.now().Add(time.Minute)
	e.clock.add(2 * time.Minute)
	call("b.2", "+79161111111")
	cases := []struct {
		name   string
		path   string
		status int
		uniqs  []string
	}{
		{"all-call-notes", "/api/v4/leads/notes?filter[note_type][]=call_in&filter[note_type][]=call_out", 200, []string{"a.1", "b.2"}},
		{"since", "/api/v4/leads/notes?filter[note_type]=call_in&filter[updated_at][from]=" + itoa(int(from.Unix())), 200, []string{"b.2"}},
		{"other-type", "/api/v4/leads/notes?filter[note_type]=common", 204, nil},
		{"other-entity-type", "/api/v4/contacts/notes?filter[note_type]=call_in", 204, nil},
		{"paging", "/api/v4/leads/notes?limit=1&page=2", 200, []string{"b.2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("GET", c.path, nil)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			for i, u := range c.uniqs {
				if got := r.get("_embedded", "notes", i, "params", "uniq"); got != u {
					t.Fatalf("note %d uniq %v, want %s: %s", i, got, u, r.raw)
				}
			}
			if n, _ := r.get("_embedded", "notes").([]any); len(n) != len(c.uniqs) {
				t.Fatalf("%d notes, want %d", len(n), len(c.uniqs))
			}
		})
	}
	t.Run("lead-by-id-still-routes", func(t *testing.T) {
		if r := e.do("GET", "/api/v4/leads/21", nil); r.status != 200 {
			t.Fatalf("GET /api/v4/leads/21: %d", r.status)
		}
	})
}
