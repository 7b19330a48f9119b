package bitrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Response is a successful answer: {"result": …, "next": …, "total": …, "time": {…}}.
type Response struct {
	Result json.RawMessage
	Next   *int
	Total  *int
	Time   Timing
}

// Timing is the part of the "time" block the connector uses (limits.md): the operating time
// this method has used and when that count is reset.
type Timing struct {
	Operating        float64
	OperatingResetAt time.Time // zero when the answer did not say
}

// maxBody bounds what is read of an answer: a portal answer the connector needs is small (a
// user.get page is the largest), and an HTML error page may be huge.
const maxBody = 8 << 20

// ParseResponse reads one REST answer. A body with an "error" key is an *Error whatever the
// status (Bitrix24 answers some errors with 200 inside batch, and with an empty code at times);
// a body that is not JSON is an *Error that quotes its beginning, classified by the status.
func ParseResponse(method string, status int, body []byte) (*Response, error) {
	trimmed := bytes.TrimSpace(body)
	var env struct {
		Result  json.RawMessage  `json:"result"`
		Next    json.RawMessage  `json:"next"`
		Total   json.RawMessage  `json:"total"`
		Time    *json.RawMessage `json:"time"`
		ErrCode *json.RawMessage `json:"error"`
		ErrDesc json.RawMessage  `json:"error_description"`
	}
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &env) != nil {
		e := classify(method, status, "", "the answer is not JSON: "+excerpt(trimmed))
		if status >= 200 && status < 300 {
			e.Kind = Retry // a proxy's page or a cut answer: nothing to blame the request for
		}
		return nil, e
	}
	if env.ErrCode != nil {
		code, desc := jsonText(*env.ErrCode), jsonText(env.ErrDesc)
		if status >= 200 && status < 300 {
			status = 0 // an error inside a 200: let the code decide
		}
		return nil, classify(method, status, code, desc)
	}
	if status < 200 || status >= 300 {
		return nil, classify(method, status, "", "unexpected answer: "+excerpt(trimmed))
	}
	if env.Result == nil {
		return nil, &Error{Method: method, Status: status, Kind: Retry, Description: "the answer has no result: " + excerpt(trimmed)}
	}
	r := &Response{Result: env.Result, Next: jsonInt(env.Next), Total: jsonInt(env.Total)}
	if env.Time != nil {
		r.Time = parseTiming(*env.Time)
	}
	return r, nil
}

func parseTiming(raw json.RawMessage) Timing {
	var t struct {
		Operating        json.RawMessage `json:"operating"`
		OperatingResetAt json.RawMessage `json:"operating_reset_at"`
	}
	if json.Unmarshal(raw, &t) != nil {
		return Timing{}
	}
	var out Timing
	if f, ok := jsonFloat(t.Operating); ok {
		out.Operating = f
	}
	// A year 2000..2200 guard: a garbage number must not become a pause of centuries.
	if f, ok := jsonFloat(t.OperatingResetAt); ok && f > 946684800 && f < 7258118400 {
		out.OperatingResetAt = time.Unix(int64(f), 0)
	}
	return out
}

// jsonText reads a JSON string, or prints any other JSON value (a number code) as text.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	return string(bytes.TrimSpace(raw))
}

func jsonFloat(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return f, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f, true
		}
	}
	return 0, false
}

func jsonInt(raw json.RawMessage) *int {
	f, ok := jsonFloat(raw)
	if !ok || f < 0 || f > math.MaxInt32 {
		return nil
	}
	n := int(f)
	return &n
}

// excerpt quotes the beginning of a body for an error message, valid UTF-8, one line.
func excerpt(b []byte) string {
	const n = 200
	if len(b) > n {
		b = b[:n]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
		return fmt.Sprintf("%q…", b)
	}
	return fmt.Sprintf("%q", b)
}

// BatchResult is what batch answers: per command key, its result or its error.
type BatchResult struct {
	Results map[string]json.RawMessage
	Errors  map[string]*Error
	Times   map[string]Timing
}

// parseBatch reads batch's result (settings/how-to-call-rest-api/batch.md). Each part is a PHP
// array: an object keyed by command, or [] when empty (or a list when keys are 0..n-1).
func parseBatch(methods map[string]string, result json.RawMessage) (*BatchResult, error) {
	var parts struct {
		Result      json.RawMessage `json:"result"`
		ResultError json.RawMessage `json:"result_error"`
		ResultTime  json.RawMessage `json:"result_time"`
	}
	if err := json.Unmarshal(result, &parts); err != nil {
		return nil, &Error{Method: "batch", Kind: Retry, Description: "the batch answer is not an object: " + excerpt(result)}
	}
	out := &BatchResult{Results: phpArray(parts.Result), Errors: map[string]*Error{}, Times: map[string]Timing{}}
	for k, raw := range phpArray(parts.ResultError) {
		var e struct {
			Error json.RawMessage `json:"error"`
			Desc  json.RawMessage `json:"error_description"`
		}
		_ = json.Unmarshal(raw, &e)
		out.Errors[k] = classify(methods[k], 0, jsonText(e.Error), jsonText(e.Desc))
	}
	for k, raw := range phpArray(parts.ResultTime) {
		out.Times[k] = parseTiming(raw)
	}
	return out, nil
}

// phpArray reads a PHP array printed as an object or a list.
func phpArray(raw json.RawMessage) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		for i, v := range list {
			out[strconv.Itoa(i)] = v
		}
		return out
	}
	_ = json.Unmarshal(raw, &out)
	return out
}
