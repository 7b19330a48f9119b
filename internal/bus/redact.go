package bus

import (
	"net/url"
	"strings"
)

// redactor removes the broker password from every string and error the package produces. The
// URL is the only place a credential enters this package, and errors from the standard library
// (url.Error) or from logs of our own repeat the URL verbatim, so everything that leaves the package
// (errors, log messages, Ready reasons) passes through one of these.
type redactor struct {
	secrets []string // forms of the password as they may appear in text (raw, decoded)
}

// minSecretLen keeps a very short password from turning every message into asterisks: a
// one- or two-letter password is redacted where it appears in a URL, not in free text.
const minSecretLen = 3

const redactedPassword = "xxxxx"

func newRedactor(rawURL string) redactor {
	var r redactor
	info, ok := userinfo(rawURL)
	if !ok {
		return r
	}
	_, pass, hasPass := strings.Cut(info, ":")
	if !hasPass || pass == "" {
		return r
	}
	add := func(s string) {
		if len(s) < minSecretLen {
			return
		}
		for _, have := range r.secrets {
			if have == s {
				return
			}
		}
		r.secrets = append(r.secrets, s)
	}
	add(pass)
	if dec, err := url.PathUnescape(pass); err == nil {
		add(dec)
	}
	if dec, err := url.QueryUnescape(pass); err == nil {
		add(dec)
	}
	// Longest first, so a secret that contains another one is replaced whole.
	for i := 1; i < len(r.secrets); i++ {
		for j := i; j > 0 && len(r.secrets[j]) > len(r.secrets[j-1]); j-- {
			r.secrets[j], r.secrets[j-1] = r.secrets[j-1], r.secrets[j]
		}
	}
	return r
}

// String returns s with every URL's password and every occurrence of the configured password
// replaced.
func (r redactor) String(s string) string {
	s = redactURLsIn(s)
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redactedPassword)
	}
	return s
}

// Err returns err with a redacted message. The original stays reachable through errors.Is/As
// (for amqp.Error codes, net errors, context errors); none of those carry the URL.
func (r redactor) Err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := r.String(msg)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// RedactURL returns the URL with its password replaced ("amqp://user:xxxxx@host:5672/"). It works
// on strings url.Parse rejects too, because a malformed URL is exactly the one that ends up in an
// error message.
func RedactURL(raw string) string {
	start, end, ok := userinfoSpan(raw, 0)
	if !ok {
		return raw
	}
	return raw[:start] + redactUserinfo(raw[start:end]) + raw[end:]
}

// redactURLsIn redacts the userinfo of every "scheme://user:pass@" found in free text.
func redactURLsIn(s string) string {
	from := 0
	for {
		start, end, ok := userinfoSpan(s, from)
		if !ok {
			return s
		}
		red := redactUserinfo(s[start:end])
		s = s[:start] + red + s[end:]
		from = start + len(red)
	}
}

func redactUserinfo(info string) string {
	user, _, hasPass := strings.Cut(info, ":")
	if !hasPass {
		return info
	}
	return user + ":" + redactedPassword
}

// userinfo returns the "user:pass" part of a URL string.
func userinfo(raw string) (string, bool) {
	start, end, ok := userinfoSpan(raw, 0)
	if !ok {
		return "", false
	}
	return raw[start:end], true
}

// userinfoSpan finds, at or after from, the byte range of the userinfo of a "scheme://userinfo@host"
// URL. The authority ends at the first '/', '?', '#' or whitespace or quote; the userinfo ends at
// the last '@' inside it, so an unescaped '@' in a password is still covered.
func userinfoSpan(s string, from int) (start, end int, ok bool) {
	for from < len(s) {
		i := strings.Index(s[from:], "://")
		if i < 0 {
			return 0, 0, false
		}
		start = from + i + 3
		stop := len(s)
		if j := strings.IndexAny(s[start:], "/?# \t\r\n\"'`"); j >= 0 {
			stop = start + j
		}
		if at := strings.LastIndex(s[start:stop], "@"); at >= 0 {
			return start, start + at, true
		}
		from = start
	}
	return 0, 0, false
}
