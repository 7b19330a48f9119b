package amo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for token lifetimes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testSeed is a small account: two users, a contact with one active lead, a contact with two,
// a contact whose only lead is won, a company, and a contact with no lead.
func testSeed() Seed {
	return Seed{
		Users: []User{
			{ID: 501, Name: "Анна Админ", Email: "anna@example.com", IsAdmin: true},
			{ID: 502, Name: "Борис", Email: "boris@example.com"},
			{ID: 503, Name: "Вера", Email: "vera@example.com"},
		},
		Contacts: []Contact{
			{ID: 11, Name: "Иван Один", Phones: []Phone{{Value: "+7 (916) 111-11-11", Enum: "MOB"}}},
			{ID: 12, Name: "Пётр Два", Phones: []Phone{{Value: "89162222222"}}},
			{ID: 13, Name: "Семён Закрыт", Phones: []Phone{{Value: "+79163333333"}}},
			{ID: 14, Name: "Ольга Без", Phones: []Phone{{Value: "79164444444"}}, Emails: []Phone{{Value: "olga@example.com"}}},
		},
		Companies: []Company{{ID: 41, Name: "ООО Ромашка", Phones: []Phone{{Value: "+7 495 555-55-55"}}}},
		Leads: []Lead{
			{ID: 21, Name: "Сделка Ивана", ContactIDs: []int{11}},
			{ID: 22, Name: "Сделка Петра 1", ContactIDs: []int{12}},
			{ID: 23, Name: "Сделка Петра 2", ContactIDs: []int{12}},
			{ID: 24, Name: "Выигранная", ContactIDs: []int{13}, StatusID: StatusWon},
		},
	}
}

type env struct {
	t     *testing.T
	s     *Server
	url   string
	token string
	clock *clock
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	c := newClock()
	if opts.Now == nil {
		opts.Now = c.now
	}
	if opts.Users == nil {
		opts.Seed = testSeed()
	}
	if opts.RateLimit.PerSecond == 0 {
		opts.RateLimit.PerSecond = -1 // most tests are not about the limit
	}
	s := New(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, s: s, url: srv.URL, token: s.IssueTokens().AccessToken, clock: c}
}

// reply is a response: status, raw body, and the body decoded as JSON (nil if none).
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   any
}

func (r reply) obj() map[string]any { m, _ := r.body.(map[string]any); return m }

// get walks a decoded body by keys and indexes: get("_embedded", "calls", 0, "id").
func (r reply) get(path ...any) any { return dig(r.body, path...) }

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func (e *env) do(method, path string, body any) reply {
	e.t.Helper()
	return e.doAuth(method, path, body, "Bearer "+e.token)
}

func (e *env) doAuth(method, path string, body any, auth string) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.body)
	}
	return r
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

type rawResp struct {
	status int
	body   []byte
}

func httpPostForm(u string, f url.Values) (rawResp, error) {
	resp, err := http.PostForm(u, f)
	if err != nil {
		return rawResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, b}, err
}
