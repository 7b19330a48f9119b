package bitrix

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// caller is who makes a REST call: an application's access token or an incoming webhook.
type caller struct {
	webhook     bool
	clientID    string // application (OAuth)
	userID      int
	accessToken string
	secret      string // webhook
	scope       map[string]bool
	key         string // operating-time account: app:<client_id> or hook:<user_id>
}

func scopeSet(scope string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.FieldsFunc(scope, func(r rune) bool { return r == ',' || r == ' ' }) {
		m[strings.TrimSpace(s)] = true
	}
	return m
}

// authenticate checks a REST call's credentials: the webhook in the path, or the `auth`
// parameter holding an access token (reference §1.1, system errors §1.12).
func (s *Server) authenticate(rt route, p params) (*caller, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt.webhook {
		for _, w := range s.webhooks {
			if w.UserID == rt.userID && w.Secret == rt.secret {
				scope := w.Scope
				if len(scope) == 0 {
					scope = []string{"crm", "telephony", "user"}
				}
				return &caller{webhook: true, userID: w.UserID, secret: w.Secret,
					scope: scopeSet(strings.Join(scope, ",")), key: fmt.Sprintf("hook:%d", w.UserID)}, nil
			}
		}
		return nil, errInvalidCredentials()
	}
	tok := p.s("auth")
	if tok == "" {
		return nil, errNoAuth()
	}
	t, ok := s.access[tok]
	if !ok || t.Revoked {
		return nil, errInvalidToken()
	}
	if !s.nowLocked().Before(t.Expires) {
		return nil, errExpiredToken()
	}
	a := s.apps[t.ClientID]
	return &caller{clientID: t.ClientID, userID: t.UserID, accessToken: tok, scope: scopeSet(a.scope),
		key: "app:" + t.ClientID}, nil
}

// InstallOptions choose the application and user of an installation; zero values take the
// portal's application and its first administrator (or first user).
type InstallOptions struct {
	ClientID     string
	ClientSecret string
	UserID       int
	Scope        string
}

// Install is an installed application as its install handler learns it (ONAPPINSTALL).
type Install struct {
	ClientID         string
	ClientSecret     string
	MemberID         string
	Domain           string
	ApplicationToken string
	AccessToken      string
	RefreshToken     string
	Expires          time.Time
	ExpiresIn        int
	ClientEndpoint   string // <simulator>/rest/
	ServerEndpoint   string
	UserID           int
	Scope            string
	Status           string // L: local application
}

// IssueInstall installs (or reinstalls) an application: a new application_token and a new token
// pair for the installing user.
func (s *Server) IssueInstall(o InstallOptions) (Install, error) {
	base := s.baseURL(nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.ClientID == "" {
		o.ClientID = s.opts.ClientID
	}
	a, ok := s.apps[o.ClientID]
	if !ok {
		if o.ClientSecret == "" {
			return Install{}, fmt.Errorf("bitrix: install %s: a new application needs a client secret", o.ClientID)
		}
		a = &app{clientID: o.ClientID, secret: o.ClientSecret, scope: s.opts.Scope, restAppID: len(s.apps) + 1}
		s.apps[o.ClientID] = a
	}
	if o.Scope != "" {
		a.scope = o.Scope
	}
	if o.UserID == 0 {
		o.UserID = s.defaultUserLocked()
	}
	a.userID, a.installed, a.appToken = o.UserID, true, randHex(16)
	at, rt := s.issuePairLocked(a.clientID, o.UserID)
	return s.installLocked(a, at, rt, base), nil
}

func (s *Server) installLocked(a *app, at, rt *Token, base string) Install {
	return Install{
		ClientID: a.clientID, ClientSecret: a.secret, MemberID: s.opts.MemberID, Domain: s.domain(base),
		ApplicationToken: a.appToken, AccessToken: at.Value, RefreshToken: rt.Value,
		Expires: at.Expires, ExpiresIn: int(s.opts.AccessTokenTTL / time.Second),
		ClientEndpoint: base + "/rest/", ServerEndpoint: base + "/rest/",
		UserID: at.UserID, Scope: a.scope, Status: "L",
	}
}

func (s *Server) defaultUserLocked() int {
	for _, u := range s.users {
		if u.Admin && !u.Inactive {
			return u.ID
		}
	}
	if len(s.users) > 0 {
		return s.users[0].ID
	}
	return 1
}

func (s *Server) issuePairLocked(clientID string, userID int) (access, refresh *Token) {
	now := s.nowLocked()
	access = &Token{Kind: "access", Value: randHex(16), ClientID: clientID, UserID: userID, Expires: now.Add(s.opts.AccessTokenTTL)}
	refresh = &Token{Kind: "refresh", Value: randHex(16), ClientID: clientID, UserID: userID, Expires: now.Add(s.opts.RefreshTokenTTL)}
	s.access[access.Value] = access
	s.refresh[refresh.Value] = refresh
	s.tokens = append(s.tokens, access, refresh)
	return access, refresh
}

// IssueCode makes an authorization code (the `code` the portal hands the application after
// the user authorises it), valid for Options.CodeTTL (30 s).
func (s *Server) IssueCode(clientID string, userID int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if clientID == "" {
		clientID = s.opts.ClientID
	}
	if userID == 0 {
		userID = s.defaultUserLocked()
	}
	c := randHex(16)
	s.codes[c] = &authCode{clientID: clientID, userID: userID, expires: s.nowLocked().Add(s.opts.CodeTTL)}
	return c
}

// ExpireTokens makes every access token issued so far expired (refresh tokens stay valid).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	for _, t := range s.access {
		if t.Expires.After(now) {
			t.Expires = now.Add(-time.Second)
		}
	}
}

// Tokens lists every token issued, in issue order.
func (s *Server) Tokens() []Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Token, len(s.tokens))
	for i, t := range s.tokens {
		out[i] = *t
	}
	return out
}

// tokenAnswer is the OAuth server's answer (settings/oauth/auto-renewal.md, reference §1.1).
type tokenAnswer struct {
	AccessToken    string `json:"access_token"`
	Expires        int64  `json:"expires"`
	ExpiresIn      int    `json:"expires_in"`
	Scope          string `json:"scope"`
	Domain         string `json:"domain"`
	ServerEndpoint string `json:"server_endpoint"`
	Status         string `json:"status"`
	ClientEndpoint string `json:"client_endpoint"`
	MemberID       string `json:"member_id"`
	UserID         int    `json:"user_id"`
	RefreshToken   string `json:"refresh_token"`
}

// oauthToken is oauth.bitrix.info's /oauth/token/: authorization_code and refresh_token grants,
// by GET query as documented (a POSTed form is accepted too). Errors use the codes of
// settings/oauth/error-codes.md; their descriptions and HTTP statuses are not documented.
func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	q := parseForm(r.URL.RawQuery)
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		if b, err := io.ReadAll(r.Body); err == nil {
			parseFormInto(q, string(b))
		}
	}
	p := params{q}
	grant, clientID, secret := p.s("grant_type"), p.s("client_id"), p.s("client_secret")
	fail := func(status int, code, desc string) { writeErr(w, &apiError{status, code, desc}) }
	if grant != "authorization_code" && grant != "refresh_token" {
		fail(http.StatusBadRequest, "invalid_request", "Unsupported or missing grant_type")
		return
	}
	base := s.baseURL(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[clientID]
	if !ok || a.secret != secret {
		fail(http.StatusUnauthorized, "invalid_client", "Invalid client credentials")
		return
	}
	now := s.nowLocked()
	var userID int
	switch grant {
	case "authorization_code":
		c, ok := s.codes[p.s("code")]
		if !ok || c.clientID != clientID || !now.Before(c.expires) {
			fail(http.StatusBadRequest, "invalid_grant", "Authorization code is invalid or expired")
			return
		}
		delete(s.codes, p.s("code")) // a code is good once
		userID = c.userID
		if !a.installed {
			a.installed, a.userID, a.appToken = true, userID, randHex(16)
		}
	case "refresh_token":
		t, ok := s.refresh[p.s("refresh_token")]
		if !ok || t.ClientID != clientID || t.Revoked || !now.Before(t.Expires) {
			fail(http.StatusBadRequest, "invalid_grant", "Refresh token is invalid, expired or already used")
			return
		}
		if !s.opts.KeepUsedRefreshTokens {
			t.Revoked = true
		}
		userID = t.UserID
	}
	at, rt := s.issuePairLocked(clientID, userID)
	inst := s.installLocked(a, at, rt, base)
	writeJSON(w, http.StatusOK, tokenAnswer{
		AccessToken: at.Value, Expires: at.Expires.Unix(), ExpiresIn: inst.ExpiresIn, Scope: a.scope,
		Domain: inst.Domain, ServerEndpoint: inst.ServerEndpoint, Status: "L",
		ClientEndpoint: inst.ClientEndpoint, MemberID: inst.MemberID, UserID: userID, RefreshToken: rt.Value,
	})
}

// AddWebhook creates an incoming webhook.
func (s *Server) AddWebhook(w Webhook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhooks = slices.DeleteFunc(s.webhooks, func(x Webhook) bool { return x.UserID == w.UserID && x.Secret == w.Secret })
	s.webhooks = append(s.webhooks, w)
}
