package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
)

func TestNewJSON(t *testing.T) {
	var buf bytes.Buffer
	log := New("ami-gateway", config.Log{Level: "debug", Format: "json"}, &buf)
	log.WithField("call_id", "1732530000.12").Debug("call started")

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, &buf)
	}
	checks := []struct {
		name string
		key  string
		want any
	}{
		{"service field", "service", "ami-gateway"},
		{"message", "msg", "call started"},
		{"level", "level", "debug"},
		{"field", "call_id", "1732530000.12"},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if line[tc.key] != tc.want {
				t.Fatalf("%s = %v, want %v", tc.key, line[tc.key], tc.want)
			}
		})
	}
	t.Run("RFC3339Nano time", func(t *testing.T) {
		ts, _ := line["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("time %q: %v", ts, err)
		}
	})
}

func TestNewText(t *testing.T) {
	var buf bytes.Buffer
	log := New("admin", config.Log{Level: "info", Format: "text"}, &buf)
	log.Info("listening")
	out := buf.String()
	if !strings.Contains(out, "service=admin") || !strings.Contains(out, `msg=listening`) || strings.HasPrefix(out, "{") {
		t.Fatalf("text line = %q", out)
	}
}

func TestLevels(t *testing.T) {
	cases := []struct {
		name      string
		level     string
		debugSeen bool
		infoSeen  bool
		warnLine  bool
	}{
		{name: "debug", level: "debug", debugSeen: true, infoSeen: true},
		{name: "info", level: "info", infoSeen: true},
		{name: "upper case", level: "WARN"},
		{name: "empty is info", level: "", infoSeen: true},
		{name: "typo falls back to info and says so", level: "verbose", infoSeen: true, warnLine: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := New("s", config.Log{Level: tc.level, Format: "json"}, &buf)
			log.Debug("d-line")
			log.Info("i-line")
			out := buf.String()
			if got := strings.Contains(out, "d-line"); got != tc.debugSeen {
				t.Errorf("debug seen %v, want %v", got, tc.debugSeen)
			}
			if got := strings.Contains(out, "i-line"); got != tc.infoSeen {
				t.Errorf("info seen %v, want %v", got, tc.infoSeen)
			}
			if got := strings.Contains(out, `log.level \"verbose\" is not a level`); got != tc.warnLine {
				t.Errorf("warning line %v, want %v:\n%s", got, tc.warnLine, out)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	for _, l := range config.LogLevels() {
		t.Run(l, func(t *testing.T) {
			if _, err := ParseLevel(l); err != nil {
				t.Fatalf("config accepts %q but logging does not: %v", l, err)
			}
		})
	}
	t.Run("bad level is explained", func(t *testing.T) {
		_, err := ParseLevel("loud")
		if err == nil || !strings.Contains(err.Error(), `"loud" is not a level: write one of trace, debug, info`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("panic is not offered", func(t *testing.T) {
		if _, err := ParseLevel("panic"); err == nil {
			t.Fatal("panic level accepted: the config does not list it")
		}
	})
}

type wrapped struct{ Inner string }

func TestRedactorInLogLines(t *testing.T) {
	const secret = `s3cr"et<&>\x`
	cases := []struct {
		name   string
		format string
		log    func(*logrus.Entry)
	}{
		{"message", "json", func(l *logrus.Entry) { l.Info("login with " + secret + " failed") }},
		{"string field", "json", func(l *logrus.Entry) { l.WithField("pw", secret).Info("x") }},
		{"error field", "json", func(l *logrus.Entry) { l.WithError(errors.New("auth " + secret)).Error("x") }},
		{"struct field", "json", func(l *logrus.Entry) { l.WithField("v", wrapped{secret}).Info("x") }},
		{"formatted message", "json", func(l *logrus.Entry) { l.Infof("url amqp://u:%s@h/", secret) }},
		{"text message", "text", func(l *logrus.Entry) { l.Info("login with " + secret) }},
		{"text quoted field", "text", func(l *logrus.Entry) { l.WithField("pw", secret).Info("x") }},
		{"text struct field", "text", func(l *logrus.Entry) { l.WithField("v", fmt.Sprintf("%+v", wrapped{secret})).Info("x") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := New("s", config.Log{Level: "info", Format: tc.format}, &buf, WithRedactor(NewRedactor(secret)))
			tc.log(log)
			out := buf.String()
			for _, leak := range []string{secret, `s3cr\"et`, `s3cr\"et\u003c`, "s3cr"} {
				if strings.Contains(out, leak) {
					t.Fatalf("line shows %q: %s", leak, out)
				}
			}
			if !strings.Contains(out, Marker) {
				t.Fatalf("no %s marker: %s", Marker, out)
			}
			if tc.format == "json" {
				var v map[string]any
				if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
					t.Fatalf("redaction broke the JSON: %v\n%s", err, out)
				}
			}
		})
	}
}

func TestRedactorAddLater(t *testing.T) {
	var buf bytes.Buffer
	r := NewRedactor()
	log := New("s", config.Log{Format: "json"}, &buf, WithRedactor(r))
	log.Info("token tok-1")
	r.Add("tok-1", "")
	log.Info("token tok-1")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "tok-1") || strings.Contains(lines[1], "tok-1") {
		t.Fatalf("lines = %q", lines)
	}
}

func TestRedactorLongestFirst(t *testing.T) {
	r := NewRedactor("abc", "abcdef")
	if got := r.Redact("x abcdef y abc"); got != "x <secret> y <secret>" {
		t.Fatalf("got %q", got)
	}
}

func TestRedactorConfigSecrets(t *testing.T) {
	cfg := config.Defaults()
	cfg.AMI.Secret = "ami-pw"
	cfg.RabbitMQ.URL = "amqp://rb:mq-pw@mq:5672/"
	r := NewRedactor(cfg.Secrets()...)
	in := "dial amqp://rb:mq-pw@mq:5672/ failed; password mq-pw; ami ami-pw"
	if got := r.Redact(in); strings.Contains(got, "pw") {
		t.Fatalf("got %q", got)
	}
}

func TestRedactorConcurrent(t *testing.T) {
	var buf syncBuffer
	r := NewRedactor()
	log := New("s", config.Log{Format: "json"}, &buf, WithRedactor(r))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 50 {
				r.Add(fmt.Sprintf("secret-%d-%d", i, j))
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				log.Info("line")
			}
		}()
	}
	wg.Wait()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
