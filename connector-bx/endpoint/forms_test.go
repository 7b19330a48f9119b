package endpoint

import (
	"net/url"
	"strings"
	"testing"
)

func callStartForm(mod func(url.Values)) url.Values {
	f := url.Values{
		"event":                            {"ONEXTERNALCALLSTART"},
		"data[PHONE_NUMBER]":               {"+7 (916) 111-22-33"},
		"data[PHONE_NUMBER_INTERNATIONAL]": {"+79161112233"},
		"data[EXTENSION]":                  {""},
		"data[USER_ID]":                    {"1"},
		"data[CALL_LIST_ID]":               {"0"},
		"data[LINE_NUMBER]":                {"74951234567"},
		"data[IS_MOBILE]":                  {"0"},
		"data[CALL_ID]":                    {"externalCall.0f1e2d3c4b5a69788796a5b4c3d2e1f0.1795635265"},
		"data[CRM_ENTITY_TYPE]":            {"CONTACT"},
		"data[CRM_ENTITY_ID]":              {"10"},
		"auth[application_token]":          {"apptoken"},
	}
	if mod != nil {
		mod(f)
	}
	return f
}

func TestParseCallStart(t *testing.T) {
	cases := []struct {
		name string
		mod  func(url.Values)
		want string // error text; "" for valid
	}{
		{name: "valid"},
		{name: "national-form-only", mod: func(f url.Values) { f.Del("data[PHONE_NUMBER_INTERNATIONAL]") }},
		{name: "no-call-id", mod: func(f url.Values) { f.Del("data[CALL_ID]") }, want: "data[CALL_ID] is missing"},
		{name: "call-id-with-slash", mod: func(f url.Values) { f.Set("data[CALL_ID]", "../x") }, want: "data[CALL_ID]"},
		{name: "no-user", mod: func(f url.Values) { f.Del("data[USER_ID]") }, want: "data[USER_ID] is missing"},
		{name: "user-not-number", mod: func(f url.Values) { f.Set("data[USER_ID]", "admin") }, want: `data[USER_ID] "admin" is not a whole number`},
		{name: "user-zero", mod: func(f url.Values) { f.Set("data[USER_ID]", "0") }, want: "data[USER_ID] is 0"},
		{name: "no-number", mod: func(f url.Values) {
			f.Del("data[PHONE_NUMBER]")
			f.Del("data[PHONE_NUMBER_INTERNATIONAL]")
		}, want: "data[PHONE_NUMBER]"},
		{name: "number-with-letters", mod: func(f url.Values) {
			f.Set("data[PHONE_NUMBER_INTERNATIONAL]", "+7916ABC")
		}, want: "is not a phone number"},
		{name: "huge-field", mod: func(f url.Values) { f.Set("data[LINE_NUMBER]", strings.Repeat("1", 10000)) }, want: "data[LINE_NUMBER] is 10000 bytes"},
		{name: "bad-entity-id", mod: func(f url.Values) { f.Set("data[CRM_ENTITY_ID]", "-5") }, want: "data[CRM_ENTITY_ID]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCallStart(callStartForm(tc.mod))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.UserID != 1 || c.PhoneNumber != "+79161112233" && c.PhoneNumber != "+7 (916) 111-22-33" || !strings.HasPrefix(c.CallID, "externalCall.") || c.CRMEntityID != 10 {
					t.Fatalf("%+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseInstall(t *testing.T) {
	good := url.Values{"event": {"ONAPPINSTALL"}, "auth[access_token]": {"a"}, "auth[refresh_token]": {"r"},
		"auth[application_token]": {"t"}, "auth[expires_in]": {"3600"}, "auth[domain]": {"c.bitrix24.ru"}, "auth[user_id]": {"1"}}
	cases := []struct {
		name, drop, set, val, want string
	}{
		{name: "valid"},
		{name: "no-access-token", drop: "auth[access_token]", want: "auth[access_token] is missing"},
		{name: "no-refresh-token", drop: "auth[refresh_token]", want: "auth[refresh_token] is missing"},
		{name: "no-application-token", drop: "auth[application_token]", want: "auth[application_token] is missing"},
		{name: "bad-expires", set: "auth[expires_in]", val: "soon", want: "auth[expires_in]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range good {
				f[k] = v
			}
			if tc.drop != "" {
				f.Del(tc.drop)
			}
			if tc.set != "" {
				f.Set(tc.set, tc.val)
			}
			in, err := ParseInstall(f)
			if tc.want == "" {
				if err != nil || in.ExpiresIn != 3600 || in.UserID != 1 || in.Domain != "c.bitrix24.ru" {
					t.Fatalf("%+v %v", in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\"a\"") || strings.Contains(err.Error(), "\"r\"") {
				t.Fatalf("error quotes a token: %v", err)
			}
		})
	}
}

// FuzzEventForms: event bodies come from the internet; any body gives a parsed event or an error
// naming a field, never a panic, and what parses is usable (an id without separators, a user, a
// number with digits).
func FuzzEventForms(f *testing.F) {
	f.Add(callStartForm(nil).Encode())
	f.Add("event=ONAPPINSTALL&auth%5Baccess_token%5D=a&auth%5Brefresh_token%5D=r&auth%5Bapplication_token%5D=t")
	f.Add("data[CALL_ID]=x&data[USER_ID]=99999999999999999999&data[PHONE_NUMBER]=%2B")
	f.Add("%zz&&==&data%5B")
	f.Add(strings.Repeat("a=b&", 1000))
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		if c, err := ParseCallStart(form); err == nil {
			if c.CallID == "" || strings.ContainsAny(c.CallID, "/&? \n") || c.UserID <= 0 || onlyDigits(c.PhoneNumber) == "" {
				t.Fatalf("accepted %+v", c)
			}
		} else if !strings.Contains(err.Error(), "data[") {
			t.Fatalf("error names no field: %v", err)
		}
		if in, err := ParseInstall(form); err == nil {
			if in.AccessToken == "" || in.RefreshToken == "" || in.ApplicationToken == "" {
				t.Fatalf("accepted %+v", in)
			}
		} else if !strings.Contains(err.Error(), "auth[") {
			t.Fatalf("error names no field: %v", err)
		}
		if cb, err := ParseCallback(form); err == nil {
			if onlyDigits(cb.Number) == "" || strings.ContainsAny(cb.Stamp, ":/ ") {
				t.Fatalf("accepted %+v", cb)
			}
		}
		_ = EventName(form)
	})
}
