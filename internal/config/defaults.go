package config

import "time"

// Default values, applied before the file is read so that a key the file sets wins and a key it
// leaves out keeps its default.
const (
	DefaultAMIPort        = 5038
	DefaultAMIAddress     = "127.0.0.1:5038"
	DefaultAMIAuth        = "md5"
	DefaultAMIEvents      = "call,cdr,agent,dialplan"
	DefaultPingInterval   = 10 * time.Second
	DefaultPingTimeout    = 5 * time.Second
	DefaultReconnectMin   = 1 * time.Second
	DefaultReconnectMax   = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second

	DefaultExtensionChannel = `^(?:PJSIP|SIP|IAX2)/(?P<num>\d{2,6})-[0-9a-f]+$`
	DefaultTrunkChannel     = `^(?:PJSIP|SIP|IAX2)/(?P<num>[A-Za-z][^-]*)-[0-9a-f]+$`
	DefaultExtensionNumber  = "channel"
	DefaultCountry          = "RU"

	DefaultRabbitMQURL      = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultRabbitMQPrefetch = 50
	DefaultRedisAddress     = "127.0.0.1:6379"
	DefaultLogLevel         = "info"
	DefaultLogFormat        = "json"
)

// Defaults returns a Config holding every default; the classify defaults are those of
// shared/docs/call-events.md "How channels are classified" (a FreePBX-style dialplan).
func Defaults() *Config {
	return &Config{
		Schema: Version,
		AMI: AMI{
			Address:        DefaultAMIAddress,
			Auth:           DefaultAMIAuth,
			Events:         DefaultAMIEvents,
			PingInterval:   DefaultPingInterval,
			PingTimeout:    DefaultPingTimeout,
			ReconnectMin:   DefaultReconnectMin,
			ReconnectMax:   DefaultReconnectMax,
			ConnectTimeout: DefaultConnectTimeout,
		},
		Classify: Classify{
			ExtensionChannels: []string{DefaultExtensionChannel},
			ExtensionNumber:   DefaultExtensionNumber,
			TrunkChannels:     []string{DefaultTrunkChannel},
			InboundContexts:   []string{"from-trunk", "from-pstn"},
			InternalContexts:  []string{"from-internal"},
			Country:           DefaultCountry,
		},
		RabbitMQ:   RabbitMQ{URL: DefaultRabbitMQURL, Prefetch: DefaultRabbitMQPrefetch},
		Redis:      Redis{Address: DefaultRedisAddress},
		Log:        Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Bitrix:     DefaultBitrix(),
		Amo:        DefaultAmo(),
		Supervisor: DefaultSupervisor(),
	}
}

// Services names every ringbridge service; each may have an http.<name> listener, and these names
// get environment overrides (RINGBRIDGE_HTTP_AMI_GATEWAY_LISTEN) even when the file has no entry.
func Services() []string {
	return []string{"ami-gateway", "connector-bx", "connector-amo", "admin", "supervisor", "testsystem"}
}
