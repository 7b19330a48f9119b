package main

import (
	"strings"
	"testing"

	"github.com/ringbridge/ringbridge/internal/config"
)

// TestAmoConfig: the amo section's mistakes are named by key with the fix.
func TestAmoConfig(t *testing.T) {
	const base = "schema: 1\npbx: p\nami: {username: u, secret: s}\ncrm: amo\n"
	const good = "amo:\n  account: https://company.amocrm.ru\n  client_id: 7f3c\n  client_secret: s3cret\n  redirect_uri: https://pbx.example.com/amo/oauth\n"
	cases := []struct {
		name string
		amo  string
		want []string // substrings of the error; none: valid
	}{
		{"minimal-oauth", good, nil},
		{"long-lived", "amo:\n  account: https://company.kommo.com\n  auth: long_lived\n  long_lived_token: eyJ0\n", nil},
		{"no-account", "amo:\n  client_id: x\n", []string{`amo.account: "" is not the account's address`}},
		{"account-with-path", strings.Replace(good, "amocrm.ru", "amocrm.ru/leads", 1), []string{"amo.account", "has a path"}},
		{"oauth-without-keys", "amo:\n  account: https://company.amocrm.ru\n", []string{"amo.client_id: not set", "amo.client_secret: not set", "amo.redirect_uri"}},
		{"long-lived-without-token", "amo:\n  account: https://company.amocrm.ru\n  auth: long_lived\n", []string{"amo.long_lived_token: not set"}},
		{"bad-auth", good + "  auth: password\n", []string{`amo.auth: "password" is not an auth mode`}},
		{"rate-limit", good + "  rate_limit: 100\n", []string{"amo.rate_limit: 100 is out of range"}},
		{"users", good + "  users:\n    - {extension: '101', user_id: 5}\n    - {extension: '101', user_id: 6}\n    - {extension: 'ab', user_id: 0}\n",
			[]string{`amo.users[1].extension: "101" is also users[0]`, `amo.users[2].extension: "ab" is not an extension number`, "amo.users[2].user_id: 0 is not an amoCRM user id"}},
		{"unknown-numbers", good + "  unknown_numbers: lead\n", []string{`amo.unknown_numbers: "lead" is not a choice`}},
		{"task", good + "  missed_call_task: {enabled: true, deadline: 0s, text: '', task_type_id: 0}\n",
			[]string{"amo.missed_call_task.deadline", "amo.missed_call_task.text: empty", "amo.missed_call_task.task_type_id"}},
		{"recordings", good + "  recordings: {public_url: 'pbx.example.com', dir: 'rec', link_ttl: 1m, signing_key: short}\n",
			[]string{"amo.recordings.public_url", "amo.recordings.dir", "amo.recordings.link_ttl", "amo.recordings.signing_key: missing or shorter than 32"}},
		{"ring-timeout", good + "  widget: {ring_timeout: 1s}\n", []string{"amo.widget.ring_timeout: 1s is out of range"}},
		{"typo", good + "  unknown_number: none\n", []string{`amo.unknown_number: unknown key (did you mean "unknown_numbers"?)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(base+c.amo), nil)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Amo.RateLimit != 7 || cfg.Amo.UnknownNumbers != "unsorted" || cfg.Amo.Listen != ":8103" {
					t.Fatalf("defaults not applied: %+v", cfg.Amo)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatal("a secret in the error")
			}
		})
	}
	t.Run("secrets-redacted", func(t *testing.T) {
		cfg, err := config.Parse([]byte(base+good+"  recordings: {public_url: 'https://x', signing_key: 0123456789abcdef0123456789abcdefXX}\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		dump, _ := cfg.Dump()
		if strings.Contains(string(dump), "s3cret") || strings.Contains(string(dump), "0123456789abcdef0123456789abcdefXX") {
			t.Fatalf("dump shows a secret:\n%s", dump)
		}
	})
}
