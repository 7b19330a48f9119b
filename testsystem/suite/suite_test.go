package suite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = "testdata/suites"

func TestLoadGood(t *testing.T) {
	suites, err := LoadAll(good, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) != 1 {
		t.Fatalf("%d suites, want 1", len(suites))
	}
	s := suites[0]
	if s.ID() != "amo/good" || s.CRM != Amo || s.Config.PBX != "suitetest" || s.AmoSeed == nil || !filepath.IsAbs(s.ConfigFile) {
		t.Errorf("suite %s: crm %s, pbx %q, seed %v, config file %s", s.ID(), s.CRM, s.Config.PBX, s.AmoSeed != nil, s.ConfigFile)
	}
	if got := strings.Join(s.Addresses(), " "); got != "127.0.0.1:45038 127.0.0.1:49101 127.0.0.1:49103 127.0.0.1:48180 127.0.0.1:48103" {
		t.Errorf("Addresses() = %s", got)
	}
	if len(s.Calls) != 2 {
		t.Fatalf("%d calls, want 2", len(s.Calls))
	}
	c := s.Calls[0]
	if c.Name != "01-answered" || c.Scenario.Name != "01-answered" || c.Settle != 2*time.Second || !c.Expect.Ordered || len(c.Expect.Requests) != 2 {
		t.Errorf("call %+v", c)
	}
	if c.Expect.Requests[1].Line != 14 {
		t.Errorf("second request on line %d, want 14 of the file", c.Expect.Requests[1].Line)
	}
	if in := s.Calls[1]; len(in.Expect.Requests) != 0 || in.Scenario.Direction != "internal" {
		t.Errorf("internal call: %+v", in)
	}
}

// edit is a change to a copy of the good suite: file (relative to the suite) and its new text,
// or a replacement of old by new in it.
type edit struct {
	file, old, new string
	remove         bool
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		edits []edit
		crm   CRM
		names []string
		// want are substrings of the error: the file, the field, the fix.
		want []string
	}{
		{name: "config-crm-not-the-folders", edits: []edit{{file: "config.yaml", old: "crm: amo", new: "crm: bitrix"}},
			want: []string{"config.yaml: crm: \"bitrix\", but the suite is under amo/: write crm: amo"}},
		{name: "config-ami-not-loopback", edits: []edit{{file: "config.yaml", old: "127.0.0.1:45038", new: "10.0.0.5:5038"}},
			want: []string{"config.yaml: ami.address: \"10.0.0.5:5038\": the runner serves the simulated PBX there, on this machine: write 127.0.0.1:PORT"}},
		{name: "config-account-not-the-simulator", edits: []edit{{file: "config.yaml", old: "account: http://127.0.0.1:48180", new: "account: https://shop.amocrm.ru"}},
			want: []string{"config.yaml: amo.account: \"https://shop.amocrm.ru\": the runner serves the amoCRM simulator there: write http://127.0.0.1:PORT"}},
		{name: "config-health-listen-missing", edits: []edit{{file: "config.yaml", old: "  connector-amo: {listen: \"127.0.0.1:49103\"}\n", new: ""}},
			want: []string{"config.yaml: http.connector-amo.listen: \"\": the runner asks for /readyz there"}},
		{name: "config-invalid-for-the-service", edits: []edit{{file: "config.yaml", old: "user_id: 701", new: "user_id: -1"}},
			want: []string{"config.yaml", "amo.users[0].user_id", "-1 is not an amoCRM user id"}},
		{name: "config-long-lived", edits: []edit{{file: "config.yaml", old: "  client_id:", new: "  auth: long_lived\n  long_lived_token: t\n  client_id:"}},
			want: []string{"config.yaml: amo.auth: long_lived: the suites run the OAuth install"}},
		{name: "seed-missing", edits: []edit{{file: "seed.yaml", remove: true}},
			want: []string{"seed.yaml: missing: write the CRM's users, contacts and leads"}},
		{name: "seed-unknown-field", edits: []edit{{file: "seed.yaml", old: "users:", new: "userz:"}},
			want: []string{"seed.yaml: ", "field userz not found"}},
		{name: "seed-other-integration", edits: []edit{{file: "seed.yaml", old: "client_id: 11111111", new: "client_id: 99999999"}},
			want: []string{"config.yaml: amo.client_id: \"11111111-2222-3333-4444-555555555555\", but", "seed.yaml integration.client_id is \"99999999-2222-3333-4444-555555555555\": write the same id in both"}},
		{name: "seed-user-not-mapped", edits: []edit{{file: "seed.yaml", old: "id: 701", new: "id: 799"}},
			want: []string{"config.yaml: amo.users[0].user_id: 701 is no user of", "seed.yaml: add it there under users"}},
		{name: "call-unknown-key", edits: []edit{{file: "calls/01-answered.yaml", old: "settle: 2s", new: "setle: 2s"}},
			want: []string{"calls/01-answered.yaml:9: setle: unknown key", "did you mean settle?"}},
		{name: "call-scenario-missing", edits: []edit{{file: "calls/02-internal.yaml", old: "scenario:", new: "scenari:"}},
			want: []string{"calls/02-internal.yaml:2: scenari: unknown key"}},
		{name: "call-scenario-error-on-this-files-line", edits: []edit{{file: "calls/01-answered.yaml", old: `by: "101"`, new: `by: "105"`}},
			want: []string{"calls/01-answered.yaml:7: scenario.answer.by: \"105\" does not ring in this call: write one of 101"}},
		{name: "call-scenario-unknown-key", edits: []edit{{file: "calls/01-answered.yaml", old: "  talk: 20s", new: "  tlak: 20s"}},
			want: []string{"calls/01-answered.yaml:8: scenario.tlak: unknown key", "did you mean talk?"}},
		{name: "call-expect-missing", edits: []edit{{file: "calls/02-internal.yaml", old: "expect: []", new: ""}},
			want: []string{"calls/02-internal.yaml:1: expect: missing: write the CRM requests the call must cause (expect: [] for a call that must cause none)"}},
		{name: "call-expect-bad-placeholder", edits: []edit{{file: "calls/01-answered.yaml", old: "{call_id}", new: "{callid}"}},
			want: []string{"calls/01-answered.yaml:15: expect[1].params.0.uniq: unknown placeholder {callid}: write one of {call_id} {crm_call_id} {pbx} {recording} {started_at}"}},
		{name: "call-settle-bad", edits: []edit{{file: "calls/01-answered.yaml", old: "settle: 2s", new: "settle: forever"}},
			want: []string{"calls/01-answered.yaml:9: settle: \"forever\": write how long the CRM must get no request"}},
		{name: "no-calls", edits: []edit{{file: "calls/01-answered.yaml", remove: true}, {file: "calls/02-internal.yaml", remove: true}},
			want: []string{"calls: no test calls (*.yaml) in it"}},
		{name: "every-bad-file-at-once", edits: []edit{
			{file: "calls/01-answered.yaml", old: "settle: 2s", new: "setle: 2s"},
			{file: "calls/02-internal.yaml", old: "expect: []", new: "expect: {}"},
			{file: "config.yaml", old: "crm: amo", new: "crm: bitrix"}},
			want: []string{"01-answered.yaml:9: setle", "02-internal.yaml:3: expect: not a list", "config.yaml: crm:"}},
		{name: "suite-named-does-not-exist", names: []string{"nosuch"},
			want: []string{"--suite nosuch: no such suite under"}},
		{name: "suite-named-by-crm-and-name", names: []string{"amo/good"}},
		{name: "other-crm-has-none", crm: Bitrix, want: []string{"no suites under"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := copySuites(t)
			dir := filepath.Join(root, "amo", "good")
			for _, e := range c.edits {
				path := filepath.Join(dir, e.file)
				if e.remove {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
					continue
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(b), e.old) {
					t.Fatalf("%s has no %q", e.file, e.old)
				}
				if err := os.WriteFile(path, []byte(strings.Replace(string(b), e.old, e.new, 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadAll(root, c.crm, c.names)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one with %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// copySuites copies testdata/suites into a temporary folder.
func copySuites(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir(good, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(good, path)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestParseCRM(t *testing.T) {
	for _, c := range []struct {
		in   string
		want CRM
		err  bool
	}{{"amo", Amo, false}, {"bx", Bitrix, false}, {"bitrix", "", true}, {"", "", true}} {
		got, err := ParseCRM(c.in)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("ParseCRM(%q) = %q, %v", c.in, got, err)
		}
	}
}
