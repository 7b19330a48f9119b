package bitrix

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Bitrix24 is PHP: a request's parameters become one PHP array, built from the query string and
// the body (form, multipart or JSON). omap is that array — an ordered map whose list items have
// keys "0", "1", ... — because order matters (batch runs its commands in the order sent) and
// because PHP's json_encode prints an array as [] or {} depending on its keys.
type omap struct {
	keys []string
	vals map[string]any
}

func newOmap() *omap { return &omap{vals: map[string]any{}} }

func (m *omap) set(k string, v any) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

func (m *omap) get(k string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m.vals[k]
	return v, ok
}

func (m *omap) len() int {
	if m == nil {
		return 0
	}
	return len(m.keys)
}

// nextIndex is the key PHP gives to `a[]=`: one more than the largest integer key.
func (m *omap) nextIndex() string {
	n := 0
	for _, k := range m.keys {
		if i, ok := phpInt(k); ok && i >= n {
			n = i + 1
		}
	}
	return strconv.Itoa(n)
}

// values returns the items in order.
func (m *omap) values() []any {
	if m == nil {
		return nil
	}
	out := make([]any, 0, len(m.keys))
	for _, k := range m.keys {
		out = append(out, m.vals[k])
	}
	return out
}

// isList tells whether PHP's json_encode prints the array as a JSON list: keys 0..n-1 in order.
func (m *omap) isList() bool {
	for i, k := range m.keys {
		if k != strconv.Itoa(i) {
			return false
		}
	}
	return true
}

// MarshalJSON prints the array as PHP's json_encode does: an empty array or a list as [...],
// anything else as an object in insertion order.
func (m *omap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if m == nil || m.isList() {
		b.WriteByte('[')
		for i, k := range m.keysOrNil() {
			if i > 0 {
				b.WriteByte(',')
			}
			v, err := json.Marshal(m.vals[k])
			if err != nil {
				return nil, err
			}
			b.Write(v)
		}
		b.WriteByte(']')
		return b.Bytes(), nil
	}
	b.WriteByte('{')
	for i, k := range m.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		v, err := json.Marshal(m.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (m *omap) keysOrNil() []string {
	if m == nil {
		return nil
	}
	return m.keys
}

// phpInt reports whether k is a canonical decimal integer key ("7", "-1"; not "07" or "+7"),
// which PHP stores as an integer key.
func phpInt(k string) (int, bool) {
	i, err := strconv.Atoi(k)
	if err != nil || strconv.Itoa(i) != k {
		return 0, false
	}
	return i, true
}

// maxNesting is PHP's default max_input_nesting_level: deeper keys are dropped.
const maxNesting = 64

// phpKeyPath splits a form key into the path PHP files its value under: FIELDS[PHONE][0][VALUE]
// gives FIELDS, PHONE, 0, VALUE; an empty segment ("a[]") means "append". ok is false when PHP
// drops the variable (empty name, too deep). The rules follow php_register_variable_ex: spaces
// and dots in the base name become '_', a '[' without a closing ']' in the base name becomes '_',
// and anything after a segment that is not another '[' is ignored.
func phpKeyPath(key string) (path []string, ok bool) {
	key = strings.TrimLeft(key, " ")
	open := strings.IndexByte(key, '[')
	base := key
	if open >= 0 {
		base = key[:open]
	}
	base = strings.NewReplacer(" ", "_", ".", "_").Replace(base)
	if open < 0 {
		if base == "" {
			return nil, false
		}
		return []string{base}, true
	}
	rest := key[open:]
	closeAt := strings.IndexByte(rest, ']')
	if closeAt < 0 {
		// Not an index: the '[' and what follows are part of the name.
		name := base + "_" + strings.NewReplacer(" ", "_", ".", "_", "[", "_").Replace(rest[1:])
		if base == "" {
			return nil, false
		}
		return []string{name}, true
	}
	if base == "" {
		return nil, false
	}
	path = []string{base}
	for {
		path = append(path, rest[1:closeAt])
		if len(path) > maxNesting {
			return nil, false
		}
		rest = rest[closeAt+1:]
		if !strings.HasPrefix(rest, "[") {
			return path, true
		}
		closeAt = strings.IndexByte(rest, ']')
		if closeAt < 0 {
			return path, true
		}
	}
}

// assign stores v under path, creating arrays on the way; a scalar in the way is replaced, and
// the last assignment wins, as in PHP.
func assign(m *omap, path []string, v any) {
	for i, seg := range path {
		if seg == "" {
			seg = m.nextIndex()
		}
		if i == len(path)-1 {
			m.set(seg, v)
			return
		}
		next, ok := m.vals[seg].(*omap)
		if !ok {
			next = newOmap()
			m.set(seg, next)
		}
		m = next
	}
}

// phpURLDecode decodes like PHP's urldecode: '+' is a space, a bad %-escape stays as it is.
func phpURLDecode(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseFormInto adds an application/x-www-form-urlencoded string to m the way PHP's parse_str does.
func parseFormInto(m *omap, s string) {
	for _, pair := range strings.Split(s, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		path, ok := phpKeyPath(phpURLDecode(k))
		if !ok {
			continue
		}
		assign(m, path, phpURLDecode(v))
	}
}

// parseForm parses a form string into a fresh array.
func parseForm(s string) *omap {
	m := newOmap()
	parseFormInto(m, s)
	return m
}

// decodeJSON reads one JSON value keeping object key order; objects and arrays become omaps,
// numbers stay json.Number.
func decodeJSON(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	m := newOmap()
	switch d {
	case '{':
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := decodeJSON(dec)
			if err != nil {
				return nil, err
			}
			m.set(k, v)
		}
	case '[':
		for i := 0; dec.More(); i++ {
			v, err := decodeJSON(dec)
			if err != nil {
				return nil, err
			}
			m.set(strconv.Itoa(i), v)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return nil, err
	}
	return m, nil
}

// parseJSON parses a JSON body; a body that is not a JSON object or array gives no parameters.
func parseJSON(body []byte) (*omap, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, err := decodeJSON(dec)
	if err != nil {
		return nil, fmt.Errorf("bitrix: JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("bitrix: JSON body: trailing data")
	}
	m, ok := v.(*omap)
	if !ok {
		return newOmap(), nil
	}
	return m, nil
}

// readParams collects a request's parameters: the query string first, then the body, which wins
// on conflicts (PHP's $_REQUEST order "GP"). A body of another content type is ignored, as PHP
// ignores it.
func readParams(r *http.Request) (params, error) {
	m := newOmap()
	parseFormInto(m, r.URL.RawQuery)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return params{}, fmt.Errorf("bitrix: read body: %w", err)
		}
		parseFormInto(m, string(body))
	case "application/json":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return params{}, fmt.Errorf("bitrix: read body: %w", err)
		}
		if len(bytes.TrimSpace(body)) > 0 {
			j, err := parseJSON(body)
			if err != nil {
				return params{}, err
			}
			for _, k := range j.keys {
				m.set(k, j.vals[k])
			}
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			return params{}, fmt.Errorf("bitrix: multipart body: %w", err)
		}
		keys := make([]string, 0, len(r.MultipartForm.Value))
		for k := range r.MultipartForm.Value {
			keys = append(keys, k)
		}
		sort.Strings(keys) // multipart order is lost by mime/multipart; sorted is stable
		for _, k := range keys {
			for _, v := range r.MultipartForm.Value[k] {
				if path, ok := phpKeyPath(k); ok {
					assign(m, path, v)
				}
			}
		}
	}
	return params{m}, nil
}

// params is a method's parameters. Top-level names are looked up case-insensitively because the
// telephony and CRM methods upper-case their keys (array_change_key_case) before reading them.
type params struct{ m *omap }

func (p params) get(name string) (any, bool) {
	if p.m == nil {
		return nil, false
	}
	if v, ok := p.m.vals[name]; ok {
		return v, true
	}
	for _, k := range p.m.keys {
		if strings.EqualFold(k, name) {
			return p.m.vals[k], true
		}
	}
	return nil, false
}

// str returns a parameter as PHP would print it, and whether it was sent.
func (p params) str(name string) (string, bool) {
	v, ok := p.get(name)
	if !ok {
		return "", false
	}
	return scalar(v), true
}

func (p params) s(name string) string { v, _ := p.str(name); return strings.TrimSpace(v) }

// int returns an integer parameter (0 when absent or not a number, as PHP's (int) cast).
func (p params) int(name string) int {
	v, _ := p.get(name)
	return toInt(v)
}

// sub returns an array parameter (FIELDS, filter, ...), or nil.
func (p params) sub(name string) params {
	v, _ := p.get(name)
	m, _ := v.(*omap)
	return params{m}
}

// scalar prints a value as PHP's string cast does (true "1", false and null "", arrays "Array").
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "1"
		}
		return ""
	case nil:
		return ""
	case *omap:
		return "Array"
	}
	return fmt.Sprint(v)
}

// toInt casts like PHP's (int): a leading number, else 0.
func toInt(v any) int {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return int(f)
	case bool:
		if x {
			return 1
		}
		return 0
	case *omap, nil:
		return 0
	}
	s := strings.TrimSpace(scalar(v))
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || end == 0 && (s[0] == '-' || s[0] == '+')) {
		end++
	}
	i, _ := strconv.Atoi(s[:end])
	return i
}

// truthy is PHP's boolean view of a flag parameter ("Y", "true", 1 are on; "", "0", "N" off).
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case nil:
		return false
	}
	switch strings.ToLower(strings.TrimSpace(scalar(v))) {
	case "", "0", "n", "false", "no":
		return false
	}
	return true
}

// items returns an int-or-array parameter as a list (USER_ID=5, USER_ID[]=5&USER_ID[]=6, [5,6]).
func items(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case *omap:
		return x.values()
	}
	return []any{v}
}

// flattenParams writes an array as form keys (a[b][0]=v), the inverse of parseForm.
func flattenParams(prefix string, v any, put func(k, v string)) {
	m, ok := v.(*omap)
	if !ok {
		put(prefix, scalar(v))
		return
	}
	for _, k := range m.keys {
		key := k
		if prefix != "" {
			key = prefix + "[" + k + "]"
		}
		flattenParams(key, m.vals[k], put)
	}
}

// encodeForm encodes an array as a query string in its own order.
func encodeForm(m *omap) string {
	var parts []string
	flattenParams("", m, func(k, v string) {
		parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
	})
	return strings.Join(parts, "&")
}
