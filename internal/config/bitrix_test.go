package config

import (
	"strings"
	"testing"
)

const bitrixApp = minimal + `crm: bitrix
bitrix:
  portal: https://company.bitrix24.ru
  app:
    client_id: local.abc.123
    client_secret: app-secret-value
`

func TestBitrixDefaultsValid(t *testing.T) {
	cfg, err := Parse([]byte(bitrixApp), nil)
	if err != nil {
		t.Fatalf("minimal bitrix config: %v", err)
	}
	b := cfg.Bitrix
	if b.Rate.PerSecond != 2 || b.Rate.Burst != 50 || b.Mode != "app" || b.App.OAuthServer != "https://oauth.bitrix.info" ||
		b.Calls.Internal != "skip" || b.Calls.ShowCard != "ringing" || !b.Leads.Inbound || b.Leads.Outbound {
		t.Fatalf("defaults: %+v", b)
	}
}

func TestBitrixProblems(t *testing.T) {
	cases := []struct {
		name string
		add  string // appended to the bitrix section
		mode string // replaces the app keys when set
		want []string
	}{
		{name: "enterprise-rate", add: "  rate: {per_second: 5, burst: 250}\n"},
		{name: "rate-zero", add: "  rate: {per_second: 0, burst: 0}\n",
			want: []string{"bitrix.rate.per_second: 0 is out of range", "bitrix.rate.burst: 0 is out of range"}},
		{name: "no-client-id", mode: "  app: {client_secret: x}\n",
			want: []string{"bitrix.app.client_id: not set"}},
		{name: "no-client-secret", mode: "  app: {client_id: local.x}\n",
			want: []string{"bitrix.app.client_secret: not set"}},
		{name: "webhook-ok", mode: "  mode: webhook\n  webhook: {url: 'https://c.bitrix24.ru/rest/1/abcdef/'}\n"},
		{name: "webhook-with-method", mode: "  mode: webhook\n  webhook: {url: 'https://c.bitrix24.ru/rest/1/hooksecret/profile.json'}\n",
			want: []string{"bitrix.webhook.url: its path is not /rest/<user id>/<secret>/"}},
		{name: "webhook-missing", mode: "  mode: webhook\n",
			want: []string{"bitrix.webhook.url: not set"}},
		{name: "bad-mode", mode: "  mode: oauth\n", want: []string{`bitrix.mode: "oauth" is not a mode`}},
		{name: "users", add: "  users:\n    - {extension: '101', user_id: 1}\n    - {extension: '101', user_id: 2}\n    - {extension: 'x1', user_id: 0}\n",
			want: []string{`bitrix.users[1].extension: "101" is mapped twice`, `bitrix.users[2].extension: "x1" is not an extension`, "bitrix.users[2].user_id: 0 is not a Bitrix24 user id"}},
		{name: "enums", add: "  calls: {internal: drop, show_card: always, finish_user: boss, number_format: intl}\n  missed: {responsible: anyone}\n",
			want: []string{"bitrix.calls.internal", "bitrix.calls.show_card", "bitrix.calls.finish_user", "bitrix.calls.number_format", "bitrix.missed.responsible"}},
		{name: "missed-default-needs-user", add: "  missed: {responsible: default}\n",
			want: []string{"bitrix.missed.default_user_id: not set, but missed.responsible is default"}},
		{name: "lines", add: "  missed: {lines: [{line: 'abc', user_id: 0}]}\n  leads: {lines: [{line: '+7495', source: 'a b'}]}\n  skip: {numbers: ['12-34'], only_lines: ['+7']}\n",
			want: []string{"bitrix.missed.lines[0].line", "bitrix.missed.lines[0].user_id", "bitrix.leads.lines[0].source", "bitrix.skip.numbers[0]"}},
		{name: "recordings-both", add: "  recordings: {folder: /rec, url_base: 'https://pbx/rec/'}\n",
			want: []string{"bitrix.recordings.url_base: set together with recordings.folder"}},
		{name: "recordings-relative", add: "  recordings: {folder: rec}\n",
			want: []string{`bitrix.recordings.folder: "rec" is not an absolute path`}},
		{name: "listen", add: "  listen: '8080'\n", want: []string{`bitrix.listen: "8080" has no host`}},
		{name: "public-url", add: "  public_url: connector.example.com\n", want: []string{`bitrix.public_url: "connector.example.com" is not a URL`}},
		{name: "refresh-too-often", add: "  users_refresh: 5s\n", want: []string{"bitrix.users_refresh: 5s is too often"}},
		{name: "ring-timeout", add: "  click_to_call: {ring_timeout: 1s}\n", want: []string{"bitrix.click_to_call.ring_timeout: 1s is out of range"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := bitrixApp
			if c.mode != "" {
				file = minimal + "crm: bitrix\nbitrix:\n  portal: https://company.bitrix24.ru\n" + c.mode
			}
			file += c.add
			_, err := Parse([]byte(file), nil)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want problems %q, got none", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			for _, secret := range []string{"hooksecret", "app-secret-value"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}
