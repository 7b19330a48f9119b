package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Bitrix is connector-bx's section: how it reaches the Bitrix24 portal and the rules it applies.
// Read when crm is bitrix. Lists are used rather than maps so every entry has a fixed shape (and
// the environment overrides stay one variable per key).
type Bitrix struct {
	// Portal is the portal's address, e.g. https://company.bitrix24.ru.
	Portal string `yaml:"portal"`
	// Mode is "app" (a local application with OAuth 2.0: the main mode; telephony register and
	// finish work only in an application's context) or "webhook" (an incoming webhook URL).
	Mode string `yaml:"mode"`
	// App is the local application (mode app).
	App BitrixApp `yaml:"app"`
	// Webhook is the incoming webhook (mode webhook).
	Webhook BitrixWebhook `yaml:"webhook"`
	// Listen is where the connector takes Bitrix24's calls: the application's install handler
	// and its events (click-to-call). It must be reachable from the portal (a reverse proxy
	// with HTTPS in front); the health server (http.connector-bx) stays private.
	Listen string `yaml:"listen"`
	// PublicURL is the address the portal reaches Listen at (https://connector.example.com). At
	// install the connector binds the click-to-call event to <public_url>/bitrix/event; empty:
	// bind it by hand (README).
	PublicURL string `yaml:"public_url"`
	// Rate is the portal's request-intensity limit, shared by every replica through Redis.
	Rate BitrixRate `yaml:"rate"`
	// Workers is how many call events are handled at once; while Bitrix24 throttles, the
	// requests of all of them are coalesced into batch requests, so more workers mean fuller
	// batches.
	Workers int `yaml:"workers"`
	// Users maps extensions to Bitrix24 users explicitly; it wins over the users' profiles
	// (UF_PHONE_INNER, read with user.get).
	Users []BitrixUser `yaml:"users"`
	// UsersRefresh is how often the extension → user directory is read again from user.get.
	UsersRefresh time.Duration `yaml:"users_refresh"`
	Calls        BitrixCalls   `yaml:"calls"`
	Missed       BitrixMissed  `yaml:"missed"`
	Leads        BitrixLeads   `yaml:"leads"`
	Skip         BitrixSkip    `yaml:"skip"`
	Recordings   BitrixRecords `yaml:"recordings"`
	ClickToCall  BitrixClick   `yaml:"click_to_call"`
}

// BitrixApp is a local application ("server-side, no interface") of the portal.
type BitrixApp struct {
	ClientID     string `yaml:"client_id"`     // local.xxxxxxxx.xxxxxxxx, from the application's form
	ClientSecret Secret `yaml:"client_secret"` // only ever sent to the OAuth server
	// OAuthServer is Bitrix24's authorization server (https://oauth.bitrix.info).
	OAuthServer string `yaml:"oauth_server"`
}

// BitrixWebhook is the legacy mode: an incoming webhook, plus the outgoing webhook's token for
// click-to-call events.
type BitrixWebhook struct {
	// URL is the incoming webhook, https://company.bitrix24.ru/rest/1/xxxxxxxx/ (holds its secret).
	URL Secret `yaml:"url"`
	// ApplicationToken is the outgoing webhook's token ("Application token" in its form), checked
	// on every event it posts.
	ApplicationToken Secret `yaml:"application_token"`
}

// BitrixRate is Bitrix24's leaky bucket (limits.md): PerSecond drained, Burst at most.
// Cloud plans: 2 and 50; Enterprise: 5 and 250.
type BitrixRate struct {
	PerSecond int `yaml:"per_second"`
	Burst     int `yaml:"burst"`
	// MaxPause is how long a request waits in place for a method that Bitrix24 blocked
	// (429 OPERATION_TIME_LIMIT); a longer block returns the event to the retry queue instead.
	MaxPause time.Duration `yaml:"max_pause"`
}

// BitrixUser is one explicit extension → user mapping.
type BitrixUser struct {
	Extension string `yaml:"extension"`
	UserID    int    `yaml:"user_id"`
}

// BitrixCalls are the rules of the call itself.
type BitrixCalls struct {
	// Internal is what happens to calls between two extensions: skip (default) or register.
	Internal string `yaml:"internal"`
	// ShowCard is when an employee's screen shows the call card: ringing (each phone that rings),
	// answered (only who answers), or never.
	ShowCard string `yaml:"show_card"`
	// FinishUser is whom an answered call is finished for (and so who becomes responsible for a
	// lead it created): last (who talked last, after transfers) or first (who answered first).
	FinishUser string `yaml:"finish_user"`
	// Chat is ADD_TO_CHAT: a message about the call in the employee's chat.
	Chat bool `yaml:"chat"`
	// NumberFormat is how numbers are sent to Bitrix24: e164 (+79161234567), digits
	// (79161234567) or national (89161234567), after the classify.country rules.
	NumberFormat string `yaml:"number_format"`
}

// BitrixMissed says who is responsible for a missed inbound call.
type BitrixMissed struct {
	// Responsible is first_rang (the first extension that rang), default (DefaultUserID) or crm
	// (the responsible of the CRM entity with the caller's number, via searchCrmEntities; else
	// the first that rang).
	Responsible string `yaml:"responsible"`
	// DefaultUserID is the user of responsible: default, and the last resort of the others.
	DefaultUserID int `yaml:"default_user_id"`
	// Lines gives a line its own responsible for missed calls; it wins over Responsible.
	Lines []BitrixLineUser `yaml:"lines"`
}

// BitrixLineUser is a line's own user.
type BitrixLineUser struct {
	Line   string `yaml:"line"`
	UserID int    `yaml:"user_id"`
}

// BitrixLeads says when Bitrix24 creates a lead for a number it does not know (CRM_CREATE).
type BitrixLeads struct {
	Inbound  bool   `yaml:"inbound"`
	Outbound bool   `yaml:"outbound"`
	Source   string `yaml:"source"` // CRM_SOURCE: a STATUS_ID of crm.status.list ENTITY_ID=SOURCE, e.g. CALL
	// Lines overrides the rule for calls on one line.
	Lines []BitrixLeadLine `yaml:"lines"`
}

// BitrixLeadLine is the lead rule of one line.
type BitrixLeadLine struct {
	Line     string `yaml:"line"`
	Inbound  bool   `yaml:"inbound"`
	Outbound bool   `yaml:"outbound"`
	Source   string `yaml:"source"`
}

// BitrixSkip says which calls never reach Bitrix24.
type BitrixSkip struct {
	Numbers []string `yaml:"numbers"`    // outside numbers (black list)
	Lines   []string `yaml:"lines"`      // company lines (black list)
	OnlyLns []string `yaml:"only_lines"` // when set, only calls on these lines (white list)
}

// BitrixRecords says where the recordings Asterisk names in call events are found.
type BitrixRecords struct {
	// Folder is Asterisk's monitor folder as mounted in the connector: files are uploaded.
	Folder string `yaml:"folder"`
	// URLBase is where a web server publishes that folder: Bitrix24 downloads from
	// URLBase + the file's name (it must be reachable from the portal).
	URLBase string `yaml:"url_base"`
	// InlineMax is the largest file sent inside the request (base64); bigger files go through
	// the upload URL.
	InlineMax int `yaml:"inline_max"`
}

// BitrixClick is click-to-call (ONEXTERNALCALLSTART) and the CRM's callback forms
// (ONEXTERNALCALLBACKSTART).
type BitrixClick struct {
	// RingTimeout is how long the employee's phone rings before the call is given up.
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// CallbackUserID is the operator whose phone rings first for a filled callback form; 0: callback
	// forms are not called back (they are logged).
	CallbackUserID int `yaml:"callback_user_id"`
}

// DefaultBitrix is the bitrix section's defaults: the cloud's limits (2/s, burst 50), calls shown
// to each ringing phone, leads for unknown inbound numbers. Lists are empty, not nil: the file round
// trip writes and reads [].
func DefaultBitrix() Bitrix {
	return Bitrix{
		Mode:         "app",
		App:          BitrixApp{OAuthServer: "https://oauth.bitrix.info"},
		Listen:       ":8102",
		Rate:         BitrixRate{PerSecond: 2, Burst: 50, MaxPause: 30 * time.Second},
		Workers:      64,
		Users:        []BitrixUser{},
		UsersRefresh: 10 * time.Minute,
		Calls:        BitrixCalls{Internal: "skip", ShowCard: "ringing", FinishUser: "last", Chat: true, NumberFormat: "e164"},
		Missed:       BitrixMissed{Responsible: "first_rang", Lines: []BitrixLineUser{}},
		Leads:        BitrixLeads{Inbound: true, Lines: []BitrixLeadLine{}},
		Skip:         BitrixSkip{Numbers: []string{}, Lines: []string{}, OnlyLns: []string{}},
		Recordings:   BitrixRecords{InlineMax: 8 << 20},
		ClickToCall:  BitrixClick{RingTimeout: 30 * time.Second},
	}
}

var (
	extensionRE = regexp.MustCompile(`^\d{1,10}$`)
	numberRE    = regexp.MustCompile(`^\+?\d{1,32}$`)
)

func (b Bitrix) problems(p string) Problems {
	var ps Problems
	if u, err := url.Parse(b.Portal); b.Portal == "" || err != nil || u.Scheme == "" || u.Host == "" {
		ps.add(p+".portal", "%q is not the portal's address: write it as https://company.bitrix24.ru", b.Portal)
	}
	switch b.Mode {
	case "app":
		if strings.TrimSpace(b.App.ClientID) == "" {
			ps.add(p+".app.client_id", "not set: copy the client_id (local.…) from the local application's form in Bitrix24 (Developer resources → Other → Local application)")
		}
		if b.App.ClientSecret.IsZero() {
			ps.add(p+".app.client_secret", "not set: copy the client_secret from the local application's form, or set %sBITRIX_APP_CLIENT_SECRET", EnvPrefix)
		}
		if u, err := url.Parse(b.App.OAuthServer); b.App.OAuthServer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ps.add(p+".app.oauth_server", "%q is not a URL: write https://oauth.bitrix.info", b.App.OAuthServer)
		}
	case "webhook":
		// The URL holds the webhook's secret: messages never quote it.
		raw := b.Webhook.URL.Reveal()
		u, err := url.Parse(raw)
		switch {
		case raw == "":
			ps.add(p+".webhook.url", "not set: copy the incoming webhook's URL, https://company.bitrix24.ru/rest/1/xxxxxxxx/ (or better: use mode app)")
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			ps.add(p+".webhook.url", "is not a URL: write https://company.bitrix24.ru/rest/<user id>/<secret>/")
		case !webhookPath(u.Path):
			ps.add(p+".webhook.url", "its path is not /rest/<user id>/<secret>/: copy the whole URL from the incoming webhook's form, without a method name")
		}
	default:
		ps.add(p+".mode", "%q is not a mode: write app (a local application, recommended) or webhook", b.Mode)
	}
	checkHostPort(&ps, p+".listen", b.Listen, 8102, true)
	if b.PublicURL != "" {
		if u, err := url.Parse(b.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ps.add(p+".public_url", "%q is not a URL: write the address Bitrix24 reaches this connector at, e.g. https://connector.example.com", b.PublicURL)
		}
	}
	if b.Rate.PerSecond < 1 || b.Rate.PerSecond > 1000 {
		ps.add(p+".rate.per_second", "%d is out of range: write 2 (cloud plans) or 5 (Enterprise)", b.Rate.PerSecond)
	}
	if b.Rate.Burst < 1 || b.Rate.Burst > 100000 {
		ps.add(p+".rate.burst", "%d is out of range: write 50 (cloud plans) or 250 (Enterprise)", b.Rate.Burst)
	}
	if b.Rate.MaxPause < 0 {
		ps.add(p+".rate.max_pause", "%s is negative: write e.g. 30s (0: never wait in place)", b.Rate.MaxPause)
	}
	if b.Workers < 1 || b.Workers > 1024 {
		ps.add(p+".workers", "%d is out of range: write a number from 1 to 1024, e.g. 64", b.Workers)
	}
	seen := map[string]int{}
	for i, u := range b.Users {
		path := fmt.Sprintf("%s.users[%d]", p, i)
		if !extensionRE.MatchString(u.Extension) {
			ps.add(path+".extension", "%q is not an extension: write its digits, e.g. \"101\"", u.Extension)
		} else if j, dup := seen[u.Extension]; dup {
			ps.add(path+".extension", "%q is mapped twice (also users[%d]): keep one", u.Extension, j)
		}
		seen[u.Extension] = i
		if u.UserID < 1 {
			ps.add(path+".user_id", "%d is not a Bitrix24 user id: write the number from the user's profile URL (/company/personal/user/<id>/)", u.UserID)
		}
	}
	if b.UsersRefresh < time.Minute {
		ps.add(p+".users_refresh", "%s is too often (user.get costs requests): write 1m or more, e.g. 10m", b.UsersRefresh)
	}
	oneOf(&ps, p+".calls.internal", b.Calls.Internal, "skip", "register")
	oneOf(&ps, p+".calls.show_card", b.Calls.ShowCard, "ringing", "answered", "never")
	oneOf(&ps, p+".calls.finish_user", b.Calls.FinishUser, "last", "first")
	oneOf(&ps, p+".calls.number_format", b.Calls.NumberFormat, "e164", "digits", "national")
	oneOf(&ps, p+".missed.responsible", b.Missed.Responsible, "first_rang", "default", "crm")
	if b.Missed.DefaultUserID < 0 {
		ps.add(p+".missed.default_user_id", "%d is negative: write a Bitrix24 user id, or 0 for none", b.Missed.DefaultUserID)
	}
	if b.Missed.Responsible == "default" && b.Missed.DefaultUserID == 0 {
		ps.add(p+".missed.default_user_id", "not set, but missed.responsible is default: write the id of the user missed calls go to")
	}
	for i, l := range b.Missed.Lines {
		path := fmt.Sprintf("%s.missed.lines[%d]", p, i)
		checkNumber(&ps, path+".line", l.Line)
		if l.UserID < 1 {
			ps.add(path+".user_id", "%d is not a Bitrix24 user id: write the id of the user this line's missed calls go to", l.UserID)
		}
	}
	checkSource(&ps, p+".leads.source", b.Leads.Source)
	for i, l := range b.Leads.Lines {
		path := fmt.Sprintf("%s.leads.lines[%d]", p, i)
		checkNumber(&ps, path+".line", l.Line)
		checkSource(&ps, path+".source", l.Source)
	}
	for i, n := range b.Skip.Numbers {
		checkNumber(&ps, fmt.Sprintf("%s.skip.numbers[%d]", p, i), n)
	}
	for i, n := range b.Skip.Lines {
		checkNumber(&ps, fmt.Sprintf("%s.skip.lines[%d]", p, i), n)
	}
	for i, n := range b.Skip.OnlyLns {
		checkNumber(&ps, fmt.Sprintf("%s.skip.only_lines[%d]", p, i), n)
	}
	if b.Recordings.Folder != "" && b.Recordings.URLBase != "" {
		ps.add(p+".recordings.url_base", "set together with recordings.folder: keep one (folder uploads the files, url_base lets Bitrix24 download them)")
	}
	if b.Recordings.Folder != "" && !strings.HasPrefix(b.Recordings.Folder, "/") {
		ps.add(p+".recordings.folder", "%q is not an absolute path: write the folder as mounted in the container, e.g. /var/spool/asterisk/monitor", b.Recordings.Folder)
	}
	if b.Recordings.URLBase != "" {
		if u, err := url.Parse(b.Recordings.URLBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ps.add(p+".recordings.url_base", "%q is not a URL: write e.g. https://pbx.example.com/recordings/", b.Recordings.URLBase)
		}
	}
	if b.Recordings.InlineMax < 0 {
		ps.add(p+".recordings.inline_max", "%d is negative: write a size in bytes, e.g. 8388608 (0: always use the upload URL)", b.Recordings.InlineMax)
	}
	if b.ClickToCall.CallbackUserID < 0 {
		ps.add(p+".click_to_call.callback_user_id", "%d is negative: write the id of the operator who calls back, or 0 for none", b.ClickToCall.CallbackUserID)
	}
	if b.ClickToCall.RingTimeout < 5*time.Second || b.ClickToCall.RingTimeout > 5*time.Minute {
		ps.add(p+".click_to_call.ring_timeout", "%s is out of range: write 5s to 5m, e.g. 30s", b.ClickToCall.RingTimeout)
	}
	return ps
}

// Validate checks the bitrix section alone (connector-bx reads it with the shared sections).
func (b Bitrix) Validate() error { return b.problems("bitrix").err() }

// webhookPath is /rest/<digits>/<secret>/ (trailing slash optional).
func webhookPath(p string) bool {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	return len(parts) == 3 && parts[0] == "rest" && extensionRE.MatchString(parts[1]) && parts[2] != ""
}

func oneOf(ps *Problems, path, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		ps.add(path, "%q is not one of %s: write one of them", v, strings.Join(allowed, ", "))
	}
}

func checkNumber(ps *Problems, path, n string) {
	if !numberRE.MatchString(n) {
		ps.add(path, "%q is not a phone number: write digits with an optional leading +, e.g. +74951234567", n)
	}
}

func checkSource(ps *Problems, path, s string) {
	if strings.ContainsAny(s, " \t\r\n&?=") {
		ps.add(path, "%q is not a source id: write a STATUS_ID of crm.status.list (ENTITY_ID SOURCE), e.g. CALL", s)
	}
}
