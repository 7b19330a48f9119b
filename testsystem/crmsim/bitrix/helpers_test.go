package bitrix

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

// testClock is a settable clock so tests move time instead of sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// portal is a simulator under test with an installed application.
type portal struct {
	t    *testing.T
	s    *Server
	ts   *httptest.Server
	inst Install
}

func seedOptions() Options {
	return Options{
		Users: []User{
			{ID: 1, Name: "Anna", LastName: "Petrova", PhoneInner: "101", Admin: true},
			{ID: 2, Name: "Oleg", LastName: "Sidorov", PhoneInner: "102", TimemanStatus: "CLOSED"},
			{ID: 3, Name: "Fired", LastName: "Man", PhoneInner: "103", Inactive: true},
		},
		Contacts:  []Contact{{ID: 10, Name: "Ivan", LastName: "Ivanov", Phones: []string{"+7 (916) 123-45-67"}, AssignedByID: 2}},
		Companies: []Company{{ID: 20, Title: "Romashka LLC", Phones: []string{"+74951112233"}, AssignedByID: 1}},
		Leads:     []Lead{{ID: 30, Title: "Old lead", Phones: []string{"89035556677"}, AssignedByID: 1}},
		Lines:     []Line{{Number: "74950000001", Name: "Main"}, {Number: "74950000002", Name: "Sales out", CRMAutoCreate: "N"}},
		Webhooks:  []Webhook{{UserID: 1, Secret: "hooksecret"}},
	}
}

func newPortal(t *testing.T, opts Options) *portal {
	t.Helper()
	if opts.Now == nil {
		clock := &testClock{t: time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)}
		opts.Now = clock.now
	}
	s := New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	s.SetPublicURL(ts.URL)
	inst, err := s.IssueInstall(InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &portal{t: t, s: s, ts: ts, inst: inst}
}

// answer is a decoded response.
type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (a answer) result() any { return a.body["result"] }

func (a answer) resultMap() map[string]any {
	m, _ := a.body["result"].(map[string]any)
	return m
}

func (a answer) errCode() string { s, _ := a.body["error"].(string); return s }

func (a answer) errDesc() string { s, _ := a.body["error_description"].(string); return s }

func (p *portal) do(req *http.Request) answer {
	p.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(b)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.Decode(&a.body) //nolint:errcheck // a non-object body stays nil; tests look at raw
	return a
}

// form calls a method with a form body; auth is added unless the form has one.
func (p *portal) form(method string, f url.Values) answer {
	p.t.Helper()
	if f == nil {
		f = url.Values{}
	}
	if _, ok := f["auth"]; !ok {
		f.Set("auth", p.inst.AccessToken)
	}
	return p.post("/rest/"+method, "application/x-www-form-urlencoded", f.Encode())
}

// json calls a method with a JSON body; auth is added unless the body has one.
func (p *portal) json(method string, body map[string]any) answer {
	p.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["auth"]; !ok {
		body["auth"] = p.inst.AccessToken
	}
	b, _ := json.Marshal(body)
	return p.post("/rest/"+method, "application/json", string(b))
}

// hook calls a method through the incoming webhook.
func (p *portal) hook(method string, f url.Values) answer {
	p.t.Helper()
	return p.post("/rest/1/hooksecret/"+method+".json", "application/x-www-form-urlencoded", f.Encode())
}

func (p *portal) post(path, ct, body string) answer {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.ts.URL+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	return p.do(req)
}

func (p *portal) get(path string) answer {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.ts.URL+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.do(req)
}

// register registers an incoming call for user 1 and returns its CALL_ID.
func (p *portal) register(f url.Values) string {
	p.t.Helper()
	base := url.Values{"USER_ID": {"1"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}}
	for k, v := range f {
		base[k] = v
	}
	a := p.form("telephony.externalcall.register", base)
	if a.status != 200 {
		p.t.Fatalf("register: %d %s", a.status, a.raw)
	}
	return a.resultMap()["CALL_ID"].(string)
}

func (p *portal) finish(callID string) answer {
	p.t.Helper()
	return p.form("telephony.externalcall.finish", url.Values{"CALL_ID": {callID}, "USER_ID": {"1"}, "DURATION": {"10"}})
}

func wantError(t *testing.T, a answer, status int, code, desc string) {
	t.Helper()
	if a.status != status || a.errCode() != code || (desc != "" && a.errDesc() != desc) {
		t.Errorf("got %d %s, want %d {%q, %q}", a.status, a.raw, status, code, desc)
	}
}

func num(v any) int {
	switch x := v.(type) {
	case json.Number:
		i, _ := x.Int64()
		return int(i)
	case string:
		n := 0
		for _, c := range x {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	return -1
}
