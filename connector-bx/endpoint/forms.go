package endpoint

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/connector-bx/callflow"
)

// Events the portal posts to the application, form-encoded with PHP keys (data[...], auth[...]),
// reference §1.1 and §1.8.
const (
	EventInstall       = "ONAPPINSTALL"
	EventUninstall     = "ONAPPUNINSTALL"
	EventCallStart     = "ONEXTERNALCALLSTART"
	EventCallbackStart = "ONEXTERNALCALLBACKSTART"
)

// maxField bounds each value of an event: ids and numbers are short; a long one is not the portal.
const maxField = 512

// field reads one value, trimmed; an overlong one is an error naming the key.
func field(f url.Values, key string) (string, error) {
	v := strings.TrimSpace(f.Get(key))
	if len(v) > maxField {
		return "", fmt.Errorf("%s is %d bytes long: not a value the portal sends", key, len(v))
	}
	return v, nil
}

func intField(f url.Values, key string, required bool) (int, error) {
	v, err := field(f, key)
	if err != nil {
		return 0, err
	}
	if v == "" {
		if required {
			return 0, fmt.Errorf("%s is missing", key)
		}
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q is not a whole number", key, v)
	}
	return n, nil
}

// EventName is the form's event, upper-cased (the portal writes them in capitals).
func EventName(f url.Values) string { return strings.ToUpper(strings.TrimSpace(f.Get("event"))) }

// ApplicationToken is auth[application_token].
func ApplicationToken(f url.Values) string {
	return strings.TrimSpace(f.Get("auth[application_token]"))
}

// ParseInstall reads ONAPPINSTALL's auth block.
func ParseInstall(f url.Values) (bitrix.Installation, error) {
	var in bitrix.Installation
	var err error
	get := func(key string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = field(f, key)
		return v
	}
	in.AccessToken = get("auth[access_token]")
	in.RefreshToken = get("auth[refresh_token]")
	in.ApplicationToken = get("auth[application_token]")
	in.Domain = get("auth[domain]")
	in.MemberID = get("auth[member_id]")
	if err != nil {
		return in, err
	}
	if in.ExpiresIn, err = intField(f, "auth[expires_in]", false); err != nil {
		return in, err
	}
	if in.UserID, err = intField(f, "auth[user_id]", false); err != nil {
		return in, err
	}
	switch {
	case in.AccessToken == "":
		return in, fmt.Errorf("auth[access_token] is missing")
	case in.RefreshToken == "":
		return in, fmt.Errorf("auth[refresh_token] is missing")
	case in.ApplicationToken == "":
		return in, fmt.Errorf("auth[application_token] is missing")
	}
	return in, nil
}

// CallStart is ONEXTERNALCALLSTART's data: a user clicked a number in the CRM; the portal
// registered the call already (CALL_ID).
type CallStart struct {
	CallID        string
	UserID        int
	PhoneNumber   string
	LineNumber    string
	CRMEntityType string
	CRMEntityID   int
	CallListID    int
}

// ParseCallStart reads and checks ONEXTERNALCALLSTART's data; the error names the field.
func ParseCallStart(f url.Values) (CallStart, error) {
	var c CallStart
	var err error
	if c.CallID, err = field(f, "data[CALL_ID]"); err != nil {
		return c, err
	}
	if c.CallID == "" {
		return c, fmt.Errorf("data[CALL_ID] is missing")
	}
	if strings.ContainsAny(c.CallID, " \t\r\n&?=#/") {
		return c, fmt.Errorf("data[CALL_ID] %q is not a call id", c.CallID)
	}
	if c.UserID, err = intField(f, "data[USER_ID]", true); err != nil {
		return c, err
	}
	if c.UserID == 0 {
		return c, fmt.Errorf("data[USER_ID] is 0: not a user")
	}
	if c.PhoneNumber, err = field(f, "data[PHONE_NUMBER]"); err != nil {
		return c, err
	}
	if intl, _ := field(f, "data[PHONE_NUMBER_INTERNATIONAL]"); intl != "" {
		c.PhoneNumber = intl // the portal's own normalized form, when it has one
	}
	if digits := strings.TrimLeft(onlyDigits(c.PhoneNumber), "+"); digits == "" || len(digits) > 32 {
		return c, fmt.Errorf("data[PHONE_NUMBER] %q is not a phone number", c.PhoneNumber)
	}
	if c.LineNumber, err = field(f, "data[LINE_NUMBER]"); err != nil {
		return c, err
	}
	if c.CRMEntityType, err = field(f, "data[CRM_ENTITY_TYPE]"); err != nil {
		return c, err
	}
	if c.CRMEntityID, err = intField(f, "data[CRM_ENTITY_ID]", false); err != nil {
		return c, err
	}
	if c.CallListID, err = intField(f, "data[CALL_LIST_ID]", false); err != nil {
		return c, err
	}
	return c, nil
}

func onlyDigits(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return ""
		}
	}
	return b.String()
}

// ParseCallback reads ONEXTERNALCALLBACKSTART's data (no CALL_ID, no USER_ID: a site visitor
// filled a form).
func ParseCallback(f url.Values) (callflow.Callback, error) {
	var c callflow.Callback
	var err error
	if c.Number, err = field(f, "data[PHONE_NUMBER]"); err != nil {
		return c, err
	}
	if digits := strings.TrimLeft(onlyDigits(c.Number), "+"); digits == "" || len(digits) > 32 {
		return c, fmt.Errorf("data[PHONE_NUMBER] %q is not a phone number", c.Number)
	}
	if c.LineNumber, err = field(f, "data[LINE_NUMBER]"); err != nil {
		return c, err
	}
	if c.CRMEntityType, err = field(f, "data[CRM_ENTITY_TYPE]"); err != nil {
		return c, err
	}
	if c.CRMEntityID, err = intField(f, "data[CRM_ENTITY_ID]", false); err != nil {
		return c, err
	}
	if c.Stamp, err = field(f, "ts"); err != nil {
		return c, err
	}
	if strings.ContainsAny(c.Stamp, " \t\r\n:&?=#/") {
		return c, fmt.Errorf("ts %q is not a time stamp", c.Stamp)
	}
	return c, nil
}
