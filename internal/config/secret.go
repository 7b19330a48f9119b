package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Secret holds a password, token or key. It prints as <secret> everywhere (fmt, JSON, logs) so it
// never reaches a log line or a bug report; Reveal gives the value to the code that must use it.
// The YAML encoding keeps the value, because the config file is where the value lives.
type Secret string

const redacted = "<secret>"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String prints <secret> (or "" when empty, so "not set" stays visible).
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// Format covers every fmt verb, %s %v %q %x included.
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.String()) }

// MarshalJSON redacts: JSON is what logs, APIs and bug reports are made of.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText redacts, for encoders that use it (logfmt, form encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML keeps the value: the config file is the one place it is stored.
func (s Secret) MarshalYAML() (any, error) { return string(s), nil }

// UnmarshalYAML reads a plain string.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	*s = Secret(v)
	return nil
}
