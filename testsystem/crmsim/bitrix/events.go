package bitrix

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Events the portal posts to an application handler: form-encoded, nested keys (data[...],
// auth[...]), sent once and never retried (reference §1.1, §1.8).

// CallStartFields is a click in CRM on a phone number (ONEXTERNALCALLSTART). The portal registers
// the call itself (no EXTERNAL_CALL_ID) and sends its CALL_ID in the event.
type CallStartFields struct {
	ClientID                 string // the application chosen for outgoing calls; "" the portal's
	UserID                   int    // who clicked; 0: the first user
	PhoneNumber              string
	PhoneNumberInternational string // default PhoneNumber
	Extension                string
	LineNumber               string
	CallListID               int
	IsMobile                 bool
	CRMEntityType            string
	CRMEntityID              int
}

// CallbackStartFields is a filled CRM callback form (ONEXTERNALCALLBACKSTART): no CALL_ID and no
// USER_ID — the application picks the operator and registers the call (TYPE=4) itself.
type CallbackStartFields struct {
	ClientID      string
	PhoneNumber   string
	Text          string
	Voice         string
	CRMEntityType string
	CRMEntityID   int
	LineNumber    string
}

// SendAppInstall posts ONAPPINSTALL for inst to the application's install handler: data about
// the app, and in auth the token pair with application_token (the only time the handler gets
// the refresh token and application_token together).
func (s *Server) SendAppInstall(ctx context.Context, handlerURL string, inst Install) error {
	f := url.Values{}
	f.Set("event", "ONAPPINSTALL")
	f.Set("data[VERSION]", "1")
	f.Set("data[ACTIVE]", "Y")
	f.Set("data[INSTALLED]", "Y")
	f.Set("data[LANGUAGE_ID]", "ru")
	f.Set("ts", strconv.FormatInt(s.now().Unix(), 10))
	f.Set("auth[access_token]", inst.AccessToken)
	f.Set("auth[expires]", strconv.FormatInt(inst.Expires.Unix(), 10))
	f.Set("auth[expires_in]", strconv.Itoa(inst.ExpiresIn))
	f.Set("auth[scope]", inst.Scope)
	f.Set("auth[domain]", inst.Domain)
	f.Set("auth[server_endpoint]", inst.ServerEndpoint)
	f.Set("auth[status]", inst.Status)
	f.Set("auth[client_endpoint]", inst.ClientEndpoint)
	f.Set("auth[member_id]", inst.MemberID)
	f.Set("auth[user_id]", strconv.Itoa(inst.UserID))
	f.Set("auth[refresh_token]", inst.RefreshToken)
	f.Set("auth[application_token]", inst.ApplicationToken)
	return s.post(ctx, handlerURL, f)
}

// SendExternalCallStart registers a click-to-call the way the portal does (TYPE 1, for the user,
// no EXTERNAL_CALL_ID) and posts ONEXTERNALCALLSTART with its CALL_ID to handlerURL, with the
// data and auth keys of on-external-call-start.md. It returns the CALL_ID; the event is sent
// once even if the handler fails, as the portal does not retry.
func (s *Server) SendExternalCallStart(ctx context.Context, handlerURL string, fields CallStartFields) (string, error) {
	base := s.baseURL(nil)
	s.mu.Lock()
	a, ok := s.appLocked(fields.ClientID)
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("bitrix: ONEXTERNALCALLSTART: application %q is not installed", fields.ClientID)
	}
	if fields.UserID == 0 {
		fields.UserID = s.defaultUserLocked()
	}
	if fields.PhoneNumberInternational == "" {
		fields.PhoneNumberInternational = fields.PhoneNumber
	}
	now := s.nowLocked()
	call := &Call{
		CallID:   fmt.Sprintf("externalCall.%s.%d", randHex(16), now.Unix()),
		ClientID: a.clientID, ByPortal: true, UserID: fields.UserID, PhoneNumber: fields.PhoneNumber, Type: 1,
		LineNumber: fields.LineNumber, StartDate: now, CRMEntityType: strings.ToUpper(fields.CRMEntityType),
		CRMEntityID: fields.CRMEntityID, Show: true, AddToChat: true, CallListID: fields.CallListID,
		RegisteredAt: now, ShownTo: []int{fields.UserID},
	}
	if call.CRMEntityID == 0 {
		s.bindCRMLocked(call, "", 0)
	}
	s.calls[call.CallID] = call
	s.callOrder = append(s.callOrder, call.CallID)
	call.History = append(call.History, CallEvent{At: now, Action: "register", UserIDs: []int{fields.UserID},
		Params: map[string]string{"by": "portal (ONEXTERNALCALLSTART)"}})
	// The event carries a fresh token pair of the user who clicked.
	at, rt := s.issuePairLocked(a.clientID, fields.UserID)
	inst := s.installLocked(a, at, rt, base)
	s.mu.Unlock()

	isMobile := "0"
	if fields.IsMobile {
		isMobile = "1"
	}
	f := url.Values{}
	f.Set("event", "ONEXTERNALCALLSTART")
	f.Set("event_handler_id", "1")
	f.Set("data[PHONE_NUMBER]", fields.PhoneNumber)
	f.Set("data[PHONE_NUMBER_INTERNATIONAL]", fields.PhoneNumberInternational)
	f.Set("data[EXTENSION]", fields.Extension)
	f.Set("data[USER_ID]", strconv.Itoa(fields.UserID))
	f.Set("data[CALL_LIST_ID]", strconv.Itoa(fields.CallListID))
	f.Set("data[LINE_NUMBER]", fields.LineNumber)
	f.Set("data[IS_MOBILE]", isMobile)
	f.Set("data[CALL_ID]", call.CallID)
	f.Set("data[CRM_ENTITY_TYPE]", call.CRMEntityType)
	f.Set("data[CRM_ENTITY_ID]", strconv.Itoa(call.CRMEntityID))
	f.Set("ts", strconv.FormatInt(now.Unix(), 10))
	setEventAuth(f, inst)
	return call.CallID, s.post(ctx, handlerURL, f)
}

// SendExternalCallbackStart posts ONEXTERNALCALLBACKSTART (on-external-call-back-start.md).
func (s *Server) SendExternalCallbackStart(ctx context.Context, handlerURL string, fields CallbackStartFields) error {
	base := s.baseURL(nil)
	s.mu.Lock()
	a, ok := s.appLocked(fields.ClientID)
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("bitrix: ONEXTERNALCALLBACKSTART: application %q is not installed", fields.ClientID)
	}
	now := s.nowLocked()
	// A form filled by a site visitor is no user's action: no tokens in auth (events/index.md).
	inst := Install{Domain: s.domain(base), ServerEndpoint: base + "/rest/", ClientEndpoint: base + "/rest/",
		MemberID: s.opts.MemberID, ApplicationToken: a.appToken, Scope: a.scope, Status: "L"}
	s.mu.Unlock()
	f := url.Values{}
	f.Set("event", "ONEXTERNALCALLBACKSTART")
	f.Set("event_handler_id", "2")
	f.Set("data[PHONE_NUMBER]", fields.PhoneNumber)
	f.Set("data[TEXT]", fields.Text)
	f.Set("data[VOICE]", fields.Voice)
	f.Set("data[CRM_ENTITY_TYPE]", strings.ToUpper(fields.CRMEntityType))
	f.Set("data[CRM_ENTITY_ID]", strconv.Itoa(fields.CRMEntityID))
	f.Set("data[LINE_NUMBER]", fields.LineNumber)
	f.Set("ts", strconv.FormatInt(now.Unix(), 10))
	setEventAuth(f, inst)
	return s.post(ctx, handlerURL, f)
}

// setEventAuth writes an event's auth[...] keys; tokens only when there are some.
func setEventAuth(f url.Values, inst Install) {
	if inst.AccessToken != "" {
		f.Set("auth[access_token]", inst.AccessToken)
		f.Set("auth[expires_in]", strconv.Itoa(inst.ExpiresIn))
	}
	f.Set("auth[scope]", inst.Scope)
	f.Set("auth[domain]", inst.Domain)
	f.Set("auth[server_endpoint]", inst.ServerEndpoint)
	f.Set("auth[status]", inst.Status)
	f.Set("auth[client_endpoint]", inst.ClientEndpoint)
	f.Set("auth[member_id]", inst.MemberID)
	if inst.RefreshToken != "" {
		f.Set("auth[refresh_token]", inst.RefreshToken)
	}
	f.Set("auth[application_token]", inst.ApplicationToken)
}

// appLocked finds an installed application ("" is the portal's own).
func (s *Server) appLocked(clientID string) (*app, bool) {
	if clientID == "" {
		clientID = s.opts.ClientID
	}
	a, ok := s.apps[clientID]
	if !ok || !a.installed {
		return nil, false
	}
	return a, true
}

// post sends one event and records it in Events.
func (s *Server) post(ctx context.Context, handlerURL string, f url.Values) error {
	ev := SentEvent{At: s.now(), URL: handlerURL, Event: f.Get("event"), Form: map[string]string{}}
	for k := range f {
		ev.Form[k] = f.Get(k)
	}
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, handlerURL, strings.NewReader(f.Encode()))
		if err != nil {
			return fmt.Errorf("bitrix: %s: %w", ev.Event, err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "Bitrix24 Webhook Engine")
		resp, err := s.opts.HTTPClient.Do(req)
		if err != nil {
			return fmt.Errorf("bitrix: post %s: %w", ev.Event, err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		ev.Status = resp.StatusCode
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("bitrix: post %s: handler answered %s", ev.Event, resp.Status)
		}
		return nil
	}()
	if err != nil {
		ev.Err = err.Error()
	}
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	return err
}

// Events lists the events posted so far.
func (s *Server) Events() []SentEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentEvent(nil), s.events...)
}
