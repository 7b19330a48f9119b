package amo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DisposableClaims are the claims of amoCRM's disposable ("one-time") token, the JWT its web
// interface attaches to a widget's request to the integration's own backend
// (developers.kommo.com/docs/one-time-tokens; amocrm-api-php DisposableTokenModel). It is signed
// HS256 with the integration's client secret and lives 30 minutes.
type DisposableClaims struct {
	Iss        string `json:"iss"` // the account's address, https://<subdomain>.amocrm.ru
	Aud        string `json:"aud"` // scheme://host of the integration's redirect_uri
	Jti        string `json:"jti"` // token UUID
	Iat        int64  `json:"iat"`
	Nbf        int64  `json:"nbf"`
	Exp        int64  `json:"exp"`
	AccountID  int    `json:"account_id"`
	Subdomain  string `json:"subdomain"`
	ClientUUID string `json:"client_uuid"` // the integration's client_id
	UserID     int    `json:"user_id"`
}

// DisposableTokenTTL is the lifetime amoCRM gives a disposable token.
const DisposableTokenTTL = 30 * time.Minute

// TokenOption changes a disposable token before it is signed, to make bad ones.
type TokenOption func(c *DisposableClaims, secret *string)

// SignedWith signs the token with another secret (a wrong signature).
func SignedWith(secret string) TokenOption {
	return func(_ *DisposableClaims, s *string) { *s = secret }
}

// ForAccount makes a token of another account.
func ForAccount(id int, subdomain string) TokenOption {
	return func(c *DisposableClaims, _ *string) {
		domain := "amocrm.ru"
		if _, d, ok := strings.Cut(strings.TrimPrefix(c.Iss, "https://"), "."); ok {
			domain = d // keep the account's domain (amocrm.ru or kommo.com)
		}
		c.AccountID, c.Subdomain, c.Iss = id, subdomain, "https://"+subdomain+"."+domain
	}
}

// WithClaims edits the claims freely (audience, times, ...).
func WithClaims(edit func(*DisposableClaims)) TokenOption {
	return func(c *DisposableClaims, _ *string) { edit(c) }
}

// audience is the aud amoCRM puts in disposable tokens: the redirect URI's scheme and host.
func audience(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Host == "" {
		return redirectURI
	}
	return u.Scheme + "://" + u.Host
}

// DisposableToken makes the disposable token amoCRM would give user's widget request, valid
// for ttl from now (a negative ttl gives an expired one; DisposableTokenTTL is the real one).
func (s *Server) DisposableToken(userID int, ttl time.Duration, opts ...TokenOption) string {
	a, in := s.opts.Account, s.opts.Integration
	now := s.now()
	c := DisposableClaims{
		Iss:        "https://" + a.Subdomain + "." + a.Domain,
		Aud:        audience(in.RedirectURI),
		Jti:        uuid(),
		Iat:        now.Unix(),
		Nbf:        now.Unix(),
		Exp:        now.Add(ttl).Unix(),
		AccountID:  a.ID,
		Subdomain:  a.Subdomain,
		ClientUUID: in.ClientID,
		UserID:     userID,
	}
	if ttl < 0 {
		c.Iat, c.Nbf = c.Exp-int64(DisposableTokenTTL/time.Second), c.Exp-int64(DisposableTokenTTL/time.Second)
	}
	secret := in.ClientSecret
	for _, o := range opts {
		o(&c, &secret)
	}
	return signHS256(c, secret)
}

var b64 = base64.RawURLEncoding.Strict() // one encoding per signature: no malleable tokens

func signHS256(claims any, secret string) string {
	h, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "HS256"})
	p, _ := json.Marshal(claims)
	unsigned := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + b64.EncodeToString(mac.Sum(nil))
}

// Errors of VerifyDisposableToken, as amocrm-api-php tells them apart.
var (
	ErrTokenMalformed   = errors.New("disposable token: malformed")
	ErrTokenSignature   = errors.New("disposable token: signature verification failed")
	ErrTokenExpired     = errors.New("disposable token: expired or not yet valid")
	ErrTokenDestination = errors.New("disposable token: wrong audience")
	ErrTokenAccount     = errors.New("disposable token: wrong account")
)

// Expect is what a backend checks a disposable token against.
type Expect struct {
	Secret    string    // the integration's client secret
	Audience  string    // scheme://host of the integration's redirect_uri
	AccountID int       // the installed account (0: any)
	Now       time.Time // zero: time.Now
}

// VerifyDisposableToken checks a disposable token the way an integration backend must:
// HS256 signature with the client secret (no other alg), audience, validity time (nbf..exp),
// and the account. It is the reference the connector's verifier is tested against.
func VerifyDisposableToken(token string, want Expect) (DisposableClaims, error) {
	var c DisposableClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, ErrTokenMalformed
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return c, fmt.Errorf("%w: header: %v", ErrTokenMalformed, err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return c, fmt.Errorf("%w: header: %v", ErrTokenMalformed, err)
	}
	if h.Alg != "HS256" {
		return c, fmt.Errorf("%w: alg %q", ErrTokenSignature, h.Alg)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return c, fmt.Errorf("%w: signature: %v", ErrTokenMalformed, err)
	}
	mac := hmac.New(sha256.New, []byte(want.Secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return c, ErrTokenSignature
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return c, fmt.Errorf("%w: payload: %v", ErrTokenMalformed, err)
	}
	if err := json.Unmarshal(pb, &c); err != nil {
		return c, fmt.Errorf("%w: payload: %v", ErrTokenMalformed, err)
	}
	if c.Aud != want.Audience {
		return c, fmt.Errorf("%w: %q", ErrTokenDestination, c.Aud)
	}
	now := want.Now
	if now.IsZero() {
		now = time.Now()
	}
	if n := now.Unix(); n >= c.Exp || n < c.Nbf {
		return c, ErrTokenExpired
	}
	if want.AccountID != 0 && c.AccountID != want.AccountID {
		return c, fmt.Errorf("%w: %d", ErrTokenAccount, c.AccountID)
	}
	return c, nil
}

// WidgetCall is a click-to-call from the amoCRM telephony widget to the integration's backend.
// The body shape is the integration's own ({"phone", "user_id"}); the token travels as amoCRM's
// $authorizedAjax sends it, in the X-Auth-Token header, unless Header says otherwise.
type WidgetCall struct {
	Phone  string `json:"phone"`
	UserID int    `json:"user_id"`
	// Token is the disposable token; empty: a fresh valid one for UserID.
	Token string `json:"-"`
	// Header carries the token: "X-Auth-Token" (default) or "Authorization" (as Bearer).
	Header string `json:"-"`
}

// ClickToCall POSTs a widget click-to-call to a connector URL as the browser would: JSON body,
// the disposable token, and the account's Origin (the widget runs on the account's page, so
// the backend sees a CORS request from it). The caller closes the response body.
func (s *Server) ClickToCall(ctx context.Context, target string, call WidgetCall) (*http.Response, error) {
	if call.Token == "" {
		call.Token = s.DisposableToken(call.UserID, DisposableTokenTTL)
	}
	body, err := json.Marshal(call)
	if err != nil {
		return nil, fmt.Errorf("amo: click-to-call body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("amo: click-to-call request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	a := s.opts.Account
	req.Header.Set("Origin", "https://"+a.Subdomain+"."+a.Domain)
	if strings.EqualFold(call.Header, "Authorization") {
		req.Header.Set("Authorization", "Bearer "+call.Token)
	} else {
		req.Header.Set("X-Auth-Token", call.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("amo: click-to-call: %w", err)
	}
	return resp, nil
}
