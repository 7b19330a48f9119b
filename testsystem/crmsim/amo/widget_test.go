package amo

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDisposableToken(t *testing.T) {
	e := newEnv(t, Options{})
	in := e.s.Integration()
	want := Expect{Secret: in.ClientSecret, Audience: "https://ringbridge.example", AccountID: 31000001, Now: e.clock.now()}
	cases := []struct {
		name  string
		token func() string
		err   error
	}{
		{"valid", func() string { return e.s.DisposableToken(502, DisposableTokenTTL) }, nil},
		{"expired", func() string { return e.s.DisposableToken(502, -time.Minute) }, ErrTokenExpired},
		{"not-yet-valid", func() string {
			return e.s.DisposableToken(502, time.Hour, WithClaims(func(c *DisposableClaims) { c.Nbf += 600 }))
		}, ErrTokenExpired},
		{"wrong-secret", func() string { return e.s.DisposableToken(502, time.Hour, SignedWith("other-secret")) }, ErrTokenSignature},
		{"wrong-account", func() string { return e.s.DisposableToken(502, time.Hour, ForAccount(999, "other")) }, ErrTokenAccount},
		{"wrong-audience", func() string {
			return e.s.DisposableToken(502, time.Hour, WithClaims(func(c *DisposableClaims) { c.Aud = "https://evil.example" }))
		}, ErrTokenDestination},
		{"tampered-payload", func() string {
			tok := e.s.DisposableToken(502, time.Hour)
			parts := strings.Split(tok, ".")
			p, _ := b64.DecodeString(parts[1])
			p = []byte(strings.Replace(string(p), `"user_id":502`, `"user_id":501`, 1))
			return parts[0] + "." + b64.EncodeToString(p) + "." + parts[2]
		}, ErrTokenSignature},
		{"alg-none", func() string {
			tok := e.s.DisposableToken(502, time.Hour)
			parts := strings.Split(tok, ".")
			return b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
		}, ErrTokenSignature},
		{"garbage", func() string { return "a.b" }, ErrTokenMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims, err := VerifyDisposableToken(c.token(), want)
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if c.err != nil {
				return
			}
			if claims.UserID != 502 || claims.AccountID != 31000001 || claims.Subdomain != "ringbridge" || claims.Iss != "https://ringbridge.amocrm.ru" ||
				claims.ClientUUID != in.ClientID || claims.Jti == "" || claims.Exp-claims.Iat != 1800 {
				t.Errorf("claims %+v", claims)
			}
		})
	}
}

func TestClickToCall(t *testing.T) {
	e := newEnv(t, Options{})
	in := e.s.Integration()
	type got struct {
		header http.Header
		body   WidgetCall
		claims DisposableClaims
		err    error
	}
	ch := make(chan got, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var g got
		g.header = r.Header
		b, _ := io.ReadAll(r.Body)
		g.err = json.Unmarshal(b, &g.body)
		tok := r.Header.Get("X-Auth-Token")
		if tok == "" {
			tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		claims, err := VerifyDisposableToken(tok, Expect{Secret: in.ClientSecret, Audience: audience(in.RedirectURI), AccountID: 31000001, Now: e.clock.now()})
		g.claims = claims
		if g.err == nil {
			g.err = err
		}
		ch <- g
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer backend.Close()
	cases := []struct {
		name   string
		call   WidgetCall
		status int
		header string
	}{
		{"default-x-auth-token", WidgetCall{Phone: "+79161111111", UserID: 502}, 202, "X-Auth-Token"},
		{"bearer", WidgetCall{Phone: "+79161111111", UserID: 502, Header: "Authorization"}, 202, "Authorization"},
		{"expired", WidgetCall{Phone: "+79161111111", UserID: 502, Token: e.s.DisposableToken(502, -time.Second)}, 401, "X-Auth-Token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := e.s.ClickToCall(ctx, backend.URL+"/amo/click-to-call", c.call)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			g := <-ch
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, c.status, g.err)
			}
			if g.header.Get(c.header) == "" || g.header.Get("Origin") != "https://ringbridge.amocrm.ru" || g.header.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", g.header)
			}
			if g.body.Phone != "+79161111111" || g.body.UserID != 502 {
				t.Errorf("body %+v", g.body)
			}
			if c.status == 202 && g.claims.UserID != 502 {
				t.Errorf("claims %+v", g.claims)
			}
		})
	}
}
