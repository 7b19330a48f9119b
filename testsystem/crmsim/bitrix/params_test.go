package bitrix

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestPHPKeyPath(t *testing.T) {
	cases := []struct {
		name string
		key  string
		want []string
		ok   bool
	}{
		{"plain", "CALL_ID", []string{"CALL_ID"}, true},
		{"nested", "FIELDS[PHONE][0][VALUE]", []string{"FIELDS", "PHONE", "0", "VALUE"}, true},
		{"append", "USER_ID[]", []string{"USER_ID", ""}, true},
		{"dot-in-name", "a.b", []string{"a_b"}, true},
		{"space-in-name", " a b", []string{"a_b"}, true},
		{"unclosed-bracket", "a[b", []string{"a_b"}, true},
		{"unclosed-later", "a[b][c", []string{"a", "b"}, true},
		{"junk-after-segment", "a[b]x[c]", []string{"a", "b"}, true},
		{"empty-name", "[a]", nil, false},
		{"empty", "", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := phpKeyPath(c.key)
			if ok != c.ok || !reflect.DeepEqual(got, c.want) {
				t.Errorf("phpKeyPath(%q) = %q, %v; want %q, %v", c.key, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestParseForm(t *testing.T) {
	cases := []struct {
		name string
		form string
		want string // PHP json_encode of the result
	}{
		{"nested-fields", "FIELDS%5BPHONE%5D%5B0%5D%5BVALUE%5D=%2B7916&FIELDS[TITLE]=Call",
			`{"FIELDS":{"PHONE":[{"VALUE":"+7916"}],"TITLE":"Call"}}`},
		{"append-list", "USER_ID[]=5&USER_ID[]=6", `{"USER_ID":["5","6"]}`},
		{"plus-is-space", "a=1+2&b=%zz", `{"a":"1 2","b":"%zz"}`},
		{"last-wins", "a=1&a[b]=2", `{"a":{"b":"2"}}`},
		{"scalar-after-array", "a[b]=2&a=1", `{"a":"1"}`},
		{"order-kept", "cmd[z]=1&cmd[a]=2", `{"cmd":{"z":"1","a":"2"}}`},
		{"sparse-list-is-object", "a[1]=x", `{"a":{"1":"x"}}`},
		{"empty", "", `[]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(parseForm(c.form))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.want {
				t.Errorf("got %s, want %s", b, c.want)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string
		err  bool
	}{
		{"order-kept", `{"cmd":{"z":"a","b":"c"},"halt":1}`, `{"cmd":{"z":"a","b":"c"},"halt":1}`, false},
		{"numbers-exact", `{"USER_ID":1269,"COST":1.50}`, `{"USER_ID":1269,"COST":1.50}`, false},
		{"list", `{"USER_ID":[1,2]}`, `{"USER_ID":[1,2]}`, false},
		{"not-object", `"x"`, `[]`, false},
		{"broken", `{"a":`, ``, true},
		{"trailing", `{} {}`, ``, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := parseJSON([]byte(c.body))
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error %v", err, c.err)
			}
			if c.err {
				return
			}
			b, _ := json.Marshal(m)
			if string(b) != c.want {
				t.Errorf("got %s, want %s", b, c.want)
			}
		})
	}
}

func TestParamAccess(t *testing.T) {
	p := params{parseForm("user_id=7&SHOW=0&FIELDS[phone][0][VALUE]=1&flag=Y&TYPE=2abc")}
	cases := []struct {
		name string
		got  any
		want any
	}{
		{"case-insensitive-name", p.int("USER_ID"), 7},
		{"php-int-cast", p.int("TYPE"), 2},
		{"flag-off", truthy(mustGet(p, "SHOW")), false},
		{"flag-y", truthy(mustGet(p, "FLAG")), true},
		{"nested-case-insensitive", p.sub("fields").sub("PHONE").m.len(), 1},
		{"missing", p.s("NOPE"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

// FuzzParseForm checks that any form string parses without panic and that the parse is
// canonical: encoding the result and parsing it again gives the same array.
func FuzzParseForm(f *testing.F) {
	for _, seed := range []string{
		"FIELDS[PHONE][0][VALUE]=%2B7916&FIELDS[TITLE]=x",
		"a[]=1&a[]=2&a[5]=x&a[]=y",
		"cmd[a]=user.get%3FID%3D1&halt=1",
		"a[b=1&[c]=2&d]=3&e[f]g=4",
		"%5B%5D=&=&&a[%00]=b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := parseForm(s)
		first, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := json.Marshal(parseForm(encodeForm(m)))
		if err != nil {
			t.Fatalf("marshal again: %v", err)
		}
		if string(first) != string(again) {
			t.Errorf("not canonical:\n%q\n%s\n%s", s, first, again)
		}
	})
}
