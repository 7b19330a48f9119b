package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
)

type fakeInstaller struct {
	codes []string
	err   error
}

func (f *fakeInstaller) Install(_ context.Context, code string) (amo.Pair, error) {
	f.codes = append(f.codes, code)
	return amo.Pair{Generation: 1}, f.err
}

// TestInstallRedirect: the install redirect is taken only from this account and integration.
func TestInstallRedirect(t *testing.T) {
	gin.SetMode(gin.TestMode)
	log := logrus.New()
	log.SetOutput(io.Discard)
	cases := []struct {
		name     string
		path     string
		err      error
		status   int
		want     string
		installs int
	}{
		{"installed", "/oauth?code=def502&referer=company.amocrm.ru&client_id=cid", nil, 200, "Connected", 1},
		{"installed-under-redirect-path", "/amo/oauth?code=def502&referer=company.amocrm.ru", nil, 200, "Connected", 1},
		{"no-referer-is-fine", "/oauth?code=def502", nil, 200, "Connected", 1},
		{"access-denied", "/oauth?error=access_denied", nil, 400, "did not grant access", 0},
		{"no-code", "/oauth?referer=company.amocrm.ru", nil, 400, "no authorization code", 0},
		{"other-account", "/oauth?code=def502&referer=evil.amocrm.ru", nil, 403, "serves the amoCRM account company.amocrm.ru", 0},
		{"other-integration", "/oauth?code=def502&client_id=other", nil, 403, "another integration", 0},
		{"code-refused", "/oauth?code=old", errors.New("Authorization code has been revoked"), 502, "has been revoked", 1},
		{"script-in-referer", "/oauth?code=x&referer=%3Cscript%3E", nil, 403, "&lt;script&gt;", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inst := &fakeInstaller{err: c.err}
			resumed := false
			r := New(Options{AccountURL: "https://company.amocrm.ru", ClientID: "cid", RedirectURI: "https://pbx.example.com/amo/oauth",
				Installer: inst, Installed: func(context.Context) { resumed = true }}, log)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, c.path, nil))
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
				t.Fatalf("%d %s, want %d with %q", w.Code, w.Body, c.status, c.want)
			}
			if len(inst.codes) != c.installs {
				t.Fatalf("%d installs, want %d", len(inst.codes), c.installs)
			}
			if resumed != (c.status == 200) {
				t.Fatalf("resumed %v", resumed)
			}
		})
	}
	t.Run("off-without-installer", func(t *testing.T) {
		r := New(Options{AccountURL: "https://company.amocrm.ru"}, log)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/oauth?code=x", nil))
		if w.Code != 404 {
			t.Fatalf("%d", w.Code)
		}
	})
}
