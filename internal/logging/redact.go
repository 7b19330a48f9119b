package logging

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// Marker replaces a secret in a log line.
const Marker = "<secret>"

// Redactor holds secret values (the AMI secret, CRM tokens, passwords) and removes them from every
// log line. Secrets are typed config.Secret and print as <secret> already; the redactor catches the
// value when it escapes anyway: quoted by an error from a library, pasted into a message, or held
// in a plain string. Safe for concurrent use; secrets may be added while logging (a refreshed
// OAuth token).
type Redactor struct {
	mu       sync.RWMutex
	secrets  map[string]bool
	replacer *strings.Replacer
}

// NewRedactor returns a redactor holding secrets.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{secrets: map[string]bool{}}
	r.Add(secrets...)
	return r
}

// Add registers more secret values; empty ones are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, s := range secrets {
		if s != "" && s != Marker && !r.secrets[s] {
			r.secrets[s] = true
			changed = true
		}
	}
	if changed {
		r.rebuild()
	}
}

// rebuild makes one replacer for every form a secret takes in a formatted line: as is, escaped in a
// JSON string (with and without HTML escaping), and escaped as Go's %q does (the text formatter
// quotes values that way).
func (r *Redactor) rebuild() {
	forms := map[string]bool{}
	for s := range r.secrets {
		forms[s] = true
		for _, html := range []bool{true, false} {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(html)
			if enc.Encode(s) == nil {
				forms[strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(buf.String(), `"`), "\n"), `"`)] = true
			}
		}
		q := strconv.Quote(s)
		forms[q[1:len(q)-1]] = true
	}
	list := make([]string, 0, len(forms))
	for f := range forms {
		if f != "" {
			list = append(list, f)
		}
	}
	// Longest first, so a secret that contains another is replaced whole.
	slices.SortFunc(list, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pairs := make([]string, 0, 2*len(list))
	for _, f := range list {
		pairs = append(pairs, f, Marker)
	}
	r.replacer = strings.NewReplacer(pairs...)
}

// Redact returns s with every secret replaced by <secret>.
func (r *Redactor) Redact(s string) string {
	r.mu.RLock()
	rep := r.replacer
	r.mu.RUnlock()
	if rep == nil {
		return s
	}
	return rep.Replace(s)
}

// Formatter wraps inner so that each formatted line is redacted. Working on the finished line,
// rather than in a hook on the entry's fields, also catches a secret inside a nested value (an
// error, a struct) that a hook would not look into.
func (r *Redactor) Formatter(inner logrus.Formatter) logrus.Formatter {
	return &redactingFormatter{inner: inner, r: r}
}

type redactingFormatter struct {
	inner logrus.Formatter
	r     *Redactor
}

func (f *redactingFormatter) Format(e *logrus.Entry) ([]byte, error) {
	out, err := f.inner.Format(e)
	if err != nil {
		return nil, err
	}
	return []byte(f.r.Redact(string(out))), nil
}
