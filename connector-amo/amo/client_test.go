package amo

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTokens is a TokenSource that counts refreshes.
type fakeTokens struct {
	mu        sync.Mutex
	token     string
	refreshes int
	refresh   func(refused string) (string, error)
}

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token, nil
}

func (f *fakeTokens) Refresh(_ context.Context, refused string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	if f.refresh != nil {
		t, err := f.refresh(refused)
		if err == nil {
			f.token = t
		}
		return t, err
	}
	f.token = "fresh"
	return "fresh", nil
}

// answer is one scripted HTTP answer.
type answer struct {
	status int
	ctype  string
	body   string
	header map[string]string
}

// script serves the answers in order (the last one repeats) and records the tokens it saw.
type script struct {
	mu      sync.Mutex
	answers []answer
	n       int
	tokens  []string
	bodies  []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := s.answers[min(s.n, len(s.answers)-1)]
	s.n++
	s.tokens = append(s.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	buf := new(strings.Builder)
	if r.Body != nil {
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		buf.Write(b[:n])
	}
	s.bodies = append(s.bodies, buf.String())
	s.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if a.ctype != "" {
		w.Header().Set("Content-Type", a.ctype)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(a.body))
}

func (s *script) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

const (
	problemJSON = "application/problem+json"
	halJSON     = "application/hal+json"
)

func problemBody(status int, title, detail string) string {
	return `{"title":"` + title + `","type":"https://httpstatus.es/` + itoa(status) + `","status":` + itoa(status) + `,"detail":"` + detail + `"}`
}

func itoa(n int) string {
	return strings.TrimSpace(strings.Join([]string{string(rune('0' + n/100)), string(rune('0' + n/10%10)), string(rune('0' + n%10))}, ""))
}

func newTestClient(t *testing.T, url string, tokens TokenSource) (*Client, *[]time.Duration) {
	t.Helper()
	var sleeps []time.Duration
	var mu sync.Mutex
	c, err := New(Options{BaseURL: url, Tokens: tokens, Timeout: 5 * time.Second, sleep: func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		sleeps = append(sleeps, d)
		mu.Unlock()
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c, &sleeps
}

const addedCall = `{"_total_items":1,"_embedded":{"calls":[{"id":501,"entity_id":100,"entity_type":"contacts","account_id":1,"request_id":"0","_embedded":{"entity":{"id":100}}}]},"errors":[]}`

// TestAddCall is the client's answer to each thing amoCRM may say to POST /api/v4/calls.
func TestAddCall(t *testing.T) {
	call := Call{Direction: "inbound", Uniq: "1.1", Duration: 30, Source: "ringbridge", Phone: "+79161234567", CallStatus: CallStatusTalked}
	cases := []struct {
		name      string
		answers   []answer
		refresh   func(string) (string, error)
		wantKind  Kind
		wantErr   string // substring of the error; "" means success
		wantReqs  int
		wantSleep int
		check     func(t *testing.T, got AddedCall, err error, tokens *fakeTokens, s *script)
	}{
		{
			name:     "added",
			answers:  []answer{{200, halJSON, addedCall, nil}},
			wantReqs: 1,
			check: func(t *testing.T, got AddedCall, _ error, _ *fakeTokens, s *script) {
				if got != (AddedCall{ID: 501, EntityType: "contacts", EntityID: 100}) {
					t.Fatalf("added %+v", got)
				}
				if !strings.HasPrefix(s.bodies[0], `[{"direction":"inbound","uniq":"1.1","duration":30,"source":"ringbridge","phone":"+79161234567"`) {
					t.Fatalf("body %s", s.bodies[0])
				}
			},
		},
		{
			name:     "no-card-for-phone",
			answers:  []answer{{400, halJSON, `{"_total_items":0,"_embedded":{"calls":[]},"errors":[{"request_id":"0","status":400,"title":"Bad Request","detail":"Entity with this phone not found"}]}`, nil}},
			wantErr:  "Entity with this phone not found",
			wantReqs: 1,
			check: func(t *testing.T, _ AddedCall, err error, _ *fakeTokens, _ *script) {
				if !IsNotAdded(err) {
					t.Fatalf("err %v is not a NotAddedError", err)
				}
			},
		},
		{
			name:     "error-400-validation",
			answers:  []answer{{400, problemJSON, `{"validation-errors":[{"request_id":"0","errors":[{"code":"NotSupportedChoice","path":"call_status","detail":"The value you selected is not a valid choice."}]}],"title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}`, nil}},
			wantKind: KindInvalid,
			wantErr:  "item 0: field call_status: NotSupportedChoice",
			wantReqs: 1,
		},
		{
			name:     "error-401-refreshes-once",
			answers:  []answer{{401, problemJSON, problemBody(401, "Unauthorized", "Неверный логин или пароль"), nil}, {200, halJSON, addedCall, nil}},
			wantReqs: 2,
			check: func(t *testing.T, _ AddedCall, _ error, f *fakeTokens, s *script) {
				if f.refreshes != 1 || s.tokens[0] != "old" || s.tokens[1] != "fresh" {
					t.Fatalf("refreshes %d, tokens %v", f.refreshes, s.tokens)
				}
			},
		},
		{
			name:     "error-401-after-refresh",
			answers:  []answer{{401, problemJSON, problemBody(401, "Unauthorized", "Неверный логин или пароль"), nil}},
			wantKind: KindUnauthorized,
			wantErr:  "refused again after a refresh",
			wantReqs: 2,
			check: func(t *testing.T, _ AddedCall, err error, f *fakeTokens, _ *script) {
				if f.refreshes != 1 {
					t.Fatalf("%d refreshes, want 1", f.refreshes)
				}
				if e, _ := AsError(err); !e.AccountStopped() || e.Retryable() {
					t.Fatal("a refused token must stop the account, not be retried")
				}
			},
		},
		{
			name:     "error-401-refresh-fails",
			answers:  []answer{{401, problemJSON, problemBody(401, "Unauthorized", "x"), nil}},
			refresh:  func(string) (string, error) { return "", deadError(Pair{Dead: "Token has been revoked"}) },
			wantKind: KindUnauthorized,
			wantErr:  "Token has been revoked",
			wantReqs: 1,
		},
		{
			name:     "error-402",
			answers:  []answer{{402, problemJSON, problemBody(402, "Payment Required", "Account is not paid"), nil}},
			wantKind: KindPaymentRequired,
			wantErr:  "402 Payment Required: Account is not paid",
			wantReqs: 1,
			check: func(t *testing.T, _ AddedCall, err error, _ *fakeTokens, _ *script) {
				if e, _ := AsError(err); !e.AccountStopped() || e.MaybeApplied() {
					t.Fatal("402 must stop the account and is known not applied")
				}
			},
		},
		{
			name:     "error-403",
			answers:  []answer{{403, problemJSON, problemBody(403, "Forbidden", "Account is blocked"), nil}},
			wantKind: KindBlocked,
			wantErr:  "Account is blocked",
			wantReqs: 1,
		},
		{
			name:      "error-429-backs-off",
			answers:   []answer{{429, problemJSON, problemBody(429, "Too Many Requests", "Too many requests"), nil}, {429, problemJSON, problemBody(429, "Too Many Requests", ""), map[string]string{"Retry-After": "2"}}, {200, halJSON, addedCall, nil}},
			wantReqs:  3,
			wantSleep: 2,
			check:     func(t *testing.T, _ AddedCall, _ error, _ *fakeTokens, _ *script) {},
		},
		{
			name:      "error-429-exhausted",
			answers:   []answer{{429, "text/html", "<html>slow down</html>", nil}},
			wantKind:  KindRateLimited,
			wantErr:   "429 Too Many Requests",
			wantReqs:  5,
			wantSleep: 4,
			check: func(t *testing.T, _ AddedCall, err error, _ *fakeTokens, _ *script) {
				if e, _ := AsError(err); !e.Retryable() || e.MaybeApplied() {
					t.Fatal("429 is retryable and not applied")
				}
			},
		},
		{
			name:     "error-500",
			answers:  []answer{{500, "text/plain", "internal error", nil}},
			wantKind: KindServer,
			wantErr:  "500 internal error",
			wantReqs: 1,
			check: func(t *testing.T, _ AddedCall, err error, _ *fakeTokens, _ *script) {
				if e, _ := AsError(err); !e.Retryable() || !e.MaybeApplied() {
					t.Fatal("500 is retryable and its outcome unknown")
				}
			},
		},
		{
			name:     "error-504-mutations",
			answers:  []answer{{504, problemJSON, problemBody(504, "Gateway Timeout", "Too many entity mutations, try again later"), nil}},
			wantKind: KindServer,
			wantErr:  "Too many entity mutations",
			wantReqs: 1,
			check: func(t *testing.T, _ AddedCall, err error, _ *fakeTokens, _ *script) {
				if e, _ := AsError(err); e.MaybeApplied() {
					t.Fatal("504 mutations is known not applied")
				}
			},
		},
		{
			name:     "bad-2xx-body",
			answers:  []answer{{200, halJSON, `{"_embedded":{"calls":"nope"}}`, nil}},
			wantKind: KindBadResponse,
			wantErr:  "unreadable",
			wantReqs: 1,
		},
		{
			name:     "empty-2xx-body",
			answers:  []answer{{200, halJSON, ``, nil}},
			wantKind: KindBadResponse,
			wantErr:  "empty answer",
			wantReqs: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &script{answers: c.answers}
			srv := httptest.NewServer(s)
			defer srv.Close()
			tokens := &fakeTokens{token: "old", refresh: c.refresh}
			cl, sleeps := newTestClient(t, srv.URL, tokens)
			got, err := cl.AddCall(context.Background(), call)
			if c.wantErr == "" && err != nil {
				t.Fatalf("err %v", err)
			}
			if c.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, added %+v", got)
				}
				if !strings.Contains(err.Error(), c.wantErr) && !(c.wantKind == KindBadResponse && strings.Contains(err.Error(), "reading the answer")) {
					t.Fatalf("error %q does not say %q", err, c.wantErr)
				}
				if e, ok := AsError(err); ok && e.Kind != c.wantKind {
					t.Fatalf("kind %v, want %v (%v)", e.Kind, c.wantKind, err)
				} else if !ok && !IsNotAdded(err) {
					t.Fatalf("error %T %v is not an *Error", err, err)
				}
			}
			if n := s.requests(); n != c.wantReqs {
				t.Fatalf("%d requests, want %d", n, c.wantReqs)
			}
			if len(*sleeps) != c.wantSleep {
				t.Fatalf("%d backoffs, want %d", len(*sleeps), c.wantSleep)
			}
			if c.check != nil {
				c.check(t, got, err, tokens, s)
			}
		})
	}
}

// TestClient covers the rest of the request machinery.
func TestClient(t *testing.T) {
	t.Run("no-content-is-empty", func(t *testing.T) {
		srv := httptest.NewServer(&script{answers: []answer{{204, "", "", nil}}})
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, &fakeTokens{token: "t"})
		cs, err := cl.FindContacts(context.Background(), "9161234567")
		if err != nil || len(cs) != 0 {
			t.Fatalf("contacts %v, err %v", cs, err)
		}
	})
	t.Run("contacts-with-phones-and-leads", func(t *testing.T) {
		body := `{"_page":1,"_embedded":{"contacts":[{"id":100,"name":"Ivan","custom_fields_values":[{"field_id":1,"field_code":"PHONE","values":[{"value":"+7 916 123-45-67","enum_code":"WORK"}]},{"field_code":"EMAIL","values":[{"value":"a@b.c"}]}],"_embedded":{"leads":[{"id":7},{"id":"8"}]}}]}}`
		srv := httptest.NewServer(&script{answers: []answer{{200, halJSON, body, nil}}})
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, &fakeTokens{token: "t"})
		cs, err := cl.FindContacts(context.Background(), "9161234567")
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].ID != 100 || len(cs[0].Phones) != 1 || cs[0].Phones[0] != "+7 916 123-45-67" || len(cs[0].LeadIDs) != 2 || cs[0].LeadIDs[1] != 8 {
			t.Fatalf("contacts %+v", cs)
		}
	})
	t.Run("connection-refused-not-sent", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		cl, _ := newTestClient(t, "http://"+addr, &fakeTokens{token: "t"})
		_, err := cl.AddCall(context.Background(), Call{})
		e, ok := AsError(err)
		if !ok || e.Kind != KindTransport || e.Sent || e.MaybeApplied() || !e.Retryable() {
			t.Fatalf("err %#v", err)
		}
	})
	t.Run("timeout-maybe-applied", func(t *testing.T) {
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		defer srv.Close()
		defer close(block)
		cl, err := New(Options{BaseURL: srv.URL, Tokens: &fakeTokens{token: "t"}, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.AddCall(context.Background(), Call{})
		e, ok := AsError(err)
		if !ok || e.Kind != KindTransport || !e.MaybeApplied() {
			t.Fatalf("err %v", err)
		}
		if !strings.Contains(err.Error(), "may have been applied") {
			t.Fatalf("error %q does not warn that the call may be in amoCRM", err)
		}
	})
	t.Run("cancel-does-not-abort-a-sent-request", func(t *testing.T) {
		got := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(got)
			time.Sleep(150 * time.Millisecond)
			w.Header().Set("Content-Type", halJSON)
			w.Write([]byte(addedCall))
		}))
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, &fakeTokens{token: "t"})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-got; cancel() }()
		added, err := cl.AddCall(ctx, Call{})
		if err != nil || added.ID != 501 {
			t.Fatalf("a request cancelled after it was sent must complete: %+v %v", added, err)
		}
	})
	t.Run("cancel-before-send", func(t *testing.T) {
		s := &script{answers: []answer{{200, halJSON, addedCall, nil}}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, &fakeTokens{token: "t"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := cl.AddCall(ctx, Call{}); !errors.Is(err, context.Canceled) || s.requests() != 0 {
			t.Fatalf("err %v after %d requests", err, s.requests())
		}
	})
	t.Run("not-connected", func(t *testing.T) {
		s := &script{answers: []answer{{200, halJSON, addedCall, nil}}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, notConnected{})
		_, err := cl.AddCall(context.Background(), Call{})
		if k, _ := KindOf(err); k != KindNotConnected || s.requests() != 0 {
			t.Fatalf("err %v after %d requests", err, s.requests())
		}
	})
	t.Run("error-never-shows-the-token", func(t *testing.T) {
		srv := httptest.NewServer(&script{answers: []answer{{401, problemJSON, problemBody(401, "Unauthorized", "x"), nil}}})
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, &fakeTokens{token: "secret-access-token", refresh: func(string) (string, error) { return "secret-fresh", nil }})
		_, err := cl.AddCall(context.Background(), Call{})
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("bad-base-url", func(t *testing.T) {
		for _, u := range []string{"", "company.amocrm.ru", "ftp://x", "https://"} {
			if _, err := New(Options{BaseURL: u, Tokens: &fakeTokens{}}); err == nil {
				t.Errorf("New accepted %q", u)
			}
		}
	})
	t.Run("notify-needs-users", func(t *testing.T) {
		s := &script{answers: []answer{{202, "application/json", "{}", nil}}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, &fakeTokens{token: "t"})
		if err := cl.NotifyCall(context.Background(), "+79161234567", nil); err == nil {
			t.Fatal("a notification for nobody would go to everyone")
		}
		if err := cl.NotifyCall(context.Background(), "+79161234567", []int{7}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s.bodies[0], `"type":"phone_call"`) || !strings.Contains(s.bodies[0], `"users":[7]`) {
			t.Fatalf("body %s", s.bodies[0])
		}
	})
	t.Run("unsorted-exists", func(t *testing.T) {
		body := `{"validation-errors":[{"request_id":"rb-1","errors":[{"code":"NotUnique","path":"source_uid","detail":"Incoming lead with this source_uid is already in Unsorted."}]}],"title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}`
		srv := httptest.NewServer(&script{answers: []answer{{400, problemJSON, body, nil}}})
		defer srv.Close()
		cl, _ := newTestClient(t, srv.URL, &fakeTokens{token: "t"})
		if _, err := cl.AddUnsortedCall(context.Background(), UnsortedCall{SourceUID: "rb-1"}); !errors.Is(err, ErrUnsortedExists) {
			t.Fatalf("err %v", err)
		}
	})
}

type notConnected struct{}

func (notConnected) Token(context.Context) (string, error) {
	return "", &Error{Kind: KindNotConnected, Route: tokenRoute, Err: ErrNotConnected}
}
func (notConnected) Refresh(context.Context, string) (string, error) { return "", ErrNotConnected }

// TestErrorWords: each error says what happened in words, naming the field.
func TestErrorWords(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   []string
	}{
		{"problem-json", 400, `{"title":"Bad Request","status":400,"detail":"Request validation failed","validation-errors":[{"request_id":"3","errors":[{"code":"NotBlank","path":"_embedded.contacts.0.name","detail":"This value should not be blank."}]}]}`,
			[]string{"POST /api/v4/calls: 400 Bad Request: Request validation failed", "item 3: field _embedded.contacts.0.name: NotBlank: This value should not be blank."}},
		{"oauth-hint", 401, `{"hint":"Token has been revoked","title":"Некорректный запрос","type":"https://developers.amocrm.ru/v3/errors/OAuthProblemJson","status":401,"detail":"В запросе отсутствует ряд параметров или параметры невалидны"}`,
			[]string{"401 Некорректный запрос", "Token has been revoked"}},
		{"v2-error", 400, `{"response":{"error":"Неверный запрос","error_code":"2"}}`, []string{"400 Неверный запрос"}},
		{"html", 502, `<html><body>Bad gateway</body></html>`, []string{"502 Bad Gateway"}},
		{"empty", 503, ``, []string{"503 Service Unavailable"}},
		{"status-as-string", 400, `{"title":"x","status":"400","validation-errors":[{"request_id":0,"errors":[{"code":1,"path":"phone"}]}]}`, []string{"item 0: field phone: 1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := newHTTPError("POST /api/v4/calls", c.status, []byte(c.body)).Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
		})
	}
}
