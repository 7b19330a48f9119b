package amo

import (
	"net/http"
	"slices"
	"strconv"
)

// handleNotes is GET /api/v4/{leads|contacts|companies}/notes: the notes of one entity type,
// filtered by filter[entity_id], filter[note_type] and filter[updated_at][from] (a note's
// updated_at is its created_at here: notes are never edited), with paging; empty is 204. A
// connector uses it to find out whether a call whose request got no answer was logged (the
// params.uniq of its call_in/call_out note), since amoCRM does not deduplicate calls itself.
func (s *Server) handleNotes(entityType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := pageOf(q)
		types := append(q["filter[note_type]"], q["filter[note_type][]"]...)
		var entityIDs []int
		for _, k := range []string{"filter[entity_id]", "filter[entity_id][]"} {
			for _, v := range q[k] {
				if n, err := strconv.Atoi(v); err == nil {
					entityIDs = append(entityIDs, n)
				}
			}
		}
		var from int64
		if v := q.Get("filter[updated_at][from]"); v != "" {
			from, _ = strconv.ParseInt(v, 10, 64)
		}
		s.mu.Lock()
		var match []Note
		for _, n := range s.st.notes {
			if n.EntityType != entityType ||
				(len(types) > 0 && !slices.Contains(types, n.NoteType)) ||
				(len(entityIDs) > 0 && !slices.Contains(entityIDs, n.EntityID)) ||
				n.CreatedAt < from {
				continue
			}
			match = append(match, n)
		}
		s.mu.Unlock()
		start, end, next := p.window(len(match))
		if start == end {
			noContent(w)
			return
		}
		items := []any{}
		for _, n := range match[start:end] {
			items = append(items, map[string]any{
				"id": n.ID, "entity_id": n.EntityID, "note_type": n.NoteType, "params": n.Params,
				"created_by": n.CreatedBy, "updated_by": n.CreatedBy, "responsible_user_id": n.ResponsibleUserID,
				"created_at": n.CreatedAt, "updated_at": n.CreatedAt, "group_id": 0, "is_needs_to_be_deleted": false,
				"account_id": s.opts.Account.ID,
				"_links":     link(r, "/api/v4/"+entityType+"/"+itoa(n.EntityID)+"/notes/"+itoa(n.ID)),
			})
		}
		writeHAL(w, http.StatusOK, listBody(r, "notes", p, items, next, nil))
	}
}
