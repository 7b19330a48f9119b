package bitrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	bxsim "github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

func register(ctx context.Context, c *Client, ext string) (Registration, error) {
	return c.Register(ctx, RegisterRequest{UserID: 1, PhoneNumber: "+79161234567", Type: TypeIncoming,
		StartedAt: time.Now(), LineNumber: "+74951234567", ExternalCallID: ext})
}

// TestRegister: every answer the portal may give to register, and what the client makes of it.
func TestRegister(t *testing.T) {
	cases := []struct {
		name   string
		faults []crmsim.Fault
		expire bool // the access token expired before the call
		// want: "" success, else the Kind of the error
		want      string
		wantText  []string
		registers int // register requests the portal saw
		refreshes int // OAuth refreshes
	}{
		{name: "ok", registers: 1},
		{name: "error-401", expire: true, registers: 2, refreshes: 1},
		{name: "error-401-after-refresh", expire: true, refreshes: 1, registers: 2,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 401, Count: 2}},
			want:   "authorization", wantText: []string{"freshly refreshed token", "install the application again"}},
		{name: "refresh-token-refused", expire: true, registers: 1,
			faults: []crmsim.Fault{{Method: "oauth.token", Status: 400, Count: 1, Body: json.RawMessage(`{"error":"invalid_grant","error_description":"Refresh token is invalid"}`)}},
			want:   "authorization", wantText: []string{"invalid_grant", "install the application again"}, refreshes: 1},
		{name: "query-limit", registers: 3,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 503, Count: 2}}},
		{name: "server-error-once", registers: 2,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 500, Count: 1}}},
		{name: "server-error-always", registers: 4, // 1 + Retries (3)
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 502}},
			want:   "retry", wantText: []string{"HTTP 502", "temporary"}},
		{name: "timeout", registers: 2,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Delay: 2 * time.Second, Count: 1}}},
		{name: "connection-dropped", registers: 2,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Drop: true, Count: 1}}},
		{name: "bad-request", registers: 1,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 400, Body: json.RawMessage(`{"error":"ERROR_CORE","error_description":"Unknown TYPE"}`)}},
			want:   "permanent", wantText: []string{"HTTP 400 ERROR_CORE: Unknown TYPE", "retrying does not help"}},
		{name: "empty-error-code", registers: 1,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 400, Body: json.RawMessage(`{"error":"","error_description":"Something odd"}`)}},
			want:   "permanent", wantText: []string{"Something odd"}},
		{name: "html-gateway-page", registers: 4,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 504, Body: json.RawMessage(`"<html>bad gateway</html>"`)}},
			want:   "retry", wantText: []string{"HTTP 504"}},
		{name: "operation-time-limit", registers: 1,
			faults: []crmsim.Fault{{Method: "telephony.externalcall.register", Status: 429}},
			want:   "method paused", wantText: []string{"OPERATION_TIME_LIMIT", "paused by Bitrix24 until"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPortal(t, bxsim.Options{})
			p.install()
			c := p.client(func(o *Options) {
				o.RequestTimeout = 500 * time.Millisecond
				o.MaxPause = -1
			})
			for _, f := range tc.faults {
				p.sim.AddFault(f)
			}
			if tc.expire {
				p.sim.ExpireTokens()
			}
			reg, err := register(ctxT(t, 20*time.Second), c, "call-"+tc.name)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("register: %v", err)
			case tc.want == "" && !strings.HasPrefix(reg.CallID, "externalCall."):
				t.Fatalf("CALL_ID %q", reg.CallID)
			case tc.want != "" && err == nil:
				t.Fatalf("register succeeded, want a %s error", tc.want)
			case tc.want != "":
				if got := KindOf(err).String(); got != tc.want {
					t.Errorf("kind %q, want %q: %v", got, tc.want, err)
				}
				mustContain(t, err.Error(), tc.wantText...)
				if strings.Contains(err.Error(), p.inst.RefreshToken) || strings.Contains(err.Error(), p.inst.ClientSecret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
			if n := len(p.commands("telephony.externalcall.register")); n != tc.registers {
				t.Errorf("%d register requests, want %d", n, tc.registers)
			}
			if n := len(p.commands("oauth.token")); n != tc.refreshes {
				t.Errorf("%d refreshes, want %d", n, tc.refreshes)
			}
			if calls := p.sim.Calls(); tc.want == "" && len(calls) != 1 {
				t.Errorf("%d calls in the portal, want 1 (a retry must not register a second call)", len(calls))
			}
		})
	}
}

// TestRegisterRetryKeepsCallID: a register whose answer was lost is sent again and gets the same
// CALL_ID: EXTERNAL_CALL_ID makes it idempotent (reference §1.4, §3.4 #1).
func TestRegisterRetryKeepsCallID(t *testing.T) {
	p := newPortal(t, bxsim.Options{})
	p.install()
	c := p.client(nil)
	ctx := ctxT(t, 10*time.Second)
	a, err := register(ctx, c, "pbx1-1.1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := register(ctx, c, "pbx1-1.1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := register(ctx, c, "pbx1-1.2")
	if err != nil {
		t.Fatal(err)
	}
	if a.CallID != b.CallID {
		t.Errorf("the same call registered twice got two CALL_IDs: %s %s", a.CallID, b.CallID)
	}
	if other.CallID == a.CallID {
		t.Errorf("two overlapping calls with the same numbers share CALL_ID %s (EXTERNAL_CALL_ID not sent?)", a.CallID)
	}
}

// TestWebhookWrongAuthType: in webhook mode register is refused; the error tells the admin what
// to do, and show (allowed for webhooks) still works.
func TestWebhookWrongAuthType(t *testing.T) {
	p := newPortal(t, bxsim.Options{Webhooks: []bxsim.Webhook{{UserID: 1, Secret: "hooksecret123"}}})
	c := p.client(func(o *Options) {
		o.Mode = "webhook"
		o.WebhookURL = config.Secret(p.sim.URL() + "/rest/1/hooksecret123/")
	})
	_, err := register(ctxT(t, 10*time.Second), c, "x1")
	if err == nil {
		t.Fatal("register through a webhook succeeded")
	}
	if KindOf(err) != WrongAuthType || !IsPermanent(err) {
		t.Errorf("kind %v: %v", KindOf(err), err)
	}
	mustContain(t, err.Error(), "WRONG_AUTH_TYPE", "not through an incoming webhook", "bitrix.mode: app", "Local application", "client_id")
	if strings.Contains(err.Error(), "hooksecret123") {
		t.Errorf("the error shows the webhook's secret: %v", err)
	}
	if _, err := c.Show(ctxT(t, 10*time.Second), "x", []int{1}); err != nil { // allowed for webhooks
		t.Errorf("show through the webhook: %v", err)
	}
	if rerr := c.Ready(context.Background()); rerr == nil || !strings.Contains(rerr.Error(), "WRONG_AUTH_TYPE") {
		t.Errorf("Ready = %v, want the WRONG_AUTH_TYPE error (also after a method the webhook may call)", rerr)
	}
	if n := len(p.commands("telephony.externalcall.register")); n != 1 {
		t.Errorf("%d register requests: a permanent error must not be retried", n)
	}
	if strings.Contains(p.logs.String(), "hooksecret123") {
		t.Error("a log line shows the webhook's secret")
	}
}

// TestNotInstalled: before the install event, calls fail with words, and Ready says so.
func TestNotInstalled(t *testing.T) {
	p := newPortal(t, bxsim.Options{})
	c := p.client(nil)
	_, err := register(ctxT(t, 5*time.Second), c, "x")
	if KindOf(err) != Auth {
		t.Fatalf("err %v", err)
	}
	mustContain(t, err.Error(), "not installed", "/bitrix/install")
	if err := c.Ready(context.Background()); err == nil {
		t.Error("Ready before install")
	}
	if n, _ := p.httpRequests(); n != 0 {
		t.Errorf("%d requests sent without tokens", n)
	}
}

// TestRefreshSingleFlight: two replicas, twenty requests in flight when the token expires:
// exactly one refresh (a refresh token is single-use: a second would fail and lose the install),
// the new pair is in Redis, and every request succeeds.
func TestRefreshSingleFlight(t *testing.T) {
	p := newPortal(t, bxsim.Options{NoRateLimit: true})
	p.install()
	a, b := p.client(nil), p.client(nil)
	ctx := ctxT(t, 20*time.Second)
	// Warm both replicas' caches with the old token.
	if _, err := a.Show(ctx, "x", []int{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Show(ctx, "x", []int{1}); err != nil {
		t.Fatal(err)
	}
	p.sim.ExpireTokens()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Show(ctx, "x", []int{1})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("show: %v", err)
		}
	}
	if n := len(p.commands("oauth.token")); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	stored, _, err := NewTokenStore(p.st, "test", p.sim.URL()).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	toks := p.sim.Tokens()
	if last := toks[len(toks)-1]; last.Kind != "refresh" || stored.RefreshToken != last.Value {
		t.Error("Redis does not hold the newest refresh token")
	}
	if stored.ApplicationToken != p.inst.ApplicationToken {
		t.Error("the refresh lost the application_token")
	}
	for _, s := range []string{stored.AccessToken, stored.RefreshToken, p.inst.ClientSecret} {
		if strings.Contains(p.logs.String(), s) {
			t.Errorf("a log line shows a secret")
		}
	}
}

// TestBatchWhileThrottled: 120 commands at once against a portal whose bucket allows 5: they
// all succeed, in far fewer HTTP requests (batches of up to 50), never above the limit.
func TestBatchWhileThrottled(t *testing.T) {
	p := newPortal(t, bxsim.Options{RateBurst: 5, RateDrain: 2})
	p.install()
	c := p.client(func(o *Options) { o.Burst, o.PerSecond = 5, 2 })
	ctx := ctxT(t, 30*time.Second)
	var ids []string
	for i := range 3 {
		reg, err := register(ctx, c, fmt.Sprintf("b%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, reg.CallID)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	start := time.Now()
	for i := range 120 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := c.Show(ctx, ids[i%3], []int{1 + i%2})
			if err == nil && !ok {
				err = errors.New("show answered false")
			}
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range failed {
		t.Error(err)
	}
	shows := p.commands("telephony.externalcall.show")
	if len(shows) != 120 {
		t.Errorf("%d show commands reached the portal, want 120", len(shows))
	}
	n, batches := p.httpRequests()
	t.Logf("120 shows in %d HTTP requests (%d batches) in %s", n-3, batches, time.Since(start).Round(time.Millisecond))
	if batches == 0 || n-3 > 20 {
		t.Errorf("%d requests with %d batches: want the commands coalesced", n-3, batches)
	}
	for _, r := range p.sim.Requests(0) {
		if r.Status == http.StatusServiceUnavailable {
			t.Errorf("request %d refused by the portal's limit: the shared limiter let it go", r.Seq)
		}
	}
}

// TestLimiterSharedByReplicas: three replicas share one bucket through Redis: 90 requests, one
// at a time each (no batching possible), at the portal's 2/s burst 10, are never refused.
func TestLimiterSharedByReplicas(t *testing.T) {
	p := newPortal(t, bxsim.Options{RateBurst: 10, RateDrain: 20})
	p.install()
	var cs []*Client
	for range 3 {
		cs = append(cs, p.client(func(o *Options) { o.Burst, o.PerSecond, o.Senders = 10, 20, 1 }))
	}
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				if _, err := c.Show(ctx, "x", []int{1}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	refused := 0
	for _, r := range p.sim.Requests(0) {
		if r.Status == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused > 0 {
		t.Errorf("%d requests refused by the portal's limit", refused)
	}
}

// TestOperatingTimePause: a method blocked by 429 is paused until operating_reset_at for every
// replica; other methods still go out.
func TestOperatingTimePause(t *testing.T) {
	p := newPortal(t, bxsim.Options{NoRateLimit: true})
	p.install()
	a := p.client(func(o *Options) { o.MaxPause = -1 })
	b := p.client(func(o *Options) { o.MaxPause = -1 })
	ctx := ctxT(t, 10*time.Second)
	if _, err := a.Show(ctx, "x", []int{1}); err != nil { // learns operating_reset_at
		t.Fatal(err)
	}
	p.sim.AddFault(crmsim.Fault{Method: "telephony.externalcall.show", Status: 429, Count: 1})
	_, err := a.Show(ctx, "x", []int{1})
	var e *Error
	if !errors.As(err, &e) || e.Kind != Paused {
		t.Fatalf("err %v, want paused", err)
	}
	if d := time.Until(e.Until); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("paused for %s, want until operating_reset_at (about 10 minutes)", d)
	}
	before := len(p.commands("telephony.externalcall.show"))
	time.Sleep(1100 * time.Millisecond) // b asks Redis at most once a second
	if _, err := b.Show(ctx, "x", []int{1}); KindOf(err) != Paused {
		t.Errorf("the other replica: %v, want paused", err)
	}
	if n := len(p.commands("telephony.externalcall.show")); n != before {
		t.Errorf("a paused method was sent")
	}
	if _, err := a.Hide(ctx, "x", []int{1}); err != nil {
		t.Errorf("another method: %v", err)
	}
}

// TestActiveUsers: user.get pages (50 each) read fully, inactive users left out.
func TestActiveUsers(t *testing.T) {
	var users []bxsim.User
	for i := 1; i <= 130; i++ {
		users = append(users, bxsim.User{ID: i, Name: fmt.Sprint("U", i), PhoneInner: fmt.Sprint(100 + i), Inactive: i%10 == 0})
	}
	p := newPortal(t, bxsim.Options{Users: users, NoRateLimit: true})
	p.install()
	c := p.client(nil)
	got, err := c.ActiveUsers(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 117 {
		t.Fatalf("%d users, want 117 active", len(got))
	}
	for _, u := range got {
		if !u.Active || u.ID%10 == 0 || u.Inner != fmt.Sprint(100+u.ID) {
			t.Errorf("user %+v", u)
		}
	}
}

// TestInstall: the install handler's tokens are checked on the configured portal before they
// replace anything; forged ones are refused.
func TestInstall(t *testing.T) {
	p := newPortal(t, bxsim.Options{NoRateLimit: true})
	c := p.client(nil)
	ctx := ctxT(t, 10*time.Second)
	good := Installation{AccessToken: p.inst.AccessToken, RefreshToken: p.inst.RefreshToken,
		ApplicationToken: p.inst.ApplicationToken, Domain: p.inst.Domain, ExpiresIn: 3600}
	cases := []struct {
		name string
		in   Installation
		want string
	}{
		{"forged-token", Installation{AccessToken: "forged", RefreshToken: "r", ApplicationToken: "a"}, "do not work on"},
		{"other-portal", Installation{AccessToken: "x", RefreshToken: "r", ApplicationToken: "a", Domain: "evil.bitrix24.ru"}, "serves"},
		{"no-application-token", Installation{AccessToken: "x", RefreshToken: "r"}, "application_token"},
		{"good", good, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Install(ctx, tc.in)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				ok, err := c.CheckApplicationToken(ctx, p.inst.ApplicationToken, "")
				if err != nil || !ok {
					t.Fatalf("application token not accepted after install: %v", err)
				}
				if ok, _ := c.CheckApplicationToken(ctx, "wrong", ""); ok {
					t.Fatal("a wrong application token accepted")
				}
				if _, err := register(ctx, c, "after-install"); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if ok, _ := c.CheckApplicationToken(ctx, "a", ""); ok {
				t.Fatal("a refused install was stored")
			}
		})
	}
}

// TestAttachRecord: the three ways of attaching a record.
func TestAttachRecord(t *testing.T) {
	p := newPortal(t, bxsim.Options{NoRateLimit: true})
	p.install()
	c := p.client(nil)
	ctx := ctxT(t, 10*time.Second)
	reg, err := register(ctx, c, "rec")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachRecordContent(ctx, reg.CallID, "a.wav", []byte("RIFF")); err == nil || IsPermanent(err) == false {
		t.Errorf("attach before finish: %v, want the portal's permanent error", err)
	}
	if _, err := c.Finish(ctx, FinishRequest{CallID: reg.CallID, UserID: 1, Duration: 5, StatusCode: StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	if a, err := c.AttachRecordContent(ctx, reg.CallID, "a.wav", []byte("RIFF-content")); err != nil || a.FileID == 0 {
		t.Errorf("content: %+v %v", a, err)
	}
	if a, err := c.AttachRecordURL(ctx, reg.CallID, "", "https://pbx.example.com/rec/b.mp3"); err != nil || a.FileID == 0 {
		t.Errorf("url: %+v %v", a, err)
	}
	if a, err := c.AttachRecordUpload(ctx, reg.CallID, "c.wav", []byte("RIFF-big")); err != nil || a.FileID == 0 {
		t.Errorf("upload: %+v %v", a, err)
	}
	call, _ := p.sim.Call(reg.CallID)
	if len(call.Records) != 3 || call.Records[0].Mode != "content" || call.Records[1].Mode != "url" || call.Records[2].Mode != "upload" ||
		string(call.Records[2].Content) != "RIFF-big" {
		t.Errorf("records %+v", call.Records)
	}
}
