package bitrix

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/store"
)

// authorizer gives each request its address and credentials.
type authorizer interface {
	// target is the base URL methods are appended to (ending in /) and the access token to send
	// as `auth` ("" for a webhook, whose secret is in the URL).
	target(ctx context.Context) (base, token string, err error)
	// refresh replaces the access token stale after the portal answered expired_token.
	refresh(ctx context.Context, stale string) error
	// webhook tells the modes apart for messages.
	webhook() bool
}

// webhookAuth is an incoming webhook: the URL carries the user and the secret.
type webhookAuth struct{ base string }

func (w webhookAuth) target(context.Context) (string, string, error) { return w.base, "", nil }

func (w webhookAuth) refresh(context.Context, string) error {
	return &Error{Method: "webhook", Kind: Auth, Code: "expired_token",
		Hint: "the portal refused the incoming webhook: check bitrix.webhook.url (was the webhook deleted?)"}
}

func (webhookAuth) webhook() bool { return true }

// appAuth is a local application: the tokens live in Redis (TokenStore), shared by replicas.
type appAuth struct {
	base   string // <portal>/rest/
	tokens *TokenStore
	st     *store.Store
	oauth  *oauthServer
	log    *logrus.Entry
	now    func() time.Time
	onAuth func(ok bool) // readiness and metrics

	mu     sync.Mutex
	cached Tokens
	loaded time.Time
	// unsaved is a refreshed pair Redis did not take: it is used (the old refresh token is dead)
	// and saved again at the next chance.
	unsaved bool
}

// cacheFor is how long a replica trusts its copy of the tokens before reading Redis again; a
// refresh by another replica is found sooner through expired_token.
const cacheFor = 30 * time.Second

func (a *appAuth) webhook() bool { return false }

func (a *appAuth) current(ctx context.Context) (Tokens, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unsaved {
		if err := a.tokens.Save(ctx, a.cached); err == nil {
			a.unsaved = false
			a.log.Info("bitrix24 tokens saved after an earlier failure")
		}
		return a.cached, nil
	}
	if a.cached.AccessToken != "" && a.now().Sub(a.loaded) < cacheFor {
		return a.cached, nil
	}
	t, found, err := a.tokens.Load(ctx)
	if err != nil {
		return Tokens{}, &Error{Method: "auth", Kind: Retry, Err: err}
	}
	if !found || t.AccessToken == "" {
		return Tokens{}, errNotInstalled
	}
	a.cached, a.loaded = t, a.now()
	return t, nil
}

var errNotInstalled = &Error{Method: "auth", Kind: Auth, Description: "the application is not installed",
	Hint: "install the local application in Bitrix24 (its install handler is https://<connector address>/bitrix/install); until then no call reaches the portal"}

func (a *appAuth) target(ctx context.Context) (string, string, error) {
	t, err := a.current(ctx)
	if err != nil {
		return "", "", err
	}
	return a.base, t.AccessToken, nil
}

// refresh is single-flight across goroutines and replicas: under the Redis lock it reads the
// stored pair again; if another holder refreshed already (the stored access token is not the
// stale one) it takes that pair, else it refreshes and stores the new pair before anyone uses it.
func (a *appAuth) refresh(ctx context.Context, stale string) error {
	lctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	lock, err := a.st.Lock(lctx, a.tokens.lockKey(), 40*time.Second)
	if err != nil {
		return &Error{Method: "oauth refresh", Kind: Retry, Err: fmt.Errorf("waiting for the refresh lock: %w", err)}
	}
	defer lock.Release(context.WithoutCancel(ctx))

	a.mu.Lock()
	defer a.mu.Unlock()
	cur, found, err := a.tokens.Load(lctx)
	if err != nil {
		return &Error{Method: "oauth refresh", Kind: Retry, Err: err}
	}
	if a.unsaved {
		cur, found = a.cached, true // ours is newer than what Redis has
	}
	if !found || cur.RefreshToken == "" {
		return errNotInstalled
	}
	if cur.AccessToken != stale {
		a.cached, a.loaded = cur, a.now()
		return nil
	}
	ans, err := a.oauth.refresh(lctx, cur.RefreshToken)
	if err != nil {
		if KindOf(err) == Auth && a.onAuth != nil {
			a.onAuth(false)
		}
		return err
	}
	now := a.now()
	cur.AccessToken, cur.RefreshToken = ans.AccessToken, ans.RefreshToken
	cur.Expires, cur.RefreshedAt = ans.expiresAt(now), now
	a.cached, a.loaded = cur, now
	// Stored before use: the old refresh token is dead now, and this pair is the only way in.
	if err := a.saveHard(ctx, cur); err != nil {
		a.unsaved = true
		a.log.WithError(err).Error("bitrix24 tokens refreshed but not saved in Redis: using them and saving again at the next request; a restart now would need the application installed again")
	}
	a.log.WithField("expires", cur.Expires.UTC().Format(time.RFC3339)).Info("bitrix24 access token refreshed")
	return nil
}

// saveHard tries a few times within 5 s, even when the caller's context is done: a refreshed pair
// that is not stored is lost.
func (a *appAuth) saveHard(ctx context.Context, t Tokens) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var err error
	for i := 0; i < 5; i++ {
		if err = a.tokens.Save(sctx, t); err == nil {
			return nil
		}
		select {
		case <-sctx.Done():
			return err
		case <-time.After(time.Duration(i+1) * 100 * time.Millisecond):
		}
	}
	return err
}

// invalidate drops the cached copy so the next request reads Redis (after an install).
func (a *appAuth) invalidate() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.unsaved {
		a.loaded = time.Time{}
	}
}

// restBase is <portal>/rest/.
func restBase(portal string) string { return strings.TrimRight(portal, "/") + "/rest/" }
