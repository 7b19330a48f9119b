package bitrix

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
)

// Tokens is the application's installation on the portal as stored in Redis: the OAuth pair and
// the application_token that authenticates the portal's events. Its String never shows a token;
// the values go only into requests.
type Tokens struct {
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	Expires          time.Time `json:"expires"`
	ApplicationToken string    `json:"application_token"`
	MemberID         string    `json:"member_id"`
	Domain           string    `json:"domain"`
	UserID           int       `json:"user_id"`
	InstalledAt      time.Time `json:"installed_at"`
	RefreshedAt      time.Time `json:"refreshed_at,omitempty"`
}

// String describes the installation without its secrets.
func (t Tokens) String() string {
	return fmt.Sprintf("installation of %s (member %s, user %d, installed %s, access token expires %s)",
		t.Domain, t.MemberID, t.UserID, t.InstalledAt.UTC().Format(time.RFC3339), t.Expires.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the tokens.
func (t Tokens) GoString() string { return t.String() }

// TokenStore keeps the installation in Redis, one key per portal, so every replica uses the same
// pair and a refresh by one is seen by all.
type TokenStore struct {
	st  *store.Store
	key string
}

// NewTokenStore stores under <prefix>:<portal host>:oauth.
func NewTokenStore(st *store.Store, prefix, portal string) *TokenStore {
	return &TokenStore{st: st, key: prefix + ":" + portalHost(portal) + ":oauth"}
}

// Load returns the stored installation; found is false before the application was installed.
func (s *TokenStore) Load(ctx context.Context) (t Tokens, found bool, err error) {
	found, err = s.st.GetJSON(ctx, s.key, &t)
	if err != nil {
		return Tokens{}, false, fmt.Errorf("loading the bitrix24 installation: %w", err)
	}
	return t, found, nil
}

// Save stores the installation with no expiry: the refresh token lives 180 days, and losing it
// means installing the application again.
func (s *TokenStore) Save(ctx context.Context, t Tokens) error {
	if err := s.st.SetJSON(ctx, s.key, t, 0); err != nil {
		return fmt.Errorf("saving the bitrix24 installation: %w", err)
	}
	return nil
}

// Delete forgets the installation (the application was uninstalled).
func (s *TokenStore) Delete(ctx context.Context) error {
	return s.st.Delete(ctx, s.key)
}

// lockKey serializes refreshes across replicas: a refresh token is single-use, so two replicas
// refreshing at once would leave one of them, and perhaps the stored pair, with a dead token.
func (s *TokenStore) lockKey() string { return s.key + ":lock" }

// oauthServer is Bitrix24's authorization server (oauth.bitrix.info).
type oauthServer struct {
	base     string
	clientID string
	secret   config.Secret
	http     *http.Client
}

// tokenAnswer is the OAuth server's answer (settings/oauth/auto-renewal.md).
type tokenAnswer struct {
	AccessToken    string          `json:"access_token"`
	RefreshToken   string          `json:"refresh_token"`
	Expires        json.Number     `json:"expires"`
	ExpiresIn      json.Number     `json:"expires_in"`
	Domain         string          `json:"domain"`
	MemberID       string          `json:"member_id"`
	ClientEndpoint string          `json:"client_endpoint"`
	UserID         json.Number     `json:"user_id"`
	Error          json.RawMessage `json:"error"`
	ErrorDesc      json.RawMessage `json:"error_description"`
}

// refresh trades a refresh token for a new pair. The old refresh token is dead afterwards.
func (o *oauthServer) refresh(ctx context.Context, refreshToken string) (tokenAnswer, error) {
	const method = "oauth refresh"
	q := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {o.clientID},
		"client_secret": {o.secret.Reveal()},
		"refresh_token": {refreshToken},
	}
	// GET with the query, as documented; errors never quote the URL (transportError).
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(o.base, "/")+"/oauth/token/?"+q.Encode(), nil)
	if err != nil {
		return tokenAnswer{}, &Error{Method: method, Kind: Permanent, Description: "bad oauth_server address"}
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return tokenAnswer{}, transportError(method, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tokenAnswer{}, transportError(method, err)
	}
	var ans tokenAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return tokenAnswer{}, classify(method, resp.StatusCode, "", "the OAuth server's answer is not JSON: "+excerpt(body))
	}
	if code := jsonText(ans.Error); code != "" || resp.StatusCode != http.StatusOK || ans.AccessToken == "" || ans.RefreshToken == "" {
		e := classify(method, resp.StatusCode, code, jsonText(ans.ErrorDesc))
		switch code {
		case "invalid_grant":
			e.Kind = Auth
			e.Hint = "Bitrix24 refused the refresh token (expired after 180 days, or used by another copy of the connector): install the application again in Bitrix24"
		case "invalid_client":
			e.Kind = Auth
			e.Hint = "Bitrix24 does not know this client_id/client_secret: copy both again from the local application's form into bitrix.app"
		case "PAYMENT_REQUIRED":
			e.Kind = Auth
			e.Hint = "the application's paid period ended: renew it in Bitrix24"
		case "":
			if e.Kind == Permanent {
				e.Kind = Retry
				e.Description = "the OAuth server answered without tokens: " + excerpt(body)
			}
		}
		return tokenAnswer{}, e
	}
	return ans, nil
}

// expiresAt reads "expires" (unix seconds), else now + "expires_in", else an hour.
func (a tokenAnswer) expiresAt(now time.Time) time.Time {
	if n, err := a.Expires.Int64(); err == nil && n > 0 {
		return time.Unix(n, 0)
	}
	if n, err := a.ExpiresIn.Int64(); err == nil && n > 0 {
		return now.Add(time.Duration(n) * time.Second)
	}
	return now.Add(time.Hour)
}

func portalHost(portal string) string {
	if u, err := url.Parse(portal); err == nil && u.Host != "" {
		return strings.ToLower(u.Host)
	}
	return strings.ToLower(strings.TrimSpace(portal))
}
