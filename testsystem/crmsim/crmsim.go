// Package crmsim holds what the CRM simulators (crmsim/bitrix, crmsim/amo) share: the journal of
// every request a simulator received, injectable faults, and the control endpoints the runner
// uses under /_sim/.
//
// A simulator is an http.Handler. Wrap its API with Sim.Wrap: every request is recorded (with its
// parsed parameters, the status and the body it got back) and faults are applied before the API
// sees the request. The control endpoints are:
//
//	GET    /_sim/requests           the journal as JSON (?since=N for entries after sequence N)
//	DELETE /_sim/requests           empties the journal
//	POST   /_sim/faults             adds a fault (JSON Fault)
//	DELETE /_sim/faults             removes every fault
package crmsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is one request a simulator received, as the runner compares it with expectations.
type Request struct {
	Seq    int       `json:"seq"`
	Time   time.Time `json:"time"`
	Method string    `json:"method"` // the API method (telephony.externalcall.register, POST /api/v4/calls)
	HTTP   string    `json:"http"`   // GET, POST, ...
	Path   string    `json:"path"`
	// Params are the request's parameters, flattened: form and query keys as sent
	// (FIELDS[PHONE][0][VALUE]), JSON bodies by path (0.uniq, 0.duration). Secrets are redacted.
	Params map[string]string `json:"params"`
	// Body is the raw JSON body when there was one (secrets redacted), for requests whose
	// structure matters more than flat keys.
	Body json.RawMessage `json:"body,omitempty"`
	// Form is the urlencoded parameters as sent — the query string, then a form body, joined
	// by "&" — with secrets redacted: Params loses their order, which can matter (a Bitrix24
	// batch runs its commands in the order sent).
	Form   string `json:"form,omitempty"`
	Status int    `json:"status"`
	// Response is what the simulator answered (JSON), so a test can see what ids it handed out.
	Response json.RawMessage `json:"response,omitempty"`
	// Fault names the injected fault that answered, if one did.
	Fault string `json:"fault,omitempty"`
}

// Param returns one parameter, or "".
func (r Request) Param(key string) string { return r.Params[key] }

// Fault makes matching requests fail: a status with a body, a delay, or both, for Count requests
// (0 = until removed).
type Fault struct {
	Name string `json:"name"`
	// Method matches the API method name (exact, case-insensitive) or, with a trailing *, a prefix;
	// empty matches every request.
	Method string `json:"method"`
	Status int    `json:"status"` // 0: no status fault (only Delay)
	// Body is the response body; empty gives the simulator's own error body for Status.
	Body  json.RawMessage `json:"body,omitempty"`
	Delay time.Duration   `json:"delay"`
	Count int             `json:"count"`
	// Drop closes the connection without an answer (a network failure as the client sees it).
	Drop bool `json:"drop"`

	used int
}

func (f *Fault) matches(method string) bool {
	switch {
	case f.Method == "":
		return true
	case strings.HasSuffix(f.Method, "*"):
		return strings.HasPrefix(strings.ToLower(method), strings.ToLower(strings.TrimSuffix(f.Method, "*")))
	}
	return strings.EqualFold(f.Method, method)
}

// Sim is the journal and fault table of one simulator.
type Sim struct {
	mu      sync.Mutex
	reqs    []Request
	faults  []*Fault
	changed chan struct{}
	// Secrets are parameter names whose values never reach the journal (tokens, secrets).
	Secrets map[string]bool
}

// New makes an empty journal; secretParams name the parameters to redact (case-insensitive).
func New(secretParams ...string) *Sim {
	s := &Sim{changed: make(chan struct{}), Secrets: map[string]bool{}}
	for _, p := range secretParams {
		s.Secrets[strings.ToLower(p)] = true
	}
	return s
}

// MethodFunc names the API method of an HTTP request (each simulator knows its URL scheme).
type MethodFunc func(r *http.Request) string

// ErrorFunc renders the simulator's own error body for an injected status.
type ErrorFunc func(status int) []byte

// Wrap records every request to api, applies faults first, and serves /_sim/ itself.
func (s *Sim) Wrap(api http.Handler, method MethodFunc, errBody ErrorFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sim/") {
			s.control(w, r)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		name := method(r)
		entry := Request{Time: time.Now().UTC(), Method: name, HTTP: r.Method, Path: r.URL.Path}
		entry.Params, entry.Body = s.params(r, body)
		entry.Form = s.rawForm(r, body)
		r.Body = io.NopCloser(bytes.NewReader(body))

		if f := s.fault(name); f != nil {
			if f.Delay > 0 {
				select {
				case <-time.After(f.Delay):
				case <-r.Context().Done():
				}
			}
			if f.Drop {
				entry.Fault, entry.Status = f.Name, 0
				s.add(entry)
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			}
			if f.Status != 0 {
				b := []byte(f.Body)
				if len(b) == 0 {
					b = errBody(f.Status)
				}
				entry.Fault, entry.Status, entry.Response = f.Name, f.Status, jsonOrString(b)
				s.add(entry)
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(f.Status)
				w.Write(b)
				return
			}
			entry.Fault = f.Name
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		api.ServeHTTP(rec, r)
		entry.Status, entry.Response = rec.status, jsonOrString(rec.body.Bytes())
		s.add(entry)
	})
}

func jsonOrString(b []byte) json.RawMessage {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	q, _ := json.Marshal(string(b))
	return q
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(b []byte) (int, error) {
	if r.body.Len() < 1<<20 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// params flattens query, form and JSON parameters, redacting secrets.
func (s *Sim) params(r *http.Request, body []byte) (map[string]string, json.RawMessage) {
	out := map[string]string{}
	put := func(k, v string) {
		if s.secret(k) {
			v = "<secret>"
		}
		out[k] = v
	}
	for k, vs := range r.URL.Query() {
		put(k, strings.Join(vs, ","))
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, vs := range form {
				put(k, strings.Join(vs, ","))
			}
		}
	case len(bytes.TrimSpace(body)) > 0 && json.Valid(body):
		var v any
		if json.Unmarshal(body, &v) == nil {
			flatten("", v, put)
			var b bytes.Buffer
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if s.copyRedacted(dec, &b) != nil {
				return out, nil
			}
			return out, b.Bytes()
		}
	}
	return out, nil
}

// copyRedacted copies one JSON value with secret values replaced, keeping the body's key order
// (a re-marshalled map would sort it, and order can matter to the simulated API).
func (s *Sim) copyRedacted(dec *json.Decoder, b *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		v, err := json.Marshal(tok)
		b.Write(v)
		return err
	}
	if d == '[' {
		b.WriteByte('[')
		for i := 0; dec.More(); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := s.copyRedacted(dec, b); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		b.WriteByte(']')
		return err
	}
	b.WriteByte('{')
	for i := 0; dec.More(); i++ {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := kt.(string)
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		if s.Secrets[strings.ToLower(k)] {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
			b.WriteString(`"<secret>"`)
			continue
		}
		if err := s.copyRedacted(dec, b); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	b.WriteByte('}')
	return err
}

// rawForm joins the query string and a form body, redacting secret values.
func (s *Sim) rawForm(r *http.Request, body []byte) string {
	parts := []string{r.URL.RawQuery}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		parts = append(parts, string(body))
	}
	var out []string
	for _, part := range parts {
		for _, pair := range strings.Split(part, "&") {
			if pair == "" {
				continue
			}
			k, _, _ := strings.Cut(pair, "=")
			if key, err := url.QueryUnescape(k); err == nil && s.secret(key) {
				pair = k + "=" + url.QueryEscape("<secret>")
			}
			out = append(out, pair)
		}
	}
	return strings.Join(out, "&")
}

func (s *Sim) secret(key string) bool {
	k := strings.ToLower(key)
	if i := strings.LastIndexAny(k, ".["); i >= 0 {
		k = strings.TrimSuffix(k[i+1:], "]")
	}
	return s.Secrets[k]
}

// flatten writes a JSON value as path=value pairs: {"a":[{"b":1}]} gives a.0.b=1.
func flatten(prefix string, v any, put func(k, v string)) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			flatten(join(k), e, put)
		}
	case []any:
		for i, e := range x {
			flatten(join(strconv.Itoa(i)), e, put)
		}
	case nil:
		put(prefix, "")
	case string:
		put(prefix, x)
	default:
		b, _ := json.Marshal(x)
		put(prefix, string(b))
	}
}

func (s *Sim) fault(method string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if !f.matches(method) {
			continue
		}
		f.used++
		if f.Count > 0 && f.used >= f.Count {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return f
	}
	return nil
}

// AddFault injects a fault; faults are tried in the order they were added.
func (s *Sim) AddFault(f Fault) {
	if f.Name == "" {
		f.Name = fmt.Sprintf("%s %d", f.Method, f.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Sim) add(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Seq = len(s.reqs) + 1
	s.reqs = append(s.reqs, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Requests returns the journal after sequence number since (0 for all).
func (s *Sim) Requests(since int) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if since >= len(s.reqs) {
		return nil
	}
	return append([]Request(nil), s.reqs[since:]...)
}

// Reset empties the journal.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
}

// Wait blocks until some request in the journal satisfies pred, or ctx ends.
func (s *Sim) Wait(ctx context.Context, pred func(Request) bool) (Request, error) {
	seen := 0
	for {
		s.mu.Lock()
		reqs := s.reqs[seen:]
		ch := s.changed
		s.mu.Unlock()
		for _, r := range reqs {
			if pred(r) {
				return r, nil
			}
		}
		seen += len(reqs)
		select {
		case <-ch:
		case <-ctx.Done():
			return Request{}, fmt.Errorf("crmsim: no matching request: %w", ctx.Err())
		}
	}
}

func (s *Sim) control(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/_sim/requests" && r.Method == http.MethodGet:
		since, _ := strconv.Atoi(r.URL.Query().Get("since"))
		reqs := s.Requests(since)
		if reqs == nil {
			reqs = []Request{}
		}
		json.NewEncoder(w).Encode(reqs)
	case r.URL.Path == "/_sim/requests" && r.Method == http.MethodDelete:
		s.Reset()
		w.Write([]byte(`{"ok":true}`))
	case r.URL.Path == "/_sim/faults" && r.Method == http.MethodPost:
		var f Fault
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "fault is not JSON: " + err.Error()})
			return
		}
		s.AddFault(f)
		w.Write([]byte(`{"ok":true}`))
	case r.URL.Path == "/_sim/faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		w.Write([]byte(`{"ok":true}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"unknown control endpoint"}`))
	}
}
