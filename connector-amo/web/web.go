// Package web is connector-amo's public HTTP server (gin): the OAuth install redirect, the
// telephony widget's click-to-call, and the recording links amoCRM's player opens. It is reached
// from the internet (amoCRM's servers and the employees' browsers), so every input is checked and
// nothing secret is logged (recording links carry signatures: only paths are logged).
package web

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-amo/amo"
	"github.com/ringbridge/ringbridge/connector-amo/recordings"
	"github.com/ringbridge/ringbridge/connector-amo/widget"
)

// Installer exchanges the install redirect's authorization code (*amo.OAuth).
type Installer interface {
	Install(ctx context.Context, code string) (amo.Pair, error)
}

// Options are the server's parts; a nil part turns its endpoint off (404).
type Options struct {
	// AccountURL is the amoCRM account's address; the install redirect must come from it, and
	// it is the only origin the widget's requests are accepted from.
	AccountURL string
	ClientID   string
	// RedirectURI is the integration's redirect URI: its path is served as well as /oauth (a
	// reverse proxy may or may not strip its prefix).
	RedirectURI string
	// PublicURL is the recordings' public base: its path is served as well as /recordings/.
	PublicURL   string
	Installer   Installer
	Installed   func(ctx context.Context) // after a successful install (resume the calls)
	ClickToCall *widget.Handler
	Recordings  *recordings.Links
}

// New builds the gin engine.
func New(opt Options, log logrus.FieldLogger) *gin.Engine {
	gin.SetMode(gin.ReleaseMode) // no route dump on stdout: the logs are JSON lines
	r := gin.New()
	r.Use(gin.Recovery(), accessLog(log))
	r.HandleMethodNotAllowed = true

	if opt.Installer != nil {
		h := installHandler(opt, log)
		for _, p := range paths("/oauth", opt.RedirectURI, "") {
			r.GET(p, h)
		}
	}
	if opt.ClickToCall != nil {
		origin := originOf(opt.AccountURL)
		for _, p := range paths("/click-to-call", "", "") {
			r.OPTIONS(p, cors(origin), func(c *gin.Context) { c.Status(http.StatusNoContent) })
			r.POST(p, cors(origin), opt.ClickToCall.ClickToCall)
		}
	}
	if opt.Recordings != nil {
		serve := func(c *gin.Context) {
			opt.Recordings.ServeHTTP(c.Writer, c.Request, c.Param("path"))
		}
		for _, p := range paths(strings.TrimSuffix(recordings.Prefix, "/"), "", opt.PublicURL) {
			r.GET(p+"/*path", serve)
			r.HEAD(p+"/*path", serve)
		}
	}
	return r
}

// paths is base, and the path of full (a URL whose path is the route) or of prefixURL + base when
// they differ: the routes as the connector sees them with and without a proxy's prefix.
func paths(base, full, prefixURL string) []string {
	out := []string{base}
	add := func(p string) {
		p = "/" + strings.Trim(p, "/")
		for _, x := range out {
			if x == p {
				return
			}
		}
		out = append(out, p)
	}
	if u, err := url.Parse(full); err == nil && full != "" && strings.Trim(u.Path, "/") != "" {
		add(u.Path)
	}
	if u, err := url.Parse(prefixURL); err == nil && prefixURL != "" && strings.Trim(u.Path, "/") != "" {
		add(strings.TrimRight(u.Path, "/") + base)
	}
	return out
}

func originOf(account string) string {
	u, err := url.Parse(account)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// cors lets the widget, running on the account's pages, call the endpoint from the browser.
func cors(origin string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if o := c.GetHeader("Origin"); o != "" && strings.EqualFold(o, origin) {
			h := c.Writer.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Auth-Token, X-Requested-With, Authorization")
			h.Set("Access-Control-Max-Age", "600")
			h.Add("Vary", "Origin")
		}
		c.Next()
	}
}

// accessLog logs each request by path only: query strings hold codes and signatures.
func accessLog(log logrus.FieldLogger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		log.WithFields(logrus.Fields{
			"method": c.Request.Method, "path": c.Request.URL.Path, "status": c.Writer.Status(),
			"ms": time.Since(start).Milliseconds(), "remote": c.ClientIP(),
		}).Debug("http")
	}
}

var page = template.Must(template.New("page").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>ringbridge</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>`))

func show(c *gin.Context, status int, title, text string) {
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(c.Writer, map[string]string{"Title": title, "Text": text})
}

// installHandler is the OAuth redirect amoCRM sends the admin to after "Install": ?code=...&
// referer=<subdomain>.amocrm.ru&client_id=...&state=... (or error=access_denied).
func installHandler(opt Options, log logrus.FieldLogger) gin.HandlerFunc {
	accountHost := ""
	if u, err := url.Parse(opt.AccountURL); err == nil {
		accountHost = u.Host
	}
	return func(c *gin.Context) {
		if e := c.Query("error"); e != "" {
			show(c, http.StatusBadRequest, "Not connected", "amoCRM did not grant access ("+e+"). Install the integration again and allow access.")
			return
		}
		code := c.Query("code")
		if code == "" || len(code) > 4096 {
			show(c, http.StatusBadRequest, "Not connected", "The link has no authorization code: open it from amoCRM's integration page.")
			return
		}
		if ref := c.Query("referer"); ref != "" && !strings.EqualFold(ref, accountHost) {
			log.WithField("referer", ref).Warn("install redirect from another amoCRM account refused")
			show(c, http.StatusForbidden, "Not connected", "This ringbridge serves the amoCRM account "+accountHost+", not "+ref+".")
			return
		}
		if id := c.Query("client_id"); id != "" && opt.ClientID != "" && id != opt.ClientID {
			show(c, http.StatusForbidden, "Not connected", "The redirect is for another integration than amo.client_id.")
			return
		}
		if _, err := opt.Installer.Install(c.Request.Context(), code); err != nil {
			log.WithError(err).Error("install: exchanging the authorization code failed")
			show(c, http.StatusBadGateway, "Not connected", "amoCRM refused the authorization code: "+err.Error()+". Install the integration again (a code works once, for 20 minutes).")
			return
		}
		if opt.Installed != nil {
			opt.Installed(context.WithoutCancel(c.Request.Context()))
		}
		show(c, http.StatusOK, "Connected", "ringbridge is connected to the amoCRM account "+accountHost+". Calls go into amoCRM from now on; you can close this page.")
	}
}
