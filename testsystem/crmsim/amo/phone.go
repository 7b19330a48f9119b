package amo

import "strings"

// digits keeps the ASCII digits of s: amoCRM compares phone numbers by digits, whatever the
// formatting ("+7 (916) 123-45-67" and "79161234567" are the same digits).
func digits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// samePhone is how calls and call pop-ups find the card: by the last 10 digits (crm-apis.md
// §2.1), so +7..., 7... and 8... forms of a Russian number match. Shorter numbers (extensions,
// short codes) must match whole.
func samePhone(a, b string) bool {
	da, db := digits(a), digits(b)
	if da == "" || db == "" {
		return false
	}
	if len(da) >= 10 && len(db) >= 10 {
		return da[len(da)-10:] == db[len(db)-10:]
	}
	return da == db
}

// minQueryDigits is how many digits make a query a phone search rather than a text one.
const minQueryDigits = 3

// queryMatches is the `query` filter of the list methods: a search in the entity's filled
// fields. A query with digits matches a field whose digits contain the query's digits, not a
// normalised number: searching 79161234567 does not find 8 (916) 123-45-67, which is why
// connectors try the +7/7/8 forms (crm-apis.md §2.3). Any other query is a case-insensitive
// substring of a field.
func queryMatches(query string, values ...string) bool {
	q := strings.TrimSpace(query)
	if q == "" {
		return true
	}
	if qd := digits(q); len(qd) >= minQueryDigits && len(qd)*2 >= len(strings.Join(strings.Fields(q), "")) {
		for _, v := range values {
			if strings.Contains(digits(v), qd) {
				return true
			}
		}
		return false
	}
	lq := strings.ToLower(q)
	for _, v := range values {
		if strings.Contains(strings.ToLower(v), lq) {
			return true
		}
	}
	return false
}
