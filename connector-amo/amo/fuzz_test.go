package amo

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseAnswers: any bytes amoCRM (or a proxy in front of it) may answer are read without a
// panic, into an error that says something, or into values that hold what they claim.
func FuzzParseAnswers(f *testing.F) {
	for _, s := range []string{
		addedCall,
		`{"_total_items":0,"_embedded":{"calls":[]},"errors":[{"request_id":"0","status":400,"title":"Bad Request","detail":"Entity with this phone not found"}]}`,
		`{"validation-errors":[{"request_id":"0","errors":[{"code":"NotSupportedChoice","path":"call_status","detail":"x"}]}],"title":"Bad Request","status":400}`,
		`{"hint":"Token has been revoked","title":"Некорректный запрос","status":401}`,
		`{"_embedded":{"contacts":[{"id":"100","custom_fields_values":[{"field_code":"PHONE","values":[{"value":79161234567}]}],"_embedded":{"leads":[{"id":7}]}}]}}`,
		`{"response":{"error":"x"}}`,
		`<html>502</html>`, ``, `null`, `[]`, `{"errors":[null]}`, `{"_embedded":{"calls":[{"id":-1}]}}`,
		`{"validation-errors":[{"errors":[{"path":{"a":1}}]},7]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, status := range []int{400, 401, 402, 403, 429, 500, 504} {
			e := newHTTPError("POST /api/v4/calls", status, body)
			msg := e.Error()
			if !strings.HasPrefix(msg, "amoCRM POST /api/v4/calls: ") {
				t.Fatalf("message %q does not name the request", msg)
			}
			if len(e.Fields) > maxFields {
				t.Fatalf("%d fields kept", len(e.Fields))
			}
			if utf8.Valid(body) && !utf8.ValidString(msg) {
				t.Fatalf("valid input made an invalid UTF-8 message %q", msg)
			}
		}
		if added, err := ParseCallsAnswer(body); err == nil {
			if added.ID <= 0 {
				t.Fatalf("a call without an id was accepted: %+v", added)
			}
		} else if err.Error() == "" {
			t.Fatal("empty error")
		}
		if cs, err := ParseContacts(body); err == nil {
			for _, c := range cs {
				if c.ID <= 0 {
					t.Fatalf("a contact without an id was accepted: %+v", c)
				}
			}
		}
	})
}
