package bitrix

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

func (p *portal) oauth(q url.Values) answer {
	p.t.Helper()
	return p.get("/oauth/token/?" + q.Encode())
}

func (p *portal) refreshQuery(refresh string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {p.inst.ClientID},
		"client_secret": {p.inst.ClientSecret}, "refresh_token": {refresh}}
}

// The recommended flow of auto-renewal.md: call, expired_token (401), refresh, store, repeat.
func TestExpiredTokenRefreshRetry(t *testing.T) {
	p := newPortal(t, seedOptions())
	if a := p.form("user.get", url.Values{"ID": {"1"}}); a.status != 200 {
		t.Fatalf("fresh token: %s", a.raw)
	}
	p.s.Advance(time.Hour) // access tokens live one hour
	wantError(t, p.form("user.get", nil), 401, "expired_token", "The access token provided has expired")

	a := p.oauth(p.refreshQuery(p.inst.RefreshToken))
	b := a.body
	if a.status != 200 || b["access_token"] == "" || b["refresh_token"] == p.inst.RefreshToken ||
		b["client_endpoint"] != p.ts.URL+"/rest/" || num(b["expires_in"]) != 3600 || b["member_id"] != p.inst.MemberID ||
		num(b["user_id"]) != 1 || b["status"] != "L" || b["scope"] != "crm,telephony,user" || num(b["expires"]) < 1 {
		t.Fatalf("refresh: %d %s", a.status, a.raw)
	}
	// Retry at client_endpoint with the new token.
	ep := strings.TrimPrefix(b["client_endpoint"].(string), p.ts.URL)
	retry := p.post(ep+"user.get", "application/x-www-form-urlencoded", url.Values{"auth": {b["access_token"].(string)}}.Encode())
	if retry.status != 200 {
		t.Fatalf("retry: %s", retry.raw)
	}
	t.Run("used-refresh-token-revoked", func(t *testing.T) {
		wantError(t, p.oauth(p.refreshQuery(p.inst.RefreshToken)), 400, "invalid_grant", "")
	})
	t.Run("new-refresh-token-works", func(t *testing.T) {
		if a := p.oauth(p.refreshQuery(b["refresh_token"].(string))); a.status != 200 {
			t.Errorf("%s", a.raw)
		}
	})
}

func TestOAuthServer(t *testing.T) {
	cases := []struct {
		name    string
		opts    func(*Options)
		query   func(p *portal) url.Values
		before  func(p *portal)
		status  int
		errCode string
	}{
		{name: "authorization-code", query: func(p *portal) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "client_id": {p.inst.ClientID},
				"client_secret": {p.inst.ClientSecret}, "code": {p.s.IssueCode("", 2)}}
		}, status: 200},
		{name: "code-after-30s", query: func(p *portal) url.Values {
			code := p.s.IssueCode("", 2)
			p.s.Advance(31 * time.Second)
			return url.Values{"grant_type": {"authorization_code"}, "client_id": {p.inst.ClientID},
				"client_secret": {p.inst.ClientSecret}, "code": {code}}
		}, status: 400, errCode: "invalid_grant"},
		{name: "wrong-secret", query: func(p *portal) url.Values {
			q := p.refreshQuery(p.inst.RefreshToken)
			q.Set("client_secret", "nope")
			return q
		}, status: 401, errCode: "invalid_client"},
		{name: "no-grant-type", query: func(p *portal) url.Values { return url.Values{"client_id": {p.inst.ClientID}} },
			status: 400, errCode: "invalid_request"},
		{name: "unknown-refresh-token", query: func(p *portal) url.Values { return p.refreshQuery("deadbeef") },
			status: 400, errCode: "invalid_grant"},
		{name: "refresh-token-after-180-days", query: func(p *portal) url.Values {
			p.s.Advance(181 * 24 * time.Hour)
			return p.refreshQuery(p.inst.RefreshToken)
		}, status: 400, errCode: "invalid_grant"},
		{name: "reuse-allowed-by-option", opts: func(o *Options) { o.KeepUsedRefreshTokens = true },
			before: func(p *portal) { p.oauth(p.refreshQuery(p.inst.RefreshToken)) },
			query:  func(p *portal) url.Values { return p.refreshQuery(p.inst.RefreshToken) }, status: 200},
		{name: "reuse-revoked-by-default",
			before: func(p *portal) { p.oauth(p.refreshQuery(p.inst.RefreshToken)) },
			query:  func(p *portal) url.Values { return p.refreshQuery(p.inst.RefreshToken) }, status: 400, errCode: "invalid_grant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := seedOptions()
			if c.opts != nil {
				c.opts(&opts)
			}
			p := newPortal(t, opts)
			if c.before != nil {
				c.before(p)
			}
			a := p.oauth(c.query(p))
			if c.status != 200 {
				wantError(t, a, c.status, c.errCode, "")
				return
			}
			if a.status != 200 || a.body["access_token"] == nil {
				t.Fatalf("got %d %s", a.status, a.raw)
			}
			if r := p.form("profile", url.Values{"auth": {a.body["access_token"].(string)}}); r.status != 200 {
				t.Errorf("new token refused: %s", r.raw)
			}
		})
	}
}

func TestRESTAuth(t *testing.T) {
	cases := []struct {
		name    string
		call    func(p *portal) answer
		status  int
		errCode string
		errDesc string
	}{
		{"no-auth", func(p *portal) answer { return p.post("/rest/user.get", "application/json", `{}`) },
			401, "NO_AUTH_FOUND", "Wrong authorization data"},
		{"unknown-token", func(p *portal) answer { return p.form("user.get", url.Values{"auth": {"0123"}}) },
			401, "invalid_token", "The access token provided is invalid."},
		{"expired-by-ExpireTokens", func(p *portal) answer { p.s.ExpireTokens(); return p.form("user.get", nil) },
			401, "expired_token", "The access token provided has expired"},
		{"auth-in-query", func(p *portal) answer { return p.get("/rest/profile.json?auth=" + p.inst.AccessToken) }, 200, "", ""},
		{"webhook-register", func(p *portal) answer {
			return p.hook("telephony.externalcall.register", url.Values{"USER_ID": {"1"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}})
		}, 403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"},
		{"webhook-finish", func(p *portal) answer {
			return p.hook("telephony.externalCall.finish", url.Values{"CALL_ID": {"x"}, "USER_ID": {"1"}})
		}, 403, "WRONG_AUTH_TYPE", ""},
		{"webhook-line-add", func(p *portal) answer { return p.hook("telephony.externalLine.add", url.Values{"NUMBER": {"1"}}) },
			403, "WRONG_AUTH_TYPE", ""},
		{"webhook-line-get", func(p *portal) answer { return p.hook("telephony.externalline.get", url.Values{}) },
			403, "WRONG_AUTH_TYPE", ""},
		{"webhook-search-works", func(p *portal) answer {
			return p.hook("telephony.externalcall.searchcrmentities", url.Values{"PHONE_NUMBER": {"+79161234567"}})
		}, 200, "", ""},
		{"webhook-show-works", func(p *portal) answer {
			id := p.register(nil)
			return p.hook("telephony.externalcall.show", url.Values{"CALL_ID": {id}, "USER_ID": {"2"}})
		}, 200, "", ""},
		{"webhook-wrong-secret", func(p *portal) answer {
			return p.post("/rest/1/wrong/user.get", "application/x-www-form-urlencoded", "")
		}, 401, "INVALID_CREDENTIALS", "Invalid request credentials"},
		{"insufficient-scope", func(p *portal) answer {
			inst, _ := p.s.IssueInstall(InstallOptions{ClientID: "other.app", ClientSecret: "s", Scope: "user"})
			return p.form("crm.lead.list", url.Values{"auth": {inst.AccessToken}})
		}, 401, "insufficient_scope", "The request requires higher privileges than provided by the access token"},
		{"unknown-method", func(p *portal) answer { return p.form("telephony.externalcall.nosuch", nil) },
			404, "ERROR_METHOD_NOT_FOUND", "Method not found!"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			a := c.call(p)
			if c.status == 200 {
				if a.status != 200 || a.body["time"] == nil {
					t.Errorf("got %d %s", a.status, a.raw)
				}
				return
			}
			wantError(t, a, c.status, c.errCode, c.errDesc)
		})
	}
}

func TestJournalRedaction(t *testing.T) {
	p := newPortal(t, seedOptions())
	p.form("user.get", nil)
	p.json("profile", nil)
	p.hook("user.get", url.Values{})
	p.oauth(p.refreshQuery(p.inst.RefreshToken))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := p.s.Wait(ctx, func(r crmsim.Request) bool { return r.Method == "oauth.token" }); err != nil {
		t.Fatal(err)
	}
	reqs := p.s.Requests(0)
	want := []struct{ method, path, secretKey string }{
		{"user.get", "/rest/user.get", "auth"},
		{"profile", "/rest/profile", "auth"},
		{"user.get", "/rest/1/<secret>/user.get.json", ""},
		{"oauth.token", "/oauth/token/", "refresh_token"},
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests: %+v", len(reqs), reqs)
	}
	for i, w := range want {
		r := reqs[i]
		t.Run(w.method+"-"+w.secretKey, func(t *testing.T) {
			if r.Method != w.method || r.Path != w.path || (w.secretKey != "" && r.Param(w.secretKey) != "<secret>") {
				t.Errorf("journaled as %+v", r)
			}
			all := r.Path + string(r.Body) + string(r.Response)
			for _, v := range r.Params {
				all += v
			}
			for _, secret := range []string{p.inst.AccessToken, p.inst.RefreshToken, p.inst.ClientSecret, "hooksecret"} {
				if strings.Contains(all, secret) && r.Method != "oauth.token" {
					t.Errorf("secret %q in the journal: %+v", secret, r)
				}
			}
			if r.Method == "oauth.token" && (r.Param("client_secret") != "<secret>" || strings.Contains(r.Path+string(r.Body), p.inst.RefreshToken)) {
				t.Errorf("oauth request not redacted: %+v", r)
			}
		})
	}
}
