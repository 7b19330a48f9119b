package amo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errNotArray is a body that is not a JSON array of objects; the v4 batch methods take nothing
// else.
var errNotArray = errors.New("body is not a JSON array of objects")

// decodeBatch parses a v4 batch body: a JSON array of objects. Numbers stay json.Number so the
// type checks below can tell 12 from 12.5 and "12".
func decodeBatch(body []byte) ([]map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotArray, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", errNotArray)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, errNotArray
	}
	out := make([]map[string]any, 0, len(arr))
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, errNotArray
		}
		out = append(out, m)
	}
	return out, nil
}

// decodeObject parses a body that must be one JSON object (the v2 methods).
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("body is not a JSON object")
	}
	return m, nil
}

// fields reads one object of a request with amoCRM's type rules and collects the errors under
// their paths, so one response can name every bad field of every item.
type fields struct {
	m      map[string]any
	prefix string
	errs   *[]FieldError
}

func newFields(m map[string]any) fields {
	return fields{m: m, errs: new([]FieldError)}
}

// sub reads a nested object, its errors prefixed with its path.
func (f fields) sub(m map[string]any, path string) fields {
	return fields{m: m, prefix: f.path(path), errs: f.errs}
}

func (f fields) path(key string) string {
	if f.prefix == "" {
		return key
	}
	return f.prefix + "." + key
}

func (f fields) fail(key, code, detail string) {
	*f.errs = append(*f.errs, FieldError{Code: code, Path: f.path(key), Detail: detail})
}

func (f fields) missing(key string) { f.fail(key, "FieldMissing", "This field is missing.") }

func (f fields) has(key string) bool {
	v, ok := f.m[key]
	return ok && v != nil
}

// str reads a string field; required fields must be present and not blank.
func (f fields) str(key string, required bool) string {
	v, ok := f.m[key]
	if !ok || v == nil {
		if required {
			f.missing(key)
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.fail(key, "InvalidType", "This value should be of type string.")
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		f.fail(key, "NotBlank", "This value should not be blank.")
	}
	return s
}

// integer reads an int field: a JSON number without a fraction (a numeric string is an error,
// as the real API's strict types make it).
func (f fields) integer(key string, required bool) int64 {
	v, ok := f.m[key]
	if !ok || v == nil {
		if required {
			f.missing(key)
		}
		return 0
	}
	n, ok := v.(json.Number)
	if !ok {
		f.fail(key, "InvalidType", "This value should be of type int.")
		return 0
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f.fail(key, "InvalidType", "This value should be of type int.")
		return 0
	}
	return i
}

func (f fields) boolean(key string, def bool) bool {
	v, ok := f.m[key]
	if !ok || v == nil {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		f.fail(key, "InvalidType", "This value should be of type bool.")
		return def
	}
	return b
}

func (f fields) object(key string) map[string]any {
	v, ok := f.m[key]
	if !ok || v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		f.fail(key, "InvalidType", "This value should be of type object.")
		return nil
	}
	return m
}

func (f fields) array(key string) []any {
	v, ok := f.m[key]
	if !ok || v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		f.fail(key, "InvalidType", "This value should be of type array.")
		return nil
	}
	return a
}

// objects reads an array of objects, each with its own path (key.0, key.1, ...).
func (f fields) objects(key string) []fields {
	var out []fields
	for i, e := range f.array(key) {
		m, ok := e.(map[string]any)
		if !ok {
			f.fail(key+"."+strconv.Itoa(i), "InvalidType", "This value should be of type object.")
			continue
		}
		out = append(out, f.sub(m, key+"."+strconv.Itoa(i)))
	}
	return out
}

func (f fields) choice(key string) {
	f.fail(key, "NotSupportedChoice", "The value you selected is not a valid choice.")
}

func (f fields) errors() []FieldError { return *f.errs }

// requestID is the item's request_id as echoed back: the one sent, or its index in the batch.
func requestID(m map[string]any, i int) string {
	switch v := m["request_id"].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return strconv.Itoa(i)
}

// raw re-encodes a decoded value (for keeping custom fields as sent).
func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
