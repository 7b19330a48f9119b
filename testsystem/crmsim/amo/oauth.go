package amo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// tokens is the OAuth state of the account (Server.mu guards it).
type tokens struct {
	access    map[string]*accessToken
	refresh   map[string]*refreshToken
	codes     map[string]*authCode
	longLived map[string]bool
}

type accessToken struct {
	expires time.Time
	revoked bool
	user    int
}

type refreshToken struct {
	expires time.Time
	used    bool // a used refresh token is revoked: rotation
	access  string
	user    int
}

type authCode struct {
	expires time.Time
	used    bool
	user    int
}

func newTokens(longLived []string) tokens {
	t := tokens{
		access:    map[string]*accessToken{},
		refresh:   map[string]*refreshToken{},
		codes:     map[string]*authCode{},
		longLived: map[string]bool{},
	}
	for _, l := range longLived {
		t.longLived[l] = true
	}
	return t
}

// TokenResponse is the body of POST /oauth2/access_token.
type TokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ServerTime   int64  `json:"server_time"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// Install is an installed integration as the connector's admin would enter it: the keys and a
// first token pair.
type Install struct {
	Integration
	Subdomain string
	TokenResponse
}

// IssueTokens installs the integration for the account's first (admin) user and returns the
// keys with a fresh access/refresh pair, as the authorization-code exchange would.
func (s *Server) IssueTokens() Install {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Install{Integration: s.opts.Integration, Subdomain: s.opts.Account.Subdomain, TokenResponse: s.issueLocked(s.st.users[0].ID)}
}

// AuthorizationCode is a fresh authorization code (what the integration's settings show, or
// what the install redirect carries), valid for CodeTTL and once.
func (s *Server) AuthorizationCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := "def50200" + randomString(48)
	s.auth.codes[c] = &authCode{expires: s.now().Add(s.opts.CodeTTL), user: s.st.users[0].ID}
	return c
}

// LongLivedToken makes a long-lived token (private integrations: no refresh, acts as the
// admin), accepted as a Bearer token until the server ends.
func (s *Server) LongLivedToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := "ll." + randomString(40)
	s.auth.longLived[t] = true
	return t
}

// ExpireAccessTokens makes every access token issued so far expired (refresh tokens stay valid).
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for _, a := range s.auth.access {
		a.expires = past
	}
}

// ExpireRefreshTokens makes every refresh token issued so far expired (the 3 months passed).
func (s *Server) ExpireRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for _, r := range s.auth.refresh {
		r.expires = past
	}
}

// RevokeTokens revokes every token, as uninstalling the integration does.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.auth.access {
		a.revoked = true
	}
	for _, r := range s.auth.refresh {
		r.used = true
	}
	clear(s.auth.longLived)
}

func (s *Server) issueLocked(user int) TokenResponse {
	now := s.now()
	at, rt := "at."+randomString(40), "def50200"+randomString(64)
	s.auth.access[at] = &accessToken{expires: now.Add(s.opts.AccessTokenTTL), user: user}
	s.auth.refresh[rt] = &refreshToken{expires: now.Add(s.opts.RefreshTokenTTL), access: at, user: user}
	return TokenResponse{
		TokenType:    "Bearer",
		ExpiresIn:    int(s.opts.AccessTokenTTL / time.Second),
		ServerTime:   now.Unix(),
		AccessToken:  at,
		RefreshToken: rt,
	}
}

// authorize checks the Bearer token of an API request and returns the user it acts for.
func (s *Server) authorize(r *http.Request) (int, *Problem) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	tok = strings.TrimSpace(tok)
	unauthorized := httpProblem(http.StatusUnauthorized, defaultDetails[http.StatusUnauthorized])
	if !ok || tok == "" {
		return 0, &unauthorized
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auth.longLived[tok] {
		return s.st.users[0].ID, nil
	}
	a := s.auth.access[tok]
	if a == nil || a.revoked || !s.now().Before(a.expires) {
		return 0, &unauthorized
	}
	return a.user, nil
}

// tokenRequest is the body of POST /oauth2/access_token: JSON (as the docs show) or a form (as
// OAuth clients send).
type tokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	GrantType    string `json:"grant_type"`
	Code         string `json:"code"`
	RefreshToken string `json:"refresh_token"`
	RedirectURI  string `json:"redirect_uri"`
}

func parseTokenRequest(r *http.Request) (tokenRequest, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return tokenRequest{}, false
	}
	var tr tokenRequest
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f, err := url.ParseQuery(string(body))
		if err != nil {
			return tokenRequest{}, false
		}
		tr = tokenRequest{f.Get("client_id"), f.Get("client_secret"), f.Get("grant_type"), f.Get("code"), f.Get("refresh_token"), f.Get("redirect_uri")}
		return tr, true
	}
	if json.Unmarshal(body, &tr) != nil {
		return tokenRequest{}, false
	}
	return tr, true
}

// handleToken is POST /oauth2/access_token: the authorization-code exchange and the refresh.
// A refresh token works once: the refresh returns a new pair, revokes the used refresh token
// (and, by default, its access token); using it again gives 401 "Token has been revoked". Two
// refreshes racing with one token: the lock makes exactly one win.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	tr, ok := parseTokenRequest(r)
	if !ok {
		writeProblem(w, oauthProblem("The request is not valid JSON or form"))
		return
	}
	in := s.opts.Integration
	if tr.ClientID != in.ClientID || tr.ClientSecret != in.ClientSecret {
		writeProblem(w, invalidClient())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch tr.GrantType {
	case "authorization_code":
		if tr.Code == "" {
			writeProblem(w, oauthProblem(hintMissingCode))
			return
		}
		c := s.auth.codes[tr.Code]
		switch {
		case c == nil:
			writeProblem(w, oauthProblem(hintCodeUnknown))
			return
		case c.used:
			writeProblem(w, oauthProblem(hintCodeRevoked))
			return
		case !now.Before(c.expires):
			writeProblem(w, oauthProblem(hintCodeExpired))
			return
		case tr.RedirectURI != "" && tr.RedirectURI != in.RedirectURI:
			writeProblem(w, oauthProblem(hintRedirectURI))
			return
		}
		c.used = true
		writeSecret(w, r, s.issueLocked(c.user))
	case "refresh_token":
		if tr.RefreshToken == "" {
			writeProblem(w, oauthProblem(hintMissingRefresh))
			return
		}
		rt := s.auth.refresh[tr.RefreshToken]
		switch {
		case rt == nil:
			writeProblem(w, oauthProblem(hintUndecryptable))
			return
		case rt.used:
			writeProblem(w, oauthProblem(hintRevoked))
			return
		case !now.Before(rt.expires):
			writeProblem(w, oauthProblem(hintExpired))
			return
		}
		rt.used = true
		if a := s.auth.access[rt.access]; a != nil && !s.opts.KeepAccessTokenOnRefresh {
			a.revoked = true
		}
		writeSecret(w, r, s.issueLocked(rt.user))
	default:
		writeProblem(w, unsupportedGrant())
	}
}

// rawWriterKey carries the ResponseWriter from before the journal's recorder.
type rawWriterKey struct{}

// writeSecret answers with tokens without letting them into the journal: the status goes
// through the recorder (so the journal has it), the body straight to the client.
func writeSecret(w http.ResponseWriter, r *http.Request, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	raw, ok := r.Context().Value(rawWriterKey{}).(http.ResponseWriter)
	if !ok {
		raw = w
	}
	_ = json.NewEncoder(raw).Encode(v)
}
