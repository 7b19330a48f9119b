package calls

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/phone"
)

// Class is what a channel is to the call: an employee's phone, the outside world, or a helper
// (Local channels and the like) that only connects other channels.
type Class uint8

const (
	Helper Class = iota
	Extension
	Trunk
)

func (c Class) String() string {
	switch c {
	case Extension:
		return "extension"
	case Trunk:
		return "trunk"
	default:
		return "helper"
	}
}

// Classifier applies the classify section of the config to channel names and contexts.
type Classifier struct {
	ext, trunk  []*regexp.Regexp
	extNum      []int // index of the "num" group in each regexp, -1 when absent
	trunkNum    []int
	byCallerID  bool
	inbound     map[string]bool
	internal    map[string]bool
	country     phone.Plan
	hasCountry  bool
	countryName string
}

// NewClassifier compiles the rules; an error names the field and the fix.
func NewClassifier(c config.Classify) (*Classifier, error) {
	cl := &Classifier{
		byCallerID: c.ExtensionNumber == "callerid",
		inbound:    set(c.InboundContexts),
		internal:   set(c.InternalContexts),
	}
	switch c.ExtensionNumber {
	case "", "channel", "callerid":
	default:
		return nil, fmt.Errorf("classify.extension_number: %q is not known: write channel or callerid", c.ExtensionNumber)
	}
	var err error
	if cl.ext, cl.extNum, err = compile("classify.extension_channels", c.ExtensionChannels); err != nil {
		return nil, err
	}
	if cl.trunk, cl.trunkNum, err = compile("classify.trunk_channels", c.TrunkChannels); err != nil {
		return nil, err
	}
	if c.Country != "" {
		if err := phone.Validate(c.Country); err != nil {
			return nil, fmt.Errorf("classify.country: %w", err)
		}
		cl.country, cl.hasCountry = phone.Lookup(c.Country)
		cl.countryName = c.Country
	}
	return cl, nil
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func compile(field string, pats []string) ([]*regexp.Regexp, []int, error) {
	res := make([]*regexp.Regexp, 0, len(pats))
	idx := make([]int, 0, len(pats))
	for i, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%s[%d]: %q is not a valid regular expression (%v): fix the pattern", field, i, p, err)
		}
		res = append(res, re)
		idx = append(idx, re.SubexpIndex("num"))
	}
	return res, idx, nil
}

// Channel classifies a channel name; num is the extension or trunk the name carries.
func (cl *Classifier) Channel(name string) (Class, string) {
	// Local channels are by far the most common helpers; most rule sets don't name them.
	for i, re := range cl.ext {
		if m := re.FindStringSubmatch(name); m != nil {
			if cl.extNum[i] >= 0 {
				return Extension, m[cl.extNum[i]]
			}
			return Extension, ""
		}
	}
	for i, re := range cl.trunk {
		if m := re.FindStringSubmatch(name); m != nil {
			if cl.trunkNum[i] >= 0 {
				return Trunk, m[cl.trunkNum[i]]
			}
			return Trunk, ""
		}
	}
	return Helper, ""
}

// ExtensionByCallerID reports whether an extension's number is its CallerIDNum.
func (cl *Classifier) ExtensionByCallerID() bool { return cl.byCallerID }

// InboundContext reports whether a call starting in ctx comes from outside.
func (cl *Classifier) InboundContext(ctx string) bool { return cl.inbound[ctx] }

// InternalContext reports whether a call starting in ctx is placed by an employee.
func (cl *Classifier) InternalContext(ctx string) bool { return cl.internal[ctx] }

// Number normalizes an outside number by the configured country.
func (cl *Classifier) Number(s string) string {
	if !cl.hasCountry {
		return phone.Digits(s)
	}
	return cl.country.Normalize(s)
}

// isNumber reports whether s looks like a dialable number (digits, maybe a leading +).
func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
