package bitrix

import (
	"bytes"
	"encoding/base64"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRegister(t *testing.T) {
	cases := []struct {
		name     string
		opts     func(*Options)
		method   string // default telephony.externalcall.register
		form     url.Values
		json     map[string]any
		status   int
		errDesc  string
		entity   string // CRM_ENTITY_TYPE
		entityID int
		newLead  bool
		leadErr  string
	}{
		{name: "form-existing-contact", form: url.Values{"USER_ID": {"1"}, "PHONE_NUMBER": {"89161234567"}, "TYPE": {"2"},
			"LINE_NUMBER": {"74950000001"}, "EXTERNAL_CALL_ID": {"1710.1"}, "SHOW": {"0"}},
			status: 200, entity: "CONTACT", entityID: 10},
		{name: "json-as-documented", json: map[string]any{"USER_ID": 1, "PHONE_NUMBER": "79062195047", "TYPE": 2,
			"CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 797, "SHOW": 1, "LINE_NUMBER": "3",
			"EXTERNAL_CALL_ID": "asterisk-1710140185.18441", "CALL_START_DATE": "2026-03-07T10:20:30+03:00"},
			status: 200, entity: "CONTACT", entityID: 797},
		{name: "camel-case-method-and-json-suffix", method: "telephony.externalCall.register.json",
			form:   url.Values{"USER_PHONE_INNER": {"102"}, "PHONE_NUMBER": {"+74951112233"}, "TYPE": {"1"}},
			status: 200, entity: "COMPANY", entityID: 20},
		{name: "lowercase-params", form: url.Values{"user_id": {"1"}, "phone_number": {"+7 903 555-66-77"}, "type": {"2"}},
			status: 200, entity: "LEAD", entityID: 30},
		{name: "crm-create-lead", form: url.Values{"USER_ID": {"2"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"},
			"CRM_CREATE": {"1"}, "CRM_SOURCE": {"WEB"}}, status: 200, entity: "LEAD", newLead: true},
		{name: "no-crm-create", form: url.Values{"USER_ID": {"2"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}},
			status: 200, entity: ""},
		{name: "outgoing-line-without-auto-create", form: url.Values{"USER_ID": {"2"}, "PHONE_NUMBER": {"+79990001122"},
			"TYPE": {"1"}, "CRM_CREATE": {"1"}, "LINE_NUMBER": {"74950000002"}}, status: 200, entity: ""},
		{name: "lead-creation-disabled", opts: func(o *Options) { o.LeadCreationError = "Lead creation is disabled for local users" },
			form:   url.Values{"USER_ID": {"2"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}, "CRM_CREATE": {"1"}},
			status: 200, entity: "", leadErr: "Lead creation is disabled for local users"},
		{name: "no-user", form: url.Values{"PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}},
			status: 400, errDesc: "USER_ID or USER_PHONE_INNER should be set"},
		{name: "unknown-type", form: url.Values{"USER_ID": {"1"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"7"}},
			status: 400, errDesc: "Unknown TYPE"},
		{name: "date-without-zone", form: url.Values{"USER_ID": {"1"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"},
			"CALL_START_DATE": {"2026-03-07 10:20:30"}}, status: 400, errDesc: "CALL_START_DATE should be in the ISO-8601 format"},
		{name: "bad-phone", form: url.Values{"USER_ID": {"1"}, "PHONE_NUMBER": {"anonymous"}, "TYPE": {"2"}},
			status: 400, errDesc: "Unsupported phone number format"},
		{name: "inactive-user", form: url.Values{"USER_ID": {"3"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}},
			status: 400, errDesc: "User is not found or is not active"},
		{name: "unknown-extension", form: url.Values{"USER_PHONE_INNER": {"999"}, "PHONE_NUMBER": {"+79990001122"}, "TYPE": {"2"}},
			status: 400, errDesc: "User is not found or is not active"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := seedOptions()
			if c.opts != nil {
				c.opts(&opts)
			}
			p := newPortal(t, opts)
			method := c.method
			if method == "" {
				method = "telephony.externalcall.register"
			}
			var a answer
			if c.json != nil {
				a = p.json(method, c.json)
			} else {
				a = p.form(method, c.form)
			}
			if c.status != 200 {
				wantError(t, a, c.status, "ERROR_CORE", c.errDesc)
				return
			}
			r := a.resultMap()
			if a.status != 200 || !strings.HasPrefix(r["CALL_ID"].(string), "externalCall.") {
				t.Fatalf("got %d %s", a.status, a.raw)
			}
			if r["CRM_ENTITY_TYPE"] != c.entity || (c.entityID != 0 && num(r["CRM_ENTITY_ID"]) != c.entityID) {
				t.Errorf("bound to %v %v, want %s %d", r["CRM_ENTITY_TYPE"], r["CRM_ENTITY_ID"], c.entity, c.entityID)
			}
			if c.newLead {
				leads := p.s.Leads()
				l := leads[len(leads)-1]
				if num(r["CRM_CREATED_LEAD"]) != l.ID || l.SourceID != "WEB" || l.CallID != r["CALL_ID"] ||
					!strings.Contains(a.raw, `"CRM_CREATED_ENTITIES":[{"ENTITY_TYPE":"LEAD","ENTITY_ID":`) {
					t.Errorf("created lead: %s; leads %+v", a.raw, leads)
				}
			} else if r["CRM_CREATED_LEAD"] != nil || !strings.Contains(a.raw, `"CRM_CREATED_ENTITIES":[]`) {
				t.Errorf("unexpected lead: %s", a.raw)
			}
			if got, _ := r["LEAD_CREATION_ERROR"].(string); got != c.leadErr {
				t.Errorf("LEAD_CREATION_ERROR %q, want %q", got, c.leadErr)
			}
			tm, _ := a.body["time"].(map[string]any)
			for _, k := range []string{"start", "finish", "duration", "processing", "date_start", "date_finish", "operating_reset_at", "operating"} {
				if _, ok := tm[k]; !ok {
					t.Errorf("time block lacks %s: %s", k, a.raw)
				}
			}
		})
	}
}

// The 30-minute rule of telephony-external-call-register.md and the double finish of §3.4.
func TestReRegistration(t *testing.T) {
	cases := []struct {
		name   string
		first  url.Values
		second url.Values
		// between runs between the two registrations.
		between func(p *portal, callID string)
		same    bool
	}{
		{"same-external-call-id", url.Values{"EXTERNAL_CALL_ID": {"a.1"}}, url.Values{"EXTERNAL_CALL_ID": {"a.1"}}, nil, true},
		{"other-external-call-id", url.Values{"EXTERNAL_CALL_ID": {"a.1"}}, url.Values{"EXTERNAL_CALL_ID": {"a.2"}}, nil, false},
		{"no-external-call-id", nil, nil, nil, true},
		{"crm-fields-and-date-not-in-key", nil, url.Values{"CRM_ENTITY_TYPE": {"LEAD"}, "CRM_ENTITY_ID": {"30"},
			"CALL_START_DATE": {"2026-03-10T14:00:00+03:00"}}, nil, true},
		{"other-line", url.Values{"LINE_NUMBER": {"1"}}, url.Values{"LINE_NUMBER": {"2"}}, nil, false},
		{"other-type", nil, url.Values{"TYPE": {"1"}}, nil, false},
		{"user-by-extension-is-same-user", nil, url.Values{"USER_ID": {""}, "USER_PHONE_INNER": {"101"}}, nil, true},
		{"after-29-minutes", nil, nil, func(p *portal, _ string) { p.s.Advance(29 * time.Minute) }, true},
		{"after-31-minutes", nil, nil, func(p *portal, _ string) { p.s.Advance(31 * time.Minute) }, false},
		{"after-finish", nil, nil, func(p *portal, id string) { p.finish(id) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			id1 := p.register(c.first)
			if c.between != nil {
				c.between(p, id1)
			}
			id2 := p.register(c.second)
			if (id1 == id2) != c.same {
				t.Errorf("CALL_IDs %s and %s; want same=%v", id1, id2, c.same)
			}
			if c.same {
				call, _ := p.s.Call(id1)
				if last := call.History[len(call.History)-1]; last.Action != "reregister" {
					t.Errorf("history %+v", call.History)
				}
			}
		})
	}
	t.Run("overlapping-calls-second-finish-fails", func(t *testing.T) {
		p := newPortal(t, seedOptions())
		id1, id2 := p.register(nil), p.register(nil)
		if id1 != id2 {
			t.Fatal("no reuse")
		}
		if a := p.finish(id1); a.status != 200 {
			t.Fatalf("finish 1: %s", a.raw)
		}
		wantError(t, p.finish(id2), 400, "ERROR_CORE", "Call is not found (call should be registered prior to finishing)")
	})
	t.Run("stale-call-ttl", func(t *testing.T) {
		opts := seedOptions()
		opts.StaleCallTTL = time.Hour
		opts.AccessTokenTTL = 2 * time.Hour // the token would expire first
		p := newPortal(t, opts)
		id := p.register(nil)
		p.s.Advance(61 * time.Minute)
		wantError(t, p.finish(id), 400, "ERROR_CORE", "Call is not found (call should be registered prior to finishing)")
	})
}

func TestFinish(t *testing.T) {
	cases := []struct {
		name       string
		body       map[string]any // CALL_ID filled in unless set
		status     int
		errCode    string
		errDesc    string
		wantCode   string
		wantStatus int
	}{
		{name: "answered", body: map[string]any{"USER_ID": 2, "DURATION": 95, "STATUS_CODE": "200", "VOTE": 5, "ADD_TO_CHAT": 0},
			status: 200, wantCode: "200", wantStatus: 1},
		{name: "default-missed", body: map[string]any{"USER_PHONE_INNER": "101"}, status: 200, wantCode: "304", wantStatus: 0},
		{name: "default-by-duration", body: map[string]any{"USER_ID": 1, "DURATION": 3}, status: 200, wantCode: "200", wantStatus: 1},
		{name: "busy", body: map[string]any{"USER_ID": 1, "STATUS_CODE": "486", "FAILED_REASON": "Busy"}, status: 200, wantCode: "486"},
		{name: "unknown-call", body: map[string]any{"CALL_ID": "externalCall.nope.1", "USER_ID": 1},
			status: 400, errCode: "ERROR_CORE", errDesc: "Call is not found (call should be registered prior to finishing)"},
		{name: "call-id-not-string", body: map[string]any{"CALL_ID": 12345, "USER_ID": 1},
			status: 400, errCode: "INVALID_ARGUMENT", errDesc: "CALL_ID must be a string"},
		{name: "no-user", body: map[string]any{"DURATION": 1},
			status: 400, errCode: "ERROR_CORE", errDesc: "USER_ID or USER_PHONE_INNER should be set"},
		{name: "inactive-user", body: map[string]any{"USER_ID": 3},
			status: 400, errCode: "ERROR_CORE", errDesc: "User is not found or is not active"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			id := p.register(url.Values{"CRM_CREATE": {"1"}, "EXTERNAL_CALL_ID": {"lk.1"}, "LINE_NUMBER": {"74950000001"}})
			if _, ok := c.body["CALL_ID"]; !ok {
				c.body["CALL_ID"] = id
			}
			a := p.json("telephony.externalcall.finish", c.body)
			if c.status != 200 {
				wantError(t, a, c.status, c.errCode, c.errDesc)
				return
			}
			r := a.resultMap()
			if a.status != 200 || r["CALL_FAILED_CODE"] != c.wantCode || num(r["CALL_STATUS"]) != c.wantStatus ||
				r["CALL_ID"] != id || r["EXTERNAL_CALL_ID"] != "lk.1" || r["PORTAL_NUMBER"] != "74950000001" ||
				r["INCOMING"] != "2" || r["CRM_ENTITY_TYPE"] != "LEAD" || num(r["ID"]) < 1 {
				t.Fatalf("got %d %s", a.status, a.raw)
			}
			if !strings.Contains(a.raw, `"CALL_START_DATE":{}`) {
				t.Errorf("CALL_START_DATE is not the PHP object: %s", a.raw)
			}
			call, _ := p.s.Call(id)
			f := call.Finish
			if f == nil || f.StatusCode != c.wantCode || len(call.ShownTo) != 0 {
				t.Fatalf("call state %+v", call)
			}
			// The finishing user becomes responsible for the lead the call created.
			for _, l := range p.s.Leads() {
				if l.ID == call.CreatedLeadID && l.AssignedByID != f.UserID {
					t.Errorf("lead responsible %d, finished by %d", l.AssignedByID, f.UserID)
				}
			}
			if c.name == "answered" && (f.Vote != 5 || f.AddToChat || f.Duration != 95 || !f.StatusSent) {
				t.Errorf("finish recorded as %+v", f)
			}
		})
	}
}

func TestShowHide(t *testing.T) {
	cases := []struct {
		name   string
		method string
		form   url.Values
		json   map[string]any
		result bool
		shown  []int
	}{
		{name: "show-list-form", method: "telephony.externalcall.show", form: url.Values{"USER_ID[]": {"2", "1"}}, result: true, shown: []int{2, 1}},
		{name: "show-list-json", method: "telephony.externalcall.show", json: map[string]any{"USER_ID": []int{2}}, result: true, shown: []int{2}},
		{name: "show-default-user", method: "telephony.externalCall.show", form: url.Values{}, result: true, shown: []int{1}},
		{name: "hide-one", method: "telephony.externalcall.hide", form: url.Values{"USER_ID": {"1"}}, result: true, shown: nil},
		{name: "unknown-call", method: "telephony.externalcall.show", form: url.Values{"CALL_ID": {"externalCall.x.1"}}, result: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			id := p.register(url.Values{"SHOW": {"0"}})
			if c.name == "hide-one" {
				p.register(url.Values{"SHOW": {"1"}}) // same call: no EXTERNAL_CALL_ID
				if call, _ := p.s.Call(id); len(call.ShownTo) != 0 {
					t.Fatalf("re-registration changed the card: %v", call.ShownTo)
				}
				p.form("telephony.externalcall.show", url.Values{"CALL_ID": {id}, "USER_ID": {"1"}})
			}
			var a answer
			if c.json != nil {
				c.json["CALL_ID"] = id
				a = p.json(c.method, c.json)
			} else {
				if c.form.Get("CALL_ID") == "" {
					c.form.Set("CALL_ID", id)
				}
				a = p.form(c.method, c.form)
			}
			if a.status != 200 || a.result() != c.result {
				t.Fatalf("got %d %s", a.status, a.raw)
			}
			call, _ := p.s.Call(id)
			if c.result && !equalInts(call.ShownTo, c.shown) {
				t.Errorf("shown to %v, want %v", call.ShownTo, c.shown)
			}
		})
	}
	t.Run("after-finish", func(t *testing.T) {
		p := newPortal(t, seedOptions())
		id := p.register(nil)
		p.finish(id)
		if a := p.form("telephony.externalcall.hide", url.Values{"CALL_ID": {id}}); a.result() != false {
			t.Errorf("hide after finish: %s", a.raw)
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAttachRecord(t *testing.T) {
	recSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "missing.mp3") {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ID3 mp3 bytes"))
	}))
	defer recSrv.Close()
	wav := base64.StdEncoding.EncodeToString([]byte("RIFF....WAVE"))
	cases := []struct {
		name     string
		finished bool
		form     url.Values
		status   int
		errCode  string
		errDesc  string
		mode     string
	}{
		{name: "content", finished: true, form: url.Values{"FILENAME": {"call.wav"}, "FILE_CONTENT": {wav}}, status: 200, mode: "content"},
		{name: "record-url", finished: true, form: url.Values{"RECORD_URL": {recSrv.URL + "/rec/call-1.mp3"}}, status: 200, mode: "url"},
		{name: "record-url-404", finished: true, form: url.Values{"RECORD_URL": {recSrv.URL + "/rec/missing.mp3"}},
			status: 400, errCode: "ERROR_CORE", errDesc: "Server returns HTTP error code 404"},
		{name: "not-finished", finished: false, form: url.Values{"FILENAME": {"call.wav"}, "FILE_CONTENT": {wav}},
			status: 400, errCode: "", errDesc: "Call is not found in the statistic table. It looks like it is not finished yet."},
		{name: "nothing", finished: true, form: url.Values{},
			status: 400, errCode: "", errDesc: "Required parameters are not set. Request should contain either URL or FILENAME parameter"},
		{name: "wrong-extension", finished: true, form: url.Values{"FILENAME": {"call.ogg"}, "FILE_CONTENT": {wav}},
			status: 400, errCode: "ERROR_CORE", errDesc: "Wrong file extension. Only wav and mp3 are allowed"},
		{name: "empty-content", finished: true, form: url.Values{"FILENAME": {"call.wav"}, "FILE_CONTENT": {""}},
			status: 400, errCode: "ERROR_CORE", errDesc: "File content is empty."},
		{name: "not-base64", finished: true, form: url.Values{"FILENAME": {"call.wav"}, "FILE_CONTENT": {"%%%"}},
			status: 400, errCode: "ERROR_CORE", errDesc: "File content is not properly encoded. Base64 encoding is expected."},
		{name: "empty-name", finished: true, form: url.Values{"FILENAME": {""}, "FILE_CONTENT": {wav}},
			status: 400, errCode: "ERROR_CORE", errDesc: "File name is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := seedOptions()
			opts.FetchRecordURL = true
			p := newPortal(t, opts)
			id := p.register(nil)
			if c.finished {
				p.finish(id)
			}
			c.form.Set("CALL_ID", id)
			a := p.form("telephony.externalCall.attachRecord", c.form)
			if c.status != 200 {
				wantError(t, a, c.status, c.errCode, c.errDesc)
				return
			}
			call, _ := p.s.Call(id)
			if a.status != 200 || num(a.resultMap()["FILE_ID"]) < 1 || len(call.Records) != 1 || call.Records[0].Mode != c.mode {
				t.Errorf("got %d %s; records %+v", a.status, a.raw, call.Records)
			}
		})
	}
	t.Run("upload-url", func(t *testing.T) {
		p := newPortal(t, seedOptions())
		id := p.register(nil)
		p.finish(id)
		a := p.form("telephony.externalcall.attachrecord", url.Values{"CALL_ID": {id}, "FILENAME": {"big.mp3"}})
		r := a.resultMap()
		upload, _ := r["uploadUrl"].(string)
		if a.status != 200 || r["fieldName"] != "file" || !strings.HasPrefix(upload, p.ts.URL+"/rest/upload.json?") {
			t.Fatalf("got %d %s", a.status, a.raw)
		}
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "big.mp3")
		fw.Write([]byte("ID3 lots of audio"))
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, upload, &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		up := p.do(req)
		call, _ := p.s.Call(id)
		if up.status != 200 || num(up.resultMap()["FILE_ID"]) < 1 || len(call.Records) != 1 ||
			call.Records[0].FileName != "big.mp3" || string(call.Records[0].Content) != "ID3 lots of audio" {
			t.Errorf("upload: %d %s; records %+v", up.status, up.raw, call.Records)
		}
	})
}

func TestSearchCrmEntities(t *testing.T) {
	cases := []struct {
		name    string
		phone   string
		want    []string // CRM_ENTITY_TYPE:ID
		inner   any      // ASSIGNED_BY.USER_PHONE_INNER of the first
		timeman string
		errDesc string
	}{
		{"contact-any-format", "8 916 123 45 67", []string{"CONTACT:10"}, "102", "CLOSED", ""},
		{"company", "+74951112233", []string{"COMPANY:20"}, "101", "OPENED", ""},
		{"lead-8-vs-7", "+79035556677", []string{"LEAD:30"}, "101", "OPENED", ""},
		{"nothing", "+10000000000", nil, nil, "", ""},
		{"empty", "", nil, nil, "", "PHONE_NUMBER is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPortal(t, seedOptions())
			a := p.form("telephony.externalCall.searchCrmEntities", url.Values{"PHONE_NUMBER": {c.phone}})
			if c.errDesc != "" {
				wantError(t, a, 400, "ERROR_CORE", c.errDesc)
				return
			}
			list, _ := a.result().([]any)
			var got []string
			for _, it := range list {
				m := it.(map[string]any)
				got = append(got, m["CRM_ENTITY_TYPE"].(string)+":"+m["CRM_ENTITY_ID"].(interface{ String() string }).String())
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("got %v, want %v (%s)", got, c.want, a.raw)
			}
			if len(list) > 0 {
				ab := list[0].(map[string]any)["ASSIGNED_BY"].(map[string]any)
				if ab["USER_PHONE_INNER"] != c.inner || ab["TIMEMAN_STATUS"] != c.timeman {
					t.Errorf("ASSIGNED_BY %v", ab)
				}
			}
		})
	}
}

func TestExternalLines(t *testing.T) {
	steps := []struct {
		name    string
		method  string
		form    url.Values
		status  int
		errDesc string
		want    string // substring of the raw answer
	}{
		{"add", "telephony.externalLine.add", url.Values{"NUMBER": {"74959999999"}, "NAME": {"New"}, "CRM_AUTO_CREATE": {"N"}}, 200, "", `"result":{"ID":3}`},
		{"add-duplicate", "telephony.externalline.add", url.Values{"NUMBER": {"74959999999"}}, 400, "Line already exists", ""},
		{"add-empty", "telephony.externalline.add", url.Values{}, 400, "NUMBER should not be empty", ""},
		{"update", "telephony.externalline.update", url.Values{"NUMBER": {"74959999999"}, "NAME": {"Renamed"}}, 200, "", `"result":{"ID":"3"}`},
		{"update-nothing", "telephony.externalline.update", url.Values{"NUMBER": {"74959999999"}}, 400, "There are no fields to update", ""},
		{"update-unknown", "telephony.externalline.update", url.Values{"NUMBER": {"1"}, "NAME": {"x"}}, 400, "Could not find line with number 1", ""},
		{"get", "telephony.externalline.get", url.Values{}, 200, "", `{"NUMBER":"74959999999","NAME":"Renamed","CRM_AUTO_CREATE":"N"}`},
		{"delete", "telephony.externalline.delete", url.Values{"NUMBER": {"74959999999"}}, 200, "", `"result":[]`},
		{"delete-unknown", "telephony.externalline.delete", url.Values{"NUMBER": {"74959999999"}}, 400, "Could not find line with number 74959999999", ""},
	}
	p := newPortal(t, seedOptions())
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			a := p.form(st.method, st.form)
			if st.status != 200 {
				wantError(t, a, st.status, "ERROR_CORE", st.errDesc)
				return
			}
			if a.status != 200 || !strings.Contains(a.raw, st.want) {
				t.Errorf("got %d %s, want %s", a.status, a.raw, st.want)
			}
		})
	}
}
