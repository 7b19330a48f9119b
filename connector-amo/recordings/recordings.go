// Package recordings makes the links amoCRM's player uses to play call recordings, and serves
// them: the file is under the recordings folder, the link names it with an expiry and an
// HMAC-SHA256 signature, so only links the connector made play, and only until they expire.
package recordings

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
)

// Prefix is the path under the public URL where recordings are served.
const Prefix = "/recordings/"

// Links signs and checks recording links.
type Links struct {
	base string // public URL, no trailing slash
	dir  string
	ttl  time.Duration
	key  []byte
	now  func() time.Time
}

// New returns the links of cfg; nil when no public URL is configured (calls then carry no link).
func New(cfg config.AmoRecordings, now func() time.Time) *Links {
	if cfg.PublicURL == "" {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Links{
		base: strings.TrimRight(cfg.PublicURL, "/"),
		dir:  filepath.Clean(cfg.Dir),
		ttl:  cfg.LinkTTL,
		key:  []byte(cfg.SigningKey.Reveal()),
		now:  now,
	}
}

// Dir is the recordings folder.
func (l *Links) Dir() string { return l.dir }

// Rel turns a recording as the call event names it (a file name, a path under the folder, or an
// absolute path inside it) into its path under the folder; ok is false for anything that would
// leave the folder.
func (l *Links) Rel(recording string) (string, bool) {
	r := strings.TrimSpace(recording)
	if r == "" || strings.ContainsRune(r, 0) {
		return "", false
	}
	if filepath.IsAbs(r) {
		rel, err := filepath.Rel(l.dir, filepath.Clean(r))
		if err != nil {
			return "", false
		}
		r = rel
	}
	r = filepath.ToSlash(filepath.Clean(r))
	if !fs.ValidPath(r) || r == "." {
		return "", false
	}
	return r, true
}

// Link returns the signed link to a recording, or "" when there is none (or it is outside the
// folder).
func (l *Links) Link(recording string) string {
	if l == nil {
		return ""
	}
	rel, ok := l.Rel(recording)
	if !ok {
		return ""
	}
	exp := l.now().Add(l.ttl).Unix()
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	q := url.Values{"expires": {strconv.FormatInt(exp, 10)}, "sig": {l.sign(rel, exp)}}
	return l.base + Prefix + strings.Join(segs, "/") + "?" + q.Encode()
}

func (l *Links) sign(rel string, exp int64) string {
	m := hmac.New(sha256.New, l.key)
	fmt.Fprintf(m, "ringbridge recording\n%s\n%d", rel, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Errors of Check, for the HTTP status: a bad or expired link is 403, a missing file 404.
var (
	ErrBadLink = errors.New("recording link: not a link this connector made (bad path or signature)")
	ErrExpired = errors.New("recording link: expired")
)

// Check verifies a link's path (under Prefix, URL-decoded), expires and sig; it returns the path
// under the folder.
func (l *Links) Check(p, expires, sig string) (string, error) {
	rel := strings.TrimPrefix(p, "/")
	if !fs.ValidPath(rel) || rel == "." || rel != path.Clean(rel) {
		return "", ErrBadLink
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: expires %q is not a unix time", ErrBadLink, expires)
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		return "", fmt.Errorf("%w: sig is not base64url", ErrBadLink)
	}
	want, _ := base64.RawURLEncoding.DecodeString(l.sign(rel, exp))
	if !hmac.Equal(got, want) {
		return "", ErrBadLink
	}
	if l.now().Unix() >= exp {
		return "", ErrExpired
	}
	return rel, nil
}

// ServeHTTP serves a recording link: GET or HEAD <public>/recordings/<path>?expires=&sig=, with
// ranges (players seek), from the folder only (os.Root: no symlink or .. leaves it).
func (l *Links) ServeHTTP(w http.ResponseWriter, r *http.Request, p string) {
	rel, err := l.Check(p, r.URL.Query().Get("expires"), r.URL.Query().Get("sig"))
	if err != nil {
		status := http.StatusForbidden
		http.Error(w, err.Error(), status)
		return
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		http.Error(w, "recordings folder unavailable", http.StatusServiceUnavailable)
		return
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		http.Error(w, "recording not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.Error(w, "recording not found", http.StatusNotFound)
		return
	}
	ct := mime.TypeByExtension(path.Ext(rel))
	switch strings.ToLower(path.Ext(rel)) {
	case ".wav":
		ct = "audio/wav"
	case ".mp3":
		ct = "audio/mpeg"
	case ".ogg":
		ct = "audio/ogg"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, path.Base(rel), st.ModTime(), f)
}
