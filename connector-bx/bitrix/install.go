package bitrix

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
)

// Installation is what the portal sends the application's install handler (ONAPPINSTALL): the
// token pair of the installing user and the application_token that signs every later event.
type Installation struct {
	AccessToken      string
	RefreshToken     string
	ApplicationToken string
	Domain           string
	MemberID         string
	ExpiresIn        int
	UserID           int
}

// Install checks that the tokens of an ONAPPINSTALL work on the configured portal and belong to
// this application, then stores them (replacing an earlier installation). The check matters: the
// install handler is reachable from the internet, and a forged event must not take the connector
// over. Only mode app has an installation.
func (c *Client) Install(ctx context.Context, in Installation) error {
	if c.app == nil {
		return errors.New("bitrix24 install: the connector runs in mode webhook; set bitrix.mode: app to use the application")
	}
	switch {
	case in.AccessToken == "":
		return errors.New("bitrix24 install: auth[access_token] is empty")
	case in.RefreshToken == "":
		return errors.New("bitrix24 install: auth[refresh_token] is empty")
	case in.ApplicationToken == "":
		return errors.New("bitrix24 install: auth[application_token] is empty")
	}
	if want := portalHost(c.opt.Portal); in.Domain != "" && !strings.EqualFold(in.Domain, want) {
		return fmt.Errorf("bitrix24 install: the event comes from portal %q, but this connector serves %q (bitrix.portal)", in.Domain, want)
	}
	if err := c.lim.Wait(ctx); err != nil {
		return fmt.Errorf("bitrix24 install: %w", err)
	}
	// The configured portal, not the event's client_endpoint: the tokens must work there.
	resp, err := c.postForm(restBase(c.opt.Portal)+"app.info.json", "app.info", url.Values{"auth": {in.AccessToken}})
	if err != nil {
		return fmt.Errorf("bitrix24 install: the tokens do not work on %s: %w", c.opt.Portal, err)
	}
	var info struct {
		Code string `json:"CODE"`
	}
	_ = json.Unmarshal(resp.Result, &info)
	if info.Code != "" && info.Code != c.opt.ClientID {
		return fmt.Errorf("bitrix24 install: the tokens belong to application %q, not to %q (bitrix.app.client_id)", info.Code, c.opt.ClientID)
	}
	now := c.opt.Now()
	exp := now.Add(time.Hour)
	if in.ExpiresIn > 0 {
		exp = now.Add(time.Duration(in.ExpiresIn) * time.Second)
	}
	t := Tokens{AccessToken: in.AccessToken, RefreshToken: in.RefreshToken, ApplicationToken: in.ApplicationToken,
		Domain: portalHost(c.opt.Portal), MemberID: in.MemberID, UserID: in.UserID, Expires: exp, InstalledAt: now}
	lock, err := c.opt.Store.Lock(ctx, c.tokens.lockKey(), 40*time.Second)
	if err != nil {
		return fmt.Errorf("bitrix24 install: %w", err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	if err := c.tokens.Save(ctx, t); err != nil {
		return fmt.Errorf("bitrix24 install: %w", err)
	}
	c.app.invalidate()
	c.authErr.Store(nil)
	c.log.WithFields(map[string]any{"member_id": t.MemberID, "user_id": t.UserID}).Info("bitrix24 application installed")
	return nil
}

// Uninstall forgets the installation (ONAPPUNINSTALL, checked by the caller).
func (c *Client) Uninstall(ctx context.Context) error {
	if c.app == nil {
		return nil
	}
	if err := c.tokens.Delete(ctx); err != nil {
		return fmt.Errorf("bitrix24 uninstall: %w", err)
	}
	c.app.invalidate()
	return nil
}

// CheckApplicationToken reports whether token is the one that signs this portal's events: the
// installation's application_token (mode app) or the outgoing webhook's token (mode webhook,
// from config). A connector without one accepts no event.
func (c *Client) CheckApplicationToken(ctx context.Context, token string, webhookToken config.Secret) (bool, error) {
	want := webhookToken.Reveal()
	if c.app != nil {
		t, found, err := c.tokens.Load(ctx)
		if err != nil {
			return false, err
		}
		if !found {
			return false, nil
		}
		want = t.ApplicationToken
	}
	if want == "" || token == "" {
		return false, nil
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1, nil
}

// BindEvent asks the portal to post event (ONEXTERNALCALLSTART…) to handler. A local application
// gets its events only this way; binding twice is not an error.
func (c *Client) BindEvent(ctx context.Context, event, handler string) error {
	_, err := c.Call(ctx, "event.bind", url.Values{"event": {event}, "handler": {handler}})
	var e *Error
	if errors.As(err, &e) && strings.Contains(strings.ToLower(e.Description), "already bind") {
		return nil // "Handler already binded"
	}
	return err
}
