// Package widget is the backend of amoCRM's telephony widget: a click on a phone number in
// amoCRM arrives here with the widget's disposable token, and rings the employee's phone through
// ami-gateway, then the customer.
//
// The disposable token (developers.kommo.com/docs/one-time-tokens) is a JWT amoCRM signs HS256
// with the integration's client secret and attaches to the widget's request in X-Auth-Token. It is
// accepted only with a valid signature (HS256, no other algorithm), within its validity time, for
// this integration (aud, client_uuid) and for this account (account_id, iss).
package widget

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the disposable token's claims.
type Claims struct {
	jwt.RegisteredClaims
	AccountID  int    `json:"account_id"`
	Subdomain  string `json:"subdomain"`
	ClientUUID string `json:"client_uuid"`
	UserID     int    `json:"user_id"`
}

// Errors of Verify, told apart for the HTTP status and the log.
var (
	ErrNoToken   = errors.New("no disposable token: the widget sends it in the X-Auth-Token header")
	ErrMalformed = errors.New("the disposable token is not a JWT")
	ErrSignature = errors.New("the disposable token's signature is not the integration's (HS256 with the client secret)")
	ErrExpired   = errors.New("the disposable token expired or is not valid yet")
	ErrAudience  = errors.New("the disposable token is for another integration")
	ErrAccount   = errors.New("the disposable token is for another amoCRM account")
)

// Verifier checks disposable tokens.
type Verifier struct {
	secret    []byte
	audience  string
	clientID  string
	accountID func(ctx context.Context) (int, error)
	now       func() time.Time
}

// NewVerifier checks tokens signed with secret, for the integration clientID whose redirect URI is
// redirectURI (amoCRM puts its scheme://host in aud), for the account whose id accountID returns
// (read once from GET /api/v4/account and kept).
func NewVerifier(secret, clientID, redirectURI string, accountID func(ctx context.Context) (int, error), now func() time.Time) (*Verifier, error) {
	if secret == "" {
		return nil, errors.New("click-to-call needs the integration's client secret (amo.client_secret): it signs the widget's tokens")
	}
	u, err := url.Parse(redirectURI)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("amo.redirect_uri %q is not a URL: the widget's tokens are checked against its host", redirectURI)
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{secret: []byte(secret), audience: u.Scheme + "://" + u.Host, clientID: clientID, accountID: accountID, now: now}, nil
}

// Verify checks a token and returns its claims.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(token), "Bearer "))
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > 8192 {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrMalformed, len(token))
	}
	var c Claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(v.audience),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(5*time.Second), // clocks of amoCRM and this server differ a little
		jwt.WithStrictDecoding(),
	)
	_, err := p.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.secret, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, fmt.Errorf("%w: aud is not %s", ErrAudience, v.audience)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, fmt.Errorf("%w: it has no expiry", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v.clientID != "" && c.ClientUUID != v.clientID {
		return nil, fmt.Errorf("%w: client_uuid is not amo.client_id", ErrAudience)
	}
	if c.UserID <= 0 {
		return nil, fmt.Errorf("%w: user_id is missing", ErrMalformed)
	}
	if c.Subdomain == "" || !issuerOf(c.Issuer, c.Subdomain) {
		return nil, fmt.Errorf("%w: iss %q does not belong to subdomain %q", ErrAccount, c.Issuer, c.Subdomain)
	}
	want, err := v.accountID(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking the token's account: %w", err)
	}
	if c.AccountID != want {
		return nil, fmt.Errorf("%w: account_id %d, this connector serves %d", ErrAccount, c.AccountID, want)
	}
	return &c, nil
}

// issuerOf: iss is the account's address, https://<subdomain>.<amoCRM's domain>.
func issuerOf(iss, subdomain string) bool {
	u, err := url.Parse(iss)
	if err != nil || u.Scheme != "https" {
		return false
	}
	host, _, ok := strings.Cut(u.Hostname(), ".")
	return ok && strings.EqualFold(host, subdomain)
}
