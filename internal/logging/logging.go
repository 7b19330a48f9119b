// Package logging builds the one logger every ringbridge service uses: JSON lines (text for a
// person at a terminal) with the service name on each line, and a redactor that, as a last line of
// defence, replaces any registered secret that reaches a line anyway.
package logging

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
)

// Option changes how New builds the logger.
type Option func(*options)

type options struct {
	redactor *Redactor
}

// WithRedactor makes the logger scrub the secrets r holds, including those added later.
func WithRedactor(r *Redactor) Option { return func(o *options) { o.redactor = r } }

// New returns the logger of service: JSON lines with RFC 3339 nanosecond times and a service field
// (text when cfg.Format is "text"), writing to out (os.Stderr when nil). A level it cannot parse
// falls back to info and says so on the first line, so a typo in the config never silences the
// logs; config.Validate reports the typo as well.
func New(service string, cfg config.Log, out io.Writer, opts ...Option) *logrus.Entry {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if out == nil {
		out = os.Stderr
	}
	l := logrus.New()
	l.SetOutput(out)
	var f logrus.Formatter
	if cfg.Format == "text" {
		f = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano, DisableColors: true}
	} else {
		// HTML escaping would turn <secret> into \u003csecret\u003e.
		f = &logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano, DisableHTMLEscape: true}
	}
	if o.redactor != nil {
		f = o.redactor.Formatter(f)
	}
	l.SetFormatter(f)
	entry := l.WithField("service", service)
	level, err := ParseLevel(cfg.Level)
	if err != nil {
		level = logrus.InfoLevel
	}
	l.SetLevel(level)
	if err != nil {
		entry.WithError(err).Warn("logging at info")
	}
	return entry
}

// ParseLevel reads a log.level value; an empty one is info.
func ParseLevel(s string) (logrus.Level, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return logrus.InfoLevel, nil
	}
	if !slices.Contains(config.LogLevels(), s) {
		return logrus.InfoLevel, fmt.Errorf("log.level %q is not a level: write one of %s", s, strings.Join(config.LogLevels(), ", "))
	}
	l, err := logrus.ParseLevel(s)
	if err != nil {
		return logrus.InfoLevel, fmt.Errorf("log.level %q: %w", s, err)
	}
	return l, nil
}
