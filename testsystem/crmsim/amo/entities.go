package amo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

func itoa(i int) string { return strconv.Itoa(i) }

func writeHAL(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/hal+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// noContent is how the real API answers an empty list or search: 204 without a body.
func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

func readBody(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	return b
}

// paging is page/limit of the list methods: page from 1, limit 50 by default and at most 250.
type paging struct{ page, limit int }

func pageOf(q url.Values) paging {
	p := paging{page: 1, limit: 50}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		p.page = n
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		p.limit = min(n, 250)
	}
	return p
}

// window returns the slice bounds of the page and whether a next page exists.
func (p paging) window(total int) (from, to int, next bool) {
	from = min((p.page-1)*p.limit, total)
	to = min(from+p.limit, total)
	return from, to, to < total
}

// listBody is the HAL envelope of a list page: _page, _links (self, next, first, prev) and
// _embedded.<key>.
func listBody(r *http.Request, key string, p paging, items []any, next bool, extra map[string]any) map[string]any {
	href := func(page int) map[string]string {
		q := r.URL.Query()
		q.Set("page", itoa(page))
		q.Set("limit", itoa(p.limit))
		return map[string]string{"href": base(r) + r.URL.Path + "?" + q.Encode()}
	}
	links := map[string]any{"self": href(p.page)}
	if next {
		links["next"] = href(p.page + 1)
	}
	if p.page > 1 {
		links["first"] = href(1)
		links["prev"] = href(p.page - 1)
	}
	body := map[string]any{"_page": p.page, "_links": links, "_embedded": map[string]any{key: items}}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

func withSet(q url.Values) map[string]bool {
	out := map[string]bool{}
	for _, v := range q["with"] {
		for _, w := range strings.Split(v, ",") {
			out[strings.TrimSpace(w)] = true
		}
	}
	return out
}

func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	a := s.opts.Account
	writeHAL(w, http.StatusOK, map[string]any{
		"id": a.ID, "name": a.Name, "subdomain": a.Subdomain,
		"created_at": 1577836800, "created_by": 0, "updated_at": 1577836800, "updated_by": 0,
		"current_user_id": currentUser(r), "country": a.Country, "currency": a.Currency,
		"customers_mode": "disabled", "is_unsorted_on": true, "is_loss_reason_enabled": false,
		"is_helpbot_enabled": false, "is_technical_account": false, "contact_name_display_order": 1,
		"_links": link(r, "/api/v4/account"),
	})
}

func (s *Server) userJSON(r *http.Request, u User) map[string]any {
	right := map[string]string{"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"}
	return map[string]any{
		"id": u.ID, "name": u.Name, "email": u.Email, "lang": u.Lang,
		"rights": map[string]any{
			"leads": right, "contacts": right, "companies": right,
			"tasks":       map[string]string{"edit": "A", "delete": "A"},
			"mail_access": true, "catalog_access": true,
			"is_admin": u.IsAdmin, "is_free": u.IsFree, "is_active": !u.Inactive,
			"group_id": nil, "role_id": nil,
		},
		"_links": link(r, "/api/v4/users/"+itoa(u.ID)),
	}
}

// handleUsers is GET /api/v4/users: pages of users with _total_items and _page_count.
func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	users := append([]User(nil), s.st.users...)
	s.mu.Unlock()
	p := pageOf(r.URL.Query())
	from, to, next := p.window(len(users))
	if from == to {
		noContent(w)
		return
	}
	items := make([]any, 0, to-from)
	for _, u := range users[from:to] {
		items = append(items, s.userJSON(r, u))
	}
	pages := (len(users) + p.limit - 1) / p.limit
	writeHAL(w, http.StatusOK, listBody(r, "users", p, items, next, map[string]any{"_total_items": len(users), "_page_count": pages}))
}

func (s *Server) handleUser(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	u, ok := s.st.user(id)
	s.mu.Unlock()
	if !ok {
		noContent(w)
		return
	}
	writeHAL(w, http.StatusOK, s.userJSON(r, u))
}

func phoneFields(phones, emails []Phone, extra []json.RawMessage) any {
	var out []any
	mk := func(id int, name, code string, enums map[string]int, vals []Phone) {
		if len(vals) == 0 {
			return
		}
		vs := make([]any, 0, len(vals))
		for _, p := range vals {
			e := p.Enum
			if e == "" {
				e = "WORK"
			}
			vs = append(vs, map[string]any{"value": p.Value, "enum_id": enums[e], "enum_code": e})
		}
		out = append(out, map[string]any{"field_id": id, "field_name": name, "field_code": code, "field_type": "multitext", "values": vs})
	}
	mk(phoneFieldID, "Телефон", "PHONE", phoneEnums, phones)
	mk(emailFieldID, "Email", "EMAIL", emailEnums, emails)
	for _, f := range extra {
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil // the real API sends null, not []
	}
	return out
}

func (s *Server) contactJSON(r *http.Request, c *Contact, with map[string]bool) map[string]any {
	companies := []any{}
	for _, id := range c.CompanyIDs {
		companies = append(companies, map[string]any{"id": id, "_links": link(r, "/api/v4/companies/"+itoa(id))})
	}
	emb := map[string]any{"tags": []any{}, "companies": companies}
	if with["leads"] {
		leads := []any{}
		for _, l := range s.st.leadsOf("contacts", c.ID) {
			leads = append(leads, map[string]any{"id": l.ID, "_links": link(r, "/api/v4/leads/"+itoa(l.ID))})
		}
		emb["leads"] = leads
	}
	return map[string]any{
		"id": c.ID, "name": c.Name, "first_name": c.FirstName, "last_name": c.LastName,
		"responsible_user_id": c.ResponsibleUserID, "group_id": 0,
		"created_by": c.CreatedBy, "updated_by": c.CreatedBy, "created_at": c.CreatedAt, "updated_at": c.UpdatedAt,
		"closest_task_at": nil, "is_deleted": false, "is_unsorted": c.IsUnsorted,
		"custom_fields_values": phoneFields(c.Phones, c.Emails, c.Fields),
		"account_id":           s.opts.Account.ID,
		"_links":               link(r, "/api/v4/contacts/"+itoa(c.ID)),
		"_embedded":            emb,
	}
}

func contactValues(c *Contact) []string {
	vals := []string{c.Name, c.FirstName, c.LastName, itoa(c.ID)}
	for _, p := range c.Phones {
		vals = append(vals, p.Value)
	}
	for _, p := range c.Emails {
		vals = append(vals, p.Value)
	}
	return vals
}

// idFilter is filter[id][] / filter[id].
func idFilter(q url.Values) []int {
	var ids []int
	for _, k := range []string{"filter[id][]", "filter[id]"} {
		for _, v := range q[k] {
			if n, err := strconv.Atoi(v); err == nil {
				ids = append(ids, n)
			}
		}
	}
	return ids
}

// handleContacts is GET /api/v4/contacts: query (the phone search), filter[id], with=leads,
// paging. An empty result is 204 No Content. Contacts of unaccepted Unsorted leads are hidden.
func (s *Server) handleContacts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query, ids, with, p := q.Get("query"), idFilter(q), withSet(q), pageOf(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*Contact
	for _, id := range sortedIDs(s.st.contacts) {
		c := s.st.contacts[id]
		if c.IsUnsorted || (len(ids) > 0 && !slices.Contains(ids, c.ID)) || !queryMatches(query, contactValues(c)...) {
			continue
		}
		match = append(match, c)
	}
	from, to, next := p.window(len(match))
	if from == to {
		noContent(w)
		return
	}
	items := make([]any, 0, to-from)
	for _, c := range match[from:to] {
		items = append(items, s.contactJSON(r, c, with))
	}
	writeHAL(w, http.StatusOK, listBody(r, "contacts", p, items, next, nil))
}

func (s *Server) handleContact(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.contacts[id]
	if c == nil {
		noContent(w)
		return
	}
	writeHAL(w, http.StatusOK, s.contactJSON(r, c, withSet(r.URL.Query())))
}

func (s *Server) companyJSON(r *http.Request, c *Company, with map[string]bool) map[string]any {
	emb := map[string]any{"tags": []any{}}
	if with["leads"] {
		leads := []any{}
		for _, l := range s.st.leadsOf("companies", c.ID) {
			leads = append(leads, map[string]any{"id": l.ID, "_links": link(r, "/api/v4/leads/"+itoa(l.ID))})
		}
		emb["leads"] = leads
	}
	return map[string]any{
		"id": c.ID, "name": c.Name, "responsible_user_id": c.ResponsibleUserID, "group_id": 0,
		"created_by": c.CreatedBy, "updated_by": c.CreatedBy, "created_at": c.CreatedAt, "updated_at": c.CreatedAt,
		"closest_task_at": nil, "is_deleted": false,
		"custom_fields_values": phoneFields(c.Phones, nil, nil),
		"account_id":           s.opts.Account.ID,
		"_links":               link(r, "/api/v4/companies/"+itoa(c.ID)),
		"_embedded":            emb,
	}
}

// handleCompanies is GET /api/v4/companies, searched like contacts.
func (s *Server) handleCompanies(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query, ids, with, p := q.Get("query"), idFilter(q), withSet(q), pageOf(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*Company
	for _, id := range sortedIDs(s.st.companies) {
		c := s.st.companies[id]
		vals := []string{c.Name, itoa(c.ID)}
		for _, ph := range c.Phones {
			vals = append(vals, ph.Value)
		}
		if c.IsUnsorted || (len(ids) > 0 && !slices.Contains(ids, c.ID)) || !queryMatches(query, vals...) {
			continue
		}
		match = append(match, c)
	}
	from, to, next := p.window(len(match))
	if from == to {
		noContent(w)
		return
	}
	items := make([]any, 0, to-from)
	for _, c := range match[from:to] {
		items = append(items, s.companyJSON(r, c, with))
	}
	writeHAL(w, http.StatusOK, listBody(r, "companies", p, items, next, nil))
}

func (s *Server) leadJSON(r *http.Request, l *Lead, with map[string]bool) map[string]any {
	emb := map[string]any{"tags": []any{}, "companies": []any{}}
	if l.CompanyID != 0 {
		emb["companies"] = []any{map[string]any{"id": l.CompanyID, "_links": link(r, "/api/v4/companies/"+itoa(l.CompanyID))}}
	}
	if with["contacts"] {
		cs := []any{}
		for i, id := range l.ContactIDs {
			cs = append(cs, map[string]any{"id": id, "is_main": i == 0, "_links": link(r, "/api/v4/contacts/"+itoa(id))})
		}
		emb["contacts"] = cs
	}
	var closed any
	if !l.Active() {
		closed = l.UpdatedAt
	}
	var fields any
	if len(l.Fields) > 0 {
		fields = l.Fields
	}
	return map[string]any{
		"id": l.ID, "name": l.Name, "price": l.Price, "responsible_user_id": l.ResponsibleUserID, "group_id": 0,
		"status_id": l.StatusID, "pipeline_id": l.PipelineID, "loss_reason_id": nil,
		"created_by": l.CreatedBy, "updated_by": l.CreatedBy, "created_at": l.CreatedAt, "updated_at": l.UpdatedAt,
		"closed_at": closed, "closest_task_at": nil, "is_deleted": false, "custom_fields_values": fields,
		"score": nil, "account_id": s.opts.Account.ID, "labor_cost": nil,
		"_links":    link(r, "/api/v4/leads/"+itoa(l.ID)),
		"_embedded": emb,
	}
}

// handleLeads is GET /api/v4/leads: query searches the lead's own filled fields (name, id,
// price, custom values), filter[id], with=contacts, paging; empty is 204. Unsorted leads are
// not listed until accepted.
func (s *Server) handleLeads(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query, ids, with, p := q.Get("query"), idFilter(q), withSet(q), pageOf(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*Lead
	for _, id := range sortedIDs(s.st.leads) {
		l := s.st.leads[id]
		vals := []string{l.Name, itoa(l.ID), itoa(l.Price)}
		for _, f := range l.Fields {
			vals = append(vals, string(f))
		}
		if l.IsUnsorted || (len(ids) > 0 && !slices.Contains(ids, l.ID)) || !queryMatches(query, vals...) {
			continue
		}
		match = append(match, l)
	}
	from, to, next := p.window(len(match))
	if from == to {
		noContent(w)
		return
	}
	items := make([]any, 0, to-from)
	for _, l := range match[from:to] {
		items = append(items, s.leadJSON(r, l, with))
	}
	writeHAL(w, http.StatusOK, listBody(r, "leads", p, items, next, nil))
}

func (s *Server) handleLead(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.st.leads[id]
	if l == nil {
		noContent(w)
		return
	}
	writeHAL(w, http.StatusOK, s.leadJSON(r, l, withSet(r.URL.Query())))
}

func (s *Server) handlePipelines(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ps := append([]Pipeline(nil), s.st.pipelines...)
	s.mu.Unlock()
	items := []any{}
	for i, p := range ps {
		sts := []any{}
		for j, st := range p.Statuses {
			typ := 0
			if j == 0 {
				typ = 1 // the Unsorted stage
			}
			sts = append(sts, map[string]any{"id": st.ID, "name": st.Name, "sort": (j + 1) * 10, "is_editable": st.ID != StatusWon && st.ID != StatusLost && j != 0, "pipeline_id": p.ID, "type": typ, "account_id": s.opts.Account.ID})
		}
		items = append(items, map[string]any{"id": p.ID, "name": p.Name, "sort": i + 1, "is_main": p.IsMain, "is_unsorted_on": true, "is_archive": false, "account_id": s.opts.Account.ID,
			"_links": link(r, "/api/v4/leads/pipelines/"+itoa(p.ID)), "_embedded": map[string]any{"statuses": sts}})
	}
	writeHAL(w, http.StatusOK, map[string]any{"_total_items": len(items), "_links": link(r, "/api/v4/leads/pipelines"), "_embedded": map[string]any{"pipelines": items}})
}

// badBody answers a body that is not the JSON the method takes.
func badBody(w http.ResponseWriter, err error) {
	p := httpProblem(http.StatusBadRequest, "Request body is not valid: "+err.Error())
	p.Title = "Bad Request"
	writeProblem(w, p)
}

// parseMultitext reads custom_fields_values: the PHONE and EMAIL fields (by field_id or
// field_code) become phones and emails; any other field must not be unknown (the account has
// no other fields), as the real API rejects a field_id it does not know.
func parseMultitext(f fields) (phones, emails []Phone) {
	for _, cf := range f.objects("custom_fields_values") {
		code := cf.str("field_code", false)
		id := int(cf.integer("field_id", false))
		var enums map[string]int
		isPhone := false
		switch {
		case id == phoneFieldID || (id == 0 && strings.EqualFold(code, "PHONE")):
			enums, isPhone = phoneEnums, true
		case id == emailFieldID || (id == 0 && strings.EqualFold(code, "EMAIL")):
			enums = emailEnums
		case id == 0 && code == "":
			cf.missing("field_id")
			continue
		default:
			if id != 0 {
				cf.choice("field_id")
			} else {
				cf.choice("field_code")
			}
			continue
		}
		for _, v := range cf.objects("values") {
			val := v.str("value", true)
			enum := strings.ToUpper(v.str("enum_code", false))
			if eid := int(v.integer("enum_id", false)); eid != 0 {
				enum = ""
				for k, n := range enums {
					if n == eid {
						enum = k
					}
				}
				if enum == "" {
					v.choice("enum_id")
					continue
				}
			}
			if enum == "" {
				enum = "WORK"
			}
			if _, ok := enums[enum]; !ok {
				v.choice("enum_code")
				continue
			}
			p := Phone{Value: val, Enum: enum}
			if isPhone {
				phones = append(phones, p)
			} else {
				emails = append(emails, p)
			}
		}
	}
	return phones, emails
}

// checkUser validates a user-id field: it must be a user of the account.
func (s *Server) checkUser(f fields, key string, def int) int {
	id := int(f.integer(key, false))
	if id == 0 {
		return def
	}
	if _, ok := s.st.user(id); !ok {
		f.choice(key)
	}
	return id
}

// parseContact validates one contact object (a batch item or an embedded contact).
func (s *Server) parseContact(f fields, user int, now int64) *Contact {
	c := &Contact{
		Name:      f.str("name", false),
		FirstName: f.str("first_name", false),
		LastName:  f.str("last_name", false),
		CreatedAt: now, UpdatedAt: now,
	}
	c.ResponsibleUserID = s.checkUser(f, "responsible_user_id", user)
	c.CreatedBy = s.checkUser(f, "created_by", user)
	if ca := f.integer("created_at", false); ca != 0 {
		c.CreatedAt = ca
	}
	c.Phones, c.Emails = parseMultitext(f)
	if c.Name == "" {
		c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
	}
	if emb := f.object("_embedded"); emb != nil {
		for _, co := range f.sub(emb, "_embedded").objects("companies") {
			id := int(co.integer("id", true))
			if id != 0 && s.st.companies[id] == nil {
				co.choice("id")
				continue
			}
			c.CompanyIDs = append(c.CompanyIDs, id)
		}
	}
	return c
}

func (s *Server) addContactLocked(c *Contact) {
	c.ID = s.st.nextContact
	s.st.nextContact++
	s.st.contacts[c.ID] = c
}

// handleAddContacts is POST /api/v4/contacts: a batch; any invalid item fails the whole
// request with 400 and validation-errors (nothing is added).
func (s *Server) handleAddContacts(w http.ResponseWriter, r *http.Request) {
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
	var cs []*Contact
	for i, m := range items {
		f := newFields(m)
		c := s.parseContact(f, user, now)
		if e := f.errors(); len(e) > 0 {
			verrs = append(verrs, ValidationError{RequestID: requestID(m, i), Errors: e})
		}
		cs = append(cs, c)
	}
	if len(verrs) > 0 || len(items) == 0 {
		writeProblem(w, validationProblem(emptyBatch(verrs)))
		return
	}
	out := []any{}
	for i, c := range cs {
		s.addContactLocked(c)
		out = append(out, map[string]any{"id": c.ID, "is_deleted": false, "is_unsorted": false, "request_id": requestID(items[i], i), "_links": link(r, "/api/v4/contacts/"+itoa(c.ID))})
	}
	writeHAL(w, http.StatusOK, map[string]any{"_links": link(r, "/api/v4/contacts"), "_embedded": map[string]any{"contacts": out}})
}

// emptyBatch names an empty batch as an error of its own (the real API refuses [] too).
func emptyBatch(verrs []ValidationError) []ValidationError {
	if len(verrs) > 0 {
		return verrs
	}
	return []ValidationError{{RequestID: "0", Errors: []FieldError{{Code: "NotBlank", Path: "", Detail: "This value should not be blank."}}}}
}

// parseLead validates one lead object; contacts embedded by id are linked.
func (s *Server) parseLead(f fields, user int, now int64) *Lead {
	l := &Lead{Name: f.str("name", false), CreatedAt: now, UpdatedAt: now}
	l.Price = int(f.integer("price", false))
	l.ResponsibleUserID = s.checkUser(f, "responsible_user_id", user)
	l.CreatedBy = s.checkUser(f, "created_by", user)
	l.PipelineID = int(f.integer("pipeline_id", false))
	if l.PipelineID == 0 {
		l.PipelineID = s.st.mainPipeline().ID
	} else if _, ok := s.st.pipeline(l.PipelineID); !ok {
		f.choice("pipeline_id")
	}
	l.StatusID = int(f.integer("status_id", false))
	if l.StatusID == 0 {
		l.StatusID = s.st.firstStatus(l.PipelineID)
	} else if p, _ := s.st.pipeline(l.PipelineID); !slices.ContainsFunc(p.Statuses, func(st Status) bool { return st.ID == l.StatusID }) {
		f.choice("status_id")
	}
	for _, cf := range f.array("custom_fields_values") {
		l.Fields = append(l.Fields, raw(cf))
	}
	return l
}

func (s *Server) addLeadLocked(l *Lead) {
	l.ID = s.st.nextLead
	s.st.nextLead++
	if l.Name == "" {
		l.Name = "Сделка #" + itoa(l.ID)
	}
	s.st.leads[l.ID] = l
}

// handleAddLeads is POST /api/v4/leads: a batch; _embedded.contacts/companies link existing
// entities by id.
func (s *Server) handleAddLeads(w http.ResponseWriter, r *http.Request) {
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
	var ls []*Lead
	for i, m := range items {
		f := newFields(m)
		l := s.parseLead(f, user, now)
		if emb := f.object("_embedded"); emb != nil {
			e := f.sub(emb, "_embedded")
			for _, c := range e.objects("contacts") {
				id := int(c.integer("id", true))
				if id != 0 && s.st.contacts[id] == nil {
					c.choice("id")
				}
				l.ContactIDs = append(l.ContactIDs, id)
			}
			for _, c := range e.objects("companies") {
				id := int(c.integer("id", true))
				if id != 0 && s.st.companies[id] == nil {
					c.choice("id")
				}
				l.CompanyID = id
			}
		}
		if e := f.errors(); len(e) > 0 {
			verrs = append(verrs, ValidationError{RequestID: requestID(m, i), Errors: e})
		}
		ls = append(ls, l)
	}
	if len(verrs) > 0 || len(items) == 0 {
		writeProblem(w, validationProblem(emptyBatch(verrs)))
		return
	}
	out := []any{}
	for i, l := range ls {
		s.addLeadLocked(l)
		out = append(out, map[string]any{"id": l.ID, "request_id": requestID(items[i], i), "_links": link(r, "/api/v4/leads/"+itoa(l.ID))})
	}
	writeHAL(w, http.StatusOK, map[string]any{"_links": link(r, "/api/v4/leads"), "_embedded": map[string]any{"leads": out}})
}

// maxComplex is the documented batch limit of POST /api/v4/leads/complex.
const maxComplex = 50

// handleAddComplex is POST /api/v4/leads/complex: leads with their new contact (and company)
// in one request. The answer is a plain array [{id, contact_id, company_id, request_id[],
// merged}]. Without an uploaded widget amoCRM does no duplicate control (crm-apis.md §2.2), so
// merged is always false and a second contact with the same phone is created, as the real one
// does.
func (s *Server) handleAddComplex(w http.ResponseWriter, r *http.Request) {
	items, err := decodeBatch(readBody(r))
	if err != nil {
		badBody(w, err)
		return
	}
	if len(items) > maxComplex {
		writeProblem(w, validationProblem([]ValidationError{{RequestID: "0", Errors: []FieldError{{Code: "TooMany", Path: "", Detail: "This collection should contain " + itoa(maxComplex) + " elements or less."}}}}))
		return
	}
	user := currentUser(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	type plan struct {
		lead     *Lead
		contacts []*Contact
		company  *Company
	}
	var verrs []ValidationError
	var plans []plan
	for i, m := range items {
		f := newFields(m)
		pl := plan{lead: s.parseLead(f, user, now)}
		if emb := f.object("_embedded"); emb != nil {
			e := f.sub(emb, "_embedded")
			for _, cf := range e.objects("contacts") {
				if id := int(cf.integer("id", false)); id != 0 {
					if s.st.contacts[id] == nil {
						cf.choice("id")
					}
					pl.lead.ContactIDs = append(pl.lead.ContactIDs, id)
					continue
				}
				pl.contacts = append(pl.contacts, s.parseContact(cf, user, now))
			}
			for _, cf := range e.objects("companies") {
				if id := int(cf.integer("id", false)); id != 0 {
					if s.st.companies[id] == nil {
						cf.choice("id")
					}
					pl.lead.CompanyID = id
					continue
				}
				co := &Company{Name: cf.str("name", false), CreatedAt: now}
				co.ResponsibleUserID = s.checkUser(cf, "responsible_user_id", user)
				co.CreatedBy = user
				co.Phones, _ = parseMultitext(cf)
				pl.company = co
			}
		}
		if e := f.errors(); len(e) > 0 {
			verrs = append(verrs, ValidationError{RequestID: requestID(m, i), Errors: e})
		}
		plans = append(plans, pl)
	}
	if len(verrs) > 0 || len(items) == 0 {
		writeProblem(w, validationProblem(emptyBatch(verrs)))
		return
	}
	out := []any{}
	for i, pl := range plans {
		var companyID any
		if pl.company != nil {
			pl.company.ID = s.st.nextCompany
			s.st.nextCompany++
			s.st.companies[pl.company.ID] = pl.company
			pl.lead.CompanyID = pl.company.ID
		}
		if pl.lead.CompanyID != 0 {
			companyID = pl.lead.CompanyID
		}
		for _, c := range pl.contacts {
			if pl.lead.CompanyID != 0 {
				c.CompanyIDs = append(c.CompanyIDs, pl.lead.CompanyID)
			}
			s.addContactLocked(c)
			pl.lead.ContactIDs = append(pl.lead.ContactIDs, c.ID)
		}
		s.addLeadLocked(pl.lead)
		var contactID any
		if len(pl.lead.ContactIDs) > 0 {
			contactID = pl.lead.ContactIDs[0]
		}
		out = append(out, map[string]any{"id": pl.lead.ID, "contact_id": contactID, "company_id": companyID, "request_id": []string{requestID(items[i], i)}, "merged": false})
	}
	writeHAL(w, http.StatusOK, out)
}
