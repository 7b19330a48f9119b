package amo

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzBatchMethods posts arbitrary bodies to the hand-parsed batch methods: never a panic,
// never a 5xx, and a 400 is always problem+json.
func FuzzBatchMethods(f *testing.F) {
	seeds := []string{
		`[{"direction":"inbound","uniq":"1.2","duration":1,"source":"rb","phone":"79161111111","call_status":4}]`,
		`[{"direction":"inbound","duration":1.5,"source":"rb","phone":"1"}]`,
		`[{"source_uid":"s","source_name":"n","metadata":{"uniq":"u","from":79160000000},"_embedded":{"contacts":[{"custom_fields_values":[{"field_code":"PHONE","values":[{"value":"1","enum_id":200003}]}]}],"leads":[{"pipeline_id":1001}]}}]`,
		`[{"name":"x","_embedded":{"contacts":[{"id":11},{"first_name":"a"}],"companies":[{"name":"c"}]}}]`,
		`[{"text":"t","complete_till":1,"entity_type":"leads","entity_id":21}]`,
		`{"add":[{"type":"phone_call","phone_number":"1","users":[501,"x"]}]}`,
		`[{"custom_fields_values":[{"values":null},{"field_id":"x"},7]}]`,
		`[null]`, `[]`, `{}`, `1`, `[1,2]`, `[{"request_id":7,"name":{}}]`,
	}
	paths := []string{"/api/v4/calls", "/api/v4/leads/unsorted/sip", "/api/v4/contacts", "/api/v4/leads", "/api/v4/leads/complex", "/api/v4/tasks", "/api/v4/leads/notes", "/api/v2/events"}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	s := New(Options{Seed: testSeed(), RateLimit: RateLimit{PerSecond: -1}})
	token := "Bearer " + s.IssueTokens().AccessToken
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code == 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/hal+json") {
			t.Fatalf("%s %q: 400 as %q", path, body, w.Header().Get("Content-Type"))
		}
	})
}

// FuzzPhoneMatching checks the digit rules: a number matches itself however it is formatted,
// and the 8/+7 forms of a 10-digit number match for calls.
func FuzzPhoneMatching(f *testing.F) {
	for _, s := range []string{"9161234567", "+7 (916) 123-45-67", "101", "", "abc", "٣٣٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := digits(s)
		if len(d) >= minQueryDigits && !queryMatches(d, "x "+s+" y") {
			t.Errorf("digits %q do not find %q", d, s)
		}
		if d != "" && !samePhone(s, d) {
			t.Errorf("%q is not the same phone as its digits", s)
		}
		if len(d) == 10 && (!samePhone("8"+d, "+7 "+d) || !samePhone(d, "7"+d)) {
			t.Errorf("%q: prefixes do not match", d)
		}
		_ = queryMatches(s, "Иван", "+7 916 123-45-67")
	})
}

// FuzzVerifyDisposableToken feeds arbitrary tokens to the verifier: no panic, and no token it
// did not get from a signer with the secret passes.
func FuzzVerifyDisposableToken(f *testing.F) {
	s := New(Options{Now: func() time.Time { return time.Unix(1772366400, 0) }})
	good := s.DisposableToken(1, time.Hour)
	f.Add(good)
	f.Add("a.b.c")
	f.Add("..")
	f.Add(strings.Replace(good, ".", "x.", 1))
	want := Expect{Secret: s.Integration().ClientSecret, Audience: audience(s.Integration().RedirectURI), Now: time.Unix(1772366400, 0)}
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := VerifyDisposableToken(tok, want)
		if err == nil && !bytes.Equal([]byte(tok), []byte(good)) {
			// Another valid token is only possible with the secret; the fuzzer has none.
			parts := strings.Split(tok, ".")
			if len(parts) != 3 || parts[2] != strings.Split(good, ".")[2] {
				t.Fatalf("accepted a forged token %q", tok)
			}
		}
	})
}
