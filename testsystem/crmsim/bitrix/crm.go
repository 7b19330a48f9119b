package bitrix

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// user.get, CRM lookups and lead creation, profile, app.info, scope — as far as the telephony
// connector uses them (reference §1.9; b24restdocs crm pages).

// pageSize is the fixed page of list methods (user-get.md: "always static: 50 records").
const pageSize = 50

// methodTable lists the REST methods the portal knows; any other is ERROR_METHOD_NOT_FOUND.
func (s *Server) methodTable() map[string]methodSpec {
	return map[string]methodSpec{
		"telephony.externalcall.register":          {fn: s.register, scope: "telephony", appOnly: true},
		"telephony.externalcall.finish":            {fn: s.finish, scope: "telephony", appOnly: true},
		"telephony.externalcall.show":              {fn: s.showHide(true), scope: "telephony"},
		"telephony.externalcall.hide":              {fn: s.showHide(false), scope: "telephony"},
		"telephony.externalcall.attachrecord":      {fn: s.attachRecord, scope: "telephony"},
		"telephony.externalcall.searchcrmentities": {fn: s.searchCrmEntities, scope: "telephony"},
		"telephony.externalline.add":               {fn: s.lineAdd, scope: "telephony", appOnly: true},
		"telephony.externalline.get":               {fn: s.lineGet, scope: "telephony", appOnly: true},
		"telephony.externalline.update":            {fn: s.lineUpdate, scope: "telephony", appOnly: true},
		"telephony.externalline.delete":            {fn: s.lineDelete, scope: "telephony", appOnly: true},
		"user.get":                                 {fn: s.userGet, scope: "user|user_brief|user_basic"},
		"user.current":                             {fn: s.userCurrent},
		"profile":                                  {fn: s.profile},
		"app.info":                                 {fn: s.appInfo},
		"scope":                                    {fn: s.scopeList},
		"crm.lead.add":                             {fn: s.leadAdd, scope: "crm"},
		"crm.lead.list":                            {fn: s.crmList("LEAD"), scope: "crm"},
		"crm.contact.list":                         {fn: s.crmList("CONTACT"), scope: "crm"},
		"crm.company.list":                         {fn: s.crmList("COMPANY"), scope: "crm"},
		"crm.duplicate.findbycomm":                 {fn: s.findByComm, scope: "crm"},
		"batch":                                    {fn: s.batch},
	}
}

// record is an entity's fields for filtering: name → values (several for multi fields).
type record map[string][]string

// filterOps are the filter key prefixes of user-get.md, longest first so "!=%" wins over "!".
func filterOps() []string {
	return []string{"!=%", "!%=", "!@", "!%", "!=", ">=", "<=", "=%", "%=", "@", "%", ">", "<", "=", "!"}
}

// likeMatch matches a SQL LIKE pattern with % wildcards, case-insensitively.
func likeMatch(pattern, v string) bool {
	parts := strings.Split(strings.ToLower(pattern), "%")
	v = strings.ToLower(v)
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	last := len(parts) - 1
	for i := 1; i < last; i++ {
		j := strings.Index(v, parts[i])
		if j < 0 {
			return false
		}
		v = v[j+len(parts[i]):]
	}
	if last == 0 {
		return v == ""
	}
	return strings.HasSuffix(v, parts[last])
}

// cmpValues compares numerically when both are numbers, else as strings.
func cmpValues(a, b string) int {
	x, errx := strconv.ParseFloat(a, 64)
	y, erry := strconv.ParseFloat(b, 64)
	if errx == nil && erry == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

// matchOne applies one filter condition to a field's values.
func matchOne(op string, have []string, want []string, norm func(string) string) bool {
	some := func(pred func(h, w string) bool) bool {
		for _, h := range have {
			for _, w := range want {
				if pred(norm(h), norm(w)) {
					return true
				}
			}
		}
		return false
	}
	eq := func(h, w string) bool { return strings.EqualFold(h, w) }
	switch op {
	case "", "=":
		return some(func(h, w string) bool {
			if op == "" && strings.Contains(w, "%") {
				return likeMatch(w, h)
			}
			return eq(h, w)
		})
	case "@":
		return some(eq)
	case "!", "!=", "!@":
		return !some(eq)
	case "%":
		return some(func(h, w string) bool { return strings.Contains(strings.ToLower(h), strings.ToLower(w)) })
	case "!%":
		return !some(func(h, w string) bool { return strings.Contains(strings.ToLower(h), strings.ToLower(w)) })
	case "=%", "%=":
		return some(func(h, w string) bool { return likeMatch(w, h) })
	case "!=%", "!%=":
		return !some(func(h, w string) bool { return likeMatch(w, h) })
	case ">":
		return some(func(h, w string) bool { return cmpValues(h, w) > 0 })
	case ">=":
		return some(func(h, w string) bool { return cmpValues(h, w) >= 0 })
	case "<":
		return some(func(h, w string) bool { return cmpValues(h, w) < 0 })
	case "<=":
		return some(func(h, w string) bool { return cmpValues(h, w) <= 0 })
	}
	return false
}

// matchFilter tells whether rec passes every condition; fields the record does not know are
// ignored, as the portal ignores unknown filter keys.
func matchFilter(rec record, filter *omap) bool {
	if filter == nil {
		return true
	}
	for _, key := range filter.keys {
		op, field := "", strings.ToUpper(strings.TrimSpace(key))
		for _, o := range filterOps() {
			if strings.HasPrefix(field, o) {
				op, field = o, field[len(o):]
				break
			}
		}
		have, known := rec[field]
		if !known {
			continue
		}
		var want []string
		for _, v := range items(filter.vals[key]) {
			want = append(want, scalar(v))
		}
		norm := func(v string) string { return v }
		switch field {
		case "ACTIVE":
			norm = func(v string) string { return strconv.FormatBool(truthy(v)) }
		case "PHONE":
			norm = normPhone
		}
		if !matchOne(op, have, want, norm) {
			return false
		}
	}
	return true
}

func userRecord(u *User) record {
	deps := make([]string, 0, len(u.Departments))
	for _, d := range u.Departments {
		deps = append(deps, strconv.Itoa(d))
	}
	return record{
		"ID": {strconv.Itoa(u.ID)}, "ACTIVE": {strconv.FormatBool(!u.Inactive)}, "NAME": {u.Name},
		"LAST_NAME": {u.LastName}, "EMAIL": {u.Email}, "UF_PHONE_INNER": {u.PhoneInner},
		"WORK_POSITION": {u.WorkPosition}, "WORK_PHONE": {u.WorkPhone}, "PERSONAL_PHONE": {u.PersonalPhone},
		"PERSONAL_MOBILE": {u.PersonalMobile}, "USER_TYPE": {u.UserType}, "UF_DEPARTMENT": deps,
		"IS_ONLINE":   {"N"},
		"NAME_SEARCH": {u.Name + " " + u.LastName + " " + u.Email},
	}
}

// userOut is a user as user.get prints it.
type userOut struct {
	ID             string  `json:"ID"`
	Active         bool    `json:"ACTIVE"`
	Name           string  `json:"NAME"`
	LastName       string  `json:"LAST_NAME"`
	SecondName     string  `json:"SECOND_NAME"`
	Email          string  `json:"EMAIL"`
	IsOnline       string  `json:"IS_ONLINE"`
	TimeZone       string  `json:"TIME_ZONE"`
	PersonalGender string  `json:"PERSONAL_GENDER"`
	PersonalPhone  string  `json:"PERSONAL_PHONE"`
	PersonalMobile string  `json:"PERSONAL_MOBILE"`
	WorkPhone      string  `json:"WORK_PHONE"`
	WorkPosition   string  `json:"WORK_POSITION"`
	UFPhoneInner   *string `json:"UF_PHONE_INNER"` // null when the user has no extension
	UFDepartment   []int   `json:"UF_DEPARTMENT"`
	UserType       string  `json:"USER_TYPE"`
}

func toUserOut(u *User) userOut {
	deps := u.Departments
	if deps == nil {
		deps = []int{1}
	}
	return userOut{ID: strconv.Itoa(u.ID), Active: !u.Inactive, Name: u.Name, LastName: u.LastName,
		Email: u.Email, IsOnline: "N", PersonalPhone: u.PersonalPhone, PersonalMobile: u.PersonalMobile,
		WorkPhone: u.WorkPhone, WorkPosition: u.WorkPosition, UFPhoneInner: nullable(u.PhoneInner),
		UFDepartment: deps, UserType: u.UserType}
}

// page cuts a list at `start` (multiples of 50; -1 skips counting, so no total and no next).
func page[T any](all []T, p params) ([]T, *int, *int) {
	start := p.int("start")
	noCount := start < 0
	if start < 0 {
		start = 0
	}
	if start > len(all) {
		start = len(all)
	}
	end := min(start+pageSize, len(all))
	out := all[start:end]
	if noCount {
		return out, nil, nil
	}
	total := len(all)
	var next *int
	if end < total {
		n := end
		next = &n
	}
	return out, next, &total
}

// userGet is user.get: the filter comes as FILTER/filter or as top-level keys (both forms are in
// user-get.md), sort/order pick the order, start the page. Bots and e-mail users are not listed.
func (s *Server) userGet(_ context.Context, _ *caller, p params) (result, error) {
	filter := newOmap()
	for _, k := range p.m.keysOrNil() {
		switch strings.ToUpper(k) {
		case "SORT", "ORDER", "FILTER", "ADMIN_MODE", "START", "AUTH":
			continue
		}
		filter.set(k, p.m.vals[k])
	}
	if f := p.sub("FILTER"); f.m != nil {
		for _, k := range f.m.keys {
			filter.set(k, f.m.vals[k])
		}
	}
	sortBy := strings.ToUpper(p.s("SORT"))
	if sortBy == "" {
		sortBy = "ID"
	}
	desc := strings.EqualFold(p.s("ORDER"), "DESC")
	s.mu.Lock()
	var found []*User
	for _, u := range s.users {
		if u.UserType == "email" || u.UserType == "bot" || u.UserType == "imconnector" {
			continue
		}
		if matchFilter(userRecord(u), filter) {
			found = append(found, u)
		}
	}
	sort.SliceStable(found, func(i, j int) bool {
		a, b := userRecord(found[i])[sortBy], userRecord(found[j])[sortBy]
		c := cmpValues(strings.Join(a, ","), strings.Join(b, ","))
		if desc {
			return c > 0
		}
		return c < 0
	})
	out := make([]userOut, 0, len(found))
	for _, u := range found {
		out = append(out, toUserOut(u))
	}
	s.mu.Unlock()
	items, next, total := page(out, p)
	return result{value: items, next: next, total: total}, nil
}

func (s *Server) userCurrent(_ context.Context, c *caller, _ params) (result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByIDLocked(c.userID)
	if u == nil {
		return result{value: map[string]string{"ID": strconv.Itoa(c.userID)}}, nil
	}
	return result{value: toUserOut(u)}, nil
}

func (s *Server) profile(_ context.Context, c *caller, _ params) (result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{"ID": strconv.Itoa(c.userID), "ADMIN": false, "NAME": "", "LAST_NAME": "",
		"PERSONAL_GENDER": "", "TIME_ZONE": ""}
	if u := s.userByIDLocked(c.userID); u != nil {
		out["ADMIN"], out["NAME"], out["LAST_NAME"] = u.Admin, u.Name, u.LastName
	}
	return result{value: out}, nil
}

// appInfo is app.info; a webhook, not being an application, gets no CODE.
func (s *Server) appInfo(_ context.Context, c *caller, _ params) (result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{"LICENSE": "ru_project", "LICENSE_TYPE": "project", "LICENSE_FAMILY": "project"}
	if !c.webhook {
		a := s.apps[c.clientID]
		out["ID"], out["CODE"], out["VERSION"], out["STATUS"] = a.restAppID, a.clientID, 1, "L"
		out["INSTALLED"], out["PAYMENT_EXPIRED"], out["DAYS"], out["LANGUAGE_ID"] = a.installed, "N", nil, "ru"
	}
	return result{value: out}, nil
}

func (s *Server) scopeList(_ context.Context, c *caller, _ params) (result, error) {
	out := []string{}
	for sc := range c.scope {
		out = append(out, sc)
	}
	sort.Strings(out)
	return result{value: out}, nil
}

// phoneOut is a CRM multi-field phone.
type phoneOut struct {
	ID        string `json:"ID"`
	ValueType string `json:"VALUE_TYPE"`
	Value     string `json:"VALUE"`
	TypeID    string `json:"TYPE_ID"`
}

func phonesOut(kind string, id int, phones []string) []phoneOut {
	out := make([]phoneOut, 0, len(phones))
	for i, ph := range phones {
		out = append(out, phoneOut{ID: strconv.Itoa(id*100 + i + 1), ValueType: "WORK", Value: ph, TypeID: "PHONE"})
	}
	return out
}

// leadAdd is crm.lead.add: FIELDS[...] (TITLE, NAME, LAST_NAME, PHONE[n][VALUE], ASSIGNED_BY_ID,
// SOURCE_ID, STATUS_ID, COMMENTS); the result is the new ID.
func (s *Server) leadAdd(_ context.Context, c *caller, p params) (result, error) {
	f := p.sub("FIELDS")
	l := Lead{Title: f.s("TITLE"), Name: f.s("NAME"), LastName: f.s("LAST_NAME"), AssignedByID: f.int("ASSIGNED_BY_ID"),
		SourceID: f.s("SOURCE_ID"), StatusID: f.s("STATUS_ID"), Comments: f.s("COMMENTS"), CreatedBy: "crm.lead.add"}
	for _, ph := range items(mustGet(f, "PHONE")) {
		if m, ok := ph.(*omap); ok {
			if v := strings.TrimSpace(scalar(mustGet(params{m}, "VALUE"))); v != "" {
				l.Phones = append(l.Phones, v)
			}
		}
	}
	if l.AssignedByID == 0 {
		l.AssignedByID = c.userID
	}
	if l.StatusID == "" {
		l.StatusID = "NEW"
	}
	if l.Title == "" {
		l.Title = strings.TrimSpace(l.Name + " " + l.LastName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return result{value: s.addLeadLocked(l).ID}, nil
}

// crmList is crm.lead.list / crm.contact.list / crm.company.list: filter (PHONE compared
// normalised), select (PHONE only when selected, as multi-fields are), start.
func (s *Server) crmList(kind string) func(context.Context, *caller, params) (result, error) {
	return func(_ context.Context, _ *caller, p params) (result, error) {
		filter := p.sub("FILTER").m
		var selectPhone bool
		for _, v := range items(mustGet(p, "SELECT")) {
			if strings.EqualFold(scalar(v), "PHONE") {
				selectPhone = true
			}
		}
		s.mu.Lock()
		var out []map[string]any
		add := func(rec record, row map[string]any, id int, phones []string) {
			rec["PHONE"] = phones
			if !matchFilter(rec, filter) {
				return
			}
			if selectPhone && len(phones) > 0 {
				row["PHONE"] = phonesOut(kind, id, phones)
			}
			out = append(out, row)
		}
		switch kind {
		case "LEAD":
			for _, l := range s.leads {
				add(record{"ID": {strconv.Itoa(l.ID)}, "TITLE": {l.Title}, "NAME": {l.Name}, "LAST_NAME": {l.LastName},
					"ASSIGNED_BY_ID": {strconv.Itoa(l.AssignedByID)}, "SOURCE_ID": {l.SourceID}, "STATUS_ID": {l.StatusID}},
					map[string]any{"ID": strconv.Itoa(l.ID), "TITLE": l.Title, "NAME": l.Name, "LAST_NAME": l.LastName,
						"ASSIGNED_BY_ID": strconv.Itoa(l.AssignedByID), "SOURCE_ID": l.SourceID, "STATUS_ID": l.StatusID},
					l.ID, l.Phones)
			}
		case "CONTACT":
			for _, c := range s.contacts {
				add(record{"ID": {strconv.Itoa(c.ID)}, "NAME": {c.Name}, "LAST_NAME": {c.LastName},
					"ASSIGNED_BY_ID": {strconv.Itoa(c.AssignedByID)}, "COMPANY_ID": {strconv.Itoa(c.CompanyID)}},
					map[string]any{"ID": strconv.Itoa(c.ID), "NAME": c.Name, "LAST_NAME": c.LastName,
						"ASSIGNED_BY_ID": strconv.Itoa(c.AssignedByID), "COMPANY_ID": nullable(strconv.Itoa(c.CompanyID))},
					c.ID, c.Phones)
			}
		case "COMPANY":
			for _, c := range s.companies {
				add(record{"ID": {strconv.Itoa(c.ID)}, "TITLE": {c.Title}, "ASSIGNED_BY_ID": {strconv.Itoa(c.AssignedByID)}},
					map[string]any{"ID": strconv.Itoa(c.ID), "TITLE": c.Title, "ASSIGNED_BY_ID": strconv.Itoa(c.AssignedByID)},
					c.ID, c.Phones)
			}
		}
		s.mu.Unlock()
		if out == nil {
			out = []map[string]any{}
		}
		rows, next, total := page(out, p)
		return result{value: rows, next: next, total: total}, nil
	}
}

// findByComm is crm.duplicate.findbycomm: ids of leads, contacts and companies having one of
// the values (PHONE compared normalised); an empty PHP array when nothing matches.
func (s *Server) findByComm(_ context.Context, _ *caller, p params) (result, error) {
	typ := strings.ToUpper(p.s("type"))
	if typ == "" {
		return result{}, &apiError{http.StatusBadRequest, "Communication type is not defined", "Parameter 'type' is required."}
	}
	if typ != "PHONE" && typ != "EMAIL" {
		d := "Communication type '" + p.s("type") + "' is not supported in current context"
		return result{}, &apiError{http.StatusBadRequest, d, d}
	}
	values := items(mustGet(p, "values"))
	if len(values) == 0 {
		return result{}, &apiError{http.StatusBadRequest, "Communication values is not defined", "Communication values is not defined"}
	}
	entity := strings.ToUpper(p.s("entity_type"))
	out := newOmap()
	if typ == "EMAIL" { // the simulated CRM keeps no e-mail addresses
		return result{value: out}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := map[string][]int{}
	for _, v := range values {
		for _, h := range s.searchLocked(normPhone(scalar(v))) {
			if (entity == "" || entity == h.typ) && !slices.Contains(found[h.typ], h.id) {
				found[h.typ] = append(found[h.typ], h.id)
			}
		}
	}
	for _, t := range []string{"LEAD", "CONTACT", "COMPANY"} {
		if ids := found[t]; len(ids) > 0 {
			out.set(t, ids)
		}
	}
	return result{value: out}, nil
}

// AddUser adds an employee (ID 0: the next free id) and returns it.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		u.ID = s.idLocked("user")
	}
	s.seeIDLocked("user", u.ID)
	if u.TimemanStatus == "" {
		u.TimemanStatus = "OPENED"
	}
	if u.UserType == "" {
		u.UserType = "employee"
	}
	s.users = slices.DeleteFunc(s.users, func(x *User) bool { return x.ID == u.ID })
	s.users = append(s.users, &u)
	sort.Slice(s.users, func(i, j int) bool { return s.users[i].ID < s.users[j].ID })
	return u
}

// UpdateUser changes a user in place (dismiss, new extension, TIMEMAN status); false if unknown.
func (s *Server) UpdateUser(id int, change func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByIDLocked(id)
	if u == nil {
		return false
	}
	change(u)
	u.ID = id
	return true
}

// AddContact adds a CRM contact and returns it.
func (s *Server) AddContact(c Contact) Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == 0 {
		c.ID = s.idLocked("contact")
	}
	s.seeIDLocked("contact", c.ID)
	s.contacts = append(s.contacts, &c)
	return c
}

// AddCompany adds a CRM company and returns it.
func (s *Server) AddCompany(c Company) Company {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == 0 {
		c.ID = s.idLocked("company")
	}
	s.seeIDLocked("company", c.ID)
	s.companies = append(s.companies, &c)
	return c
}

// AddLead adds a CRM lead and returns it.
func (s *Server) AddLead(l Lead) Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.addLeadLocked(l)
}

func (s *Server) addLeadLocked(l Lead) *Lead {
	if l.ID == 0 {
		l.ID = s.idLocked("lead")
	}
	s.seeIDLocked("lead", l.ID)
	s.leads = append(s.leads, &l)
	return &l
}

// Users lists the portal's employees.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, len(s.users))
	for i, u := range s.users {
		out[i] = *u
	}
	return out
}

// Contacts lists the CRM contacts.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, len(s.contacts))
	for i, c := range s.contacts {
		out[i] = *c
	}
	return out
}

// Leads lists the CRM leads, seeded and created, in creation order.
func (s *Server) Leads() []Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lead, len(s.leads))
	for i, l := range s.leads {
		out[i] = *l
	}
	return out
}

// Lines lists the external lines of every application.
func (s *Server) Lines() []Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Line, len(s.lines))
	for i, l := range s.lines {
		out[i] = *l
	}
	return out
}

// Calls lists the registered calls in registration order, each with its history.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, 0, len(s.callOrder))
	for _, id := range s.callOrder {
		out = append(out, cloneCall(s.calls[id]))
	}
	return out
}

// Call returns one call by CALL_ID.
func (s *Server) Call(id string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[id]
	if !ok {
		return Call{}, false
	}
	return cloneCall(c), true
}
