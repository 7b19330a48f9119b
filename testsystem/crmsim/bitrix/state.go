package bitrix

import (
	"strings"
	"time"
)

// User is a portal employee as user.get and searchCrmEntities show it.
type User struct {
	ID       int    `json:"id" yaml:"id"` // 0: the next free id
	Name     string `json:"name" yaml:"name"`
	LastName string `json:"last_name" yaml:"last_name"`
	Email    string `json:"email" yaml:"email"`
	// Inactive is ACTIVE=false (a dismissed employee); users are active by default.
	Inactive       bool   `json:"inactive" yaml:"inactive"`
	PhoneInner     string `json:"phone_inner" yaml:"phone_inner"` // UF_PHONE_INNER, the extension
	WorkPosition   string `json:"work_position" yaml:"work_position"`
	WorkPhone      string `json:"work_phone" yaml:"work_phone"`
	PersonalPhone  string `json:"personal_phone" yaml:"personal_phone"`
	PersonalMobile string `json:"personal_mobile" yaml:"personal_mobile"`
	// TimemanStatus is OPENED, CLOSED, PAUSED, EXPIRED, UNAVAILABLE or NOT_INSTALLED
	// (searchCrmEntities ASSIGNED_BY.TIMEMAN_STATUS); default OPENED.
	TimemanStatus string `json:"timeman_status" yaml:"timeman_status"`
	UserType      string `json:"user_type" yaml:"user_type"` // employee (default), extranet, email
	Departments   []int  `json:"departments" yaml:"departments"`
	Admin         bool   `json:"admin" yaml:"admin"`
}

// Contact is a CRM contact.
type Contact struct {
	ID           int      `json:"id" yaml:"id"`
	Name         string   `json:"name" yaml:"name"`
	LastName     string   `json:"last_name" yaml:"last_name"`
	Phones       []string `json:"phones" yaml:"phones"`
	AssignedByID int      `json:"assigned_by_id" yaml:"assigned_by_id"`
	CompanyID    int      `json:"company_id" yaml:"company_id"`
}

// Company is a CRM company.
type Company struct {
	ID           int      `json:"id" yaml:"id"`
	Title        string   `json:"title" yaml:"title"`
	Phones       []string `json:"phones" yaml:"phones"`
	AssignedByID int      `json:"assigned_by_id" yaml:"assigned_by_id"`
}

// Lead is a CRM lead, seeded or created (by crm.lead.add or by a call registration).
type Lead struct {
	ID           int      `json:"id" yaml:"id"`
	Title        string   `json:"title" yaml:"title"`
	Name         string   `json:"name" yaml:"name"`
	LastName     string   `json:"last_name" yaml:"last_name"`
	Phones       []string `json:"phones" yaml:"phones"`
	AssignedByID int      `json:"assigned_by_id" yaml:"assigned_by_id"`
	SourceID     string   `json:"source_id" yaml:"source_id"`
	StatusID     string   `json:"status_id" yaml:"status_id"`
	Comments     string   `json:"comments" yaml:"comments"`
	// CallID is the call whose registration created the lead (CRM_CREATE=1), else "".
	CallID string `json:"call_id,omitempty" yaml:"-"`
	// CreatedBy is how the lead came to be: seed, crm.lead.add or telephony.externalcall.register.
	CreatedBy string `json:"created_by,omitempty" yaml:"-"`
}

// Line is an external line of an application (telephony.externalLine.*).
type Line struct {
	ID       int    `json:"id" yaml:"id"`
	ClientID string `json:"client_id" yaml:"client_id"` // owning application; "" is Options.ClientID
	Number   string `json:"number" yaml:"number"`
	Name     string `json:"name" yaml:"name"`
	// CRMAutoCreate is Y (default) or N: auto-create a CRM entity for outgoing calls on the line.
	CRMAutoCreate string `json:"crm_auto_create" yaml:"crm_auto_create"`
}

// Webhook is an incoming webhook: /rest/<UserID>/<Secret>/<method>.
type Webhook struct {
	UserID int      `json:"user_id" yaml:"user_id"`
	Secret string   `json:"secret" yaml:"secret"`
	Scope  []string `json:"scope" yaml:"scope"` // empty: crm, telephony, user
}

// Call is one registered external call and everything done to it.
type Call struct {
	CallID         string
	ExternalCallID string
	ClientID       string // application that registered it
	// ByPortal marks a call Bitrix24 registered itself for click-to-call (ONEXTERNALCALLSTART).
	ByPortal      bool
	UserID        int
	PhoneNumber   string
	Type          int
	LineNumber    string
	StartDate     time.Time
	CRMCreate     bool
	CRMSource     string
	CRMEntityType string
	CRMEntityID   int
	CreatedLeadID int // CRM_CREATED_LEAD
	Show          bool
	AddToChat     bool
	CallListID    int
	RegisteredAt  time.Time
	// ShownTo are the users whose screen shows the call card now.
	ShownTo []int
	Finish  *Finish
	Records []Record
	// History is every request that touched the call, in order.
	History []CallEvent
}

// Finish is what telephony.externalcall.finish recorded.
type Finish struct {
	At           time.Time
	StatID       int // ID of the statistics record
	UserID       int
	Duration     int
	Cost         float64
	CostCurrency string
	StatusCode   string // as sent, or the default (200 if DURATION>0 else 304)
	StatusSent   bool   // STATUS_CODE was in the request
	FailedReason string
	RecordURL    string
	Vote         int
	AddToChat    bool
	ActivityID   int
}

// Record is an attached call recording.
type Record struct {
	At        time.Time
	FileID    int
	FileName  string
	RecordURL string
	Mode      string // content, url or upload
	Content   []byte
}

// CallEvent is one action on a call: register, reregister (the 30-minute reuse), show, hide,
// finish, attachRecord, upload.
type CallEvent struct {
	At      time.Time
	Action  string
	UserIDs []int
	Params  map[string]string
	Error   string // the error answered, if the request failed
}

// Token is an OAuth token the simulator issued.
type Token struct {
	Kind     string // access or refresh
	Value    string
	ClientID string
	UserID   int
	Expires  time.Time
	Revoked  bool // a refresh token used once (unless Options.KeepUsedRefreshTokens)
}

// SentEvent is an event the simulator posted to a handler.
type SentEvent struct {
	At     time.Time
	URL    string
	Event  string
	Form   map[string]string
	Status int
	Err    string
}

// normPhone is the comparable form of a phone number: digits only, a Russian 8XXXXXXXXXX
// trunk prefix as 7. The portal finds duplicates this way regardless of +, spaces, dashes.
func normPhone(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	d := b.String()
	if len(d) == 11 && d[0] == '8' {
		d = "7" + d[1:]
	}
	return d
}

func phoneMatch(phones []string, n string) bool {
	if n == "" {
		return false
	}
	for _, p := range phones {
		if normPhone(p) == n {
			return true
		}
	}
	return false
}

func cloneCall(c *Call) Call {
	out := *c
	out.ShownTo = append([]int(nil), c.ShownTo...)
	if c.Finish != nil {
		f := *c.Finish
		out.Finish = &f
	}
	out.Records = append([]Record(nil), c.Records...)
	out.History = append([]CallEvent(nil), c.History...)
	return out
}
