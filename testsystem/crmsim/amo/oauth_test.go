package amo

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func (e *env) postToken(body map[string]string) reply {
	e.t.Helper()
	return e.doAuth("POST", "/oauth2/access_token", body, "")
}

func (e *env) refresh(in Install, rt string) reply {
	e.t.Helper()
	return e.postToken(map[string]string{"client_id": in.ClientID, "client_secret": in.ClientSecret, "grant_type": "refresh_token", "refresh_token": rt, "redirect_uri": in.RedirectURI})
}

func TestAuthorizationCode(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(e *env, body map[string]string)
		before func(e *env, code string)
		status int
		hint   string
		title  string
	}{
		{name: "exchange", status: 200},
		{name: "form-encoded", status: 200, mutate: func(e *env, b map[string]string) { b["_form"] = "1" }},
		{name: "code-used-twice", status: 401, hint: hintCodeRevoked, before: func(e *env, code string) {
			in := e.s.Integration()
			e.postToken(map[string]string{"client_id": in.ClientID, "client_secret": in.ClientSecret, "grant_type": "authorization_code", "code": code, "redirect_uri": in.RedirectURI})
		}},
		{name: "code-expired-after-20-minutes", status: 401, hint: hintCodeExpired, before: func(e *env, _ string) { e.clock.add(20 * time.Minute) }},
		{name: "unknown-code", status: 401, hint: hintCodeUnknown, mutate: func(e *env, b map[string]string) { b["code"] = "nope" }},
		{name: "wrong-redirect-uri", status: 401, hint: hintRedirectURI, mutate: func(e *env, b map[string]string) { b["redirect_uri"] = "https://evil.example/" }},
		{name: "wrong-client-secret", status: 401, title: "Некорректный клиент", mutate: func(e *env, b map[string]string) { b["client_secret"] = "x" }},
		{name: "unsupported-grant", status: 400, mutate: func(e *env, b map[string]string) { b["grant_type"] = "password" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			in := e.s.Integration()
			code := e.s.AuthorizationCode()
			body := map[string]string{"client_id": in.ClientID, "client_secret": in.ClientSecret, "grant_type": "authorization_code", "code": code, "redirect_uri": in.RedirectURI}
			if c.mutate != nil {
				c.mutate(e, body)
			}
			if c.before != nil {
				c.before(e, code)
			}
			var r reply
			if body["_form"] != "" {
				delete(body, "_form")
				f := url.Values{}
				for k, v := range body {
					f.Set(k, v)
				}
				r = e.form("/oauth2/access_token", f)
			} else {
				r = e.postToken(body)
			}
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.status == 200 {
				at, _ := r.get("access_token").(string)
				if r.get("token_type") != "Bearer" || num(r.get("expires_in")) != 86400 || r.get("refresh_token") == nil || at == "" {
					t.Fatalf("token response %s", r.raw)
				}
				if a := e.doAuth("GET", "/api/v4/account", nil, "Bearer "+at); a.status != 200 {
					t.Errorf("new access token refused: %d", a.status)
				}
				return
			}
			if r.get("type") != oauthProblemType && c.status == 401 {
				t.Errorf("type %v", r.get("type"))
			}
			if c.hint != "" && r.get("hint") != c.hint {
				t.Errorf("hint %v, want %q", r.get("hint"), c.hint)
			}
			if c.title != "" && r.get("title") != c.title {
				t.Errorf("title %v, want %q", r.get("title"), c.title)
			}
		})
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Run("old-refresh-token-revoked", func(t *testing.T) {
		e := newEnv(t, Options{})
		in := e.s.IssueTokens()
		r := e.refresh(in, in.RefreshToken)
		if r.status != 200 {
			t.Fatalf("refresh: %d %s", r.status, r.raw)
		}
		newRT, newAT := r.get("refresh_token").(string), r.get("access_token").(string)
		if newRT == in.RefreshToken || newAT == in.AccessToken {
			t.Fatal("refresh returned the same tokens")
		}
		again := e.refresh(in, in.RefreshToken)
		want := `{"hint":"Token has been revoked","title":"Некорректный запрос","type":"https://developers.amocrm.ru/v3/errors/OAuthProblemJson","status":401,"detail":"В запросе отсутствует ряд параметров или параметры невалидны"}`
		if again.status != 401 || strings.TrimSpace(string(again.raw)) != want {
			t.Errorf("reuse: %d %s", again.status, again.raw)
		}
		if a := e.doAuth("GET", "/api/v4/account", nil, "Bearer "+in.AccessToken); a.status != 401 {
			t.Errorf("the old access token still works after the refresh: %d", a.status)
		}
		if a := e.doAuth("GET", "/api/v4/account", nil, "Bearer "+newAT); a.status != 200 {
			t.Errorf("new access token: %d", a.status)
		}
		if r := e.refresh(in, newRT); r.status != 200 {
			t.Errorf("the new refresh token: %d %s", r.status, r.raw)
		}
	})
	t.Run("keep-access-token-option", func(t *testing.T) {
		e := newEnv(t, Options{KeepAccessTokenOnRefresh: true})
		in := e.s.IssueTokens()
		e.refresh(in, in.RefreshToken)
		if a := e.doAuth("GET", "/api/v4/account", nil, "Bearer "+in.AccessToken); a.status != 200 {
			t.Errorf("old access token: %d", a.status)
		}
	})
	t.Run("concurrent-refreshes-one-wins", func(t *testing.T) {
		e := newEnv(t, Options{})
		in := e.s.IssueTokens()
		const n = 8
		statuses := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[i] = e.refresh(in, in.RefreshToken).status
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, s := range statuses {
			switch s {
			case 200:
				won++
			case 401:
			default:
				t.Errorf("status %d", s)
			}
		}
		if won != 1 {
			t.Errorf("%d refreshes won: %v", won, statuses)
		}
	})
	t.Run("refresh-token-expired", func(t *testing.T) {
		e := newEnv(t, Options{})
		in := e.s.IssueTokens()
		e.clock.add(91 * 24 * time.Hour)
		if r := e.refresh(in, in.RefreshToken); r.status != 401 || r.get("hint") != hintExpired {
			t.Errorf("%d %s", r.status, r.raw)
		}
	})
	t.Run("garbage-refresh-token", func(t *testing.T) {
		e := newEnv(t, Options{})
		in := e.s.IssueTokens()
		if r := e.refresh(in, "garbage"); r.status != 401 || r.get("hint") != hintUndecryptable {
			t.Errorf("%d %s", r.status, r.raw)
		}
	})
}

func TestAccessTokens(t *testing.T) {
	unauthorized := `{"title":"Unauthorized","type":"https://httpstatus.es/401","status":401,"detail":"Неверный логин или пароль"}`
	cases := []struct {
		name   string
		auth   func(e *env) string
		status int
	}{
		{"valid", func(e *env) string { return "Bearer " + e.token }, 200},
		{"expired-after-24h", func(e *env) string { e.clock.add(24 * time.Hour); return "Bearer " + e.token }, 401},
		{"expired-by-test", func(e *env) string { e.s.ExpireAccessTokens(); return "Bearer " + e.token }, 401},
		{"wrong-token", func(e *env) string { return "Bearer nope" }, 401},
		{"no-header", func(e *env) string { return "" }, 401},
		{"long-lived", func(e *env) string { e.clock.add(365 * 24 * time.Hour); return "Bearer " + e.s.LongLivedToken() }, 200},
		{"seeded-long-lived", func(e *env) string { return "Bearer seeded-ll" }, 200},
		{"revoked-by-uninstall", func(e *env) string { e.s.RevokeTokens(); return "Bearer " + e.token }, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed := testSeed()
			seed.LongLivedTokens = []string{"seeded-ll"}
			e := newEnv(t, Options{Seed: seed})
			r := e.doAuth("GET", "/api/v4/users", nil, c.auth(e))
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.status == 401 && strings.TrimSpace(string(r.raw)) != unauthorized {
				t.Errorf("401 body %s", r.raw)
			}
		})
	}
}

func (e *env) form(path string, f url.Values) reply {
	e.t.Helper()
	resp, err := httpPostForm(e.url+path, f)
	if err != nil {
		e.t.Fatal(err)
	}
	r := reply{status: resp.status, raw: resp.body}
	_ = json.Unmarshal(resp.body, &r.body)
	return r
}
