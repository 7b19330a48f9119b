package amo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

func TestRateLimit(t *testing.T) {
	t.Run("default-is-7-per-second", func(t *testing.T) {
		l := newLimiter(RateLimit{})
		now := time.Unix(1000, 0)
		for i := range 7 {
			if v := l.take(now.Add(time.Duration(i) * time.Millisecond)); v != admit {
				t.Fatalf("request %d: %v", i, v)
			}
		}
		if v := l.take(now.Add(10 * time.Millisecond)); v != tooMany {
			t.Errorf("8th request in a second: %v", v)
		}
		if v := l.take(now.Add(time.Second + time.Millisecond)); v != admit {
			t.Errorf("after a second: %v", v)
		}
	})
	t.Run("429-body-and-recovery", func(t *testing.T) {
		e := newEnv(t, Options{RateLimit: RateLimit{PerSecond: 3, Window: 300 * time.Millisecond}})
		var statuses []int
		var last reply
		for range 5 {
			last = e.do("GET", "/api/v4/account", nil)
			statuses = append(statuses, last.status)
		}
		want := []int{200, 200, 200, 429, 429}
		for i := range want {
			if statuses[i] != want[i] {
				t.Fatalf("statuses %v, want %v", statuses, want)
			}
		}
		if last.get("title") != "Too Many Requests" || num(last.get("status")) != 429 || last.get("type") != "https://httpstatus.es/429" {
			t.Errorf("429 body %s", last.raw)
		}
		time.Sleep(350 * time.Millisecond)
		if r := e.do("GET", "/api/v4/account", nil); r.status != 200 {
			t.Errorf("after the window: %d", r.status)
		}
	})
	t.Run("ban-after-repeated-429", func(t *testing.T) {
		l := newLimiter(RateLimit{PerSecond: 1, BanAfter: 3, BanFor: time.Minute})
		now := time.Unix(1000, 0)
		got := []verdict{}
		for i := range 6 {
			got = append(got, l.take(now.Add(time.Duration(i)*time.Millisecond)))
		}
		want := []verdict{admit, tooMany, tooMany, tooMany, banned, banned}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("verdicts %v, want %v", got, want)
			}
		}
		if v := l.take(now.Add(2 * time.Minute)); v != admit {
			t.Errorf("after the ban: %v", v)
		}
	})
	t.Run("oauth-not-limited", func(t *testing.T) {
		e := newEnv(t, Options{RateLimit: RateLimit{PerSecond: 1, Window: time.Hour}})
		e.do("GET", "/api/v4/account", nil)
		in := e.s.IssueTokens()
		if r := e.refresh(in, in.RefreshToken); r.status != 200 {
			t.Errorf("token endpoint limited: %d", r.status)
		}
	})
}

func TestFaults(t *testing.T) {
	cases := []struct {
		status int
		title  string
	}{
		{401, "Unauthorized"},
		{402, "Payment Required"},
		{403, "Forbidden"},
		{429, "Too Many Requests"},
		{500, "Internal Server Error"},
		{504, "Gateway Timeout"},
	}
	for _, c := range cases {
		t.Run(itoa(c.status), func(t *testing.T) {
			e := newEnv(t, Options{})
			resp, err := http.Post(e.url+"/_sim/faults", "application/json", strings.NewReader(`{"method":"POST /api/v4/calls","status":`+itoa(c.status)+`,"count":1}`))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("add fault: %v %v", err, resp)
			}
			resp.Body.Close()
			body := `[{"direction":"inbound","duration":1,"source":"rb","phone":"79161111111"}]`
			r := e.do("POST", "/api/v4/calls", body)
			if r.status != c.status || r.get("title") != c.title || num(r.get("status")) != c.status || r.get("type") != "https://httpstatus.es/"+itoa(c.status) || r.get("detail") == nil {
				t.Errorf("fault answer %d %s", r.status, r.raw)
			}
			if len(e.s.Calls()) != 0 {
				t.Error("the faulted call was added")
			}
			if r := e.do("POST", "/api/v4/calls", body); r.status != 200 {
				t.Errorf("fault not used up: %d", r.status)
			}
		})
	}
	t.Run("other-method-untouched", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.s.AddFault(crmsim.Fault{Method: "POST /api/v4/calls", Status: 500})
		if r := e.do("GET", "/api/v4/contacts/{id}", nil); r.status == 500 {
			t.Error("fault hit another method")
		}
		e.s.AddFault(crmsim.Fault{Method: "GET /api/v4/contacts/{id}", Status: 503})
		if r := e.do("GET", "/api/v4/contacts/11", nil); r.status != 503 {
			t.Errorf("fault by route pattern: %d", r.status)
		}
	})
}

func TestJournal(t *testing.T) {
	e := newEnv(t, Options{})
	in := e.s.IssueTokens()
	if r := e.refresh(in, in.RefreshToken); r.status != 200 {
		t.Fatal(r.status)
	}
	e.do("GET", "/api/v4/contacts?query=79161111111&with=leads", nil)
	e.do("POST", "/api/v4/calls", `[{"direction":"inbound","uniq":"9.9","duration":1,"source":"rb","phone":"79161111111"}]`)
	reqs := e.s.Requests(0)
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	tok := reqs[0]
	if tok.Method != "POST /oauth2/access_token" || tok.Param("client_secret") != "<secret>" || tok.Param("refresh_token") != "<secret>" || tok.Status != 200 {
		t.Errorf("token request journaled as %+v", tok)
	}
	all, _ := json.Marshal(reqs)
	for _, secret := range []string{in.ClientSecret, in.RefreshToken, in.AccessToken, e.token} {
		if strings.Contains(string(all), secret) {
			t.Errorf("a secret is in the journal: %s", secret[:8])
		}
	}
	if r := reqs[1]; r.Method != "GET /api/v4/contacts" || r.Param("query") != "79161111111" || r.Param(hostParam) != strings.TrimPrefix(e.url, "http://") || r.Status != 200 {
		t.Errorf("search journaled as %+v", r)
	}
	if r := reqs[2]; r.Method != "POST /api/v4/calls" || r.Param("0.uniq") != "9.9" || r.Param("0.duration") != "1" {
		t.Errorf("call journaled as %+v", r)
	}
	// The runner's view over HTTP.
	resp, err := http.Get(e.url + "/_sim/requests?since=2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []crmsim.Request
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got) != 1 || got[0].Method != "POST /api/v4/calls" {
		t.Errorf("/_sim/requests: %v %+v", err, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := e.s.Wait(ctx, func(r crmsim.Request) bool { return r.Param("0.uniq") == "9.9" }); err != nil {
		t.Error(err)
	}
}

func TestStartAndSeedFiles(t *testing.T) {
	cases := []struct{ name, file string }{
		{"yaml", "testdata/seed.yaml"},
		{"json", "testdata/seed.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed, err := LoadSeed(c.file)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := New(Options{Seed: seed})
			base, err := s.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(base, "http://127.0.0.1:") || s.URL() != base {
				t.Errorf("url %q", base)
			}
			req, _ := http.NewRequest("GET", base+"/api/v4/contacts?query=9161234567&with=leads", nil)
			req.Header.Set("Authorization", "Bearer "+seed.LongLivedTokens[0])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"name":"Иван Петров"`) {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
			if s.Account().Subdomain != "testshop" || s.Integration().ClientID != "11111111-2222-3333-4444-555555555555" {
				t.Errorf("account %+v integration %+v", s.Account(), s.Integration())
			}
			cancel()
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := http.Get(base + "/api/v4/account"); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Error("server still up after its context ended")
		})
	}
	t.Run("unknown-key", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(p, []byte("users:\n  - id: 1\n    phone: '101'\n"), 0o644)
		if _, err := LoadSeed(p); err == nil {
			t.Error("a user phone (amoCRM has none) was accepted")
		}
	})
}
