package bitrix

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The telephony.externalCall.* and telephony.externalLine.* methods (reference §1.2–§1.7).

// createdEntity is an item of CRM_CREATED_ENTITIES.
type createdEntity struct {
	EntityType string `json:"ENTITY_TYPE"`
	EntityID   int    `json:"ENTITY_ID"`
}

// registerAnswer is telephony.externalCall.register's result, fields in the documented order.
type registerAnswer struct {
	CallID             string          `json:"CALL_ID"`
	CRMCreatedLead     *int            `json:"CRM_CREATED_LEAD"`
	CRMCreatedEntities []createdEntity `json:"CRM_CREATED_ENTITIES"`
	CRMEntityType      string          `json:"CRM_ENTITY_TYPE"`
	// CRMEntityID is null when no CRM entity is bound (not documented; the reference only says
	// CRM_ENTITY_TYPE is empty then).
	CRMEntityID       *int   `json:"CRM_ENTITY_ID"`
	LeadCreationError string `json:"LEAD_CREATION_ERROR,omitempty"`
}

// parseISO accepts ISO-8601 with a time zone, as CALL_START_DATE must be. A "+" sent unescaped
// in a form arrives as a space and fails here, as it does on the portal.
func parseISO(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// userLocked finds an active user by id, else by extension.
func (s *Server) userLocked(id int, inner string) *User {
	for _, u := range s.users {
		if (id > 0 && u.ID == id) || (id <= 0 && inner != "" && u.PhoneInner == inner) {
			if u.Inactive {
				return nil
			}
			return u
		}
	}
	return nil
}

func (s *Server) userByIDLocked(id int) *User {
	for _, u := range s.users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

// activeCallLocked finds a registered call that can still be shown, hidden or finished.
func (s *Server) activeCallLocked(id string) *Call {
	c, ok := s.calls[id]
	if !ok || c.Finish != nil {
		return nil
	}
	if s.opts.StaleCallTTL > 0 && s.nowLocked().Sub(c.RegisteredAt) > s.opts.StaleCallTTL {
		return nil
	}
	return c
}

// historyParams is a request's parameters for a call's history, without the token.
func historyParams(p params) map[string]string {
	out := map[string]string{}
	flattenParams("", p.m, func(k, v string) {
		if !strings.EqualFold(k, "auth") {
			out[k] = v
		}
	})
	return out
}

func (c *Call) log(at time.Time, action string, users []int, p params, err error) {
	e := CallEvent{At: at, Action: action, UserIDs: users, Params: historyParams(p)}
	if err != nil {
		e.Error = err.Error()
	}
	c.History = append(c.History, e)
}

// findRecentLocked is the re-registration rule of telephony-external-call-register.md: within
// the window, a register with the same PHONE_NUMBER, TYPE, user, LINE_NUMBER (if provided) and
// EXTERNAL_CALL_ID (if provided) by the same application gets the existing CALL_ID. CRM fields
// and CALL_START_DATE are not part of the key. Only calls not finished yet are found: a finished
// call has left the active-call table for the statistics (the Itgrix report in §1.4 shows the
// reuse only while the first call is unfinished).
func (s *Server) findRecentLocked(clientID, phone string, typ, userID int, line, ext string) *Call {
	now := s.nowLocked()
	for i := len(s.callOrder) - 1; i >= 0; i-- {
		c := s.calls[s.callOrder[i]]
		if now.Sub(c.RegisteredAt) > s.opts.ReRegisterWindow {
			break
		}
		if c.Finish != nil || c.ClientID != clientID || c.Type != typ || c.UserID != userID ||
			normPhone(c.PhoneNumber) != normPhone(phone) {
			continue
		}
		if (line != "" && c.LineNumber != line) || (ext != "" && c.ExternalCallID != ext) {
			continue
		}
		return c
	}
	return nil
}

func (s *Server) register(_ context.Context, c *caller, p params) (result, error) {
	userID, inner := p.int("USER_ID"), p.s("USER_PHONE_INNER")
	if userID <= 0 && inner == "" {
		return result{}, errCore("USER_ID or USER_PHONE_INNER should be set")
	}
	typ := p.int("TYPE")
	if typ < 1 || typ > 5 {
		return result{}, errCore("Unknown TYPE")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	start := now
	if v := p.s("CALL_START_DATE"); v != "" {
		t, ok := parseISO(v)
		if !ok {
			return result{}, errCore("CALL_START_DATE should be in the ISO-8601 format")
		}
		start = t
	}
	phone := p.s("PHONE_NUMBER")
	if normPhone(phone) == "" {
		return result{}, errCore("Unsupported phone number format")
	}
	u := s.userLocked(userID, inner)
	if u == nil {
		return result{}, errCore("User is not found or is not active")
	}
	line, ext := p.s("LINE_NUMBER"), p.s("EXTERNAL_CALL_ID")
	if old := s.findRecentLocked(c.clientID, phone, typ, u.ID, line, ext); old != nil {
		old.log(now, "reregister", []int{u.ID}, p, nil)
		return result{value: s.registerAnswerLocked(old, false)}, nil
	}
	show := true
	if v, ok := p.get("SHOW"); ok {
		show = truthy(v)
	}
	addToChat := true
	if v, ok := p.get("ADD_TO_CHAT"); ok {
		addToChat = truthy(v)
	}
	call := &Call{
		CallID: fmt.Sprintf("externalCall.%s.%d", randHex(16), now.Unix()), ExternalCallID: ext,
		ClientID: c.clientID, UserID: u.ID, PhoneNumber: phone, Type: typ, LineNumber: line,
		StartDate: start, CRMCreate: truthy(mustGet(p, "CRM_CREATE")), CRMSource: p.s("CRM_SOURCE"),
		Show: show, AddToChat: addToChat, CallListID: p.int("CALL_LIST_ID"), RegisteredAt: now,
	}
	leadErr := s.bindCRMLocked(call, strings.ToUpper(p.s("CRM_ENTITY_TYPE")), p.int("CRM_ENTITY_ID"))
	if show {
		call.ShownTo = []int{u.ID}
	}
	s.calls[call.CallID] = call
	s.callOrder = append(s.callOrder, call.CallID)
	call.log(now, "register", []int{u.ID}, p, nil)
	ans := s.registerAnswerLocked(call, true)
	ans.LeadCreationError = leadErr
	return result{value: ans}, nil
}

func mustGet(p params, name string) any { v, _ := p.get(name); return v }

// bindCRMLocked binds a new call to a CRM entity: the one given, else the first found by phone
// (contact, company, lead), else a new lead when CRM_CREATE=1 — unless it is an outgoing call on
// a line with CRM_AUTO_CREATE=N. It returns LEAD_CREATION_ERROR, if any.
func (s *Server) bindCRMLocked(call *Call, entityType string, entityID int) string {
	if entityType != "" && entityID > 0 {
		call.CRMEntityType, call.CRMEntityID = entityType, entityID
		return ""
	}
	if found := s.searchLocked(normPhone(call.PhoneNumber)); len(found) > 0 {
		call.CRMEntityType, call.CRMEntityID = found[0].typ, found[0].id
		return ""
	}
	if !call.CRMCreate {
		return ""
	}
	if call.Type == 1 && call.LineNumber != "" {
		for _, l := range s.lines {
			if l.ClientID == call.ClientID && l.Number == call.LineNumber && l.CRMAutoCreate == "N" {
				return ""
			}
		}
	}
	if s.opts.LeadCreationError != "" {
		return s.opts.LeadCreationError
	}
	title := map[int]string{1: "Outgoing call to %s", 2: "Incoming call from %s", 3: "Incoming call from %s",
		4: "Callback to %s", 5: "Call to %s"}[call.Type]
	source := call.CRMSource
	if source == "" {
		source = "CALL"
	}
	l := s.addLeadLocked(Lead{Title: fmt.Sprintf(title, call.PhoneNumber), Phones: []string{call.PhoneNumber},
		AssignedByID: call.UserID, SourceID: source, StatusID: "NEW", CallID: call.CallID,
		CreatedBy: "telephony.externalcall.register"})
	call.CRMEntityType, call.CRMEntityID, call.CreatedLeadID = "LEAD", l.ID, l.ID
	return ""
}

func (s *Server) registerAnswerLocked(c *Call, fresh bool) registerAnswer {
	a := registerAnswer{CallID: c.CallID, CRMCreatedEntities: []createdEntity{}, CRMEntityType: c.CRMEntityType}
	if c.CRMEntityID > 0 {
		id := c.CRMEntityID
		a.CRMEntityID = &id
	}
	if fresh && c.CreatedLeadID > 0 {
		id := c.CreatedLeadID
		a.CRMCreatedLead = &id
		a.CRMCreatedEntities = []createdEntity{{"LEAD", id}}
	}
	return a
}

// userIDs reads USER_ID as an int or a list of ints.
func userIDs(p params) []int {
	var out []int
	for _, v := range items(mustGet(p, "USER_ID")) {
		if id := toInt(v); id > 0 {
			out = append(out, id)
		}
	}
	return out
}

// showHide is telephony.externalCall.show / .hide: true when done, false for an unknown (or
// already finished) call — there are no method errors.
func (s *Server) showHide(show bool) func(context.Context, *caller, params) (result, error) {
	return func(_ context.Context, _ *caller, p params) (result, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		call := s.activeCallLocked(p.s("CALL_ID"))
		if call == nil {
			return result{value: false}, nil
		}
		users := userIDs(p)
		if len(users) == 0 {
			users = []int{call.UserID}
		}
		action := "hide"
		if show {
			action = "show"
		}
		for _, u := range users {
			i := slices.Index(call.ShownTo, u)
			switch {
			case show && i < 0:
				call.ShownTo = append(call.ShownTo, u)
			case !show && i >= 0:
				call.ShownTo = slices.Delete(call.ShownTo, i, i+1)
			}
		}
		call.log(s.nowLocked(), action, users, p, nil)
		return result{value: true}, nil
	}
}

// finishAnswer is telephony.externalCall.finish's result: the statistics record, fields in the
// documented order.
type finishAnswer struct {
	CallID         string  `json:"CALL_ID"`
	ExternalCallID *string `json:"EXTERNAL_CALL_ID"`
	PortalUserID   int     `json:"PORTAL_USER_ID"`
	PhoneNumber    string  `json:"PHONE_NUMBER"`
	PortalNumber   string  `json:"PORTAL_NUMBER"`
	Incoming       string  `json:"INCOMING"`
	CallDuration   int     `json:"CALL_DURATION"`
	// CallStartDate is a PHP DateTime object, which the portal's json_encode prints as {}.
	CallStartDate    struct{} `json:"CALL_START_DATE"`
	CallStatus       int      `json:"CALL_STATUS"`
	CallVote         int      `json:"CALL_VOTE"`
	Cost             float64  `json:"COST"`
	CostCurrency     string   `json:"COST_CURRENCY"`
	CallFailedCode   string   `json:"CALL_FAILED_CODE"`
	CallFailedReason string   `json:"CALL_FAILED_REASON"`
	RestAppID        string   `json:"REST_APP_ID"`
	RestAppName      string   `json:"REST_APP_NAME"`
	CRMActivityID    *int     `json:"CRM_ACTIVITY_ID"`
	Comment          *string  `json:"COMMENT"`
	CRMEntityType    string   `json:"CRM_ENTITY_TYPE"`
	CRMEntityID      *int     `json:"CRM_ENTITY_ID"`
	ID               int      `json:"ID"`
}

func (s *Server) finish(_ context.Context, c *caller, p params) (result, error) {
	switch mustGet(p, "CALL_ID").(type) {
	case json.Number, bool, *omap:
		return result{}, &apiError{http.StatusBadRequest, "INVALID_ARGUMENT", "CALL_ID must be a string"}
	}
	userID, inner := p.int("USER_ID"), p.s("USER_PHONE_INNER")
	if userID <= 0 && inner == "" {
		return result{}, errCore("USER_ID or USER_PHONE_INNER should be set")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	call := s.activeCallLocked(p.s("CALL_ID"))
	if call == nil {
		// An already finished CALL_ID lands here too (Itgrix's double-finish in §1.4/§3.4); the
		// docs give ERROR_CORE, the 2025 report an empty code — inject a fault body for that.
		return result{}, errCore("Call is not found (call should be registered prior to finishing)")
	}
	u := s.userLocked(userID, inner)
	if u == nil {
		err := errCore("User is not found or is not active")
		call.log(now, "finish", nil, p, err)
		return result{}, err
	}
	f := &Finish{At: now, UserID: u.ID, Duration: p.int("DURATION"), CostCurrency: p.s("COST_CURRENCY"),
		FailedReason: p.s("FAILED_REASON"), RecordURL: p.s("RECORD_URL"), Vote: p.int("VOTE"), AddToChat: true}
	f.Cost, _ = strconv.ParseFloat(p.s("COST"), 64)
	if v, ok := p.get("ADD_TO_CHAT"); ok {
		f.AddToChat = truthy(v)
	}
	f.StatusCode, f.StatusSent = p.str("STATUS_CODE")
	f.StatusCode = strings.TrimSpace(f.StatusCode)
	if f.StatusCode == "" {
		f.StatusCode = "304"
		if f.Duration > 0 {
			f.StatusCode = "200"
		}
	}
	f.StatID = s.idLocked("stat")
	if call.CRMEntityID > 0 {
		f.ActivityID = s.idLocked("activity")
	}
	// The finishing user becomes responsible for entities created during the call (finish page).
	if call.CreatedLeadID > 0 {
		for _, l := range s.leads {
			if l.ID == call.CreatedLeadID {
				l.AssignedByID = u.ID
			}
		}
	}
	call.Finish = f
	call.ShownTo = nil // finishing hides the card everywhere
	call.log(now, "finish", []int{u.ID}, p, nil)

	a := finishAnswer{CallID: call.CallID, PortalUserID: u.ID, PhoneNumber: call.PhoneNumber,
		PortalNumber: call.LineNumber, Incoming: strconv.Itoa(call.Type), CallDuration: f.Duration,
		CallVote: f.Vote, Cost: f.Cost, CostCurrency: f.CostCurrency, CallFailedCode: f.StatusCode,
		CallFailedReason: f.FailedReason, RestAppID: strconv.Itoa(s.apps[call.ClientID].restAppID),
		RestAppName: s.opts.AppName, CRMEntityType: call.CRMEntityType, ID: f.StatID}
	if f.StatusCode == "200" {
		a.CallStatus = 1
	}
	if call.ExternalCallID != "" {
		ext := call.ExternalCallID
		a.ExternalCallID = &ext
	}
	if f.ActivityID > 0 {
		id := f.ActivityID
		a.CRMActivityID = &id
	}
	if call.CRMEntityID > 0 {
		id := call.CRMEntityID
		a.CRMEntityID = &id
	}
	return result{value: a}, nil
}

// attachRecord is telephony.externalCall.attachRecord (reference §1.7): FILENAME+FILE_CONTENT or
// RECORD_URL attach at once and give FILE_ID; FILENAME alone gives an uploadUrl for a separate
// multipart upload. Only a finished call takes a record; a new one replaces the old.
func (s *Server) attachRecord(ctx context.Context, c *caller, p params) (result, error) {
	callID := p.s("CALL_ID")
	recordURL := p.s("RECORD_URL")
	fileName, nameSent := p.str("FILENAME")
	fileName = strings.TrimSpace(fileName)
	content, contentSent := p.str("FILE_CONTENT")
	if recordURL == "" && !nameSent {
		return result{}, errEmpty("Required parameters are not set. Request should contain either URL or FILENAME parameter")
	}
	s.mu.Lock()
	call, ok := s.calls[callID]
	finished := ok && call.Finish != nil
	s.mu.Unlock()
	if !finished {
		return result{}, errEmpty("Call is not found in the statistic table. It looks like it is not finished yet.")
	}
	if fileName == "" && recordURL != "" {
		if u, err := url.Parse(recordURL); err == nil {
			fileName = path.Base(u.Path)
		}
	}
	if fileName == "" || fileName == "/" || fileName == "." {
		return result{}, errCore("File name is empty")
	}
	if ext := strings.ToLower(path.Ext(fileName)); ext != ".wav" && ext != ".mp3" {
		return result{}, errCore("Wrong file extension. Only wav and mp3 are allowed")
	}
	rec := Record{FileName: fileName, RecordURL: recordURL}
	switch {
	case recordURL != "":
		rec.Mode = "url"
		if s.opts.FetchRecordURL {
			body, err := s.fetch(ctx, recordURL)
			if err != nil {
				return result{}, err
			}
			rec.Content = body
		}
	case contentSent:
		if strings.TrimSpace(content) == "" {
			return result{}, errCore("File content is empty.")
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(content))
		if err != nil {
			return result{}, errCore("File content is not properly encoded. Base64 encoding is expected.")
		}
		rec.Mode, rec.Content = "content", b
	default:
		token := "telephony|" + randHex(16)
		s.mu.Lock()
		s.uploads[token] = pendingUpload{callID: callID, fileName: fileName}
		call.log(s.nowLocked(), "attachRecord", nil, p, nil)
		s.mu.Unlock()
		q := url.Values{"token": {token}}
		up := s.baseURL(nil) + "/rest/upload.json?"
		if c.webhook {
			up = fmt.Sprintf("%s/rest/%d/%s/upload.json?", s.baseURL(nil), c.userID, c.secret)
		} else {
			q.Set("auth", c.accessToken)
		}
		return result{value: map[string]string{"uploadUrl": up + q.Encode(), "fieldName": "file"}}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.At, rec.FileID = s.nowLocked(), s.idLocked("file")
	call.Records = append(call.Records, rec)
	call.log(rec.At, "attachRecord", nil, p, nil)
	return result{value: map[string]int{"FILE_ID": rec.FileID}}, nil
}

func (s *Server) fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errCore("Server returns HTTP error code 0")
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, errCore("Server returns HTTP error code 0")
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, errCore(fmt.Sprintf("Server returns HTTP error code %d", resp.StatusCode))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, errCore("Server returns HTTP error code 0")
	}
	return b, nil
}

// upload takes the multipart POST to an attachRecord uploadUrl. The answer's shape is not
// documented; it gives FILE_ID like the direct mode.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, _ *caller, p params, start, realStart time.Time) {
	token := p.s("token")
	s.mu.Lock()
	pu, ok := s.uploads[token]
	s.mu.Unlock()
	if !ok {
		writeErr(w, errEmpty("Upload token is invalid"))
		return
	}
	if r.MultipartForm == nil || len(r.MultipartForm.File["file"]) == 0 {
		writeErr(w, errCore("File content is empty."))
		return
	}
	fh := r.MultipartForm.File["file"][0]
	f, err := fh.Open()
	if err != nil {
		writeErr(w, errCore("File content is empty."))
		return
	}
	body, err := io.ReadAll(f)
	f.Close()
	if err != nil || len(body) == 0 {
		writeErr(w, errCore("File content is empty."))
		return
	}
	s.mu.Lock()
	delete(s.uploads, token)
	call := s.calls[pu.callID]
	rec := Record{At: s.nowLocked(), FileID: s.idLocked("file"), FileName: pu.fileName, Mode: "upload", Content: body}
	call.Records = append(call.Records, rec)
	call.log(rec.At, "upload", nil, params{newOmap()}, nil)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, envelope{Result: map[string]int{"FILE_ID": rec.FileID}, Time: s.timing(start, time.Since(realStart))})
}

// crmHit is a CRM entity found by phone.
type crmHit struct {
	typ      string
	id       int
	name     string
	assigned int
}

// searchLocked finds CRM entities by normalised phone: contacts, companies, then leads.
func (s *Server) searchLocked(n string) []crmHit {
	var out []crmHit
	for _, c := range s.contacts {
		if phoneMatch(c.Phones, n) {
			out = append(out, crmHit{"CONTACT", c.ID, strings.TrimSpace(c.Name + " " + c.LastName), c.AssignedByID})
		}
	}
	for _, c := range s.companies {
		if phoneMatch(c.Phones, n) {
			out = append(out, crmHit{"COMPANY", c.ID, c.Title, c.AssignedByID})
		}
	}
	for _, l := range s.leads {
		if phoneMatch(l.Phones, n) {
			name := strings.TrimSpace(l.Name + " " + l.LastName)
			if name == "" {
				name = l.Title
			}
			out = append(out, crmHit{"LEAD", l.ID, name, l.AssignedByID})
		}
	}
	return out
}

type assignedBy struct {
	ID             string  `json:"ID"`
	TimemanStatus  string  `json:"TIMEMAN_STATUS"`
	UserPhoneInner *string `json:"USER_PHONE_INNER"`
	WorkPhone      *string `json:"WORK_PHONE"`
	PersonalPhone  *string `json:"PERSONAL_PHONE"`
	PersonalMobile *string `json:"PERSONAL_MOBILE"`
}

type searchItem struct {
	CRMEntityType string     `json:"CRM_ENTITY_TYPE"`
	CRMEntityID   int        `json:"CRM_ENTITY_ID"`
	AssignedByID  int        `json:"ASSIGNED_BY_ID"`
	Name          string     `json:"NAME"`
	AssignedBy    assignedBy `json:"ASSIGNED_BY"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// searchCrmEntities is telephony.externalCall.searchCrmEntities (reference §1.3).
func (s *Server) searchCrmEntities(_ context.Context, _ *caller, p params) (result, error) {
	phone := p.s("PHONE_NUMBER")
	if phone == "" {
		return result{}, errCore("PHONE_NUMBER is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []searchItem{}
	for _, h := range s.searchLocked(normPhone(phone)) {
		it := searchItem{CRMEntityType: h.typ, CRMEntityID: h.id, AssignedByID: h.assigned, Name: h.name,
			AssignedBy: assignedBy{ID: strconv.Itoa(h.assigned), TimemanStatus: "NOT_INSTALLED"}}
		if u := s.userByIDLocked(h.assigned); u != nil {
			it.AssignedBy.TimemanStatus = u.TimemanStatus
			it.AssignedBy.UserPhoneInner = nullable(u.PhoneInner)
			it.AssignedBy.WorkPhone = nullable(u.WorkPhone)
			it.AssignedBy.PersonalPhone = nullable(u.PersonalPhone)
			it.AssignedBy.PersonalMobile = nullable(u.PersonalMobile)
		}
		out = append(out, it)
	}
	return result{value: out}, nil
}

// lineLocked finds an application's line by number.
func (s *Server) lineLocked(clientID, number string) *Line {
	for _, l := range s.lines {
		if l.ClientID == clientID && l.Number == number {
			return l
		}
	}
	return nil
}

func (s *Server) addLine(l Line) Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.addLineLocked(l)
}

func (s *Server) addLineLocked(l Line) *Line {
	if l.ClientID == "" {
		l.ClientID = s.opts.ClientID
	}
	if l.CRMAutoCreate == "" {
		l.CRMAutoCreate = "Y"
	}
	if l.ID == 0 {
		l.ID = s.idLocked("line")
	}
	s.seeIDLocked("line", l.ID)
	s.lines = append(s.lines, &l)
	return &l
}

func (s *Server) lineAdd(_ context.Context, c *caller, p params) (result, error) {
	number := p.s("NUMBER")
	if number == "" {
		return result{}, errCore("NUMBER should not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lineLocked(c.clientID, number) != nil {
		return result{}, errCore("Line already exists")
	}
	l := Line{ClientID: c.clientID, Number: number, Name: p.s("NAME"), CRMAutoCreate: "Y"}
	if v, ok := p.get("CRM_AUTO_CREATE"); ok && !truthy(v) {
		l.CRMAutoCreate = "N"
	}
	return result{value: map[string]int{"ID": s.addLineLocked(l).ID}}, nil
}

type lineItem struct {
	Number        string `json:"NUMBER"`
	Name          string `json:"NAME"`
	CRMAutoCreate string `json:"CRM_AUTO_CREATE"`
}

func (s *Server) lineGet(_ context.Context, c *caller, _ params) (result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []lineItem{}
	for _, l := range s.lines {
		if l.ClientID == c.clientID {
			out = append(out, lineItem{l.Number, l.Name, l.CRMAutoCreate})
		}
	}
	return result{value: out}, nil
}

func (s *Server) lineUpdate(_ context.Context, c *caller, p params) (result, error) {
	number := p.s("NUMBER")
	if number == "" {
		return result{}, errCore("NUMBER should not be empty")
	}
	name, nameSent := p.str("NAME")
	auto, autoSent := p.get("CRM_AUTO_CREATE")
	if !nameSent && !autoSent {
		return result{}, errCore("There are no fields to update")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lineLocked(c.clientID, number)
	if l == nil {
		return result{}, errCore("Could not find line with number " + number)
	}
	if nameSent {
		l.Name = name
	}
	if autoSent {
		l.CRMAutoCreate = "N"
		if truthy(auto) {
			l.CRMAutoCreate = "Y"
		}
	}
	return result{value: map[string]string{"ID": strconv.Itoa(l.ID)}}, nil
}

func (s *Server) lineDelete(_ context.Context, c *caller, p params) (result, error) {
	number := p.s("NUMBER")
	if number == "" {
		return result{}, errCore("NUMBER should not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lineLocked(c.clientID, number)
	if l == nil {
		return result{}, errCore("Could not find line with number " + number)
	}
	s.lines = slices.DeleteFunc(s.lines, func(x *Line) bool { return x == l })
	return result{value: newOmap()}, nil // an empty PHP array: []
}
