package recordings

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
)

func newLinks(t *testing.T, now func() time.Time) (*Links, string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "2026", "11"), 0o755)
	os.WriteFile(filepath.Join(dir, "2026", "11", "in-1.wav"), []byte("RIFF....WAVEdata"), 0o644)
	os.WriteFile(filepath.Join(dir, "out 2.mp3"), []byte("ID3...."), 0o644)
	secret := filepath.Join(filepath.Dir(dir), "secret.txt")
	os.WriteFile(secret, []byte("not a recording"), 0o644)
	os.Symlink(secret, filepath.Join(dir, "link.wav"))
	return New(config.AmoRecordings{PublicURL: "https://pbx.example.com/amo/", Dir: dir, LinkTTL: time.Hour, SigningKey: "k0123456789abcdef0123456789abcdef"}, now), dir
}

// serve requests a link's path and query from the handler as the public server routes it.
func serve(l *Links, link string, method string, hdr map[string]string) *httptest.ResponseRecorder {
	u, _ := url.Parse(link)
	r := httptest.NewRequest(method, u.RequestURI(), nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	p, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/amo"+Prefix))
	l.ServeHTTP(w, r, p)
	return w
}

func TestLinks(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l, dir := newLinks(t, clock)
	cases := []struct {
		name   string
		link   func() string
		status int
		ctype  string
	}{
		{"valid-relative", func() string { return l.Link("2026/11/in-1.wav") }, 200, "audio/wav"},
		{"valid-absolute-inside", func() string { return l.Link(filepath.Join(dir, "2026/11/in-1.wav")) }, 200, "audio/wav"},
		{"space-in-name", func() string { return l.Link("out 2.mp3") }, 200, "audio/mpeg"},
		{"missing-file", func() string { return l.Link("nope.wav") }, 404, ""},
		{"tampered-path", func() string { return strings.Replace(l.Link("2026/11/in-1.wav"), "in-1", "in-2", 1) }, 403, ""},
		{"tampered-expiry", func() string {
			return strings.Replace(l.Link("2026/11/in-1.wav"), "expires=", "expires=9", 1)
		}, 403, ""},
		{"no-signature", func() string { return "https://pbx.example.com/amo/recordings/2026/11/in-1.wav" }, 403, ""},
		{"symlink-out-of-folder", func() string { return l.Link("link.wav") }, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			link := c.link()
			w := serve(l, link, http.MethodGet, nil)
			if w.Code != c.status {
				t.Fatalf("%s: status %d, want %d: %s", link, w.Code, c.status, w.Body)
			}
			if c.ctype != "" && w.Header().Get("Content-Type") != c.ctype {
				t.Fatalf("content type %q", w.Header().Get("Content-Type"))
			}
			if strings.Contains(w.Body.String(), "not a recording") {
				t.Fatal("a file outside the folder was served")
			}
		})
	}
	t.Run("outside-folder-gets-no-link", func(t *testing.T) {
		for _, r := range []string{"", "../secret.txt", "/etc/passwd", "a/../../b.wav", "x\x00.wav"} {
			if got := l.Link(r); got != "" {
				t.Errorf("Link(%q) = %q", r, got)
			}
		}
	})
	t.Run("range-for-seeking", func(t *testing.T) {
		w := serve(l, l.Link("2026/11/in-1.wav"), http.MethodGet, map[string]string{"Range": "bytes=4-7"})
		if w.Code != http.StatusPartialContent || w.Body.String() != "...." {
			t.Fatalf("%d %q", w.Code, w.Body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		link := l.Link("2026/11/in-1.wav")
		now = now.Add(time.Hour + time.Second)
		defer func() { now = now.Add(-time.Hour - time.Second) }()
		if w := serve(l, link, http.MethodGet, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "expired") {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("other-key", func(t *testing.T) {
		other := New(config.AmoRecordings{PublicURL: "https://pbx.example.com/amo", Dir: dir, LinkTTL: time.Hour, SigningKey: "another-key-0123456789abcdef012345"}, clock)
		if w := serve(l, other.Link("2026/11/in-1.wav"), http.MethodGet, nil); w.Code != http.StatusForbidden {
			t.Fatalf("a link signed with another key: %d", w.Code)
		}
	})
	t.Run("no-public-url-no-links", func(t *testing.T) {
		var none *Links = New(config.AmoRecordings{}, nil)
		if none.Link("2026/11/in-1.wav") != "" {
			t.Fatal("a link without a public URL")
		}
	})
}

// FuzzCheck: whatever a client puts in a link, Check never accepts it unless it is a signed one,
// and never returns a path that leaves the folder.
func FuzzCheck(f *testing.F) {
	l := New(config.AmoRecordings{PublicURL: "https://x", Dir: "/rec", LinkTTL: time.Hour, SigningKey: "k0123456789abcdef0123456789abcdef"}, func() time.Time { return time.Unix(1e9, 0) })
	f.Add("2026/11/in-1.wav", "1000003600", "abc")
	f.Add("../x", "1", "")
	f.Add("/a//b", "-1", "____")
	f.Fuzz(func(t *testing.T, p, exp, sig string) {
		rel, err := l.Check(p, exp, sig)
		if err != nil {
			return
		}
		if strings.HasPrefix(rel, "/") || strings.Contains("/"+rel+"/", "/../") {
			t.Fatalf("accepted %q", rel)
		}
		if sig != l.sign(rel, mustInt(exp)) {
			t.Fatalf("accepted a signature it did not make: %q %q %q", p, exp, sig)
		}
	})
}

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
