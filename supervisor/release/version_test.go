package release

import "testing"

func TestVersionCompare(t *testing.T) {
	// Each is older than the next (semver.org §11).
	order := []string{"0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}
	for i := 0; i+1 < len(order); i++ {
		a, b := MustVersion(order[i]), MustVersion(order[i+1])
		if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
			t.Errorf("%s vs %s: %d %d", a, b, a.Compare(b), b.Compare(a))
		}
	}
}

func TestParseVersion(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{"1.2.3", "1.2.3", true},
		{"v1.2.3", "1.2.3", true},
		{"1.2.3-beta.1", "1.2.3-beta.1", true},
		{"1.2", "", false},
		{"1.02.3", "", false},
		{"1.2.3-", "", false},
		{"1.2.3-be_ta", "", false},
		{"1.2.3+build", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			v, err := ParseVersion(c.in)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
			if c.ok && v.String() != c.want {
				t.Fatalf("got %s", v)
			}
		})
	}
}
