// Package phone normalizes telephone numbers to E.164 by a country's dialling rules, so a number
// the PBX shows as 8 916 123-45-67, 79161234567 or +7 (916) 123-45-67 is one CRM contact.
package phone

import (
	"fmt"
	"strings"
)

// Plan is one country's dialling rules.
type Plan struct {
	Country      string // ISO 3166 alpha-2
	CountryCode  string // E.164 country calling code without "+"
	TrunkPrefix  string // national prefix dialled before a national number ("8" in RU, "0" in DE)
	Intl         []string
	NationalLens []int // lengths of national significant numbers
}

// plans are the countries ringbridge's customers use most; a country missing here still works:
// its numbers pass through as digits, and "+" numbers are kept.
var plans = map[string]Plan{
	"RU": {Country: "RU", CountryCode: "7", TrunkPrefix: "8", Intl: []string{"810", "00"}, NationalLens: []int{10}},
	"KZ": {Country: "KZ", CountryCode: "7", TrunkPrefix: "8", Intl: []string{"810", "00"}, NationalLens: []int{10}},
	"BY": {Country: "BY", CountryCode: "375", TrunkPrefix: "80", Intl: []string{"810", "00"}, NationalLens: []int{9}},
	"UA": {Country: "UA", CountryCode: "380", TrunkPrefix: "0", Intl: []string{"00"}, NationalLens: []int{9}},
	"UZ": {Country: "UZ", CountryCode: "998", TrunkPrefix: "8", Intl: []string{"00", "810"}, NationalLens: []int{9}},
	"DE": {Country: "DE", CountryCode: "49", TrunkPrefix: "0", Intl: []string{"00"}, NationalLens: []int{10, 11}},
	"NL": {Country: "NL", CountryCode: "31", TrunkPrefix: "0", Intl: []string{"00"}, NationalLens: []int{9}},
	"GB": {Country: "GB", CountryCode: "44", TrunkPrefix: "0", Intl: []string{"00"}, NationalLens: []int{10}},
	"US": {Country: "US", CountryCode: "1", TrunkPrefix: "1", Intl: []string{"011"}, NationalLens: []int{10}},
}

// Lookup returns the plan of an ISO country code, and whether ringbridge knows it.
func Lookup(country string) (Plan, bool) {
	p, ok := plans[strings.ToUpper(country)]
	return p, ok
}

// Countries lists the known country codes, for config validation messages.
func Countries() []string {
	out := make([]string, 0, len(plans))
	for k := range plans {
		out = append(out, k)
	}
	return out
}

// Validate reports an unknown country in words; an empty country means "no normalization".
func Validate(country string) error {
	if country == "" {
		return nil
	}
	if _, ok := Lookup(country); !ok {
		return fmt.Errorf("country %q has no dialling rules here: use one of %s, or leave it empty to keep numbers as dialled", country, strings.Join(sortedCountries(), ", "))
	}
	return nil
}

func sortedCountries() []string {
	c := Countries()
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

// Digits keeps the digits of s, and a leading "+".
func Digits(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Normalize returns the E.164 form (+79161234567) of a number as dialled or presented, when the
// plan's rules make it certain; else the digits as dialled (short numbers, service numbers).
func (p Plan) Normalize(s string) string {
	d := Digits(s)
	if d == "" || strings.HasPrefix(d, "+") {
		return d
	}
	for _, ip := range p.Intl {
		if strings.HasPrefix(d, ip) && len(d) > len(ip)+6 {
			return "+" + d[len(ip):]
		}
	}
	for _, n := range p.NationalLens {
		switch {
		case len(d) == len(p.CountryCode)+n && strings.HasPrefix(d, p.CountryCode):
			return "+" + d
		case p.TrunkPrefix != "" && len(d) == len(p.TrunkPrefix)+n && strings.HasPrefix(d, p.TrunkPrefix):
			return "+" + p.CountryCode + d[len(p.TrunkPrefix):]
		case len(d) == n && !strings.HasPrefix(d, "0"):
			return "+" + p.CountryCode + d
		}
	}
	return d
}

// Normalize uses the rules of country; an unknown or empty country keeps the digits as dialled.
func Normalize(country, s string) string {
	if p, ok := Lookup(country); ok {
		return p.Normalize(s)
	}
	return Digits(s)
}
