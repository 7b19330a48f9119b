package bitrix

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Call types of telephony.externalCall.register (reference §1.4).
const (
	TypeOutgoing   = 1
	TypeIncoming   = 2
	TypeRedirected = 3
	TypeCallback   = 4
	TypeInfo       = 5
)

// Status codes of telephony.externalCall.finish (reference §1.6).
const (
	StatusSuccess     = "200"
	StatusMissed      = "304"
	StatusDeclined    = "603"
	StatusCancelled   = "603-S"
	StatusNotFound    = "404"
	StatusBusy        = "486"
	StatusUnavailable = "480"
	StatusNoRoute     = "503"
	StatusOther       = "OTHER"
)

// PHP prints numbers as numbers or strings, and nothing as null or false; phpInt reads them all.
type phpInt int

func (n *phpInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	switch s {
	case "", "null", "false", "true":
		*n = 0
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f > 1<<31 || f < -(1<<31) {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*n = phpInt(f)
	return nil
}

// phpString reads a string, a number, or null.
type phpString string

func (p *phpString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = phpString(s)
		return nil
	}
	switch string(b) {
	case "null", "false":
		*p = ""
	default:
		*p = phpString(b)
	}
	return nil
}

// RegisterRequest is telephony.externalCall.register's parameters.
type RegisterRequest struct {
	UserID         int
	PhoneNumber    string
	Type           int
	StartedAt      time.Time
	CRMCreate      bool
	CRMSource      string
	CRMEntityType  string
	CRMEntityID    int
	Show           bool
	AddToChat      bool
	LineNumber     string
	ExternalCallID string
}

// Registration is register's answer.
type Registration struct {
	CallID            string
	CRMCreatedLead    int
	CRMEntityType     string
	CRMEntityID       int
	LeadCreationError string
}

// Register registers a call. EXTERNAL_CALL_ID makes it idempotent for 30 minutes: the same
// request again returns the same CALL_ID (reference §1.4).
func (c *Client) Register(ctx context.Context, r RegisterRequest) (Registration, error) {
	if r.UserID <= 0 {
		return Registration{}, &Error{Method: "telephony.externalcall.register", Kind: Permanent, Description: "no user to register the call for"}
	}
	p := url.Values{
		"USER_ID":      {strconv.Itoa(r.UserID)},
		"PHONE_NUMBER": {r.PhoneNumber},
		"TYPE":         {strconv.Itoa(r.Type)},
		"SHOW":         {boolInt(r.Show)},
		"ADD_TO_CHAT":  {boolInt(r.AddToChat)},
		"CRM_CREATE":   {boolInt(r.CRMCreate)},
	}
	if !r.StartedAt.IsZero() {
		// ISO-8601 with an explicit offset, as the page asks (2026-03-07T10:20:30+03:00).
		p.Set("CALL_START_DATE", r.StartedAt.Format("2006-01-02T15:04:05-07:00"))
	}
	setIf(p, "CRM_SOURCE", r.CRMSource)
	setIf(p, "LINE_NUMBER", r.LineNumber)
	setIf(p, "EXTERNAL_CALL_ID", r.ExternalCallID)
	if r.CRMEntityType != "" && r.CRMEntityID > 0 {
		p.Set("CRM_ENTITY_TYPE", r.CRMEntityType)
		p.Set("CRM_ENTITY_ID", strconv.Itoa(r.CRMEntityID))
	}
	resp, err := c.Call(ctx, "telephony.externalcall.register", p)
	if err != nil {
		return Registration{}, err
	}
	var ans struct {
		CallID            string    `json:"CALL_ID"`
		CRMCreatedLead    phpInt    `json:"CRM_CREATED_LEAD"`
		CRMEntityType     phpString `json:"CRM_ENTITY_TYPE"`
		CRMEntityID       phpInt    `json:"CRM_ENTITY_ID"`
		LeadCreationError phpString `json:"LEAD_CREATION_ERROR"`
	}
	if err := json.Unmarshal(resp.Result, &ans); err != nil || ans.CallID == "" {
		return Registration{}, &Error{Method: "telephony.externalcall.register", Kind: Retry,
			Description: "the answer has no CALL_ID: " + excerpt(resp.Result)}
	}
	return Registration{CallID: ans.CallID, CRMCreatedLead: int(ans.CRMCreatedLead), CRMEntityType: string(ans.CRMEntityType),
		CRMEntityID: int(ans.CRMEntityID), LeadCreationError: string(ans.LeadCreationError)}, nil
}

// Show shows the call card to users; false means the portal does not know the call (or it is
// finished).
func (c *Client) Show(ctx context.Context, callID string, users []int) (bool, error) {
	return c.showHide(ctx, "telephony.externalcall.show", callID, users)
}

// Hide hides the call card from users.
func (c *Client) Hide(ctx context.Context, callID string, users []int) (bool, error) {
	return c.showHide(ctx, "telephony.externalcall.hide", callID, users)
}

func (c *Client) showHide(ctx context.Context, method, callID string, users []int) (bool, error) {
	p := url.Values{"CALL_ID": {callID}}
	if len(users) == 1 {
		p.Set("USER_ID", strconv.Itoa(users[0]))
	} else {
		for i, u := range users {
			p.Set("USER_ID["+strconv.Itoa(i)+"]", strconv.Itoa(u))
		}
	}
	resp, err := c.Call(ctx, method, p)
	if err != nil {
		return false, err
	}
	var ok bool
	_ = json.Unmarshal(resp.Result, &ok)
	return ok, nil
}

// FinishRequest is telephony.externalCall.finish's parameters.
type FinishRequest struct {
	CallID       string
	UserID       int
	Duration     int
	StatusCode   string
	FailedReason string
	AddToChat    bool
}

// Finished is the statistics record finish answers with (the parts the connector keeps).
type Finished struct {
	ID            int
	CRMActivityID int
	CRMEntityType string
	CRMEntityID   int
}

// Finish finishes a call. STATUS_CODE is always sent: without it Bitrix24 shows an unanswered
// outgoing call as "skipped" (asterlink issue #5).
func (c *Client) Finish(ctx context.Context, f FinishRequest) (Finished, error) {
	if f.StatusCode == "" {
		f.StatusCode = StatusOther
	}
	p := url.Values{
		"CALL_ID":     {f.CallID},
		"USER_ID":     {strconv.Itoa(f.UserID)},
		"DURATION":    {strconv.Itoa(max(0, f.Duration))},
		"STATUS_CODE": {f.StatusCode},
		"ADD_TO_CHAT": {boolInt(f.AddToChat)},
	}
	setIf(p, "FAILED_REASON", f.FailedReason)
	resp, err := c.Call(ctx, "telephony.externalcall.finish", p)
	if err != nil {
		return Finished{}, err
	}
	var ans struct {
		ID            phpInt    `json:"ID"`
		CRMActivityID phpInt    `json:"CRM_ACTIVITY_ID"`
		CRMEntityType phpString `json:"CRM_ENTITY_TYPE"`
		CRMEntityID   phpInt    `json:"CRM_ENTITY_ID"`
	}
	_ = json.Unmarshal(resp.Result, &ans) // the record is informative; finish succeeded
	return Finished{ID: int(ans.ID), CRMActivityID: int(ans.CRMActivityID), CRMEntityType: string(ans.CRMEntityType), CRMEntityID: int(ans.CRMEntityID)}, nil
}

// Attached is attachRecord's answer: FILE_ID when the record is attached, or the upload URL
// when the file is to be posted separately.
type Attached struct {
	FileID    int
	UploadURL string
	FieldName string
}

// AttachRecordURL lets the portal download the record from recordURL.
func (c *Client) AttachRecordURL(ctx context.Context, callID, fileName, recordURL string) (Attached, error) {
	p := url.Values{"CALL_ID": {callID}, "RECORD_URL": {recordURL}}
	setIf(p, "FILENAME", fileName)
	return c.attach(ctx, p, false)
}

// AttachRecordContent sends the record inside the request (base64), alone, never in a batch.
func (c *Client) AttachRecordContent(ctx context.Context, callID, fileName string, content []byte) (Attached, error) {
	p := url.Values{"CALL_ID": {callID}, "FILENAME": {fileName}, "FILE_CONTENT": {base64.StdEncoding.EncodeToString(content)}}
	return c.attach(ctx, p, true)
}

// AttachRecordUpload asks for an upload URL, then posts the file there: for files too big to send
// inside a request (a big base64 body counts against the 60 s request limit).
func (c *Client) AttachRecordUpload(ctx context.Context, callID, fileName string, content []byte) (Attached, error) {
	a, err := c.attach(ctx, url.Values{"CALL_ID": {callID}, "FILENAME": {fileName}}, false)
	if err != nil {
		return Attached{}, err
	}
	if a.UploadURL == "" {
		return a, nil
	}
	field := a.FieldName
	if field == "" {
		field = "file"
	}
	resp, err := c.Upload(ctx, a.UploadURL, field, fileName, content)
	if err != nil {
		return Attached{}, err
	}
	var ans struct {
		FileID phpInt `json:"FILE_ID"`
	}
	_ = json.Unmarshal(resp.Result, &ans)
	return Attached{FileID: int(ans.FileID)}, nil
}

func (c *Client) attach(ctx context.Context, p url.Values, solo bool) (Attached, error) {
	const method = "telephony.externalcall.attachrecord"
	var (
		resp *Response
		err  error
	)
	if solo {
		resp, err = c.CallAlone(ctx, method, p)
	} else {
		resp, err = c.Call(ctx, method, p)
	}
	if err != nil {
		return Attached{}, err
	}
	var ans struct {
		FileID    phpInt    `json:"FILE_ID"`
		UploadURL phpString `json:"uploadUrl"`
		FieldName phpString `json:"fieldName"`
	}
	_ = json.Unmarshal(resp.Result, &ans)
	return Attached{FileID: int(ans.FileID), UploadURL: string(ans.UploadURL), FieldName: string(ans.FieldName)}, nil
}

// CRMEntity is one hit of searchCrmEntities.
type CRMEntity struct {
	Type          string
	ID            int
	AssignedByID  int
	AssignedInner string // the responsible's extension
	TimemanStatus string
}

// SearchCRM finds CRM entities by phone (reference §1.3).
func (c *Client) SearchCRM(ctx context.Context, phone string) ([]CRMEntity, error) {
	resp, err := c.Call(ctx, "telephony.externalcall.searchcrmentities", url.Values{"PHONE_NUMBER": {phone}})
	if err != nil {
		return nil, err
	}
	var items []struct {
		Type       phpString `json:"CRM_ENTITY_TYPE"`
		ID         phpInt    `json:"CRM_ENTITY_ID"`
		AssignedBy phpInt    `json:"ASSIGNED_BY_ID"`
		Assigned   struct {
			Inner   phpString `json:"USER_PHONE_INNER"`
			Timeman phpString `json:"TIMEMAN_STATUS"`
		} `json:"ASSIGNED_BY"`
	}
	if err := json.Unmarshal(resp.Result, &items); err != nil {
		return nil, nil // [] or {} for nothing found
	}
	out := make([]CRMEntity, 0, len(items))
	for _, it := range items {
		out = append(out, CRMEntity{Type: string(it.Type), ID: int(it.ID), AssignedByID: int(it.AssignedBy),
			AssignedInner: string(it.Assigned.Inner), TimemanStatus: string(it.Assigned.Timeman)})
	}
	return out, nil
}

// User is an employee as user.get lists them.
type User struct {
	ID     int
	Active bool
	Inner  string // UF_PHONE_INNER, the extension
	Name   string
}

// ActiveUsers lists every active employee (user.get with ACTIVE=true, 50 a page). The pages after
// the first are asked for at once, so while throttled they share one batch.
func (c *Client) ActiveUsers(ctx context.Context) ([]User, error) {
	first, next, total, err := c.userPage(ctx, 0)
	if err != nil {
		return nil, err
	}
	if next == nil || total == nil || *total <= *next {
		return first, nil
	}
	var starts []int
	for s := *next; s < *total && s < 100000; s += 50 {
		starts = append(starts, s)
	}
	pages := make([][]User, len(starts))
	errs := make([]error, len(starts))
	var wg sync.WaitGroup
	for i, s := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pages[i], _, _, errs[i] = c.userPage(ctx, s)
		}()
	}
	wg.Wait()
	out := first
	for i := range starts {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, pages[i]...)
	}
	return out, nil
}

func (c *Client) userPage(ctx context.Context, start int) ([]User, *int, *int, error) {
	p := url.Values{
		"FILTER[ACTIVE]": {"true"},
		"sort":           {"ID"},
		"order":          {"ASC"},
		"start":          {strconv.Itoa(start)},
	}
	resp, err := c.Call(ctx, "user.get", p)
	if err != nil {
		return nil, nil, nil, err
	}
	var items []struct {
		ID       phpInt          `json:"ID"`
		Active   json.RawMessage `json:"ACTIVE"`
		Inner    phpString       `json:"UF_PHONE_INNER"`
		Name     phpString       `json:"NAME"`
		LastName phpString       `json:"LAST_NAME"`
	}
	if err := json.Unmarshal(resp.Result, &items); err != nil {
		return nil, nil, nil, &Error{Method: "user.get", Kind: Retry, Description: "the answer is not a list of users: " + excerpt(resp.Result)}
	}
	out := make([]User, 0, len(items))
	for _, it := range items {
		act := strings.Trim(strings.ToLower(string(it.Active)), `"`)
		out = append(out, User{ID: int(it.ID), Active: act == "true" || act == "y" || act == "1",
			Inner: strings.TrimSpace(string(it.Inner)), Name: strings.TrimSpace(string(it.Name) + " " + string(it.LastName))})
	}
	return out, resp.Next, resp.Total, nil
}

func boolInt(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func setIf(p url.Values, k, v string) {
	if v != "" {
		p.Set(k, v)
	}
}
