// Package config is ringbridge's one install-wide YAML file: its schema, loading with environment
// overrides, validation that names the bad field and the fix, and ordered migrations between schema
// versions.
package config

import "time"

// Version is the newest config schema this build knows. A file with a higher version is refused;
// a lower one is migrated (see migrate.go).
const Version = 1

// Config is the whole file. Each service reads the sections it needs.
type Config struct {
	// Schema is the file's schema version; Load migrates older files in memory, so a loaded Config
	// always says Version. It has no environment override: the file's shape is not a setting.
	Schema   int             `yaml:"schema" env:"-"`
	PBX      string          `yaml:"pbx"`
	AMI      AMI             `yaml:"ami"`
	Classify Classify        `yaml:"classify"`
	RabbitMQ RabbitMQ        `yaml:"rabbitmq"`
	Redis    Redis           `yaml:"redis"`
	Log      Log             `yaml:"log"`
	HTTP     map[string]HTTP `yaml:"http,omitempty"`
	// CRM names the connector this install runs: bitrix, amo, or empty while none is set up.
	CRM        string     `yaml:"crm"`
	Bitrix     Bitrix     `yaml:"bitrix"`
	Amo        Amo        `yaml:"amo"`
	Supervisor Supervisor `yaml:"supervisor"`

	// Source says where the values came from, for the startup log line; it is not part of the file.
	Source Source `yaml:"-"`
}

// Source records how a Config was loaded.
type Source struct {
	Path string // the file, empty when parsed from bytes
	// FileSchema is the schema the file was written in; below Version means Load migrated it in
	// memory and the file itself still waits for "migrate-config --in-place".
	FileSchema int
	// Env lists the RINGBRIDGE_* variables that overrode a value (names only, never values).
	Env []string
}

// AMI is how ami-gateway reaches Asterisk's Manager Interface.
type AMI struct {
	Address  string `yaml:"address"`  // host:port, 5038 by default
	Username string `yaml:"username"` // the manager.conf account
	Secret   Secret `yaml:"secret"`
	// Auth is "md5" (challenge-response; the secret never crosses the wire) or "plain".
	Auth string `yaml:"auth"`
	// Events is the Login event mask; ami-gateway needs call,cdr,agent,dialplan.
	Events         string        `yaml:"events"`
	PingInterval   time.Duration `yaml:"ping_interval"`
	PingTimeout    time.Duration `yaml:"ping_timeout"`
	ReconnectMin   time.Duration `yaml:"reconnect_min"`
	ReconnectMax   time.Duration `yaml:"reconnect_max"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Classify says which channel is an employee's phone, which leads outside, and which calls come
// from outside; see shared/docs/call-events.md "How channels are classified".
type Classify struct {
	// ExtensionChannels: regexps of employees' phone channels; the named group "num" is the extension.
	ExtensionChannels []string `yaml:"extension_channels"`
	// ExtensionNumber: "channel" (the num group) or "callerid" (the channel's CallerIDNum).
	ExtensionNumber string `yaml:"extension_number"`
	// TrunkChannels: regexps of channels that lead to the outside world.
	TrunkChannels []string `yaml:"trunk_channels"`
	// InboundContexts: a call whose first channel runs in one of these comes from outside.
	InboundContexts []string `yaml:"inbound_contexts"`
	// InternalContexts: a call whose first channel runs in one of these is placed by an employee.
	InternalContexts []string `yaml:"internal_contexts"`
	// Country: ISO 3166 code whose national numbers are normalized to E.164 (RU: 8XXXXXXXXXX -> +7...).
	Country string `yaml:"country"`
}

// RabbitMQ is the broker every service talks through.
type RabbitMQ struct {
	URL      Secret `yaml:"url"` // amqp://user:password@host:5672/vhost (holds a password)
	Prefetch int    `yaml:"prefetch"`
}

// Redis holds live call state, CRM ids, tokens, caches and sessions.
type Redis struct {
	Address  string `yaml:"address"`
	Password Secret `yaml:"password"`
	DB       int    `yaml:"db"`
}

// Log is the logger's setup.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json (containers) or text
}

// HTTP is one service's health/metrics listener, keyed by service name (ami-gateway, admin, ...).
type HTTP struct {
	Listen string `yaml:"listen"`
}
