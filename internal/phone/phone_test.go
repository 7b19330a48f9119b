package phone

import "testing"

func TestNormalize(t *testing.T) {
	cases := []struct {
		name, country, in, want string
	}{
		{"ru-8-prefix", "RU", "89161234567", "+79161234567"},
		{"ru-7-prefix", "RU", "79161234567", "+79161234567"},
		{"ru-plus", "RU", "+7 (916) 123-45-67", "+79161234567"},
		{"ru-ten-digits", "RU", "4951234567", "+74951234567"},
		{"ru-intl-810", "RU", "81049301234567", "+49301234567"},
		{"ru-extension", "RU", "101", "101"},
		{"ru-short-service", "RU", "112", "112"},
		{"ru-unknown-length", "RU", "891612345", "891612345"},
		{"de-national", "DE", "03012345678", "+493012345678"},
		{"by-80", "BY", "80291234567", "+375291234567"},
		{"no-country", "", "8 916 123 45 67", "89161234567"},
		{"empty", "RU", "", ""},
		{"garbage", "RU", "<unknown>", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Normalize(c.country, c.in); got != c.want {
				t.Fatalf("Normalize(%q, %q) = %q, want %q", c.country, c.in, got, c.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	if err := Validate("RU"); err != nil {
		t.Fatal(err)
	}
	if err := Validate(""); err != nil {
		t.Fatal(err)
	}
	if err := Validate("XX"); err == nil {
		t.Fatal("unknown country XX accepted")
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"89161234567", "+7916", "810", "", "0000000000"} {
		f.Add("RU", s)
	}
	f.Fuzz(func(t *testing.T, country, s string) {
		out := Normalize(country, s)
		if Normalize(country, out) != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, Normalize(country, out))
		}
	})
}
