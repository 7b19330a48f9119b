package bitrix

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseResponse(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		kind   string // "" for success
		code   string
		result string
	}{
		{name: "ok", status: 200, body: `{"result":{"CALL_ID":"externalCall.1"},"time":{"operating":1.5,"operating_reset_at":1795635300}}`, result: `{"CALL_ID":"externalCall.1"}`},
		{name: "ok-false", status: 200, body: `{"result":false,"time":{}}`, result: `false`},
		{name: "paging", status: 200, body: `{"result":[],"next":50,"total":"130"}`, result: `[]`},
		{name: "query-limit", status: 503, body: `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`, kind: "retry", code: "QUERY_LIMIT_EXCEEDED"},
		{name: "operation-time-limit", status: 429, body: `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked"}`, kind: "method paused", code: "OPERATION_TIME_LIMIT"},
		{name: "expired-token", status: 401, body: `{"error":"expired_token","error_description":"The access token provided has expired"}`, kind: "expired token"},
		{name: "invalid-token", status: 401, body: `{"error":"invalid_token","error_description":"x"}`, kind: "authorization"},
		{name: "no-auth", status: 401, body: `{"error":"NO_AUTH_FOUND","error_description":"Wrong authorization data"}`, kind: "authorization"},
		{name: "wrong-auth-type", status: 403, body: `{"error":"WRONG_AUTH_TYPE","error_description":"Current authorization type is denied for this method"}`, kind: "wrong auth type"},
		{name: "insufficient-scope", status: 401, body: `{"error":"insufficient_scope","error_description":"x"}`, kind: "authorization"},
		{name: "error-core", status: 400, body: `{"error":"ERROR_CORE","error_description":"Unknown TYPE"}`, kind: "permanent", code: "ERROR_CORE"},
		{name: "empty-code", status: 400, body: `{"error":"","error_description":"Call is not found (call should be registered prior to finishing"}`, kind: "permanent"},
		{name: "error-in-200", status: 200, body: `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"x"}`, kind: "retry"},
		{name: "numeric-code", status: 400, body: `{"error":42,"error_description":null}`, kind: "permanent", code: "42"},
		{name: "internal-error", status: 500, body: `{"error":"INTERNAL_SERVER_ERROR","error_description":"x"}`, kind: "retry"},
		{name: "html-502", status: 502, body: `<html><body>Bad Gateway</body></html>`, kind: "retry"},
		{name: "html-200", status: 200, body: `<html>maintenance</html>`, kind: "retry"},
		{name: "empty-200", status: 200, body: ``, kind: "retry"},
		{name: "no-result", status: 200, body: `{"time":{}}`, kind: "retry"},
		{name: "json-404", status: 404, body: `{"error":"ERROR_METHOD_NOT_FOUND","error_description":"Method not found!"}`, kind: "permanent"},
		{name: "payment", status: 402, body: `{"error":"PAYMENT_REQUIRED","error_description":"x"}`, kind: "authorization"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseResponse("m", tc.status, []byte(tc.body))
			if tc.kind == "" {
				if err != nil {
					t.Fatal(err)
				}
				if string(r.Result) != tc.result {
					t.Fatalf("result %s", r.Result)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v, want *Error", err)
			}
			if e.Kind.String() != tc.kind {
				t.Errorf("kind %s, want %s (%v)", e.Kind, tc.kind, err)
			}
			if tc.code != "" && e.Code != tc.code {
				t.Errorf("code %q, want %q", e.Code, tc.code)
			}
		})
	}
	t.Run("timing", func(t *testing.T) {
		r, _ := ParseResponse("m", 200, []byte(`{"result":true,"time":{"operating":"2.5","operating_reset_at":1795635300}}`))
		if r.Time.Operating != 2.5 || !r.Time.OperatingResetAt.Equal(time.Unix(1795635300, 0)) {
			t.Fatalf("timing %+v", r.Time)
		}
		r, _ = ParseResponse("m", 200, []byte(`{"result":true,"time":{"operating_reset_at":1e300}}`))
		if !r.Time.OperatingResetAt.IsZero() {
			t.Fatal("an absurd reset time was taken")
		}
	})
}

func TestParseBatch(t *testing.T) {
	methods := map[string]string{"c0": "telephony.externalcall.show", "c1": "telephony.externalcall.finish", "c2": "user.get"}
	raw := `{"result":{"c0":true,"c2":[]},"result_error":{"c1":{"error":"","error_description":"Call is not found (call should be registered prior to finishing"}},"result_total":[],"result_next":[],"result_time":{"c0":{"operating":0}}}`
	br, err := parseBatch(methods, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if string(br.Results["c0"]) != "true" || string(br.Results["c2"]) != "[]" {
		t.Errorf("results %v", br.Results)
	}
	e := br.Errors["c1"]
	if e == nil || e.Method != "telephony.externalcall.finish" || !IsCallNotFound(e) {
		t.Errorf("error %v", e)
	}
	// Every part empty: PHP prints [].
	br, err = parseBatch(methods, []byte(`{"result":[],"result_error":[],"result_time":[]}`))
	if err != nil || len(br.Results) != 0 || len(br.Errors) != 0 {
		t.Fatalf("empty batch: %+v %v", br, err)
	}
}

// FuzzParseResponse: a portal's answer (or whatever a proxy puts in its place) is outside input:
// any status and bytes give a response or an *Error, never a panic, and an error message never
// grows without bound.
func FuzzParseResponse(f *testing.F) {
	seeds := []string{
		`{"result":{"CALL_ID":"externalCall.1"},"time":{"operating":1.5,"operating_reset_at":1795635300}}`,
		`{"result":[],"next":50,"total":130}`,
		`{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`,
		`{"error":"","error_description":"Call is not found"}`,
		`{"error":{"x":1}}`,
		`<html>` + strings.Repeat("x", 1000),
		`{"result":{"result":{"c0":true},"result_error":{"c1":{"error":"ERROR_CORE"}}}}`,
		`{"result":null}`,
		`{"time":{"operating_reset_at":"soon"}}`,
		"\xff\xfe",
		`{"result":1,"next":-5,"total":1e99}`,
	}
	for _, s := range seeds {
		f.Add(200, []byte(s))
		f.Add(503, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r, err := ParseResponse("m", status, body)
		if (r == nil) == (err == nil) {
			t.Fatalf("response %v and error %v: want exactly one", r, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if len(e.Error()) > 2000 && len(e.Description) > 1000 {
				t.Fatalf("error message of %d bytes", len(e.Error()))
			}
			return
		}
		if r.Next != nil && *r.Next < 0 {
			t.Fatalf("negative next %d", *r.Next)
		}
		// A batch answer inside must parse or fail cleanly too.
		br, berr := parseBatch(map[string]string{"c0": "x"}, r.Result)
		if (br == nil) == (berr == nil) {
			t.Fatalf("batch: %v and %v", br, berr)
		}
	})
}
