package amo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Seed is the state an account starts with. It is what a seed file (JSON or YAML) holds; every
// id left 0 is assigned, every missing part gets a default (one admin, one pipeline).
type Seed struct {
	Account     Account     `json:"account" yaml:"account"`
	Integration Integration `json:"integration" yaml:"integration"`
	Users       []User      `json:"users" yaml:"users"`
	Pipelines   []Pipeline  `json:"pipelines" yaml:"pipelines"`
	Contacts    []Contact   `json:"contacts" yaml:"contacts"`
	Companies   []Company   `json:"companies" yaml:"companies"`
	Leads       []Lead      `json:"leads" yaml:"leads"`
	// TaskTypes are the account's custom task types (1 "follow-up" and 2 "meeting" always exist).
	TaskTypes []int `json:"task_types" yaml:"task_types"`
	// LongLivedTokens are accepted as Bearer tokens (private integrations), never expiring here.
	LongLivedTokens []string `json:"long_lived_tokens" yaml:"long_lived_tokens"`
}

// Account is the amoCRM account the simulator is.
type Account struct {
	ID        int    `json:"id" yaml:"id"`
	Name      string `json:"name" yaml:"name"`
	Subdomain string `json:"subdomain" yaml:"subdomain"`
	// Domain is amocrm.ru or kommo.com: it only shapes iss of disposable tokens and links.
	Domain   string `json:"domain" yaml:"domain"`
	Country  string `json:"country" yaml:"country"`
	Currency string `json:"currency" yaml:"currency"`
}

// Integration is the installed OAuth integration (its "Keys and scopes" tab).
type Integration struct {
	ClientID     string `json:"client_id" yaml:"client_id"`
	ClientSecret string `json:"client_secret" yaml:"client_secret"`
	RedirectURI  string `json:"redirect_uri" yaml:"redirect_uri"`
}

// User is an account user. amoCRM users carry no phone numbers: a connector maps extensions to
// user ids in its own settings.
type User struct {
	ID       int    `json:"id" yaml:"id"`
	Name     string `json:"name" yaml:"name"`
	Email    string `json:"email" yaml:"email"`
	Lang     string `json:"lang" yaml:"lang"`
	IsAdmin  bool   `json:"is_admin" yaml:"is_admin"`
	IsFree   bool   `json:"is_free" yaml:"is_free"`
	Inactive bool   `json:"inactive" yaml:"inactive"`
}

// Pipeline is a lead pipeline with its statuses. 142 (won) and 143 (lost) are added to every
// pipeline, as amoCRM does; the first status is the pipeline's Unsorted stage.
type Pipeline struct {
	ID       int      `json:"id" yaml:"id"`
	Name     string   `json:"name" yaml:"name"`
	IsMain   bool     `json:"is_main" yaml:"is_main"`
	Statuses []Status `json:"statuses" yaml:"statuses"`
}

// Status is a pipeline stage.
type Status struct {
	ID   int    `json:"id" yaml:"id"`
	Name string `json:"name" yaml:"name"`
}

// Closed lead statuses, the same ids in every amoCRM account.
const (
	StatusWon  = 142
	StatusLost = 143
)

// Phone is one value of a contact's or company's PHONE field.
type Phone struct {
	Value string `json:"value" yaml:"value"`
	// Enum is the value's enum_code: WORK, WORKDD, MOB, FAX, HOME or OTHER (default WORK).
	Enum string `json:"enum" yaml:"enum"`
}

// Contact is a contact card.
type Contact struct {
	ID                int     `json:"id" yaml:"id"`
	Name              string  `json:"name" yaml:"name"`
	FirstName         string  `json:"first_name" yaml:"first_name"`
	LastName          string  `json:"last_name" yaml:"last_name"`
	ResponsibleUserID int     `json:"responsible_user_id" yaml:"responsible_user_id"`
	CreatedBy         int     `json:"created_by" yaml:"created_by"`
	CreatedAt         int64   `json:"created_at" yaml:"created_at"`
	UpdatedAt         int64   `json:"updated_at" yaml:"updated_at"`
	Phones            []Phone `json:"phones" yaml:"phones"`
	Emails            []Phone `json:"emails" yaml:"emails"`
	CompanyIDs        []int   `json:"company_ids" yaml:"company_ids"`
	// IsUnsorted marks a contact that came with an Unsorted lead not yet accepted: it is
	// invisible to lists, searches and call matching until then.
	IsUnsorted bool `json:"is_unsorted" yaml:"is_unsorted"`
	// Fields are other custom field values as sent (kept to echo them back).
	Fields []json.RawMessage `json:"-" yaml:"-"`
}

// Company is a company card.
type Company struct {
	ID                int     `json:"id" yaml:"id"`
	Name              string  `json:"name" yaml:"name"`
	ResponsibleUserID int     `json:"responsible_user_id" yaml:"responsible_user_id"`
	CreatedBy         int     `json:"created_by" yaml:"created_by"`
	CreatedAt         int64   `json:"created_at" yaml:"created_at"`
	Phones            []Phone `json:"phones" yaml:"phones"`
	IsUnsorted        bool    `json:"is_unsorted" yaml:"is_unsorted"`
}

// Lead is a lead (deal).
type Lead struct {
	ID                int               `json:"id" yaml:"id"`
	Name              string            `json:"name" yaml:"name"`
	Price             int               `json:"price" yaml:"price"`
	PipelineID        int               `json:"pipeline_id" yaml:"pipeline_id"`
	StatusID          int               `json:"status_id" yaml:"status_id"`
	ResponsibleUserID int               `json:"responsible_user_id" yaml:"responsible_user_id"`
	CreatedBy         int               `json:"created_by" yaml:"created_by"`
	CreatedAt         int64             `json:"created_at" yaml:"created_at"`
	UpdatedAt         int64             `json:"updated_at" yaml:"updated_at"`
	ContactIDs        []int             `json:"contact_ids" yaml:"contact_ids"` // the first is the main contact
	CompanyID         int               `json:"company_id" yaml:"company_id"`
	IsUnsorted        bool              `json:"is_unsorted" yaml:"is_unsorted"`
	Fields            []json.RawMessage `json:"-" yaml:"-"`
}

// Active reports whether the lead is open (not won, not lost): calls land in active leads only.
func (l Lead) Active() bool { return l.StatusID != StatusWon && l.StatusID != StatusLost }

// Call is one call logged through POST /api/v4/calls (or the call event of an Unsorted lead).
type Call struct {
	ID                int    `json:"id"`
	Direction         string `json:"direction"`
	Uniq              string `json:"uniq"`
	Duration          int    `json:"duration"`
	Source            string `json:"source"`
	Link              string `json:"link"`
	Phone             string `json:"phone"`
	CallResult        string `json:"call_result"`
	CallStatus        int    `json:"call_status"`
	CallResponsible   any    `json:"call_responsible,omitempty"`
	ResponsibleUserID int    `json:"responsible_user_id"`
	CreatedBy         int    `json:"created_by"`
	CreatedAt         int64  `json:"created_at"`
	RequestID         string `json:"request_id"`
	// EntityType/EntityID say where amoCRM put the call: leads, contacts or companies.
	EntityType string `json:"entity_type"`
	EntityID   int    `json:"entity_id"`
	NoteID     int    `json:"note_id"`
}

// Note is a note (event) in an entity's feed; calls become call_in/call_out notes.
type Note struct {
	ID                int            `json:"id"`
	EntityType        string         `json:"entity_type"`
	EntityID          int            `json:"entity_id"`
	NoteType          string         `json:"note_type"`
	Params            map[string]any `json:"params"`
	CreatedBy         int            `json:"created_by"`
	ResponsibleUserID int            `json:"responsible_user_id"`
	CreatedAt         int64          `json:"created_at"`
}

// Task is a task for a user.
type Task struct {
	ID                int    `json:"id"`
	EntityType        string `json:"entity_type"`
	EntityID          int    `json:"entity_id"`
	TaskTypeID        int    `json:"task_type_id"`
	Text              string `json:"text"`
	CompleteTill      int64  `json:"complete_till"`
	Duration          int    `json:"duration"`
	ResponsibleUserID int    `json:"responsible_user_id"`
	CreatedBy         int    `json:"created_by"`
	CreatedAt         int64  `json:"created_at"`
	IsCompleted       bool   `json:"is_completed"`
	RequestID         string `json:"request_id"`
}

// Unsorted is an incoming ("Unsorted") lead created through POST /api/v4/leads/unsorted/sip.
type Unsorted struct {
	UID        string         `json:"uid"`
	SourceUID  string         `json:"source_uid"`
	SourceName string         `json:"source_name"`
	Category   string         `json:"category"`
	PipelineID int            `json:"pipeline_id"`
	CreatedAt  int64          `json:"created_at"`
	Metadata   map[string]any `json:"metadata"`
	LeadID     int            `json:"lead_id"`
	ContactIDs []int          `json:"contact_ids"`
	CompanyIDs []int          `json:"company_ids"`
	Accepted   bool           `json:"accepted"`
	RequestID  string         `json:"request_id"`
}

// Notification is an incoming-call pop-up asked for through POST /api/v2/events.
type Notification struct {
	Type        string `json:"type"`
	PhoneNumber string `json:"phone_number"`
	// Users are the users shown the pop-up; empty means every user, as amoCRM does.
	Users []int `json:"users"`
	// EntityType/EntityID are what the pop-up shows, found by phone like calls; empty when the
	// number is unknown (amoCRM then offers to create a contact).
	EntityType string `json:"entity_type"`
	EntityID   int    `json:"entity_id"`
	At         int64  `json:"at"`
}

// LoadSeed reads a seed file: .json, or .yaml/.yml.
func LoadSeed(path string) (Seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("amo: seed: %w", err)
	}
	var s Seed
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			return Seed{}, fmt.Errorf("amo: seed %s: %w", path, err)
		}
	default:
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Seed{}, fmt.Errorf("amo: seed %s: %w", path, err)
		}
	}
	return s, nil
}
