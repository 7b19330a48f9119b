package amo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
)

// How the OAuth pair is kept (crm-apis.md §2.5): the access token lives 24 h; every refresh returns
// a new pair and revokes the refresh token it used (and the access token issued with it), so a
// refresh token is good for exactly one refresh. Two replicas refreshing with the same one: the
// second is refused, and if the first one's new pair were lost the install would be dead. Hence:
//
//   - the pair lives in Redis, shared by every replica, never in a process alone;
//   - a refresh runs under a Redis lock, and re-reads the pair under it: whoever comes second finds
//     the pair the first stored and uses it instead of refreshing again;
//   - the new pair is written to Redis (with a compare-and-set against the refresh token used, and
//     retried: it is the only copy) before its access token is used or returned;
//   - a 401 "revoked" on refresh first re-reads Redis: another replica whose lock expired may have
//     rotated the pair already; only when Redis holds the very token that was refused is the
//     install marked dead (KindUnauthorized) and the calls held until an admin installs again.

const (
	// refreshMargin: the pair is refreshed when its access token has less than this left, so a
	// request never goes out with a token about to expire, and a replica that was down for a while
	// still finds time to refresh.
	refreshMargin = time.Hour
	// refreshLockTTL bounds a refresh: the token endpoint's timeout plus the writes, with room.
	refreshLockTTL = time.Minute
)

// Pair is a stored OAuth token pair. It is never logged; String hides it.
type Pair struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	ObtainedAt   time.Time `json:"obtained_at"`
	// Generation counts the pairs of this install, for logs ("pair 12") instead of the tokens.
	Generation int64 `json:"generation"`
	// Dead says why the refresh token no longer works (revoked, expired): set once amoCRM refused
	// it, so replicas stop trying until a new install replaces the pair.
	Dead string `json:"dead,omitempty"`
}

func (p Pair) String() string {
	return fmt.Sprintf("token pair %d (expires %s)", p.Generation, p.ExpiresAt.UTC().Format(time.RFC3339))
}

// due reports whether the pair should be refreshed now: under refreshMargin left, or under a
// quarter of its lifetime for tokens shorter than that.
func (p Pair) due(now time.Time) bool {
	margin := refreshMargin
	if life := p.ExpiresAt.Sub(p.ObtainedAt); life > 0 && life/4 < margin {
		margin = life / 4
	}
	return !now.Before(p.ExpiresAt.Add(-margin))
}

// GoString keeps %#v from printing the tokens.
func (p Pair) GoString() string { return p.String() }

// TokenResponse is the body of POST /oauth2/access_token.
type TokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ServerTime   int64  `json:"server_time"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// Integration is what the token endpoint needs to know about the integration.
type Integration struct {
	BaseURL      string // the account, https://company.amocrm.ru
	ClientID     string
	ClientSecret config.Secret
	RedirectURI  string
}

// Exchanger calls the token endpoint.
type Exchanger struct {
	in   Integration
	http *http.Client
	// timeout bounds one exchange.
	timeout time.Duration
}

// NewExchanger returns an Exchanger; hc nil is a default client.
func NewExchanger(in Integration, hc *http.Client, timeout time.Duration) *Exchanger {
	if hc == nil {
		hc = newHTTPClient()
	}
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	return &Exchanger{in: in, http: hc, timeout: timeout}
}

const tokenRoute = "POST /oauth2/access_token"

// Code exchanges an authorization code for the first pair.
func (x *Exchanger) Code(ctx context.Context, code string) (TokenResponse, error) {
	return x.exchange(ctx, map[string]string{"grant_type": "authorization_code", "code": code})
}

// Refresh exchanges a refresh token for a new pair (which revokes it).
func (x *Exchanger) Refresh(ctx context.Context, refreshToken string) (TokenResponse, error) {
	return x.exchange(ctx, map[string]string{"grant_type": "refresh_token", "refresh_token": refreshToken})
}

func (x *Exchanger) exchange(ctx context.Context, fields map[string]string) (TokenResponse, error) {
	var tr TokenResponse
	fields["client_id"] = x.in.ClientID
	fields["client_secret"] = x.in.ClientSecret.Reveal()
	fields["redirect_uri"] = x.in.RedirectURI
	body, _ := json.Marshal(fields)
	// Once sent, a refresh is never abandoned: its answer holds the only copy of the new pair.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.timeout)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return tr, err
	}
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, strings.TrimRight(x.in.BaseURL, "/")+"/oauth2/access_token", bytes.NewReader(body))
	if err != nil {
		return tr, fmt.Errorf("amo %s: %w", tokenRoute, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := x.http.Do(req)
	if err != nil {
		return tr, &Error{Kind: KindTransport, Route: tokenRoute, Sent: maybeSent(err), Err: scrubURL(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tr, &Error{Kind: KindTransport, Route: tokenRoute, Sent: true, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		e := newHTTPError(tokenRoute, resp.StatusCode, raw)
		e.Body = nil // never keep a token endpoint's body around
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
			e.Kind = KindUnauthorized
		}
		return tr, e
	}
	if err := json.Unmarshal(raw, &tr); err != nil {
		// Not quoted: the body holds tokens.
		return tr, badResponse(tokenRoute, resp.StatusCode, errors.New("the token answer is not JSON"))
	}
	switch {
	case tr.AccessToken == "":
		return tr, badResponse(tokenRoute, resp.StatusCode, errors.New("field access_token is empty"))
	case tr.RefreshToken == "":
		return tr, badResponse(tokenRoute, resp.StatusCode, errors.New("field refresh_token is empty"))
	case tr.ExpiresIn <= 0:
		return tr, badResponse(tokenRoute, resp.StatusCode, fmt.Errorf("field expires_in is %d, not a positive number of seconds", tr.ExpiresIn))
	}
	return tr, nil
}

// OAuth is the TokenSource of an OAuth integration: the pair in Redis, refreshed single-flight.
type OAuth struct {
	st   *store.Store
	key  string
	x    *Exchanger
	log  logrus.FieldLogger
	now  func() time.Time
	code config.Secret // authorization_code from the config, exchanged when no pair is stored

	mu      sync.Mutex
	waitAOF bool // false once Redis said it cannot WAITAOF
}

// OAuthOptions configure an OAuth token source.
type OAuthOptions struct {
	// Prefix of the Redis keys, e.g. "ringbridge:connector-amo:company.amocrm.ru".
	Prefix            string
	AuthorizationCode config.Secret
	Now               func() time.Time
}

// NewOAuth returns the token source of an OAuth install.
func NewOAuth(st *store.Store, x *Exchanger, log logrus.FieldLogger, opt OAuthOptions) *OAuth {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &OAuth{st: st, key: opt.Prefix + ":oauth", x: x, log: log, now: opt.Now, code: opt.AuthorizationCode, waitAOF: true}
}

// ErrNotConnected is the error of Token before the integration was installed.
var ErrNotConnected = errors.New("no amoCRM token yet: install the integration (open its redirect link) or set amo.authorization_code")

// Load reads the stored pair.
func (o *OAuth) Load(ctx context.Context) (Pair, bool, error) {
	var p Pair
	found, err := o.st.GetJSON(ctx, o.key, &p)
	if err != nil {
		return p, false, fmt.Errorf("reading the amoCRM tokens: %w", err)
	}
	return p, found, nil
}

// Token returns the stored access token, refreshing the pair when it is about to expire.
func (o *OAuth) Token(ctx context.Context) (string, error) {
	p, found, err := o.Load(ctx)
	if err != nil {
		return "", err
	}
	if !found {
		if o.code.IsZero() {
			return "", &Error{Kind: KindNotConnected, Route: tokenRoute, Err: ErrNotConnected}
		}
		if p, err = o.bootstrap(ctx); err != nil {
			return "", err
		}
		return p.AccessToken, nil
	}
	if p.Dead != "" {
		return "", deadError(p)
	}
	if !p.due(o.now()) {
		return p.AccessToken, nil
	}
	np, err := o.refresh(ctx, p.AccessToken)
	if err != nil {
		if e, ok := AsError(err); ok && e.Retryable() && o.now().Before(p.ExpiresAt) {
			// The pair still works for a while: use it, and refresh on the next request.
			o.log.WithError(err).Warn("refreshing the amoCRM token failed; the current one is still valid, trying again later")
			return p.AccessToken, nil
		}
		return "", err
	}
	return np.AccessToken, nil
}

// Refresh is called after a 401: it returns a newer token another replica stored, or refreshes.
func (o *OAuth) Refresh(ctx context.Context, refused string) (string, error) {
	p, err := o.refresh(ctx, refused)
	if err != nil {
		return "", err
	}
	return p.AccessToken, nil
}

// Keep refreshes the pair when it is due, for the background keeper: an idle install (no calls
// for weeks) must still refresh before its refresh token expires.
func (o *OAuth) Keep(ctx context.Context) error {
	_, err := o.Token(ctx)
	if e, ok := AsError(err); ok && e.Kind == KindNotConnected {
		return nil
	}
	return err
}

func deadError(p Pair) error {
	return &Error{Kind: KindUnauthorized, Route: tokenRoute, Status: http.StatusUnauthorized,
		Detail: "the refresh token no longer works (" + p.Dead + "): install the integration again in amoCRM to connect it"}
}

// refresh rotates the pair unless the stored access token is no longer stale (someone else did).
func (o *OAuth) refresh(ctx context.Context, stale string) (Pair, error) {
	lock, err := o.st.Lock(ctx, o.key+":lock", refreshLockTTL)
	if err != nil {
		return Pair{}, fmt.Errorf("amoCRM token refresh: %w", err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	p, found, err := o.Load(ctx)
	if err != nil {
		return Pair{}, err
	}
	if !found {
		return Pair{}, &Error{Kind: KindNotConnected, Route: tokenRoute, Err: ErrNotConnected}
	}
	if p.Dead != "" {
		return Pair{}, deadError(p)
	}
	if p.AccessToken != stale && o.now().Before(p.ExpiresAt) {
		return p, nil // another replica refreshed while we waited for the lock
	}
	log := o.log.WithField("generation", p.Generation)
	tr, err := o.x.Refresh(ctx, p.RefreshToken)
	if err != nil {
		e, ok := AsError(err)
		if ok && e.Kind == KindUnauthorized {
			// Refused: perhaps a replica whose lock had expired rotated it meanwhile.
			cur, found, lerr := o.Load(ctx)
			if lerr == nil && found && cur.RefreshToken != p.RefreshToken && cur.Dead == "" {
				log.Info("the refresh token was rotated by another replica meanwhile; using its pair")
				return cur, nil
			}
			reason := strings.TrimSpace(e.Hint)
			if reason == "" {
				// No word about the token: the client itself was refused (a wrong client_id or
				// client_secret). The refresh token may be fine once the config is fixed.
				return Pair{}, &Error{Kind: KindUnauthorized, Route: tokenRoute, Status: e.Status, Title: e.Title,
					Detail: "amoCRM refused the integration's keys: check amo.client_id and amo.client_secret (" + e.Detail + ")"}
			}
			p.Dead = reason
			if serr := o.casSave(ctx, p.RefreshToken, p); serr != nil {
				log.WithError(serr).Warn("could not mark the amoCRM token pair dead")
			}
			log.WithField("reason", reason).Error("amoCRM refused the refresh token: the install must be renewed by an admin")
			return Pair{}, deadError(p)
		}
		if ok && e.Kind == KindTransport && e.Sent {
			log.WithError(err).Error("no answer to the token refresh: if amoCRM did rotate the pair, the new one is lost and the next refresh will be refused")
		}
		return Pair{}, err
	}
	np := o.pairOf(tr, p.Generation+1)
	// Stored before it is used: this answer holds the only valid refresh token now.
	if err := o.saveRetrying(ctx, p.RefreshToken, np); err != nil {
		return Pair{}, err
	}
	log.WithField("new_generation", np.Generation).Info("amoCRM token pair refreshed")
	return np, nil
}

func (o *OAuth) pairOf(tr TokenResponse, gen int64) Pair {
	now := o.now()
	return Pair{
		AccessToken:  tr.AccessToken,
		RefreshToken: tr.RefreshToken,
		ExpiresAt:    now.Add(time.Duration(tr.ExpiresIn) * time.Second),
		ObtainedAt:   now,
		Generation:   gen,
	}
}

// errConflict: the stored pair is no longer the one the refresh started from.
var errConflict = errors.New("the stored token pair changed meanwhile")

// casSave stores np if the stored pair still has refresh token expect ("" expects none).
func (o *OAuth) casSave(ctx context.Context, expect string, np Pair) error {
	raw, err := json.Marshal(np)
	if err != nil {
		return err
	}
	rdb := o.st.Client()
	err = rdb.Watch(ctx, func(tx *redis.Tx) error {
		cur, err := tx.Get(ctx, o.key).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			if expect != "" {
				return errConflict
			}
		case err != nil:
			return err
		default:
			var p Pair
			if json.Unmarshal(cur, &p) != nil || p.RefreshToken != expect {
				return errConflict
			}
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, o.key, raw, 0)
			return nil
		})
		return err
	}, o.key)
	if errors.Is(err, redis.TxFailedErr) {
		return errConflict
	}
	if err != nil {
		return err
	}
	o.syncAOF(ctx)
	return nil
}

// saveRetrying stores a freshly rotated pair, retrying through a Redis hiccup: the pair exists
// nowhere else. A conflict (someone stored another pair meanwhile: a new install) is not retried;
// the new pair is still returned and valid.
func (o *OAuth) saveRetrying(ctx context.Context, expect string, np Pair) error {
	wctx := context.WithoutCancel(ctx)
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		err = o.casSave(wctx, expect, np)
		if err == nil || errors.Is(err, errConflict) {
			if err != nil {
				o.log.Warn("the amoCRM token pair was replaced while refreshing (a new install?); keeping the stored one")
			}
			return nil
		}
		o.log.WithError(err).Error("cannot store the refreshed amoCRM token pair; retrying (it is the only copy)")
		time.Sleep(min(time.Duration(attempt+1)*250*time.Millisecond, 2*time.Second))
	}
	return fmt.Errorf("amoCRM token refresh: storing the new pair: %w (the install is lost if this process stops now)", err)
}

// syncAOF waits (briefly) until Redis has the write in its append-only file, where Redis can say
// so (7.2+ with appendonly on): a rotated pair must survive a Redis crash.
func (o *OAuth) syncAOF(ctx context.Context) {
	o.mu.Lock()
	try := o.waitAOF
	o.mu.Unlock()
	if !try {
		return
	}
	err := o.st.Client().Do(ctx, "WAITAOF", 1, 0, 1000).Err()
	if err != nil {
		o.mu.Lock()
		o.waitAOF = false
		o.mu.Unlock()
		o.log.WithError(err).Info("Redis cannot confirm writes to its append-only file (WAITAOF); token pairs are as durable as its persistence settings")
	}
}

// Install exchanges an authorization code (from the install redirect) and stores the pair,
// replacing whatever was stored (a dead pair included).
func (o *OAuth) Install(ctx context.Context, code string) (Pair, error) {
	lock, err := o.st.Lock(ctx, o.key+":lock", refreshLockTTL)
	if err != nil {
		return Pair{}, fmt.Errorf("amoCRM install: %w", err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	old, _, err := o.Load(ctx)
	if err != nil {
		return Pair{}, err
	}
	tr, err := o.x.Code(ctx, code)
	if err != nil {
		return Pair{}, err
	}
	np := o.pairOf(tr, old.Generation+1)
	if err := o.save(ctx, np); err != nil {
		return Pair{}, err
	}
	o.log.WithField("generation", np.Generation).Info("amoCRM integration installed: token pair stored")
	return np, nil
}

func (o *OAuth) save(ctx context.Context, np Pair) error {
	wctx := context.WithoutCancel(ctx)
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = o.st.SetJSON(wctx, o.key, np, 0); err == nil {
			o.syncAOF(wctx)
			return nil
		}
		time.Sleep(min(time.Duration(attempt+1)*250*time.Millisecond, 2*time.Second))
	}
	return fmt.Errorf("storing the amoCRM token pair: %w", err)
}

// bootstrap exchanges the configured authorization code once, when no pair is stored.
func (o *OAuth) bootstrap(ctx context.Context) (Pair, error) {
	lock, err := o.st.Lock(ctx, o.key+":lock", refreshLockTTL)
	if err != nil {
		return Pair{}, fmt.Errorf("amoCRM first token: %w", err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	if p, found, err := o.Load(ctx); err != nil || found {
		if err == nil && p.Dead != "" {
			return Pair{}, deadError(p)
		}
		return p, err
	}
	sum := sha256.Sum256([]byte(o.code.Reveal()))
	usedKey := o.key + ":code-used:" + hex.EncodeToString(sum[:8])
	first, err := o.st.Once(ctx, usedKey, 30*24*time.Hour)
	if err != nil {
		return Pair{}, err
	}
	if !first {
		// A code works once; retrying it would only be refused again.
		return Pair{}, &Error{Kind: KindNotConnected, Route: tokenRoute,
			Err: errors.New("amo.authorization_code was used already and no token is stored: get a new code from the integration's settings (it lives 20 minutes) or install through the redirect")}
	}
	tr, err := o.x.Code(ctx, o.code.Reveal())
	if err != nil {
		if e, ok := AsError(err); ok && e.Kind == KindUnauthorized {
			return Pair{}, &Error{Kind: KindNotConnected, Route: tokenRoute, Status: e.Status, Title: e.Title, Hint: e.Hint,
				Detail: "amo.authorization_code was refused (it lives 20 minutes and works once): get a new one from the integration's settings"}
		}
		_ = o.st.Delete(context.WithoutCancel(ctx), usedKey) // not refused: may be tried again
		return Pair{}, err
	}
	np := o.pairOf(tr, 1)
	if err := o.save(ctx, np); err != nil {
		return Pair{}, err
	}
	o.log.Info("amoCRM authorization code exchanged: token pair stored")
	return np, nil
}

// LongLived is the TokenSource of a private integration's long-lived token: nothing to refresh.
type LongLived struct{ token config.Secret }

// NewLongLived returns the token source of a long-lived token.
func NewLongLived(token config.Secret) *LongLived { return &LongLived{token: token} }

// Token returns the long-lived token.
func (l *LongLived) Token(context.Context) (string, error) { return l.token.Reveal(), nil }

// Refresh cannot refresh a long-lived token: a 401 means it expired or was revoked.
func (l *LongLived) Refresh(context.Context, string) (string, error) {
	return "", &Error{Kind: KindUnauthorized, Route: tokenRoute, Status: http.StatusUnauthorized,
		Detail: "amoCRM refused the long-lived token (it expired or was revoked): make a new one in the integration's \"Keys and scopes\" tab and set amo.long_lived_token"}
}
