package widget

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/command"
	amosim "github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

// sim makes real amoCRM-shaped disposable tokens (the simulator's, checked against its reference
// verifier) without serving anything.
func sim(now time.Time) *amosim.Server {
	return amosim.New(amosim.Options{Now: func() time.Time { return now }})
}

func verifier(t testing.TB, s *amosim.Server, now time.Time) *Verifier {
	t.Helper()
	in := s.Integration()
	id := s.Account().ID
	v, err := NewVerifier(in.ClientSecret, in.ClientID, in.RedirectURI, func(context.Context) (int, error) { return id, nil }, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func seg(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestVerify: only the account's own, live tokens for this integration pass.
func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := sim(now)
	v := verifier(t, s, now)
	good := s.DisposableToken(7, amosim.DisposableTokenTTL)
	parts := strings.Split(good, ".")
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", good, nil},
		{"valid-bearer-prefix", "Bearer " + good, nil},
		{"empty", "", ErrNoToken},
		{"garbage", "not.a.jwt", ErrMalformed},
		{"two-parts", parts[0] + "." + parts[1], ErrMalformed},
		{"expired", s.DisposableToken(7, -time.Minute), ErrExpired},
		{"expired-within-leeway", s.DisposableToken(7, -2*time.Second), nil},
		{"wrong-secret", s.DisposableToken(7, time.Minute, amosim.SignedWith("guess")), ErrSignature},
		{"alg-none", seg([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", ErrSignature},
		{"alg-hs512", seg([]byte(`{"alg":"HS512","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], ErrSignature},
		{"payload-swapped", parts[0] + "." + seg([]byte(`{"account_id":1,"user_id":7,"exp":9999999999}`)) + "." + parts[2], ErrSignature},
		{"other-account", s.DisposableToken(7, time.Minute, amosim.ForAccount(42, "other")), ErrAccount},
		{"iss-of-another-subdomain", s.DisposableToken(7, time.Minute, amosim.WithClaims(func(c *amosim.DisposableClaims) { c.Iss = "https://evil.amocrm.ru" })), ErrAccount},
		{"http-issuer", s.DisposableToken(7, time.Minute, amosim.WithClaims(func(c *amosim.DisposableClaims) { c.Iss = strings.Replace(c.Iss, "https", "http", 1) })), ErrAccount},
		{"other-audience", s.DisposableToken(7, time.Minute, amosim.WithClaims(func(c *amosim.DisposableClaims) { c.Aud = "https://elsewhere.example" })), ErrAudience},
		{"other-client", s.DisposableToken(7, time.Minute, amosim.WithClaims(func(c *amosim.DisposableClaims) { c.ClientUUID = "someone-else" })), ErrAudience},
		{"not-yet-valid", s.DisposableToken(7, time.Minute, amosim.WithClaims(func(c *amosim.DisposableClaims) { c.Nbf = now.Add(time.Minute).Unix() })), ErrExpired},
		{"no-user", s.DisposableToken(0, time.Minute), ErrMalformed},
		{"huge", strings.Repeat("a", 9000), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims, err := v.Verify(context.Background(), c.token)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if claims.UserID != 7 || claims.AccountID != s.Account().ID {
					t.Fatalf("claims %+v", claims)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
	t.Run("account-id-unknown", func(t *testing.T) {
		in := s.Integration()
		v, _ := NewVerifier(in.ClientSecret, in.ClientID, in.RedirectURI, func(context.Context) (int, error) { return 0, errors.New("not connected") }, func() time.Time { return now })
		if _, err := v.Verify(context.Background(), good); err == nil || errors.Is(err, ErrAccount) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("no-secret", func(t *testing.T) {
		if _, err := NewVerifier("", "x", "https://a.b/c", nil, nil); err == nil {
			t.Fatal("a verifier without the secret")
		}
	})
}

// FuzzVerify: no token the reference verifier refuses is accepted, and nothing panics.
func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := sim(now)
	v := verifier(f, s, now)
	in := s.Integration()
	f.Add(s.DisposableToken(7, time.Minute))
	f.Add(s.DisposableToken(7, -time.Minute))
	f.Add(s.DisposableToken(7, time.Minute, amosim.SignedWith("x")))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if err != nil {
			return
		}
		ref, rerr := amosim.VerifyDisposableToken(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(token), "Bearer ")),
			amosim.Expect{Secret: in.ClientSecret, Audience: "https://ringbridge.example", AccountID: s.Account().ID, Now: now})
		if rerr != nil {
			t.Fatalf("accepted a token the reference refuses (%v): %q", rerr, token)
		}
		if ref.UserID != claims.UserID {
			t.Fatalf("user %d, reference %d", claims.UserID, ref.UserID)
		}
	})
}

// FuzzParseRequest: any body is refused with a reason or gives a number the gateway accepts.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"phone":"+79161234567","user_id":7}`, `{"phone":"8 (916) 123-45-67"}`, `{"phone":""}`, `{"phone":"+7\n916"}`, `[]`, `{"phone":"1","x":1}`, `{"phone":"12"} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body, "RU")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		o := command.Originate{RequestID: "x", Extension: "101", Number: r.Phone}
		if err := o.Validate(); err != nil {
			t.Fatalf("accepted %q but the gateway refuses %q: %v", body, r.Phone, err)
		}
	})
}

type fakeOriginator struct {
	got   []command.Originate
	reply command.OriginateReply
	err   error
}

func (f *fakeOriginator) Originate(_ context.Context, o command.Originate) (command.OriginateReply, error) {
	f.got = append(f.got, o)
	return f.reply, f.err
}

// TestClickToCallHandler: what the endpoint answers, and what it asks the gateway.
func TestClickToCallHandler(t *testing.T) {
	gin.SetMode(gin.TestMode)
	now := time.Now()
	s := sim(now)
	v := verifier(t, s, now)
	ext := func(user int) string { return map[int]string{7: "101"}[user] }
	log := logrus.New()
	log.SetOutput(io.Discard)
	cases := []struct {
		name   string
		token  string
		body   string
		reply  command.OriginateReply
		err    error
		status int
		want   string
		rings  int
	}{
		{"answered", s.DisposableToken(7, time.Minute), `{"phone":"8 916 123-45-67","user_id":7}`, command.OriginateReply{Result: command.ResultAnswered, CallID: "1.2"}, nil, 200, `"call_id":"1.2"`, 1},
		{"no-answer", s.DisposableToken(7, time.Minute), `{"phone":"+79161234567"}`, command.OriginateReply{Result: command.ResultNoAnswer}, nil, 200, `"result":"no_answer"`, 1},
		{"duplicate-click", s.DisposableToken(7, time.Minute), `{"phone":"+79161234567"}`, command.OriginateReply{Result: command.ResultDuplicate}, nil, 409, "duplicate", 1},
		{"gateway-down", s.DisposableToken(7, time.Minute), `{"phone":"+79161234567"}`, command.OriginateReply{}, errors.New("no queue"), 502, "did not answer", 1},
		{"gateway-timeout", s.DisposableToken(7, time.Minute), `{"phone":"+79161234567"}`, command.OriginateReply{}, context.DeadlineExceeded, 504, "did not answer", 1},
		{"unknown-field", s.DisposableToken(7, time.Minute), `{"phone":"+79161234567","extension":"999"}`, command.OriginateReply{}, nil, 400, "unknown field", 0},
		{"not-json", s.DisposableToken(7, time.Minute), `phone=1`, command.OriginateReply{}, nil, 400, "not the widget's JSON", 0},
		{"unmapped-user", s.DisposableToken(8, time.Minute), `{"phone":"+79161234567"}`, command.OriginateReply{}, nil, 403, "no extension", 0},
		{"expired", s.DisposableToken(7, -time.Minute), `{"phone":"+79161234567"}`, command.OriginateReply{}, nil, 401, "expired", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := &fakeOriginator{reply: c.reply, err: c.err}
			h := NewHandler(v, orig, ext, "RU", 30*time.Second, log)
			r := gin.New()
			r.POST("/click-to-call", h.ClickToCall)
			req := httptest.NewRequest(http.MethodPost, "/click-to-call", bytes.NewReader([]byte(c.body)))
			req.Header.Set("X-Auth-Token", c.token)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
				t.Fatalf("%d %s, want %d with %q", w.Code, w.Body, c.status, c.want)
			}
			if len(orig.got) != c.rings {
				t.Fatalf("%d originates, want %d", len(orig.got), c.rings)
			}
			if c.rings == 1 {
				o := orig.got[0]
				if o.Extension != "101" || o.Number != "+79161234567" || o.TimeoutSeconds != 30 || !strings.HasPrefix(o.RequestID, "amo:") {
					t.Fatalf("originate %+v", o)
				}
			}
		})
	}
	t.Run("same-click-same-request-id", func(t *testing.T) {
		orig := &fakeOriginator{reply: command.OriginateReply{Result: command.ResultAnswered}}
		h := NewHandler(v, orig, ext, "RU", 30*time.Second, log)
		r := gin.New()
		r.POST("/c", h.ClickToCall)
		tok := s.DisposableToken(7, time.Minute)
		for _, body := range []string{`{"phone":"+79161234567"}`, `{"phone":"8 916 123 45 67"}`, `{"phone":"+79161234568"}`} {
			req := httptest.NewRequest(http.MethodPost, "/c", strings.NewReader(body))
			req.Header.Set("X-Auth-Token", tok)
			r.ServeHTTP(httptest.NewRecorder(), req)
		}
		if orig.got[0].RequestID != orig.got[1].RequestID || orig.got[0].RequestID == orig.got[2].RequestID {
			t.Fatalf("request ids %s %s %s: a double click must ring once, another number again", orig.got[0].RequestID, orig.got[1].RequestID, orig.got[2].RequestID)
		}
	})
}
