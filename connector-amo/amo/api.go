package amo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Call is one call for POST /api/v4/calls (crm-apis.md §2.1).
type Call struct {
	Direction         string `json:"direction"` // inbound or outbound
	Uniq              string `json:"uniq,omitempty"`
	Duration          int    `json:"duration"`
	Source            string `json:"source"`
	Link              string `json:"link,omitempty"`
	Phone             string `json:"phone"`
	CallResult        string `json:"call_result,omitempty"`
	CallStatus        int    `json:"call_status,omitempty"`
	CallResponsible   int    `json:"call_responsible,omitempty"`
	ResponsibleUserID int    `json:"responsible_user_id,omitempty"`
	CreatedBy         int    `json:"created_by,omitempty"`
	CreatedAt         int64  `json:"created_at,omitempty"`
	RequestID         string `json:"request_id,omitempty"`
}

// The call statuses of amoCRM (crm-apis.md §2.1).
const (
	CallStatusLeftMessage  = 1
	CallStatusCallBack     = 2
	CallStatusNotAvailable = 3
	CallStatusTalked       = 4
	CallStatusWrongNumber  = 5
	CallStatusNoAnswer     = 6
	CallStatusBusy         = 7
)

// AddedCall is where amoCRM put a call.
type AddedCall struct {
	ID         int
	EntityType string // leads, contacts, companies, customers
	EntityID   int
}

// NotAddedError is the answer of POST /api/v4/calls for a call amoCRM did not add: no contact or
// company has its phone number. Nothing was created.
type NotAddedError struct {
	Detail string
}

func (e *NotAddedError) Error() string {
	return "amoCRM did not add the call: " + e.Detail
}

// IsNotAdded reports whether err says the call's number is on no card.
func IsNotAdded(err error) bool {
	var n *NotAddedError
	return errors.As(err, &n)
}

// flexInt reads a JSON number or a string holding one (amoCRM is not consistent about ids).
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	n, ok := rawInt(b)
	if !ok {
		return fmt.Errorf("%s is not an integer", clip(string(b), 40))
	}
	*f = flexInt(n)
	return nil
}

// flexString reads a JSON string, or a number as its text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		*f = flexString(n.String())
		return nil
	}
	// request_id of complex answers is a list: take its first element.
	var l []flexString
	if json.Unmarshal(b, &l) == nil {
		if len(l) > 0 {
			*f = l[0]
		}
		return nil
	}
	return fmt.Errorf("%s is not a string", clip(string(b), 40))
}

// callsAnswer is the body of POST /api/v4/calls, also on 400 when no call of the batch matched.
type callsAnswer struct {
	Embedded struct {
		Calls []struct {
			ID         flexInt    `json:"id"`
			EntityID   flexInt    `json:"entity_id"`
			EntityType string     `json:"entity_type"`
			RequestID  flexString `json:"request_id"`
		} `json:"calls"`
	} `json:"_embedded"`
	Errors []json.RawMessage `json:"errors"`
}

// ParseCallsAnswer reads the answer to a one-call POST /api/v4/calls: the call added, or a
// *NotAddedError when amoCRM listed it in errors, or an error naming what it cannot read.
func ParseCallsAnswer(body []byte) (AddedCall, error) {
	var a callsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return AddedCall{}, fmt.Errorf("the calls answer: %w", err)
	}
	if len(a.Embedded.Calls) > 0 {
		c := a.Embedded.Calls[0]
		if c.ID <= 0 {
			return AddedCall{}, errors.New("the calls answer: field _embedded.calls.0.id is missing")
		}
		return AddedCall{ID: int(c.ID), EntityType: c.EntityType, EntityID: int(c.EntityID)}, nil
	}
	if len(a.Errors) > 0 {
		p, _ := parseProblem(a.Errors[0])
		words := []string{}
		for _, w := range []string{p.Title, p.Detail} {
			if w != "" && !containsFold(words, w) {
				words = append(words, w)
			}
		}
		if len(words) == 0 {
			words = append(words, clip(string(a.Errors[0]), 200))
		}
		return AddedCall{}, &NotAddedError{Detail: strings.Join(words, ": ")}
	}
	return AddedCall{}, errors.New("the calls answer lists neither the call (_embedded.calls) nor an error (errors)")
}

// AddCall logs one call. One call per request: the outcome of each is then known, which the
// connector's exactly-once bookkeeping needs (amoCRM's uniq does not deduplicate).
func (c *Client) AddCall(ctx context.Context, call Call) (AddedCall, error) {
	const route = "POST /api/v4/calls"
	var raw json.RawMessage
	status, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v4/calls", body: []Call{call}, out: &raw, route: route})
	if err != nil {
		// No card for the phone: amoCRM answers 400 with a normal body listing the call in errors.
		if e, ok := AsError(err); ok && e.Status == http.StatusBadRequest && len(e.Fields) == 0 {
			if _, perr := ParseCallsAnswer(e.Body); IsNotAdded(perr) {
				return AddedCall{}, perr
			}
		}
		return AddedCall{}, err
	}
	if status == http.StatusNoContent || len(raw) == 0 {
		return AddedCall{}, badResponse(route, status, errors.New("empty answer"))
	}
	added, err := ParseCallsAnswer(raw)
	if err != nil && !IsNotAdded(err) {
		return AddedCall{}, badResponse(route, status, err)
	}
	return added, err
}

// Phone field codes of contacts and companies.
const phoneField = "PHONE"

type fieldValue struct {
	Value    string `json:"value"`
	EnumCode string `json:"enum_code,omitempty"`
}

type customField struct {
	FieldCode string       `json:"field_code"`
	Values    []fieldValue `json:"values"`
}

// NewContact is a contact to create.
type NewContact struct {
	Name              string
	Phone             string
	ResponsibleUserID int
}

func (n NewContact) body() map[string]any {
	m := map[string]any{
		"name":                 n.Name,
		"custom_fields_values": []customField{{FieldCode: phoneField, Values: []fieldValue{{Value: n.Phone, EnumCode: "WORK"}}}},
	}
	if n.ResponsibleUserID > 0 {
		m["responsible_user_id"] = n.ResponsibleUserID
	}
	return m
}

// NewLead is a lead to create.
type NewLead struct {
	Name              string
	PipelineID        int
	ResponsibleUserID int
}

func (n NewLead) body() map[string]any {
	m := map[string]any{"name": n.Name}
	if n.PipelineID > 0 {
		m["pipeline_id"] = n.PipelineID
	}
	if n.ResponsibleUserID > 0 {
		m["responsible_user_id"] = n.ResponsibleUserID
	}
	return m
}

// UnsortedCall is an incoming call for POST /api/v4/leads/unsorted/sip (crm-apis.md §2.2).
type UnsortedCall struct {
	// SourceUID identifies the call on our side; amoCRM refuses a second one in Unsorted, which
	// makes a retry of the same call find the first rather than add another.
	SourceUID  string
	SourceName string
	PipelineID int
	Uniq       string
	From       string // the caller
	Phone      string // the number called (line or extension)
	CalledAt   int64
	Duration   int
	Link       string
	// CallResponsible is the user who took (or missed) the call.
	CallResponsible int
	Lead            NewLead
	Contact         NewContact
}

// UnsortedAdded is the incoming lead amoCRM made.
type UnsortedAdded struct {
	UID        string
	LeadID     int
	ContactIDs []int
}

// ErrUnsortedExists: an incoming lead with this source_uid is already in Unsorted (a retry of a
// request that was applied).
var ErrUnsortedExists = errors.New("an incoming lead with this source_uid is already in Unsorted")

// AddUnsortedCall creates an incoming lead in Unsorted with the call on it.
func (c *Client) AddUnsortedCall(ctx context.Context, u UnsortedCall) (UnsortedAdded, error) {
	const route = "POST /api/v4/leads/unsorted/sip"
	md := map[string]any{
		"uniq":                 u.Uniq,
		"from":                 u.From,
		"phone":                u.Phone,
		"called_at":            u.CalledAt,
		"duration":             u.Duration,
		"service_code":         u.SourceName,
		"is_call_event_needed": true,
	}
	if u.Link != "" {
		md["link"] = u.Link
	}
	if u.CallResponsible > 0 {
		md["call_responsible"] = u.CallResponsible
	}
	item := map[string]any{
		"source_uid":  u.SourceUID,
		"source_name": u.SourceName,
		"created_at":  u.CalledAt,
		"metadata":    md,
		"_embedded": map[string]any{
			"leads":    []any{u.Lead.body()},
			"contacts": []any{u.Contact.body()},
		},
		"request_id": u.SourceUID,
	}
	if u.PipelineID > 0 {
		item["pipeline_id"] = u.PipelineID
	}
	var out struct {
		Embedded struct {
			Unsorted []struct {
				UID      string `json:"uid"`
				Embedded struct {
					Leads    []struct{ ID flexInt } `json:"leads"`
					Contacts []struct{ ID flexInt } `json:"contacts"`
				} `json:"_embedded"`
			} `json:"unsorted"`
		} `json:"_embedded"`
	}
	status, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v4/leads/unsorted/sip", body: []any{item}, out: &out, route: route})
	if err != nil {
		if e, ok := AsError(err); ok && e.Status == http.StatusBadRequest {
			for _, f := range e.Fields {
				if f.Path == "source_uid" && f.Code == "NotUnique" {
					return UnsortedAdded{}, ErrUnsortedExists
				}
			}
		}
		return UnsortedAdded{}, err
	}
	if len(out.Embedded.Unsorted) == 0 {
		return UnsortedAdded{}, badResponse(route, status, errors.New("field _embedded.unsorted is empty"))
	}
	u0 := out.Embedded.Unsorted[0]
	res := UnsortedAdded{UID: u0.UID}
	if len(u0.Embedded.Leads) > 0 {
		res.LeadID = int(u0.Embedded.Leads[0].ID)
	}
	for _, ct := range u0.Embedded.Contacts {
		res.ContactIDs = append(res.ContactIDs, int(ct.ID))
	}
	return res, nil
}

// Contact is a contact as the connector reads it.
type Contact struct {
	ID      int
	Name    string
	Phones  []string
	LeadIDs []int
}

type contactJSON struct {
	ID           flexInt `json:"id"`
	Name         string  `json:"name"`
	CustomFields []struct {
		FieldCode string `json:"field_code"`
		Values    []struct {
			Value flexString `json:"value"`
		} `json:"values"`
	} `json:"custom_fields_values"`
	Embedded struct {
		Leads []struct {
			ID flexInt `json:"id"`
		} `json:"leads"`
	} `json:"_embedded"`
}

// ParseContacts reads a GET /api/v4/contacts page.
func ParseContacts(body []byte) ([]Contact, error) {
	var page struct {
		Embedded struct {
			Contacts []contactJSON `json:"contacts"`
		} `json:"_embedded"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("the contacts list: %w", err)
	}
	out := make([]Contact, 0, len(page.Embedded.Contacts))
	for i, cj := range page.Embedded.Contacts {
		if cj.ID <= 0 {
			return nil, fmt.Errorf("the contacts list: field _embedded.contacts.%d.id is missing", i)
		}
		ct := Contact{ID: int(cj.ID), Name: cj.Name}
		for _, f := range cj.CustomFields {
			if f.FieldCode != phoneField {
				continue
			}
			for _, v := range f.Values {
				ct.Phones = append(ct.Phones, string(v.Value))
			}
		}
		for _, l := range cj.Embedded.Leads {
			ct.LeadIDs = append(ct.LeadIDs, int(l.ID))
		}
		out = append(out, ct)
	}
	return out, nil
}

// FindContacts searches contacts whose filled fields match query (a phone's digits), with their
// leads. An empty answer (204) is no contacts, not an error.
func (c *Client) FindContacts(ctx context.Context, query string) ([]Contact, error) {
	const route = "GET /api/v4/contacts"
	var raw json.RawMessage
	q := url.Values{"query": {query}, "with": {"leads"}, "limit": {"50"}}
	status, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v4/contacts", query: q, out: &raw, route: route})
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent || len(raw) == 0 {
		return nil, nil
	}
	cs, err := ParseContacts(raw)
	if err != nil {
		return nil, badResponse(route, status, err)
	}
	return cs, nil
}

// ComplexAdded is a lead and contact made together.
type ComplexAdded struct {
	LeadID    int
	ContactID int
}

// AddLeadWithContact creates a lead and its contact in one request (POST /api/v4/leads/complex).
func (c *Client) AddLeadWithContact(ctx context.Context, lead NewLead, contact NewContact, requestID string) (ComplexAdded, error) {
	const route = "POST /api/v4/leads/complex"
	item := lead.body()
	item["_embedded"] = map[string]any{"contacts": []any{contact.body()}}
	item["request_id"] = requestID
	var out []struct {
		ID        flexInt `json:"id"`
		ContactID flexInt `json:"contact_id"`
	}
	status, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v4/leads/complex", body: []any{item}, out: &out, route: route})
	if err != nil {
		return ComplexAdded{}, err
	}
	if len(out) == 0 || out[0].ID <= 0 {
		return ComplexAdded{}, badResponse(route, status, errors.New("field 0.id is missing"))
	}
	return ComplexAdded{LeadID: int(out[0].ID), ContactID: int(out[0].ContactID)}, nil
}

// Task is a task for a user (POST /api/v4/tasks).
type Task struct {
	Text              string
	CompleteTill      time.Time
	EntityType        string
	EntityID          int
	TaskTypeID        int
	ResponsibleUserID int
	RequestID         string
}

// AddTask creates a task and returns its id.
func (c *Client) AddTask(ctx context.Context, t Task) (int, error) {
	const route = "POST /api/v4/tasks"
	item := map[string]any{"text": t.Text, "complete_till": t.CompleteTill.Unix()}
	if t.EntityType != "" && t.EntityID > 0 {
		item["entity_type"], item["entity_id"] = t.EntityType, t.EntityID
	}
	if t.TaskTypeID > 0 {
		item["task_type_id"] = t.TaskTypeID
	}
	if t.ResponsibleUserID > 0 {
		item["responsible_user_id"] = t.ResponsibleUserID
	}
	if t.RequestID != "" {
		item["request_id"] = t.RequestID
	}
	var out struct {
		Embedded struct {
			Tasks []struct {
				ID flexInt `json:"id"`
			} `json:"tasks"`
		} `json:"_embedded"`
	}
	status, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v4/tasks", body: []any{item}, out: &out, route: route})
	if err != nil {
		return 0, err
	}
	if len(out.Embedded.Tasks) == 0 || out.Embedded.Tasks[0].ID <= 0 {
		return 0, badResponse(route, status, errors.New("field _embedded.tasks.0.id is missing"))
	}
	return int(out.Embedded.Tasks[0].ID), nil
}

// CallNote is a call_in/call_out note, for a call that must go on a card amoCRM would not pick
// itself (an incoming lead still in Unsorted).
type CallNote struct {
	EntityType string // leads, contacts, companies
	EntityID   int
	Call       Call
}

// AddCallNote adds a call as a note on the given card and returns the note id.
func (c *Client) AddCallNote(ctx context.Context, n CallNote) (int, error) {
	route := "POST /api/v4/" + n.EntityType + "/notes"
	noteType := "call_in"
	if n.Call.Direction == "outbound" {
		noteType = "call_out"
	}
	params := map[string]any{
		"uniq": n.Call.Uniq, "duration": n.Call.Duration, "source": n.Call.Source, "phone": n.Call.Phone,
		"call_status": n.Call.CallStatus, "call_result": n.Call.CallResult,
	}
	if n.Call.Link != "" {
		params["link"] = n.Call.Link
	}
	item := map[string]any{"entity_id": n.EntityID, "note_type": noteType, "params": params}
	if n.Call.ResponsibleUserID > 0 {
		item["responsible_user_id"] = n.Call.ResponsibleUserID
	}
	var out struct {
		Embedded struct {
			Notes []struct {
				ID flexInt `json:"id"`
			} `json:"notes"`
		} `json:"_embedded"`
	}
	status, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v4/" + n.EntityType + "/notes", body: []any{item}, out: &out, route: route})
	if err != nil {
		return 0, err
	}
	if len(out.Embedded.Notes) == 0 || out.Embedded.Notes[0].ID <= 0 {
		return 0, badResponse(route, status, errors.New("field _embedded.notes.0.id is missing"))
	}
	return int(out.Embedded.Notes[0].ID), nil
}

// NotifyCall shows the incoming-call notification to users (POST /api/v2/events, crm-apis.md
// §2.4): amoCRM finds the card by the number itself. No users would notify everyone, so it is an
// error here.
func (c *Client) NotifyCall(ctx context.Context, phone string, users []int) error {
	if len(users) == 0 {
		return errors.New("amo: notify call: no users to notify")
	}
	body := map[string]any{"add": []any{map[string]any{"type": "phone_call", "phone_number": phone, "users": users}}}
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v2/events", body: body, route: "POST /api/v2/events"})
	return err
}

// AccountInfo is what GET /api/v4/account says about the account.
type AccountInfo struct {
	ID        int
	Name      string
	Subdomain string
}

// Account reads the account: the cheapest request that proves the token, the payment and the
// access all work.
func (c *Client) Account(ctx context.Context) (AccountInfo, error) {
	const route = "GET /api/v4/account"
	var out struct {
		ID        flexInt `json:"id"`
		Name      string  `json:"name"`
		Subdomain string  `json:"subdomain"`
	}
	status, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v4/account", out: &out, route: route})
	if err != nil {
		return AccountInfo{}, err
	}
	if out.ID <= 0 {
		return AccountInfo{}, badResponse(route, status, errors.New("field id is missing"))
	}
	return AccountInfo{ID: int(out.ID), Name: out.Name, Subdomain: out.Subdomain}, nil
}

// User is an account user (no phone numbers: amoCRM has none for users).
type User struct {
	ID    int
	Name  string
	Email string
}

// Users lists the account's users, every page.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	const route = "GET /api/v4/users"
	var users []User
	for page := 1; page <= 100; page++ {
		var out struct {
			PageCount int `json:"_page_count"`
			Embedded  struct {
				Users []struct {
					ID    flexInt `json:"id"`
					Name  string  `json:"name"`
					Email string  `json:"email"`
				} `json:"users"`
			} `json:"_embedded"`
		}
		q := url.Values{"page": {strconv.Itoa(page)}, "limit": {"250"}}
		status, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v4/users", query: q, out: &out, route: route})
		if err != nil {
			return nil, err
		}
		if status == http.StatusNoContent || len(out.Embedded.Users) == 0 {
			break
		}
		for _, u := range out.Embedded.Users {
			users = append(users, User{ID: int(u.ID), Name: u.Name, Email: u.Email})
		}
		if out.PageCount > 0 && page >= out.PageCount {
			break
		}
	}
	return users, nil
}

// FoundNote is a call note found by its uniq.
type FoundNote struct {
	ID         int
	EntityType string
	EntityID   int
}

// maxNotePages bounds the search of FindCallNote per entity type: a busy account logs a few
// thousand calls a day, and the search looks back to the call's start only.
const maxNotePages = 20

// ErrSearchTooLong: the call notes since the call are too many to search.
var ErrSearchTooLong = errors.New("too many call notes since the call to search them all")

// FindCallNote looks for the call_in/call_out note amoCRM made for the call with uniq, among
// notes updated since since (leads, then contacts, then companies). It is how the connector learns
// whether a call whose request got no answer was logged: amoCRM's uniq does not deduplicate, so
// the call must not be sent again if it was.
func (c *Client) FindCallNote(ctx context.Context, uniq string, since time.Time) (FoundNote, bool, error) {
	for _, et := range []string{"leads", "contacts", "companies"} {
		route := "GET /api/v4/" + et + "/notes"
		for page := 1; ; page++ {
			if page > maxNotePages {
				return FoundNote{}, false, fmt.Errorf("amo %s: %w", route, ErrSearchTooLong)
			}
			q := url.Values{
				"filter[note_type][]":      {"call_in", "call_out"},
				"filter[updated_at][from]": {strconv.FormatInt(since.Unix(), 10)},
				"limit":                    {"250"},
				"page":                     {strconv.Itoa(page)},
			}
			var out struct {
				Links struct {
					Next *struct{} `json:"next"`
				} `json:"_links"`
				Embedded struct {
					Notes []struct {
						ID       flexInt `json:"id"`
						EntityID flexInt `json:"entity_id"`
						Params   struct {
							Uniq flexString `json:"uniq"`
						} `json:"params"`
					} `json:"notes"`
				} `json:"_embedded"`
			}
			status, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v4/" + et + "/notes", query: q, out: &out, route: route})
			if err != nil {
				return FoundNote{}, false, err
			}
			if status == http.StatusNoContent {
				break
			}
			for _, n := range out.Embedded.Notes {
				if string(n.Params.Uniq) == uniq && uniq != "" {
					return FoundNote{ID: int(n.ID), EntityType: et, EntityID: int(n.EntityID)}, true, nil
				}
			}
			if out.Links.Next == nil || len(out.Embedded.Notes) == 0 {
				break
			}
		}
	}
	return FoundNote{}, false, nil
}
