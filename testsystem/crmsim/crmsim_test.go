package crmsim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func newTestServer(t *testing.T) (*Sim, *httptest.Server) {
	s := New("auth", "access_token", "client_secret")
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"result":{"CALL_ID":"X1"}}`))
	})
	method := func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/rest/") }
	errBody := func(status int) []byte {
		return []byte(`{"error":"INJECTED","status":` + http.StatusText(status) + `"}`)
	}
	srv := httptest.NewServer(s.Wrap(api, method, errBody))
	t.Cleanup(srv.Close)
	return s, srv
}

func TestJournal(t *testing.T) {
	s, srv := newTestServer(t)
	form := url.Values{"FIELDS[PHONE_NUMBER]": {"+79161234567"}, "auth": {"tok-123"}}
	resp, err := http.PostForm(srv.URL+"/rest/telephony.externalcall.register", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Post(srv.URL+"/rest/calls", "application/json", strings.NewReader(`[{"uniq":"1.2","duration":12,"access_token":"zzz"}]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := s.Requests(0)
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if r := reqs[0]; r.Method != "telephony.externalcall.register" || r.Param("FIELDS[PHONE_NUMBER]") != "+79161234567" || r.Param("auth") != "<secret>" || r.Status != 200 {
		t.Errorf("form request recorded as %+v", r)
	}
	if r := reqs[0]; r.Form != "FIELDS%5BPHONE_NUMBER%5D=%2B79161234567&auth=%3Csecret%3E" {
		t.Errorf("raw form recorded as %q", r.Form)
	}
	if r := reqs[1]; string(r.Body) != `[{"uniq":"1.2","duration":12,"access_token":"<secret>"}]` {
		t.Errorf("JSON body recorded as %s (order and numbers kept, secret redacted)", r.Body)
	}
	if r := reqs[1]; r.Param("0.uniq") != "1.2" || r.Param("0.duration") != "12" || r.Param("0.access_token") != "<secret>" || strings.Contains(string(r.Body), "zzz") {
		t.Errorf("json request recorded as %+v", r)
	}
	// The journal over HTTP.
	resp, err = http.Get(srv.URL + "/_sim/requests?since=1")
	if err != nil {
		t.Fatal(err)
	}
	var got []Request
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("since=1 gave %+v", got)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		fault  Fault
		status int
	}{
		{"status-once", Fault{Method: "telephony.*", Status: 503, Count: 1}, 503},
		{"other-method", Fault{Method: "user.get", Status: 401}, 200},
		{"delay-only", Fault{Delay: 50 * time.Millisecond, Count: 1}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, srv := newTestServer(t)
			s.AddFault(c.fault)
			start := time.Now()
			resp, err := http.Post(srv.URL+"/rest/telephony.externalcall.finish", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.fault.Delay > 0 && time.Since(start) < c.fault.Delay {
				t.Error("no delay")
			}
			// Count 1: the next request passes.
			resp, _ = http.Post(srv.URL+"/rest/telephony.externalcall.finish", "application/json", strings.NewReader(`{}`))
			resp.Body.Close()
			if c.fault.Count == 1 && resp.StatusCode != 200 {
				t.Errorf("fault not used up: %d", resp.StatusCode)
			}
		})
	}
	t.Run("drop", func(t *testing.T) {
		s, srv := newTestServer(t)
		s.AddFault(Fault{Drop: true, Count: 1})
		if _, err := http.Post(srv.URL+"/rest/x", "application/json", strings.NewReader(`{}`)); err == nil {
			t.Error("a dropped request got an answer")
		}
		if r := s.Requests(0); len(r) != 1 || r[0].Fault == "" {
			t.Errorf("dropped request not journaled: %+v", r)
		}
	})
	t.Run("control-endpoint", func(t *testing.T) {
		s, srv := newTestServer(t)
		resp, err := http.Post(srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"method":"x","status":429,"count":2}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", err, resp)
		}
		for i, want := range []int{429, 429, 200} {
			resp, _ := http.Post(srv.URL+"/rest/x", "application/json", strings.NewReader(`{}`))
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("request %d: %d, want %d", i, resp.StatusCode, want)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := s.Wait(ctx, func(r Request) bool { return r.Status == 200 }); err != nil {
			t.Error(err)
		}
	})
}
