package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"
)

const secretValue = "hunter2-do-not-print"

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(secretValue)
	holder := struct {
		Name   string
		Secret Secret
		Ptr    *Secret
	}{"x", s, &s}
	cfg := Defaults()
	cfg.AMI.Secret = s

	cases := []struct {
		name   string
		render func() string
	}{
		{"%v", func() string { return fmt.Sprintf("%v", s) }},
		{"%s", func() string { return fmt.Sprintf("%s", s) }},
		{"%q", func() string { return fmt.Sprintf("%q", s) }},
		{"%x", func() string { return fmt.Sprintf("%x", s) }},
		{"%+v", func() string { return fmt.Sprintf("%+v", s) }},
		{"%#v", func() string { return fmt.Sprintf("%#v", s) }},
		{"struct %v", func() string { return fmt.Sprintf("%v", holder) }},
		{"struct %+v", func() string { return fmt.Sprintf("%+v", holder) }},
		{"struct %#v", func() string { return fmt.Sprintf("%#v", holder) }},
		{"pointer %v", func() string { return fmt.Sprintf("%v", *holder.Ptr) }},
		{"config %+v", func() string { return fmt.Sprintf("%+v", cfg) }},
		{"config %#v", func() string { return fmt.Sprintf("%#v", cfg) }},
		{"Sprint", func() string { return fmt.Sprint(s) }},
		{"String", func() string { return s.String() }},
		{"json", func() string { b, _ := json.Marshal(s); return string(b) }},
		{"json struct", func() string { b, _ := json.Marshal(holder); return string(b) }},
		{"json config", func() string { b, _ := json.Marshal(cfg); return string(b) }},
		{"MarshalText", func() string { b, _ := s.MarshalText(); return string(b) }},
		{"logrus json field", func() string { return logLine(t, &logrus.JSONFormatter{}, s) }},
		{"logrus text field", func() string { return logLine(t, &logrus.TextFormatter{DisableColors: true}, s) }},
		{"logrus json struct field", func() string { return logLine(t, &logrus.JSONFormatter{}, holder) }},
		{"logrus text struct field", func() string { return logLine(t, &logrus.TextFormatter{DisableColors: true}, holder) }},
		{"logrus json config field", func() string { return logLine(t, &logrus.JSONFormatter{}, cfg.AMI) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.render()
			if strings.Contains(got, secretValue) {
				t.Fatalf("secret value printed: %s", got)
			}
			if !strings.Contains(got, "secret>") && !strings.Contains(got, `\u003csecret\u003e`) && tc.name != "%x" {
				t.Fatalf("no <secret> marker in %s", got)
			}
		})
	}
}

func logLine(t *testing.T, f logrus.Formatter, v any) string {
	t.Helper()
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetFormatter(f)
	l.WithField("value", v).Info("hello")
	return buf.String()
}

func TestSecretEmptyStaysVisible(t *testing.T) {
	var s Secret
	if got := fmt.Sprintf("%v", s); got != "" {
		t.Fatalf("empty secret printed %q, want empty", got)
	}
	if !s.IsZero() {
		t.Fatal("IsZero() = false for empty secret")
	}
}

func TestSecretYAMLKeepsValue(t *testing.T) {
	in := struct {
		Secret Secret `yaml:"secret"`
	}{Secret(secretValue)}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), secretValue) {
		t.Fatalf("yaml lost the value: %s", out)
	}
	var back struct {
		Secret Secret `yaml:"secret"`
	}
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.Secret.Reveal() != secretValue {
		t.Fatalf("round trip gave %q", back.Secret.Reveal())
	}
}
