package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const minimal = `schema: 1
pbx: pbx1
ami:
  address: 10.0.0.5:5038
  username: crm
  secret: s3cr3t-ami
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ringbridge.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadMinimalAppliesDefaults(t *testing.T) {
	cfg, err := Load(writeFile(t, minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.PBX = "pbx1"
	want.AMI.Address = "10.0.0.5:5038"
	want.AMI.Username = "crm"
	want.AMI.Secret = "s3cr3t-ami"
	got := *cfg
	got.Source = Source{}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, *want)
	}
	if cfg.Source.FileSchema != 1 || cfg.Source.Path == "" {
		t.Fatalf("source = %+v", cfg.Source)
	}
}

// The defaults must be exactly those of shared/docs/call-events.md "How channels are classified".
func TestDefaultsMatchCallEventsDoc(t *testing.T) {
	c := Defaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"extension_channels", c.Classify.ExtensionChannels, []string{`^(?:PJSIP|SIP|IAX2)/(?P<num>\d{2,6})-[0-9a-f]+$`}},
		{"extension_number", c.Classify.ExtensionNumber, "channel"},
		{"trunk_channels", c.Classify.TrunkChannels, []string{`^(?:PJSIP|SIP|IAX2)/(?P<num>[A-Za-z][^-]*)-[0-9a-f]+$`}},
		{"inbound_contexts", c.Classify.InboundContexts, []string{"from-trunk", "from-pstn"}},
		{"internal_contexts", c.Classify.InternalContexts, []string{"from-internal"}},
		{"country", c.Classify.Country, "RU"},
		{"ami port", c.AMI.Address, "127.0.0.1:5038"},
		{"ami auth", c.AMI.Auth, "md5"},
		{"ami events", c.AMI.Events, "call,cdr,agent,dialplan"},
		{"ping", []time.Duration{c.AMI.PingInterval, c.AMI.PingTimeout}, []time.Duration{10 * time.Second, 5 * time.Second}},
		{"reconnect", []time.Duration{c.AMI.ReconnectMin, c.AMI.ReconnectMax}, []time.Duration{time.Second, 30 * time.Second}},
		{"connect timeout", c.AMI.ConnectTimeout, 5 * time.Second},
		{"rabbitmq url", c.RabbitMQ.URL.Reveal(), "amqp://guest:guest@127.0.0.1:5672/"},
		{"prefetch", c.RabbitMQ.Prefetch, 50},
		{"redis", c.Redis.Address, "127.0.0.1:6379"},
		{"log", []string{c.Log.Format, c.Log.Level}, []string{"json", "info"}},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestLoadFullFile(t *testing.T) {
	const full = `schema: 1
pbx: office-2
ami:
  address: "[::1]:5039"
  username: crm
  secret: 0123
  auth: plain
  events: call,cdr
  ping_interval: 20s
  ping_timeout: 1500ms
  reconnect_min: 2s
  reconnect_max: 1m
  connect_timeout: 3s
classify:
  extension_channels: ['^SIP/(?P<num>\d+)-']
  extension_number: callerid
  trunk_channels: []
  inbound_contexts: [in]
  internal_contexts: [out]
  country: ""
rabbitmq:
  url: amqps://u:p@mq:5671/vh
  prefetch: 10
redis:
  address: redis:6380
  password: rp
  db: 3
log:
  level: debug
  format: text
http:
  admin:
    listen: ":8080"
`
	cfg, err := Load(writeFile(t, full), nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"secret keeps leading zero", cfg.AMI.Secret.Reveal(), "0123"},
		{"ipv6 address", cfg.AMI.Address, "[::1]:5039"},
		{"duration ms", cfg.AMI.PingTimeout, 1500 * time.Millisecond},
		{"duration m", cfg.AMI.ReconnectMax, time.Minute},
		{"empty list stays empty", len(cfg.Classify.TrunkChannels), 0},
		{"empty country", cfg.Classify.Country, ""},
		{"prefetch", cfg.RabbitMQ.Prefetch, 10},
		{"redis db", cfg.Redis.DB, 3},
		{"http map", cfg.HTTP["admin"].Listen, ":8080"},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestLoadProblems(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  map[string]string
		want []string // each must appear in the error
		not  []string // none may appear (secret values)
	}{
		{
			name: "unknown key with suggestion",
			file: minimal + "  adress: x:1\n",
			want: []string{`line 7: ami.adress: unknown key (did you mean "address"?)`},
		},
		{
			name: "old key name in a current file",
			file: minimal + "  password: x\n",
			want: []string{`line 7: ami.password: unknown key: it is now ami.secret (since schema 1)`},
		},
		{
			name: "unknown top-level key without close match",
			file: minimal + "zzz: 1\n",
			want: []string{`zzz: unknown key (known here: ami, amo, bitrix, classify, crm, http, log, pbx, rabbitmq, redis, schema, supervisor)`},
		},
		{
			name: "invalid regexp",
			file: minimal + "classify:\n  extension_channels: ['^(PJSIP/(\\d+)']\n",
			want: []string{`classify.extension_channels[0]: "^(PJSIP/(\d+)" is not a valid regular expression (missing closing )): fix the pattern`},
		},
		{
			name: "extension pattern without num group",
			file: minimal + "classify:\n  extension_channels: ['^SIP/(\\d+)-']\n",
			want: []string{`classify.extension_channels[0]: "^SIP/(\d+)-" has no named group num`},
		},
		{
			name: "address without port",
			file: strings.Replace(minimal, "10.0.0.5:5038", "pbx", 1),
			want: []string{`ami.address: "pbx" has no port: write host:port, e.g. pbx:5038`},
		},
		{
			name: "pbx unusable in routing key",
			file: strings.Replace(minimal, "pbx: pbx1", "pbx: pbx.1", 1),
			want: []string{`pbx: "pbx.1" cannot be used in a routing key: use only letters, digits, - and _`},
		},
		{
			name: "wildcard pbx",
			file: strings.Replace(minimal, "pbx: pbx1", "pbx: 'pbx*'", 1),
			want: []string{`pbx: "pbx*" cannot be used in a routing key`},
		},
		{
			name: "duration without unit",
			file: minimal + "  ping_interval: 10\n",
			want: []string{`line 7: ami.ping_interval: "10" has no unit: write e.g. 10s`},
		},
		{
			name: "not a number",
			file: minimal + "rabbitmq:\n  prefetch: many\n",
			want: []string{`rabbitmq.prefetch: "many" is not a whole number`},
		},
		{
			name: "list written as scalar",
			file: minimal + "classify:\n  inbound_contexts: from-trunk\n",
			want: []string{`classify.inbound_contexts: expected a list, got the value "from-trunk": write a list, e.g. [from-trunk]`},
		},
		{
			name: "section written as scalar",
			file: "schema: 1\npbx: p\nami: yes\n",
			want: []string{`ami: expected a mapping of keys`},
		},
		{
			name: "duplicate key",
			file: minimal + "pbx: again\n",
			want: []string{`pbx: appears twice (lines 2 and 7): keep one`},
		},
		{
			name: "every problem at once",
			file: "schema: 1\npbx: ''\nami:\n  auth: sha\n  events: call,cdrr\nlog:\n  level: loud\n  format: xml\n",
			want: []string{
				"pbx: not set", "ami.username: not set", "ami.secret: not set",
				`ami.auth: "sha" is not an auth method`, `ami.events: "cdrr" is not an AMI event class (did you mean "cdr"?)`,
				`log.level: "loud" is not a level`, `log.format: "xml" is not a format`,
			},
		},
		{
			name: "ping timeout longer than interval",
			file: minimal + "  ping_interval: 2s\n  ping_timeout: 3s\n",
			want: []string{"ami.ping_timeout: 3s is longer than ping_interval 2s"},
		},
		{
			name: "events without call",
			file: minimal + "  events: cdr\n",
			want: []string{`ami.events: "cdr" leaves out call events`},
		},
		{
			name: "lowercase country",
			file: minimal + "classify:\n  country: ru\n",
			want: []string{`classify.country: "ru" is not a country code: write RU`},
		},
		{
			name: "context in both lists",
			file: minimal + "classify:\n  inbound_contexts: [a]\n  internal_contexts: [a]\n",
			want: []string{`classify.internal_contexts: "a" is also in inbound_contexts`},
		},
		{
			name: "bad rabbitmq url never shows the password",
			file: minimal + "rabbitmq:\n  url: 'amqp://user:pa%zzss@host:5672/'\n",
			want: []string{"rabbitmq.url: is not a valid URL"},
			not:  []string{"pa%zzss", "zz"},
		},
		{
			name: "rabbitmq url with wrong scheme never shows the password",
			file: minimal + "rabbitmq:\n  url: 'http://user:topsecret@host/'\n",
			want: []string{`rabbitmq.url: scheme "http" is not amqp or amqps`},
			not:  []string{"topsecret"},
		},
		{
			name: "secret as a list never shows the value",
			file: "schema: 1\npbx: p\nami:\n  username: u\n  secret: [topsecret]\n",
			want: []string{"ami.secret: expected a single value, got a list"},
			not:  []string{"topsecret"},
		},
		{
			name: "listener port only",
			file: minimal + "http:\n  admin:\n    listen: '8080'\n",
			want: []string{`http.admin.listen: "8080" has no host: write :8080`},
		},
		{
			name: "too many values",
			file: "schema: 1\npbx: p\nami:\n  username: u\n  secret: s\nclassify:\n  trunk_channels: [" + strings.Repeat("x,", maxNodes) + "x]\n",
			want: []string{"classify.trunk_channels[", "the file is too large or nests too deep"},
		},
		{
			name: "env value is read and named",
			file: minimal,
			env:  map[string]string{"RINGBRIDGE_REDIS_ADDRESS": "redis", "RINGBRIDGE_AMI_PING_INTERVAL": "ten"},
			want: []string{
				`redis.address (set by RINGBRIDGE_REDIS_ADDRESS): "redis" has no port`,
				`RINGBRIDGE_AMI_PING_INTERVAL: "ten" is not a duration`,
			},
		},
		{
			name: "env list must be a YAML list",
			file: minimal,
			env:  map[string]string{"RINGBRIDGE_CLASSIFY_INBOUND_CONTEXTS": "a, b"},
			want: []string{"RINGBRIDGE_CLASSIFY_INBOUND_CONTEXTS: expected a list"},
		},
		{
			name: "bad env secret url not shown",
			file: minimal,
			env:  map[string]string{"RINGBRIDGE_RABBITMQ_URL": "ftp://u:envpass@h/"},
			want: []string{`rabbitmq.url (set by RINGBRIDGE_RABBITMQ_URL): scheme "ftp"`},
			not:  []string{"envpass"},
		},
		{
			name: "newer schema",
			file: "schema: 7\n",
			want: []string{"config schema 7 is newer than this build knows (1): update ringbridge, or restore the backup the update made"},
		},
		{
			name: "schema not a number",
			file: "schema: one\n",
			want: []string{`schema: the value "one" is not a schema version: write schema: 1`},
		},
		{
			name: "two documents",
			file: minimal + "---\npbx: other\n",
			want: []string{"more than one YAML document"},
		},
		{
			name: "not YAML",
			file: "pbx: [unclosed\n",
			want: []string{"config is not valid YAML: line"},
		},
		{
			name: "root is a list",
			file: "- pbx\n",
			want: []string{"config must be a mapping of sections"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file)
			cfg, err := Load(path, envMap(tc.env))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config "+path+": ") {
				t.Errorf("error does not name the file: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, n := range append(tc.not, "s3cr3t-ami") {
				if strings.Contains(msg, n) {
					t.Errorf("error shows %q:\n%s", n, msg)
				}
			}
		})
	}
}

func TestLoadProblemsAreListed(t *testing.T) {
	_, err := Load(writeFile(t, "schema: 1\npbx: ''\n"), nil)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v is not a Problems", err)
	}
	paths := map[string]bool{}
	for _, p := range ps {
		paths[p.Path] = true
	}
	for _, want := range []string{"pbx", "ami.username", "ami.secret"} {
		if !paths[want] {
			t.Errorf("no problem at %s in %v", want, ps)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadOldSchemaMigratesInMemory(t *testing.T) {
	const v0 = "pbx: pbx1\nami:\n  address: pbx:5038\n  username: crm\n  password: old-secret\n"
	path := writeFile(t, v0)
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AMI.Secret.Reveal() != "old-secret" || cfg.Schema != Version || cfg.Source.FileSchema != 0 {
		t.Fatalf("secret %q schema %d file schema %d", cfg.AMI.Secret.Reveal(), cfg.Schema, cfg.Source.FileSchema)
	}
	after, _ := os.ReadFile(path)
	if string(after) != v0 {
		t.Fatalf("Load changed the file:\n%s", after)
	}
}

func TestLoadYAMLFeatures(t *testing.T) {
	cases := []struct {
		name  string
		file  string
		check func(*Config) bool
	}{
		{"anchors and merge keys", minimal + "http:\n  admin: &l {listen: ':1'}\n  supervisor:\n    <<: *l\n    listen: ':2'\n",
			func(c *Config) bool { return c.HTTP["admin"].Listen == ":1" && c.HTTP["supervisor"].Listen == ":2" }},
		{"null section keeps defaults", minimal + "classify:\nlog: ~\n",
			func(c *Config) bool { return c.Classify.Country == "RU" && c.Log.Level == "info" }},
		{"comments only around", "# top\n" + minimal + "# end\n",
			func(c *Config) bool { return c.PBX == "pbx1" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.file), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Fatalf("unexpected config %+v", cfg)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"RINGBRIDGE_PBX":                         "pbx9",
		"RINGBRIDGE_AMI_SECRET":                  "from-env: #not a comment",
		"RINGBRIDGE_AMI_PING_INTERVAL":           "30s",
		"RINGBRIDGE_RABBITMQ_URL":                "amqp://a:b@mq:5672/",
		"RINGBRIDGE_RABBITMQ_PREFETCH":           "7",
		"RINGBRIDGE_CLASSIFY_INBOUND_CONTEXTS":   "[in-a, in-b]",
		"RINGBRIDGE_CLASSIFY_EXTENSION_CHANNELS": `['^SIP/(?P<num>\d{2,6})-']`,
		"RINGBRIDGE_HTTP_AMI_GATEWAY_LISTEN":     ":9101",
		"RINGBRIDGE_REDIS_DB":                    "",
	}
	cfg, err := Load(writeFile(t, minimal), envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"top-level", cfg.PBX, "pbx9"},
		{"secret verbatim", cfg.AMI.Secret.Reveal(), "from-env: #not a comment"},
		{"duration", cfg.AMI.PingInterval, 30 * time.Second},
		{"url", cfg.RabbitMQ.URL.Reveal(), "amqp://a:b@mq:5672/"},
		{"int", cfg.RabbitMQ.Prefetch, 7},
		{"list", cfg.Classify.InboundContexts, []string{"in-a", "in-b"}},
		{"list with comma inside", cfg.Classify.ExtensionChannels, []string{`^SIP/(?P<num>\d{2,6})-`}},
		{"map entry not in file", cfg.HTTP["ami-gateway"].Listen, ":9101"},
		{"empty means unset", cfg.Redis.DB, 0},
		{"file value kept", cfg.AMI.Username, "crm"},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	t.Run("source lists names only", func(t *testing.T) {
		joined := strings.Join(cfg.Source.Env, ",")
		if !strings.Contains(joined, "RINGBRIDGE_AMI_SECRET") || strings.Contains(joined, "from-env") {
			t.Fatalf("Source.Env = %v", cfg.Source.Env)
		}
	})
}

func TestEnvVarNames(t *testing.T) {
	vars := EnvVars(nil)
	want := map[string]string{
		"RINGBRIDGE_PBX":                         "pbx",
		"RINGBRIDGE_AMI_SECRET":                  "ami.secret",
		"RINGBRIDGE_AMI_PING_INTERVAL":           "ami.ping_interval",
		"RINGBRIDGE_RABBITMQ_URL":                "rabbitmq.url",
		"RINGBRIDGE_REDIS_PASSWORD":              "redis.password",
		"RINGBRIDGE_CLASSIFY_EXTENSION_CHANNELS": "classify.extension_channels",
		"RINGBRIDGE_LOG_LEVEL":                   "log.level",
		"RINGBRIDGE_HTTP_CONNECTOR_BX_LISTEN":    "http.connector-bx.listen",
	}
	for name, path := range want {
		t.Run(name, func(t *testing.T) {
			if vars[name] != path {
				t.Fatalf("EnvVars()[%s] = %q, want %q", name, vars[name], path)
			}
		})
	}
	t.Run("no schema override", func(t *testing.T) {
		if _, ok := vars["RINGBRIDGE_SCHEMA"]; ok {
			t.Fatal("RINGBRIDGE_SCHEMA exists")
		}
	})
	t.Run("every leaf field has one", func(t *testing.T) {
		// The leaves as the YAML encoder sees them (a different walk than EnvVars'), less schema,
		// plus http.<service>.listen for each service.
		raw, err := yaml.Marshal(Defaults())
		if err != nil {
			t.Fatal(err)
		}
		var tree map[string]any
		if err := yaml.Unmarshal(raw, &tree); err != nil {
			t.Fatal(err)
		}
		var leaves []string
		var walk func(prefix string, v any)
		walk = func(prefix string, v any) {
			if m, ok := v.(map[string]any); ok {
				for k, e := range m {
					walk(strings.TrimPrefix(prefix+"."+k, "."), e)
				}
				return
			}
			leaves = append(leaves, prefix)
		}
		walk("", tree)
		want := len(leaves) - 1 + len(Services())
		if len(vars) != want {
			t.Fatalf("%d variables, want %d (leaves %v): %v", len(vars), want, leaves, vars)
		}
	})
}

func TestValidateSectionsAlone(t *testing.T) {
	c := Defaults().Classify
	if err := c.Validate(); err != nil {
		t.Fatalf("default classify invalid: %v", err)
	}
	c.ExtensionChannels = []string{"("}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "classify.extension_channels[0]") {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeSkipsValidation(t *testing.T) {
	cfg, err := Decode([]byte("pbx: pbx1\nclassify:\n  country: RU\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Classify.Validate() != nil || cfg.Validate() == nil {
		t.Fatal("want classify valid and the whole config invalid (no AMI account)")
	}
	if _, err := Decode([]byte("pbx: pbx1\nclasify: {}\n"), nil); err == nil {
		t.Fatal("Decode accepted an unknown key")
	}
}
