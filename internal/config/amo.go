package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Amo is connector-amo's section: how it reaches the amoCRM (Kommo) account and the rules it
// applies. Read when crm is amo.
type Amo struct {
	// Account is the account's address, e.g. https://company.amocrm.ru (or .kommo.com). Every
	// request goes to this host: amoCRM wants each account's own domain.
	Account string `yaml:"account"`
	// Auth is "oauth" (an external or private integration: authorization code at install, then
	// access tokens refreshed by the connector) or "long_lived" (a private integration's long-lived
	// token from its "Keys and scopes" tab: no refresh, it lives until the date it was made for).
	Auth string `yaml:"auth"`
	// ClientID, ClientSecret and RedirectURI are the integration's keys ("Keys and scopes"). The
	// secret also signs the widget's disposable tokens, so click-to-call needs it in both modes.
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	RedirectURI  string `yaml:"redirect_uri"`
	// AuthorizationCode is a code from the integration's settings, exchanged once for the first
	// token pair when none is stored yet (it lives 20 minutes). The install redirect to
	// <redirect_uri> does the same without it.
	AuthorizationCode Secret `yaml:"authorization_code"`
	// LongLivedToken is the token for auth: long_lived.
	LongLivedToken Secret `yaml:"long_lived_token"`

	// Source is the name calls carry in amoCRM ("source" of a call, "source_name" of an Unsorted
	// lead).
	Source string `yaml:"source"`
	// RateLimit is the account's requests per second, shared by every replica (amoCRM allows 7).
	RateLimit int `yaml:"rate_limit"`
	// RequestTimeout bounds one HTTP request to amoCRM.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// AccountCheckInterval is how often a held connector asks amoCRM whether the account works
	// again (after 402 not paid, 403 blocked, or lost authorization).
	AccountCheckInterval time.Duration `yaml:"account_check_interval"`
	// Workers is how many calls are handled at once.
	Workers int `yaml:"workers"`

	// Users maps extensions to amoCRM user ids: amoCRM users carry no phone numbers, so who is
	// responsible for a call comes from here (admin fills it from GET /api/v4/users).
	Users []AmoUser `yaml:"users"`
	// DefaultUserID is responsible for calls of an extension not in users; 0 leaves it to amoCRM
	// (the user who installed the integration).
	DefaultUserID int `yaml:"default_user_id"`

	// UnknownNumbers is what happens to a call whose number no contact or company has:
	// "unsorted" (an incoming lead in Unsorted with the call; inbound calls only), "contact"
	// (a contact and a lead are created, then the call is added) or "none" (the call is not
	// logged).
	UnknownNumbers string `yaml:"unknown_numbers"`
	// PipelineID is the pipeline of new leads (Unsorted and contact+lead); 0 is the main one.
	PipelineID int `yaml:"pipeline_id"`
	// LeadName names a new lead; {phone} is replaced by the number.
	LeadName string `yaml:"lead_name"`

	// MissedCallTask makes a task for the responsible employee after a missed inbound call.
	MissedCallTask AmoTask `yaml:"missed_call_task"`
	// Notify shows the incoming-call notification (POST /api/v2/events) to the employee whose
	// phone rings.
	Notify bool `yaml:"notify"`
	// Recordings are served to amoCRM's player under signed, expiring links.
	Recordings AmoRecordings `yaml:"recordings"`
	// Widget is the click-to-call endpoint the amoCRM telephony widget calls.
	Widget AmoWidget `yaml:"widget"`
	// Listen is the address of the public HTTP server: the OAuth install redirect, the widget's
	// click-to-call and the recording links.
	Listen string `yaml:"listen"`
}

// AmoUser is one extension → amoCRM user pair.
type AmoUser struct {
	Extension string `yaml:"extension"`
	UserID    int    `yaml:"user_id"`
}

// AmoTask is the missed-call task.
type AmoTask struct {
	Enabled bool `yaml:"enabled"`
	// Deadline is how long after the call the task is due.
	Deadline time.Duration `yaml:"deadline"`
	// Text is the task's text; {phone} is replaced by the number.
	Text string `yaml:"text"`
	// TaskTypeID is the task type: 1 follow-up (call back), 2 meeting, or one of the account's.
	TaskTypeID int `yaml:"task_type_id"`
}

// AmoRecordings says where recordings are and how links to them are made.
type AmoRecordings struct {
	// PublicURL is where amoCRM's player reaches this connector's listen address from the
	// internet, e.g. https://pbx.example.com/amo; empty sends calls without a recording link.
	PublicURL string `yaml:"public_url"`
	// Dir is the folder Asterisk writes recordings to, mounted into the connector.
	Dir string `yaml:"dir"`
	// LinkTTL is how long a link plays: amoCRM keeps the link in the call's note for ever, so a
	// short one stops old recordings playing.
	LinkTTL time.Duration `yaml:"link_ttl"`
	// SigningKey signs the links (HMAC-SHA256); every replica needs the same one, and changing it
	// breaks the links already sent.
	SigningKey Secret `yaml:"signing_key"`
}

// AmoWidget configures click-to-call.
type AmoWidget struct {
	// RingTimeout is how long the employee's phone rings before the call is given up.
	RingTimeout time.Duration `yaml:"ring_timeout"`
}

// Defaults of the amo section.
const (
	DefaultAmoSource               = "ringbridge"
	DefaultAmoRateLimit            = 7
	DefaultAmoRequestTimeout       = 20 * time.Second
	DefaultAmoAccountCheckInterval = 30 * time.Second
	DefaultAmoWorkers              = 4
	DefaultAmoListen               = ":8103"
	DefaultAmoLinkTTL              = 90 * 24 * time.Hour
)

// DefaultAmo is the amo section before the file is read.
func DefaultAmo() Amo {
	return Amo{
		Auth:                 "oauth",
		Source:               DefaultAmoSource,
		RateLimit:            DefaultAmoRateLimit,
		RequestTimeout:       DefaultAmoRequestTimeout,
		AccountCheckInterval: DefaultAmoAccountCheckInterval,
		Workers:              DefaultAmoWorkers,
		Users:                []AmoUser{}, // not nil: the file round trip writes and reads []
		UnknownNumbers:       "unsorted",
		LeadName:             "Call from {phone}",
		MissedCallTask:       AmoTask{Deadline: time.Hour, Text: "Call back {phone}: missed call", TaskTypeID: 1},
		Notify:               true,
		Recordings:           AmoRecordings{Dir: "/var/spool/asterisk/monitor", LinkTTL: DefaultAmoLinkTTL},
		Widget:               AmoWidget{RingTimeout: 30 * time.Second},
		Listen:               DefaultAmoListen,
	}
}

// Validate checks the amo section alone.
func (a Amo) Validate() error { return a.problems("amo").err() }

// UserOf returns the amoCRM user of an extension, or 0.
func (a Amo) UserOf(extension string) int {
	for _, u := range a.Users {
		if u.Extension == extension {
			return u.UserID
		}
	}
	return 0
}

// ExtensionOf returns the extension of an amoCRM user, or "".
func (a Amo) ExtensionOf(userID int) string {
	for _, u := range a.Users {
		if u.UserID == userID {
			return u.Extension
		}
	}
	return ""
}

func (a Amo) problems(p string) Problems {
	var ps Problems
	u, err := url.Parse(a.Account)
	switch {
	case a.Account == "" || err != nil || u.Scheme == "" || u.Host == "":
		ps.add(p+".account", "%q is not the account's address: write it as https://company.amocrm.ru", a.Account)
	case u.Scheme != "https" && u.Scheme != "http":
		ps.add(p+".account", "%q: scheme %q: write it as https://company.amocrm.ru", a.Account, u.Scheme)
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
		ps.add(p+".account", "%q has a path: write only the account's address, https://%s", a.Account, u.Host)
	}
	switch a.Auth {
	case "oauth":
		if a.ClientID == "" {
			ps.add(p+".client_id", "not set: copy the integration ID from the integration's \"Keys and scopes\" tab")
		}
		if a.ClientSecret.IsZero() {
			ps.add(p+".client_secret", "not set: copy the secret key from the integration's \"Keys and scopes\" tab, or set %sAMO_CLIENT_SECRET", EnvPrefix)
		}
		if ru, err := url.Parse(a.RedirectURI); a.RedirectURI == "" || err != nil || ru.Scheme == "" || ru.Host == "" {
			ps.add(p+".redirect_uri", "%q is not a URL: write the redirect URI the integration was registered with, e.g. https://pbx.example.com/amo/oauth", a.RedirectURI)
		}
	case "long_lived":
		if a.LongLivedToken.IsZero() {
			ps.add(p+".long_lived_token", "not set: make a long-lived token in the integration's \"Keys and scopes\" tab and write it here, or set %sAMO_LONG_LIVED_TOKEN", EnvPrefix)
		}
	default:
		ps.add(p+".auth", "%q is not an auth mode: write oauth (an integration with refreshed tokens) or long_lived (a private integration's long-lived token)", a.Auth)
	}
	if strings.TrimSpace(a.Source) == "" {
		ps.add(p+".source", "empty: write the name calls carry in amoCRM, e.g. %s", DefaultAmoSource)
	}
	if a.RateLimit < 1 || a.RateLimit > 50 {
		ps.add(p+".rate_limit", "%d is out of range: write the account's requests per second, 1 to 50 (amoCRM allows %d)", a.RateLimit, DefaultAmoRateLimit)
	}
	checkPositive(&ps, p+".request_timeout", a.RequestTimeout.String(), a.RequestTimeout > 0, "20s")
	checkPositive(&ps, p+".account_check_interval", a.AccountCheckInterval.String(), a.AccountCheckInterval > 0, "30s")
	if a.Workers < 1 || a.Workers > 64 {
		ps.add(p+".workers", "%d is out of range: write 1 to 64, e.g. %d", a.Workers, DefaultAmoWorkers)
	}
	seen := map[string]int{}
	for i, u := range a.Users {
		path := fmt.Sprintf("%s.users[%d]", p, i)
		if !allDigits(u.Extension) {
			ps.add(path+".extension", "%q is not an extension number: write digits, e.g. 101", u.Extension)
		} else if j, dup := seen[u.Extension]; dup {
			ps.add(path+".extension", "%q is also users[%d]: an extension belongs to one user; remove one", u.Extension, j)
		}
		seen[u.Extension] = i
		if u.UserID <= 0 {
			ps.add(path+".user_id", "%d is not an amoCRM user id: write the id from GET /api/v4/users (admin lists them)", u.UserID)
		}
	}
	if a.DefaultUserID < 0 {
		ps.add(p+".default_user_id", "%d is negative: write an amoCRM user id, or 0 to leave it to amoCRM", a.DefaultUserID)
	}
	switch a.UnknownNumbers {
	case "unsorted", "contact", "none":
	default:
		ps.add(p+".unknown_numbers", "%q is not a choice: write unsorted (an incoming lead in Unsorted), contact (a contact and a lead) or none", a.UnknownNumbers)
	}
	if a.PipelineID < 0 {
		ps.add(p+".pipeline_id", "%d is negative: write a pipeline id, or 0 for the main pipeline", a.PipelineID)
	}
	if a.UnknownNumbers == "contact" && strings.TrimSpace(a.LeadName) == "" {
		ps.add(p+".lead_name", "empty: write the name of new leads, e.g. \"Call from {phone}\"")
	}
	if t := a.MissedCallTask; t.Enabled {
		checkPositive(&ps, p+".missed_call_task.deadline", t.Deadline.String(), t.Deadline > 0, "1h")
		if strings.TrimSpace(t.Text) == "" {
			ps.add(p+".missed_call_task.text", "empty: write the task's text, e.g. \"Call back {phone}\"")
		}
		if t.TaskTypeID < 1 {
			ps.add(p+".missed_call_task.task_type_id", "%d is not a task type: write 1 (follow-up) or the id of one of the account's types", t.TaskTypeID)
		}
	}
	if r := a.Recordings; r.PublicURL != "" {
		pu, err := url.Parse(r.PublicURL)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.RawQuery != "" {
			ps.add(p+".recordings.public_url", "%q is not a URL: write where amoCRM reaches this connector, e.g. https://pbx.example.com/amo", r.PublicURL)
		}
		if r.Dir == "" || !strings.HasPrefix(r.Dir, "/") {
			ps.add(p+".recordings.dir", "%q is not an absolute folder: write where the recordings are mounted, e.g. /var/spool/asterisk/monitor", r.Dir)
		}
		if r.LinkTTL < time.Hour {
			ps.add(p+".recordings.link_ttl", "%s is too short for a link amoCRM keeps for ever: write at least 1h, e.g. 2160h (90 days)", r.LinkTTL)
		}
		if len(r.SigningKey.Reveal()) < 32 {
			ps.add(p+".recordings.signing_key", "missing or shorter than 32 characters: write a random key, e.g. the output of `openssl rand -hex 32`, or set %sAMO_RECORDINGS_SIGNING_KEY", EnvPrefix)
		}
	}
	if a.Widget.RingTimeout < 5*time.Second || a.Widget.RingTimeout > 5*time.Minute {
		ps.add(p+".widget.ring_timeout", "%s is out of range: write 5s to 5m, e.g. 30s", a.Widget.RingTimeout)
	}
	checkHostPort(&ps, p+".listen", a.Listen, 8103, true)
	return ps
}

func allDigits(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
