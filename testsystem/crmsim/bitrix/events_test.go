package bitrix

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
)

// handler records the form posts it gets.
type handler struct {
	ts     *httptest.Server
	status int
	got    chan *http.Request
	forms  chan url.Values
}

func newHandler(t *testing.T, status int) *handler {
	h := &handler{status: status, got: make(chan *http.Request, 4), forms: make(chan url.Values, 4)}
	h.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f, _ := url.ParseQuery(string(b))
		h.got <- r
		h.forms <- f
		w.WriteHeader(h.status)
	}))
	t.Cleanup(h.ts.Close)
	return h
}

func TestSendExternalCallStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := newPortal(t, seedOptions())
	h := newHandler(t, 200)
	callID, err := p.s.SendExternalCallStart(ctx, h.ts.URL+"/bitrix/event", CallStartFields{
		UserID: 2, PhoneNumber: "+79161234567", LineNumber: "74950000001", CRMEntityType: "contact", CRMEntityID: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, f := <-h.got, <-h.forms
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Errorf("posted %s %s", r.Method, r.Header.Get("Content-Type"))
	}
	want := map[string]string{
		"event": "ONEXTERNALCALLSTART", "data[PHONE_NUMBER]": "+79161234567", "data[PHONE_NUMBER_INTERNATIONAL]": "+79161234567",
		"data[EXTENSION]": "", "data[USER_ID]": "2", "data[CALL_LIST_ID]": "0", "data[LINE_NUMBER]": "74950000001",
		"data[IS_MOBILE]": "0", "data[CALL_ID]": callID, "data[CRM_ENTITY_TYPE]": "CONTACT", "data[CRM_ENTITY_ID]": "10",
		"auth[application_token]": p.inst.ApplicationToken, "auth[domain]": p.inst.Domain, "auth[member_id]": p.inst.MemberID,
		"auth[client_endpoint]": p.ts.URL + "/rest/", "auth[status]": "L", "auth[expires_in]": "3600",
	}
	for k, v := range want {
		if got, ok := f[k]; !ok || got[0] != v {
			t.Errorf("%s = %q, want %q", k, f.Get(k), v)
		}
	}
	for _, k := range []string{"event_handler_id", "ts", "auth[access_token]", "auth[refresh_token]", "auth[scope]", "auth[server_endpoint]"} {
		if f.Get(k) == "" {
			t.Errorf("%s missing", k)
		}
	}
	t.Run("event-token-works", func(t *testing.T) {
		if a := p.form("profile", url.Values{"auth": {f.Get("auth[access_token]")}}); a.status != 200 {
			t.Errorf("%s", a.raw)
		}
	})
	t.Run("call-registered-by-portal-then-finished", func(t *testing.T) {
		call, ok := p.s.Call(callID)
		if !ok || !call.ByPortal || call.ExternalCallID != "" || call.Type != 1 || call.UserID != 2 {
			t.Fatalf("call %+v", call)
		}
		a := p.form("telephony.externalcall.finish", url.Values{"CALL_ID": {callID}, "USER_ID": {"2"}, "DURATION": {"30"}})
		if a.status != 200 || a.resultMap()["CRM_ENTITY_TYPE"] != "CONTACT" {
			t.Errorf("finish: %s", a.raw)
		}
	})
	t.Run("handler-failure-reported-not-retried", func(t *testing.T) {
		bad := newHandler(t, 500)
		if _, err := p.s.SendExternalCallStart(ctx, bad.ts.URL, CallStartFields{UserID: 1, PhoneNumber: "+79990000000"}); err == nil {
			t.Error("no error for a 500")
		}
		evs := p.s.Events()
		if last := evs[len(evs)-1]; last.Status != 500 || last.Err == "" || len(bad.got) != 1 {
			t.Errorf("event log %+v, posts %d", last, len(bad.got))
		}
	})
}

func TestSendAppInstallAndCallback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cases := []struct {
		name string
		send func(p *portal, url string) error
		want map[string]string
		none []string // keys that must be absent
	}{
		{"onappinstall", func(p *portal, u string) error { return p.s.SendAppInstall(ctx, u, p.inst) },
			map[string]string{"event": "ONAPPINSTALL", "data[INSTALLED]": "Y", "auth[application_token]": "$apptoken",
				"auth[refresh_token]": "$refresh", "auth[access_token]": "$access", "auth[member_id]": "$member"}, nil},
		{"onexternalcallbackstart", func(p *portal, u string) error {
			return p.s.SendExternalCallbackStart(ctx, u, CallbackStartFields{PhoneNumber: "+79001112233", Text: "Call me",
				CRMEntityType: "lead", CRMEntityID: 30, LineNumber: "74950000001"})
		}, map[string]string{"event": "ONEXTERNALCALLBACKSTART", "data[PHONE_NUMBER]": "+79001112233", "data[TEXT]": "Call me",
			"data[CRM_ENTITY_TYPE]": "LEAD", "data[CRM_ENTITY_ID]": "30", "auth[application_token]": "$apptoken"},
			[]string{"data[CALL_ID]", "data[USER_ID]", "auth[access_token]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			h := newHandler(t, 200)
			if err := c.send(p, h.ts.URL); err != nil {
				t.Fatal(err)
			}
			<-h.got
			f := <-h.forms
			subst := strings.NewReplacer("$apptoken", p.inst.ApplicationToken, "$refresh", p.inst.RefreshToken,
				"$access", p.inst.AccessToken, "$member", p.inst.MemberID)
			for k, v := range c.want {
				if f.Get(k) != subst.Replace(v) {
					t.Errorf("%s = %q, want %q", k, f.Get(k), subst.Replace(v))
				}
			}
			for _, k := range c.none {
				if _, ok := f[k]; ok {
					t.Errorf("%s present", k)
				}
			}
		})
	}
}

// Faults injected over /_sim/faults answer Bitrix24-shaped bodies.
func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		fault  string
		call   func(p *portal) answer
		status int
		code   string
	}{
		{"expired-token", `{"method":"telephony.externalcall.register","status":401,"count":1}`,
			func(p *portal) answer { return p.form("telephony.externalCall.register", nil) }, 401, "expired_token"},
		{"payment-required-on-oauth", `{"method":"oauth.token","status":402,"count":1}`,
			func(p *portal) answer { return p.oauth(p.refreshQuery(p.inst.RefreshToken)) }, 402, "PAYMENT_REQUIRED"},
		{"forbidden", `{"method":"telephony.*","status":403}`,
			func(p *portal) answer { return p.form("telephony.externalcall.finish", nil) }, 403, "WRONG_AUTH_TYPE"},
		{"internal", `{"status":500}`, func(p *portal) answer { return p.form("user.get", nil) }, 500, "INTERNAL_SERVER_ERROR"},
		{"query-limit", `{"method":"batch","status":503}`, func(p *portal) answer { return p.form("batch", nil) }, 503, "QUERY_LIMIT_EXCEEDED"},
		{"operation-time", `{"method":"user.get","status":429}`, func(p *portal) answer { return p.form("user.get", nil) }, 429, "OPERATION_TIME_LIMIT"},
		{"custom-body", `{"method":"telephony.externalcall.finish","status":400,"body":{"error":"","error_description":"Call is not found (call should be registered prior to finishing"}}`,
			func(p *portal) answer { return p.form("telephony.externalcall.finish", nil) }, 400, ""},
		{"webhook-method-name", `{"method":"user.get","status":500,"count":1}`,
			func(p *portal) answer { return p.hook("user.get", url.Values{}) }, 500, "INTERNAL_SERVER_ERROR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			if a := p.post("/_sim/faults", "application/json", c.fault); a.status != 200 {
				t.Fatalf("fault refused: %s", a.raw)
			}
			a := c.call(p)
			if a.status != c.status || a.errCode() != c.code || a.errDesc() == "" {
				t.Errorf("got %d %s, want %d %s", a.status, a.raw, c.status, c.code)
			}
			if r := p.s.Requests(0); len(r) == 0 || r[len(r)-1].Fault == "" {
				t.Errorf("fault not journaled: %+v", r)
			}
		})
	}
	t.Run("drop", func(t *testing.T) {
		p := newPortal(t, seedOptions())
		p.s.AddFault(crmsim.Fault{Method: "telephony.externalcall.finish", Drop: true, Count: 1})
		req, _ := http.NewRequest(http.MethodPost, p.ts.URL+"/rest/telephony.externalcall.finish", strings.NewReader("auth=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Error("dropped request answered")
		}
	})
}

func TestParseOptions(t *testing.T) {
	cases := []struct {
		name string
		file string
		data string
	}{
		{"yaml", "portal.yaml", `
client_id: app.1
users:
  - {id: 7, name: Anna, phone_inner: "201", admin: true}
  - {id: 8, name: Old, phone_inner: "202", inactive: true}
contacts:
  - {id: 10, name: Ivan, phones: ["+79161234567"], assigned_by_id: 7}
lines: [{number: "74950000001", name: Main, crm_auto_create: "N"}]
webhooks: [{user_id: 7, secret: s3}]
rate_burst: 5
access_token_ttl: 10m
operating_cost: {user.get: 100s}
`},
		{"json", "portal.json", `{"client_id":"app.1","users":[{"id":7,"name":"Anna","phone_inner":"201","admin":true},
{"id":8,"name":"Old","phone_inner":"202","inactive":true}],"contacts":[{"id":10,"name":"Ivan","phones":["+79161234567"],
"assigned_by_id":7}],"lines":[{"number":"74950000001","name":"Main","crm_auto_create":"N"}],
"webhooks":[{"user_id":7,"secret":"s3"}],"rate_burst":5,"access_token_ttl":"10m","operating_cost":{"user.get":"100s"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.file)
			if err := os.WriteFile(path, []byte(c.data), 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := LoadOptions(path)
			if err != nil {
				t.Fatal(err)
			}
			if o.ClientID != "app.1" || len(o.Users) != 2 || !o.Users[1].Inactive || o.Contacts[0].AssignedByID != 7 ||
				o.Lines[0].CRMAutoCreate != "N" || o.Webhooks[0].Secret != "s3" || o.RateBurst != 5 ||
				o.AccessTokenTTL != 10*time.Minute || o.OperatingCost["user.get"] != 100*time.Second {
				t.Fatalf("options %+v", o)
			}
			p := newPortal(t, o)
			if a := p.post("/rest/7/s3/user.get", "application/json", `{"filter":{"ACTIVE":true}}`); a.status != 200 || !strings.Contains(a.raw, `"total":1`) {
				t.Errorf("seeded portal: %s", a.raw)
			}
		})
	}
	t.Run("bad-file", func(t *testing.T) {
		if _, err := ParseOptions([]byte("users: {")); err == nil {
			t.Error("no error")
		}
	})
}

func TestStart(t *testing.T) {
	s := New(seedOptions())
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inst, err := s.IssueInstall(InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || inst.ClientEndpoint != s.URL()+"/rest/" {
		t.Fatalf("URL %s, endpoint %s", s.URL(), inst.ClientEndpoint)
	}
	resp, err := http.Get(inst.ClientEndpoint + "profile.json?auth=" + inst.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}
