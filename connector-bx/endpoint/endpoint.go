// Package endpoint is connector-bx's HTTP side that Bitrix24 talks to: the local application's
// install handler (ONAPPINSTALL: the token pair and the application_token) and its event handler
// (ONEXTERNALCALLSTART: click-to-call; ONAPPUNINSTALL). Every event but the install must carry the
// installation's application_token. Answers are fast: Bitrix24 does not retry an event, and the
// phone is rung in the background.
package endpoint

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/connector-bx/callflow"
	"github.com/ringbridge/ringbridge/internal/config"
)

// Paths of the handlers, as entered in the application's form in Bitrix24.
const (
	InstallPath = "/bitrix/install"
	EventPath   = "/bitrix/event"
)

// maxBody bounds an event: a few dozen short fields.
const maxBody = 64 << 10

// Installer is the Bitrix24 client's installation side.
type Installer interface {
	Install(ctx context.Context, in bitrix.Installation) error
	Uninstall(ctx context.Context) error
	CheckApplicationToken(ctx context.Context, token string, webhookToken config.Secret) (bool, error)
	BindEvent(ctx context.Context, event, handler string) error
}

// Clicker runs click-to-call and callback forms (callflow.Flow).
type Clicker interface {
	StartClick(ctx context.Context, cl callflow.Click) (callflow.Click, bool, error)
	RunClick(ctx context.Context, cl callflow.Click, orig callflow.Originator, ringTimeout time.Duration)
	StartCallback(ctx context.Context, cb callflow.Callback) (bool, error)
	RunCallback(ctx context.Context, cb callflow.Callback, orig callflow.Originator, ringTimeout time.Duration)
}

// Options configure the server.
type Options struct {
	// PublicURL is where the portal reaches this server; the install binds the events to it.
	PublicURL string
	// WebhookToken checks events in webhook mode (the outgoing webhook's token).
	WebhookToken config.Secret
	RingTimeout  time.Duration
	Logger       *logrus.Entry
	Registerer   prometheus.Registerer
}

// Server serves the handlers.
type Server struct {
	opt    Options
	inst   Installer
	clicks Clicker
	orig   callflow.Originator
	log    *logrus.Entry
	events *prometheus.CounterVec

	// bg is the context of background work (ringing a phone); Close cancels it after a grace.
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the server.
func New(opt Options, inst Installer, clicks Clicker, orig callflow.Originator) *Server {
	if opt.RingTimeout <= 0 {
		opt.RingTimeout = 30 * time.Second
	}
	s := &Server{opt: opt, inst: inst, clicks: clicks, orig: orig, log: opt.Logger.WithField("component", "endpoint"),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_portal_events_total",
			Help: "Events Bitrix24 posted to the connector, by event and outcome.",
		}, []string{"event", "outcome"}),
	}
	if opt.Registerer != nil {
		if err := opt.Registerer.Register(s.events); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
	s.bg, s.stopBg = context.WithCancel(context.Background())
	return s
}

// Handler is the gin engine with the routes.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), s.accessLog)
	r.POST(InstallPath, s.install)
	r.POST(EventPath, s.event)
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": "not found: Bitrix24 posts to " + InstallPath + " and " + EventPath})
	})
	return r
}

// accessLog logs each request without its query (an upload URL or a token could be in it).
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.log.WithFields(logrus.Fields{"method": c.Request.Method, "path": c.Request.URL.Path, "status": c.Writer.Status(),
		"ms": time.Since(start).Milliseconds(), "remote": c.ClientIP()}).Debug("http request")
}

func (s *Server) form(c *gin.Context) (url.Values, bool) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
	if err := c.Request.ParseForm(); err != nil {
		s.fail(c, "", http.StatusBadRequest, "the body is not a form (application/x-www-form-urlencoded) of at most 64 KiB")
		return nil, false
	}
	return c.Request.PostForm, true
}

func (s *Server) fail(c *gin.Context, event string, status int, msg string) {
	s.events.WithLabelValues(eventLabel(event), "rejected").Inc()
	s.log.WithFields(logrus.Fields{"event": event, "status": status, "remote": c.ClientIP()}).Warn("Bitrix24 event refused: " + msg)
	c.JSON(status, gin.H{"error": msg})
}

// eventLabel keeps the metric's label values to the known events.
func eventLabel(e string) string {
	switch e {
	case EventInstall, EventUninstall, EventCallStart, EventCallbackStart:
		return e
	}
	return "other"
}

func (s *Server) install(c *gin.Context) {
	f, ok := s.form(c)
	if !ok {
		return
	}
	if ev := EventName(f); ev != EventInstall {
		s.fail(c, ev, http.StatusBadRequest, "this handler takes the ONAPPINSTALL event: create the local application as server-side with no interface, "+
			"with this URL as its installation handler")
		return
	}
	in, err := ParseInstall(f)
	if err != nil {
		s.fail(c, EventInstall, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	if err := s.inst.Install(ctx, in); err != nil {
		s.fail(c, EventInstall, http.StatusForbidden, err.Error())
		return
	}
	s.bind(ctx)
	s.events.WithLabelValues(EventInstall, "ok").Inc()
	c.JSON(http.StatusOK, gin.H{"result": "installed"})
}

// bind subscribes the application to the events it handles, when the public address is known.
func (s *Server) bind(ctx context.Context) {
	if s.opt.PublicURL == "" {
		s.log.Warn("bitrix.public_url is not set: bind ONEXTERNALCALLSTART to https://<connector address>" + EventPath + " by hand, or set it and install again (click-to-call needs it)")
		return
	}
	handler := strings.TrimRight(s.opt.PublicURL, "/") + EventPath
	for _, ev := range []string{EventCallStart, EventUninstall} {
		if err := s.inst.BindEvent(ctx, ev, handler); err != nil {
			s.log.WithError(err).WithField("event", ev).Warn("cannot bind the event to " + handler + ": click-to-call will not reach the connector until it is bound")
		}
	}
}

func (s *Server) event(c *gin.Context) {
	f, ok := s.form(c)
	if !ok {
		return
	}
	ev := EventName(f)
	valid, err := s.inst.CheckApplicationToken(c.Request.Context(), ApplicationToken(f), s.opt.WebhookToken)
	if err != nil {
		s.fail(c, ev, http.StatusServiceUnavailable, "cannot check the event now: "+err.Error())
		return
	}
	if !valid {
		s.fail(c, ev, http.StatusForbidden, "auth[application_token] does not match this installation (install the application again if it was reinstalled)")
		return
	}
	switch ev {
	case EventCallStart:
		s.callStart(c, f)
	case EventUninstall:
		if err := s.inst.Uninstall(c.Request.Context()); err != nil {
			s.fail(c, ev, http.StatusServiceUnavailable, err.Error())
			return
		}
		s.log.Warn("the application was uninstalled from Bitrix24: no call reaches the portal until it is installed again")
		s.events.WithLabelValues(ev, "ok").Inc()
		c.JSON(http.StatusOK, gin.H{"result": "uninstalled"})
	case EventCallbackStart:
		s.callbackStart(c, f)
	default:
		s.events.WithLabelValues("other", "ignored").Inc()
		c.JSON(http.StatusOK, gin.H{"result": "ignored"})
	}
}

func (s *Server) callStart(c *gin.Context, f url.Values) {
	cs, err := ParseCallStart(f)
	if err != nil {
		s.fail(c, EventCallStart, http.StatusBadRequest, err.Error())
		return
	}
	cl, fresh, err := s.clicks.StartClick(c.Request.Context(), callflow.Click{CallID: cs.CallID, UserID: cs.UserID, Number: cs.PhoneNumber})
	if err != nil {
		s.fail(c, EventCallStart, http.StatusServiceUnavailable, err.Error())
		return
	}
	if !fresh {
		s.events.WithLabelValues(EventCallStart, "duplicate").Inc()
		c.JSON(http.StatusOK, gin.H{"result": "duplicate"})
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.clicks.RunClick(s.bg, cl, s.orig, s.opt.RingTimeout)
	}()
	s.events.WithLabelValues(EventCallStart, "ok").Inc()
	c.JSON(http.StatusOK, gin.H{"result": "ok"})
}

func (s *Server) callbackStart(c *gin.Context, f url.Values) {
	cb, err := ParseCallback(f)
	if err != nil {
		s.fail(c, EventCallbackStart, http.StatusBadRequest, err.Error())
		return
	}
	fresh, err := s.clicks.StartCallback(c.Request.Context(), cb)
	if err != nil {
		// Not the portal's fault: answered 200 so it is not counted as a failing handler, and
		// logged loudly, because the customer waits for a call.
		s.events.WithLabelValues(EventCallbackStart, "not-handled").Inc()
		s.log.WithError(err).WithField("phone", cb.Number).Error("a CRM callback form was filled but is not called back: call the customer back by hand")
		c.JSON(http.StatusOK, gin.H{"result": "not handled", "error": err.Error()})
		return
	}
	if !fresh {
		s.events.WithLabelValues(EventCallbackStart, "duplicate").Inc()
		c.JSON(http.StatusOK, gin.H{"result": "duplicate"})
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.clicks.RunCallback(s.bg, cb, s.orig, s.opt.RingTimeout)
	}()
	s.events.WithLabelValues(EventCallbackStart, "ok").Inc()
	c.JSON(http.StatusOK, gin.H{"result": "ok"})
}

// Serve listens on addr until ctx ends, then stops taking requests, waits for those in flight,
// and gives the phones being rung up to a ring timeout to get their answer.
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on an open listener.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 45 * time.Second, IdleTimeout: 60 * time.Second}
	s.log.WithField("addr", ln.Addr().String()).Info("Bitrix24 handlers listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	s.Close(s.opt.RingTimeout + 5*time.Second)
	return nil
}

// Close waits up to grace for background clicks, then cancels them.
func (s *Server) Close(grace time.Duration) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.stopBg()
		<-done
	}
	s.stopBg()
}
