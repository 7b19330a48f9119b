package amisim

import (
	"strings"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// originateAction is action_originate: with Async the reply comes at once and the call's events
// and OriginateResponse follow from another goroutine (Asterisk's fast_originate thread); without
// it the reply waits for the call and no OriginateResponse is sent.
func (ss *session) originateAction(m *ami.Message) {
	if m.Get("Channel") == "" {
		ss.send(errorReply(m, "Channel not specified"))
		return
	}
	s := ss.srv
	s.mu.Lock()
	h := s.originate
	s.mu.Unlock()
	action := cloneMessage(m)
	if !isTrue(m.Get("Async")) {
		ok := s.runOriginate(action, h, false)
		if ok {
			ss.send(reply(m, "Success", "Originate successfully queued"))
		} else {
			ss.send(errorReply(m, "Originate failed"))
		}
		return
	}
	ss.send(reply(m, "Success", "Originate successfully queued"))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runOriginate(action, h, true)
	}()
}

// runOriginate calls the hook and plays its events; async adds (or fixes) the OriginateResponse.
func (s *Server) runOriginate(action *ami.Message, h OriginateHandler, async bool) bool {
	var events []*ami.Message
	ok := false
	if h != nil {
		events, ok = h(cloneMessage(action))
	}
	sawResponse := false
	for _, ev := range events {
		select {
		case <-s.done:
			return ok
		default:
		}
		if exactGet(ev, "Event") == "OriginateResponse" {
			if !async {
				continue // a synchronous Originate has no OriginateResponse
			}
			ev = withActionID(ev, action.Get("ActionID"))
			sawResponse = true
		}
		s.Broadcast(ev)
	}
	if async && !sawResponse {
		s.Broadcast(originateResponse(action, events, ok))
	}
	return ok
}

// withActionID returns a copy of ev whose ActionID is id (removed when id is empty).
func withActionID(ev *ami.Message, id string) *ami.Message {
	out := &ami.Message{Headers: make([]ami.Header, 0, len(ev.Headers)+1)}
	set := false
	for _, h := range ev.Headers {
		if strings.EqualFold(h.Key, "ActionID") {
			if id != "" && !set {
				out.Headers = append(out.Headers, ami.Header{Key: h.Key, Value: id})
				set = true
			}
			continue
		}
		out.Headers = append(out.Headers, h)
		if !set && id != "" && h.Key == "Privilege" {
			out.Headers = append(out.Headers, ami.Header{Key: "ActionID", Value: id})
			set = true
		}
	}
	return out
}

// originateResponse builds fast_originate's event. On success Channel and Uniqueid are the
// originated channel's (the first Newchannel named after the action's Channel); on failure
// Channel is the action's own, without the -XXXXXXXX;1 suffix, and Uniqueid `<unknown>` unless a
// ChannelId was given.
func originateResponse(action *ami.Message, events []*ami.Message, ok bool) *ami.Message {
	channel := action.Get("Channel")
	uniqueid := action.Get("ChannelId")
	if ok {
		var first *ami.Message
		for _, ev := range events {
			if exactGet(ev, "Event") != "Newchannel" {
				continue
			}
			if first == nil {
				first = ev
			}
			if strings.HasPrefix(exactGet(ev, "Channel"), channel+"-") {
				first = ev
				break
			}
		}
		if first != nil {
			channel = exactGet(first, "Channel")
			if uniqueid == "" {
				uniqueid = exactGet(first, "Uniqueid")
			}
		}
	}
	if uniqueid == "" {
		uniqueid = "<unknown>"
	}
	num, name := parseCallerID(action.Get("CallerID"))
	r := &ami.Message{}
	r.Add("Event", "OriginateResponse").Add("Privilege", "call,all")
	addActionID(r, action)
	if ok {
		r.Add("Response", "Success")
	} else {
		r.Add("Response", "Failure")
	}
	r.Add("Channel", channel)
	if app := action.Get("Application"); app != "" {
		r.Add("Application", app).Add("Data", action.Get("Data"))
	} else {
		r.Add("Context", action.Get("Context")).Add("Exten", action.Get("Exten"))
	}
	if ok {
		r.Add("Reason", "4") // AST_CONTROL_ANSWER
	} else {
		r.Add("Reason", "0")
	}
	r.Add("Uniqueid", uniqueid).Add("CallerIDNum", orUnknown(num)).Add("CallerIDName", orUnknown(name))
	return r
}

// parseCallerID splits `"Alice" <101>` (or `Alice <101>`, or `101`) into number and name, as
// ast_callerid_parse does for the common forms.
func parseCallerID(cid string) (num, name string) {
	cid = strings.TrimSpace(cid)
	if lt := strings.LastIndexByte(cid, '<'); lt >= 0 {
		if gt := strings.IndexByte(cid[lt:], '>'); gt > 0 {
			num = strings.TrimSpace(cid[lt+1 : lt+gt])
			name = strings.Trim(strings.TrimSpace(cid[:lt]), `"`)
			return num, name
		}
	}
	if cid != "" && strings.Trim(cid, "0123456789+*#") == "" {
		return cid, ""
	}
	return "", strings.Trim(cid, `"`)
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}
