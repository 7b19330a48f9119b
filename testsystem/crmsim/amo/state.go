package amo

import (
	"slices"
	"strings"
	"time"
)

// state is the account's data; Server.mu guards it.
type state struct {
	users     []User
	pipelines []Pipeline
	taskTypes map[int]bool
	contacts  map[int]*Contact
	companies map[int]*Company
	leads     map[int]*Lead
	calls     []Call
	notes     []Note
	tasks     []Task
	unsorted  []*Unsorted
	events    []Notification
	// next ids per entity type; amoCRM ids are per type too.
	nextContact, nextCompany, nextLead, nextCall, nextNote, nextTask int
}

// The phone field of contacts and companies: a multitext field with code PHONE and its enums.
const (
	phoneFieldID = 100001
	emailFieldID = 100003
)

var phoneEnums = map[string]int{"WORK": 200001, "WORKDD": 200002, "MOB": 200003, "FAX": 200004, "HOME": 200005, "OTHER": 200006}
var emailEnums = map[string]int{"WORK": 200011, "PRIV": 200012, "OTHER": 200013}

func newState(seed Seed, now time.Time) state {
	st := state{
		contacts:    map[int]*Contact{},
		companies:   map[int]*Company{},
		leads:       map[int]*Lead{},
		taskTypes:   map[int]bool{1: true, 2: true},
		nextContact: 20000001, nextCompany: 40000001, nextLead: 30000001,
		nextCall: 50000001, nextNote: 60000001, nextTask: 70000001,
	}
	for _, t := range seed.TaskTypes {
		st.taskTypes[t] = true
	}
	st.users = append([]User(nil), seed.Users...)
	if len(st.users) == 0 {
		st.users = []User{{ID: 1000001, Name: "Администратор", Email: "admin@example.com", IsAdmin: true}}
	}
	for i := range st.users {
		if st.users[i].ID == 0 {
			st.users[i].ID = 1000001 + i
		}
		if st.users[i].Lang == "" {
			st.users[i].Lang = "ru"
		}
	}
	st.pipelines = append([]Pipeline(nil), seed.Pipelines...)
	if len(st.pipelines) == 0 {
		st.pipelines = []Pipeline{{ID: 1001, Name: "Воронка", IsMain: true, Statuses: []Status{
			{ID: 10001, Name: "Неразобранное"}, {ID: 10002, Name: "Первичный контакт"}, {ID: 10003, Name: "Переговоры"},
		}}}
	}
	for i := range st.pipelines {
		p := &st.pipelines[i]
		if p.ID == 0 {
			p.ID = 1001 + i
		}
		if len(p.Statuses) == 0 {
			p.Statuses = []Status{{ID: p.ID*10 + 1, Name: "Неразобранное"}, {ID: p.ID*10 + 2, Name: "Первичный контакт"}}
		}
		p.Statuses = append(p.Statuses, Status{ID: StatusWon, Name: "Успешно реализовано"}, Status{ID: StatusLost, Name: "Закрыто и не реализовано"})
	}
	if !slices.ContainsFunc(st.pipelines, func(p Pipeline) bool { return p.IsMain }) {
		st.pipelines[0].IsMain = true
	}
	ts := now.Unix()
	admin := st.users[0].ID
	for _, c := range seed.Companies {
		c := c
		if c.ID == 0 {
			c.ID = st.nextCompany
		}
		st.nextCompany = max(st.nextCompany, c.ID+1)
		c.CreatedAt = or64(c.CreatedAt, ts)
		c.ResponsibleUserID = orInt(c.ResponsibleUserID, admin)
		st.companies[c.ID] = &c
	}
	for _, c := range seed.Contacts {
		c := c
		if c.ID == 0 {
			c.ID = st.nextContact
		}
		st.nextContact = max(st.nextContact, c.ID+1)
		c.CreatedAt = or64(c.CreatedAt, ts)
		c.UpdatedAt = or64(c.UpdatedAt, c.CreatedAt)
		c.ResponsibleUserID = orInt(c.ResponsibleUserID, admin)
		if c.Name == "" {
			c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
		}
		st.contacts[c.ID] = &c
	}
	for _, l := range seed.Leads {
		l := l
		if l.ID == 0 {
			l.ID = st.nextLead
		}
		st.nextLead = max(st.nextLead, l.ID+1)
		l.CreatedAt = or64(l.CreatedAt, ts)
		l.UpdatedAt = or64(l.UpdatedAt, l.CreatedAt)
		l.ResponsibleUserID = orInt(l.ResponsibleUserID, admin)
		if l.PipelineID == 0 {
			l.PipelineID = st.mainPipeline().ID
		}
		if l.StatusID == 0 {
			l.StatusID = st.firstStatus(l.PipelineID)
		}
		if l.Name == "" {
			l.Name = "Сделка #" + itoa(l.ID)
		}
		st.leads[l.ID] = &l
	}
	return st
}

func or64(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (st *state) mainPipeline() Pipeline {
	for _, p := range st.pipelines {
		if p.IsMain {
			return p
		}
	}
	return st.pipelines[0]
}

func (st *state) pipeline(id int) (Pipeline, bool) {
	for _, p := range st.pipelines {
		if p.ID == id {
			return p, true
		}
	}
	return Pipeline{}, false
}

// firstStatus is where a new lead goes: the first stage after Unsorted.
func (st *state) firstStatus(pipelineID int) int {
	p, _ := st.pipeline(pipelineID)
	if len(p.Statuses) > 1 {
		return p.Statuses[1].ID
	}
	if len(p.Statuses) == 1 {
		return p.Statuses[0].ID
	}
	return 0
}

func (st *state) unsortedStatus(pipelineID int) int {
	p, _ := st.pipeline(pipelineID)
	if len(p.Statuses) > 0 {
		return p.Statuses[0].ID
	}
	return 0
}

func (st *state) user(id int) (User, bool) {
	for _, u := range st.users {
		if u.ID == id {
			return u, true
		}
	}
	return User{}, false
}

// leadsOf are the leads linked to a contact or a company, in id order.
func (st *state) leadsOf(entityType string, id int) []*Lead {
	var out []*Lead
	for _, lid := range sortedIDs(st.leads) {
		l := st.leads[lid]
		if (entityType == "contacts" && slices.Contains(l.ContactIDs, id)) || (entityType == "companies" && l.CompanyID == id) {
			out = append(out, l)
		}
	}
	return out
}

// findByPhone is the card amoCRM puts a call (or a pop-up) on (crm-apis.md §2.1): the contact,
// else the company, with the phone (last 10 digits; the oldest card if several); then its one
// active lead if it has exactly one, else the card itself. Unsorted cards are not found.
func (st *state) findByPhone(phone string) (entityType string, id int, ok bool) {
	cardType, cardID := "", 0
	for _, cid := range sortedIDs(st.contacts) {
		c := st.contacts[cid]
		if !c.IsUnsorted && slices.ContainsFunc(c.Phones, func(p Phone) bool { return samePhone(p.Value, phone) }) {
			cardType, cardID = "contacts", c.ID
			break
		}
	}
	if cardID == 0 {
		for _, cid := range sortedIDs(st.companies) {
			c := st.companies[cid]
			if !c.IsUnsorted && slices.ContainsFunc(c.Phones, func(p Phone) bool { return samePhone(p.Value, phone) }) {
				cardType, cardID = "companies", c.ID
				break
			}
		}
	}
	if cardID == 0 {
		return "", 0, false
	}
	var active []*Lead
	for _, l := range st.leadsOf(cardType, cardID) {
		if l.Active() && !l.IsUnsorted {
			active = append(active, l)
		}
	}
	if len(active) == 1 {
		return "leads", active[0].ID, true
	}
	return cardType, cardID, true
}

func (st *state) entityExists(entityType string, id int) bool {
	switch entityType {
	case "leads":
		return st.leads[id] != nil
	case "contacts":
		return st.contacts[id] != nil
	case "companies":
		return st.companies[id] != nil
	}
	return false
}

func (st *state) addNote(n Note) Note {
	n.ID = st.nextNote
	st.nextNote++
	st.notes = append(st.notes, n)
	return n
}

// Accessors: copies of the state, for tests and the runner.

// Users are the account's users.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]User(nil), s.st.users...)
}

// Contacts are every contact, in id order (Unsorted ones too, flagged).
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, 0, len(s.st.contacts))
	for _, id := range sortedIDs(s.st.contacts) {
		out = append(out, *s.st.contacts[id])
	}
	return out
}

// Companies are every company, in id order.
func (s *Server) Companies() []Company {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Company, 0, len(s.st.companies))
	for _, id := range sortedIDs(s.st.companies) {
		out = append(out, *s.st.companies[id])
	}
	return out
}

// Leads are every lead, in id order.
func (s *Server) Leads() []Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lead, 0, len(s.st.leads))
	for _, id := range sortedIDs(s.st.leads) {
		out = append(out, *s.st.leads[id])
	}
	return out
}

// Calls are the calls logged, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.st.calls...)
}

// CallsByUniq are the calls logged with one uniq: more than one is a duplicate in the account.
func (s *Server) CallsByUniq(uniq string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Uniq == uniq {
			out = append(out, c)
		}
	}
	return out
}

// Notes are the notes added (calls included), in order.
func (s *Server) Notes() []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Note(nil), s.st.notes...)
}

// Tasks are the tasks added, in order.
func (s *Server) Tasks() []Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Task(nil), s.st.tasks...)
}

// Unsorted are the incoming leads added, in order.
func (s *Server) Unsorted() []Unsorted {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Unsorted, 0, len(s.st.unsorted))
	for _, u := range s.st.unsorted {
		out = append(out, *u)
	}
	return out
}

// Notifications are the incoming-call pop-ups asked for, in order.
func (s *Server) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.st.events...)
}

// AcceptUnsorted accepts an incoming lead as a manager would: the lead moves to the pipeline's
// first stage and its contacts and companies become visible.
func (s *Server) AcceptUnsorted(uid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.accept(uid, s.now().Unix())
}

func (st *state) accept(uid string, now int64) bool {
	for _, u := range st.unsorted {
		if u.UID != uid || u.Accepted {
			continue
		}
		u.Accepted = true
		if l := st.leads[u.LeadID]; l != nil {
			l.IsUnsorted = false
			l.StatusID = st.firstStatus(l.PipelineID)
			l.UpdatedAt = now
		}
		for _, id := range u.ContactIDs {
			if c := st.contacts[id]; c != nil {
				c.IsUnsorted = false
			}
		}
		for _, id := range u.CompanyIDs {
			if c := st.companies[id]; c != nil {
				c.IsUnsorted = false
			}
		}
		return true
	}
	return false
}
