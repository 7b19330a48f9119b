package amo

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// maxBatch is the most entities one v4 batch request may add.
const maxBatch = 250

// tooManyItems is the answer to a batch over maxBatch.
func tooManyItems(w http.ResponseWriter) {
	writeProblem(w, validationProblem([]ValidationError{{RequestID: "0", Errors: []FieldError{{Code: "TooMany", Path: "", Detail: "This collection should contain 250 elements or less."}}}}))
}

// handleAddCalls is POST /api/v4/calls (crm-apis.md §2.1). Each call is validated (direction,
// duration, source, phone required; call_status 1..7); an invalid item fails the whole request
// with 400 validation-errors. A valid call lands on the card found by its phone (see
// findByPhone) as a call_in/call_out note; a call whose phone matches no card is not added and
// is reported in "errors" (HTTP 400 when no call of the batch was added, else 200). uniq is only
// stored: the API documents no uniqueness for it, so the same uniq sent twice adds two calls —
// a retrying connector must not resend a call that was added.
func (s *Server) handleAddCalls(w http.ResponseWriter, r *http.Request) {
	items, err := decodeBatch(readBody(r))
	if err != nil {
		badBody(w, err)
		return
	}
	if len(items) > maxBatch {
		tooManyItems(w)
		return
	}
	user := currentUser(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	var verrs []ValidationError
	var calls []Call
	for i, m := range items {
		f := newFields(m)
		c := Call{
			Direction:  f.str("direction", true),
			Uniq:       f.str("uniq", false),
			Duration:   int(f.integer("duration", true)),
			Source:     f.str("source", true),
			Link:       f.str("link", false),
			Phone:      f.str("phone", true),
			CallResult: f.str("call_result", false),
			CallStatus: int(f.integer("call_status", false)),
			CreatedAt:  f.integer("created_at", false),
			RequestID:  requestID(m, i),
		}
		if c.Direction != "" && c.Direction != "inbound" && c.Direction != "outbound" {
			f.choice("direction")
		}
		if c.Duration < 0 {
			f.fail("duration", "GreaterThanOrEqual", "This value should be greater than or equal to 0.")
		}
		if f.has("call_status") && (c.CallStatus < 1 || c.CallStatus > 7) {
			f.choice("call_status")
		}
		switch v := m["call_responsible"].(type) {
		case nil:
		case string:
			c.CallResponsible = v
		case json.Number:
			if n, err := v.Int64(); err == nil {
				c.CallResponsible = int(n)
			} else {
				f.fail("call_responsible", "InvalidType", "This value should be of type int or string.")
			}
		default:
			f.fail("call_responsible", "InvalidType", "This value should be of type int or string.")
		}
		c.ResponsibleUserID = s.checkUser(f, "responsible_user_id", user)
		c.CreatedBy = s.checkUser(f, "created_by", user)
		if c.CreatedAt == 0 {
			c.CreatedAt = now
		}
		if e := f.errors(); len(e) > 0 {
			verrs = append(verrs, ValidationError{RequestID: c.RequestID, Errors: e})
		}
		calls = append(calls, c)
	}
	if len(verrs) > 0 || len(items) == 0 {
		writeProblem(w, validationProblem(emptyBatch(verrs)))
		return
	}
	added, errs := []any{}, []any{}
	for _, c := range calls {
		et, eid, ok := s.st.findByPhone(c.Phone)
		if !ok {
			// The real text of this item error is not documented (crm-apis.md §2.1, verify).
			errs = append(errs, map[string]any{"request_id": c.RequestID, "status": http.StatusBadRequest, "title": "Bad Request", "detail": "Entity with this phone not found"})
			continue
		}
		c = s.logCallLocked(c, et, eid)
		added = append(added, map[string]any{
			"id": c.ID, "entity_id": eid, "entity_type": et, "account_id": s.opts.Account.ID, "request_id": c.RequestID,
			"_embedded": map[string]any{"entity": map[string]any{"id": eid, "_links": link(r, "/api/v4/"+et+"/"+itoa(eid))}},
		})
	}
	status := http.StatusOK
	if len(added) == 0 {
		status = http.StatusBadRequest
	}
	writeHAL(w, status, map[string]any{"_total_items": len(added), "_embedded": map[string]any{"calls": added}, "errors": errs})
}

// logCallLocked stores a call on an entity with its note.
func (s *Server) logCallLocked(c Call, entityType string, entityID int) Call {
	c.ID = s.st.nextCall
	s.st.nextCall++
	c.EntityType, c.EntityID = entityType, entityID
	noteType := "call_in"
	if c.Direction == "outbound" {
		noteType = "call_out"
	}
	n := s.st.addNote(Note{
		EntityType: entityType, EntityID: entityID, NoteType: noteType,
		Params: map[string]any{
			"uniq": c.Uniq, "duration": c.Duration, "source": c.Source, "link": c.Link,
			"phone": c.Phone, "call_result": c.CallResult, "call_status": c.CallStatus,
		},
		CreatedBy: c.CreatedBy, ResponsibleUserID: c.ResponsibleUserID, CreatedAt: c.CreatedAt,
	})
	c.NoteID = n.ID
	s.st.calls = append(s.st.calls, c)
	return c
}

// handleAddUnsortedSIP is POST /api/v4/leads/unsorted/sip (crm-apis.md §2.2): source_uid and
// source_name required; metadata is the call (from, phone, called_at, duration, link,
// service_code, uniq, is_call_event_needed); _embedded leads/contacts/companies are created with
// the incoming lead and stay invisible to lists and searches until it is accepted. The same
// source_uid twice (while the first is not accepted) is an error, as "the same entity cannot be
// in Unsorted twice". With is_call_event_needed (default true) the call is also added as a
// call_in note on the incoming lead.
func (s *Server) handleAddUnsortedSIP(w http.ResponseWriter, r *http.Request) {
	items, err := decodeBatch(readBody(r))
	if err != nil {
		badBody(w, err)
		return
	}
	if len(items) > maxBatch {
		tooManyItems(w)
		return
	}
	user := currentUser(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	type plan struct {
		u         *Unsorted
		lead      *Lead
		contacts  []*Contact
		companies []*Company
		callEvent bool
		call      Call
	}
	var verrs []ValidationError
	var plans []plan
	seen := map[string]bool{}
	for i, m := range items {
		f := newFields(m)
		u := &Unsorted{
			SourceUID:  f.str("source_uid", true),
			SourceName: f.str("source_name", true),
			Category:   "sip",
			PipelineID: int(f.integer("pipeline_id", false)),
			CreatedAt:  f.integer("created_at", false),
			RequestID:  requestID(m, i),
		}
		if u.PipelineID == 0 {
			u.PipelineID = s.st.mainPipeline().ID
		} else if _, ok := s.st.pipeline(u.PipelineID); !ok {
			f.choice("pipeline_id")
		}
		if u.CreatedAt == 0 {
			u.CreatedAt = now
		}
		if u.SourceUID != "" && (seen[u.SourceUID] || slices.ContainsFunc(s.st.unsorted, func(o *Unsorted) bool { return o.SourceUID == u.SourceUID && !o.Accepted })) {
			f.fail("source_uid", "NotUnique", "Incoming lead with this source_uid is already in Unsorted.")
		}
		seen[u.SourceUID] = true
		pl := plan{u: u}
		md := f.object("metadata")
		if md == nil {
			f.missing("metadata")
			md = map[string]any{}
		}
		mf := f.sub(md, "metadata")
		call := Call{Direction: "inbound", Source: u.SourceName, CreatedBy: user, ResponsibleUserID: user, RequestID: u.RequestID}
		call.Uniq = mf.str("uniq", true)
		switch v := md["from"].(type) { // the SDK sends from as a number, the docs as a string
		case string:
			call.Phone = v
		case json.Number:
			call.Phone = v.String()
		case nil:
			mf.missing("from")
		default:
			mf.fail("from", "InvalidType", "This value should be of type string.")
		}
		mf.str("phone", false)
		call.Duration = int(mf.integer("duration", false))
		call.Link = mf.str("link", false)
		mf.str("service_code", false)
		call.CreatedAt = mf.integer("called_at", false)
		if call.CreatedAt == 0 {
			call.CreatedAt = now
			md["called_at"] = now
		}
		switch v := md["call_responsible"].(type) {
		case string:
			call.CallResponsible = v
		case json.Number:
			n, _ := v.Int64()
			call.CallResponsible = int(n)
		}
		pl.callEvent = mf.boolean("is_call_event_needed", true)
		pl.call = call
		u.Metadata = md
		var leadF fields
		if emb := f.object("_embedded"); emb != nil {
			e := f.sub(emb, "_embedded")
			for _, lf := range e.objects("leads") {
				pl.lead = s.parseLead(lf, user, now)
				leadF = lf
			}
			for _, cf := range e.objects("contacts") {
				pl.contacts = append(pl.contacts, s.parseContact(cf, user, now))
			}
			for _, cf := range e.objects("companies") {
				co := &Company{Name: cf.str("name", false), CreatedAt: now, CreatedBy: user, ResponsibleUserID: user}
				co.Phones, _ = parseMultitext(cf)
				pl.companies = append(pl.companies, co)
			}
		}
		if pl.lead == nil {
			pl.lead = &Lead{CreatedAt: now, UpdatedAt: now, ResponsibleUserID: user, CreatedBy: user}
		} else if leadF.m != nil && leadF.has("pipeline_id") && pl.lead.PipelineID != u.PipelineID {
			leadF.choice("pipeline_id")
		}
		if e := f.errors(); len(e) > 0 {
			verrs = append(verrs, ValidationError{RequestID: u.RequestID, Errors: e})
		}
		plans = append(plans, pl)
	}
	if len(verrs) > 0 || len(items) == 0 {
		writeProblem(w, validationProblem(emptyBatch(verrs)))
		return
	}
	out := []any{}
	for _, pl := range plans {
		u := pl.u
		u.UID = strings.ReplaceAll(uuid(), "-", "")
		l := pl.lead
		l.PipelineID, l.StatusID, l.IsUnsorted = u.PipelineID, s.st.unsortedStatus(u.PipelineID), true
		if l.Name == "" {
			l.Name = "Звонок от " + pl.call.Phone
		}
		leadsOut, contactsOut, companiesOut := []any{}, []any{}, []any{}
		for _, co := range pl.companies {
			co.ID, co.IsUnsorted = s.st.nextCompany, true
			s.st.nextCompany++
			s.st.companies[co.ID] = co
			u.CompanyIDs = append(u.CompanyIDs, co.ID)
			l.CompanyID = co.ID
			companiesOut = append(companiesOut, map[string]any{"id": co.ID})
		}
		for _, c := range pl.contacts {
			c.IsUnsorted = true
			s.addContactLocked(c)
			u.ContactIDs = append(u.ContactIDs, c.ID)
			l.ContactIDs = append(l.ContactIDs, c.ID)
			contactsOut = append(contactsOut, map[string]any{"id": c.ID})
		}
		s.addLeadLocked(l)
		u.LeadID = l.ID
		leadsOut = append(leadsOut, map[string]any{"id": l.ID})
		s.st.unsorted = append(s.st.unsorted, u)
		if pl.callEvent {
			s.logCallLocked(pl.call, "leads", l.ID)
		}
		out = append(out, map[string]any{
			"uid": u.UID, "account_id": s.opts.Account.ID, "request_id": u.RequestID,
			"_links":    link(r, "/api/v4/leads/unsorted/"+u.UID),
			"_embedded": map[string]any{"leads": leadsOut, "contacts": contactsOut, "companies": companiesOut},
		})
	}
	writeHAL(w, http.StatusOK, map[string]any{"_total_items": len(out), "_embedded": map[string]any{"unsorted": out}})
}

// handleUnsortedList is GET /api/v4/leads/unsorted (not accepted ones; filter[uid]).
func (s *Server) handleUnsortedList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := pageOf(q)
	uids := append(q["filter[uid]"], q["filter[uid][]"]...)
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*Unsorted
	for _, u := range s.st.unsorted {
		if !u.Accepted && (len(uids) == 0 || slices.Contains(uids, u.UID)) {
			match = append(match, u)
		}
	}
	from, to, next := p.window(len(match))
	if from == to {
		noContent(w)
		return
	}
	items := []any{}
	for _, u := range match[from:to] {
		cs := []any{}
		for _, id := range u.ContactIDs {
			cs = append(cs, map[string]any{"id": id})
		}
		items = append(items, map[string]any{
			"uid": u.UID, "source_uid": u.SourceUID, "source_name": u.SourceName, "category": u.Category,
			"pipeline_id": u.PipelineID, "created_at": u.CreatedAt, "metadata": u.Metadata, "account_id": s.opts.Account.ID,
			"_links":    link(r, "/api/v4/leads/unsorted/"+u.UID),
			"_embedded": map[string]any{"leads": []any{map[string]any{"id": u.LeadID}}, "contacts": cs, "companies": []any{}},
		})
	}
	writeHAL(w, http.StatusOK, listBody(r, "unsorted", p, items, next, nil))
}

// handleAcceptUnsorted is POST /api/v4/leads/unsorted/{uid}/accept.
func (s *Server) handleAcceptUnsorted(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.st.accept(uid, s.now().Unix()) {
		writeProblem(w, httpProblem(http.StatusNotFound, "Incoming lead not found"))
		return
	}
	for _, u := range s.st.unsorted {
		if u.UID == uid {
			l := s.st.leads[u.LeadID]
			writeHAL(w, http.StatusOK, map[string]any{"uid": uid, "account_id": s.opts.Account.ID,
				"_embedded": map[string]any{"leads": []any{map[string]any{"id": u.LeadID, "status_id": l.StatusID, "pipeline_id": l.PipelineID}}}})
			return
		}
	}
}

// taskEntityTypes are the entity types a task may be attached to.
var taskEntityTypes = []string{"leads", "contacts", "companies"}

// handleAddTasks is POST /api/v4/tasks: text and complete_till required; entity_type/entity_id
// must name an existing entity when given; task_type_id one of the account's types (1 follow-up
// by default).
func (s *Server) handleAddTasks(w http.ResponseWriter, r *http.Request) {
	items, err := decodeBatch(readBody(r))
	if err != nil {
		badBody(w, err)
		return
	}
	if len(items) > maxBatch {
		tooManyItems(w)
		return
	}
	user := currentUser(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	var verrs []ValidationError
	var tasks []Task
	for i, m := range items {
		f := newFields(m)
		t := Task{
			Text:         f.str("text", true),
			CompleteTill: f.integer("complete_till", true),
			EntityType:   f.str("entity_type", false),
			EntityID:     int(f.integer("entity_id", false)),
			TaskTypeID:   int(f.integer("task_type_id", false)),
			Duration:     int(f.integer("duration", false)),
			IsCompleted:  f.boolean("is_completed", false),
			CreatedAt:    now,
			RequestID:    requestID(m, i),
		}
		t.ResponsibleUserID = s.checkUser(f, "responsible_user_id", user)
		t.CreatedBy = s.checkUser(f, "created_by", user)
		if t.TaskTypeID == 0 {
			t.TaskTypeID = 1
		} else if !s.st.taskTypes[t.TaskTypeID] {
			f.choice("task_type_id")
		}
		switch {
		case t.EntityType == "" && t.EntityID != 0:
			f.missing("entity_type")
		case t.EntityType != "" && !slices.Contains(taskEntityTypes, t.EntityType):
			f.choice("entity_type")
		case t.EntityType != "" && t.EntityID == 0:
			f.missing("entity_id")
		case t.EntityType != "" && !s.st.entityExists(t.EntityType, t.EntityID):
			f.choice("entity_id")
		}
		if e := f.errors(); len(e) > 0 {
			verrs = append(verrs, ValidationError{RequestID: t.RequestID, Errors: e})
		}
		tasks = append(tasks, t)
	}
	if len(verrs) > 0 || len(items) == 0 {
		writeProblem(w, validationProblem(emptyBatch(verrs)))
		return
	}
	out := []any{}
	for _, t := range tasks {
		t.ID = s.st.nextTask
		s.st.nextTask++
		s.st.tasks = append(s.st.tasks, t)
		out = append(out, map[string]any{"id": t.ID, "request_id": t.RequestID, "_links": link(r, "/api/v4/tasks/"+itoa(t.ID))})
	}
	writeHAL(w, http.StatusOK, map[string]any{"_links": link(r, "/api/v4/tasks"), "_embedded": map[string]any{"tasks": out}})
}

// handleTasks is GET /api/v4/tasks (filter[entity_id], filter[is_completed] not simulated).
func (s *Server) handleTasks(w http.ResponseWriter, r *http.Request) {
	p := pageOf(r.URL.Query())
	s.mu.Lock()
	tasks := append([]Task(nil), s.st.tasks...)
	s.mu.Unlock()
	from, to, next := p.window(len(tasks))
	if from == to {
		noContent(w)
		return
	}
	items := []any{}
	for _, t := range tasks[from:to] {
		items = append(items, map[string]any{
			"id": t.ID, "created_by": t.CreatedBy, "updated_by": t.CreatedBy, "created_at": t.CreatedAt, "updated_at": t.CreatedAt,
			"responsible_user_id": t.ResponsibleUserID, "group_id": 0, "entity_id": t.EntityID, "entity_type": t.EntityType,
			"duration": t.Duration, "is_completed": t.IsCompleted, "task_type_id": t.TaskTypeID, "text": t.Text,
			"result": []any{}, "complete_till": t.CompleteTill, "account_id": s.opts.Account.ID,
			"_links": link(r, "/api/v4/tasks/"+itoa(t.ID)),
		})
	}
	writeHAL(w, http.StatusOK, listBody(r, "tasks", p, items, next, nil))
}

// noteTypes are the note types a connector may add.
var noteTypes = []string{"common", "call_in", "call_out", "service_message"}

// handleAddNotes is POST /api/v4/{leads|contacts|companies}/notes: entity_id and note_type
// required; call_in/call_out take params{uniq, duration, source, link, phone, call_status,
// call_result}, the alternative to /api/v4/calls that picks the card itself.
func (s *Server) handleAddNotes(w http.ResponseWriter, r *http.Request) {
	et := r.PathValue("entity")
	if !slices.Contains(taskEntityTypes, et) {
		writeProblem(w, httpProblem(http.StatusNotFound, defaultDetails[http.StatusNotFound]))
		return
	}
	items, err := decodeBatch(readBody(r))
	if err != nil {
		badBody(w, err)
		return
	}
	user := currentUser(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	var verrs []ValidationError
	var notes []Note
	for i, m := range items {
		f := newFields(m)
		n := Note{EntityType: et, EntityID: int(f.integer("entity_id", true)), NoteType: f.str("note_type", true), CreatedAt: now}
		n.CreatedBy = s.checkUser(f, "created_by", user)
		n.ResponsibleUserID = s.checkUser(f, "responsible_user_id", user)
		if n.EntityID != 0 && !s.st.entityExists(et, n.EntityID) {
			f.choice("entity_id")
		}
		if n.NoteType != "" && !slices.Contains(noteTypes, n.NoteType) {
			f.choice("note_type")
		}
		n.Params = f.object("params")
		if n.NoteType == "call_in" || n.NoteType == "call_out" {
			pf := f.sub(n.Params, "params")
			if n.Params == nil {
				f.missing("params")
			} else {
				pf.str("uniq", true)
				pf.integer("duration", true)
				pf.str("source", true)
				pf.str("phone", true)
			}
		}
		if e := f.errors(); len(e) > 0 {
			verrs = append(verrs, ValidationError{RequestID: requestID(m, i), Errors: e})
		}
		notes = append(notes, n)
	}
	if len(verrs) > 0 || len(items) == 0 {
		writeProblem(w, validationProblem(emptyBatch(verrs)))
		return
	}
	out := []any{}
	for i, n := range notes {
		n = s.st.addNote(n)
		out = append(out, map[string]any{"id": n.ID, "entity_id": n.EntityID, "request_id": requestID(items[i], i), "_links": link(r, "/api/v4/"+et+"/notes/"+itoa(n.ID))})
	}
	writeHAL(w, http.StatusOK, map[string]any{"_links": link(r, "/api/v4/"+et+"/notes"), "_embedded": map[string]any{"notes": out}})
}

// handleEvents is POST /api/v2/events: the incoming-call pop-up (crm-apis.md §2.4). Body
// {"add":[{"type":"phone_call","phone_number":"...","users":[ids]}]}; users omitted means every
// user. The card shown is found like a call's; an unknown number gets the "create contact"
// pop-up. Answer: 202 Accepted with {} (the Kommo reference documents no other body). The
// method is legacy v2; whether it still works on every Kommo account is unconfirmed.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	m, err := decodeObject(readBody(r))
	if err != nil {
		badBody(w, err)
		return
	}
	f := newFields(m)
	add := f.objects("add")
	if len(add) == 0 && len(f.errors()) == 0 {
		f.missing("add")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	var ns []Notification
	for _, e := range add {
		n := Notification{Type: e.str("type", true), PhoneNumber: e.str("phone_number", true), At: now}
		if n.Type != "" && n.Type != "phone_call" {
			e.choice("type")
		}
		for i, u := range e.array("users") {
			num, ok := u.(json.Number)
			id, err := num.Int64()
			if !ok || err != nil {
				e.fail("users."+itoa(i), "InvalidType", "This value should be of type int.")
				continue
			}
			if _, ok := s.st.user(int(id)); !ok {
				e.choice("users." + itoa(i))
				continue
			}
			n.Users = append(n.Users, int(id))
		}
		ns = append(ns, n)
	}
	if errs := f.errors(); len(errs) > 0 {
		writeProblem(w, validationProblem([]ValidationError{{RequestID: "0", Errors: errs}}))
		return
	}
	for _, n := range ns {
		if et, id, ok := s.st.findByPhone(n.PhoneNumber); ok {
			n.EntityType, n.EntityID = et, id
		}
		s.st.events = append(s.st.events, n)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte("{}\n"))
}
