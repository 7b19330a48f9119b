package bus

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sirupsen/logrus"
)

// Config configures a Bus. Only URL is required; every zero value means the default named on the
// field.
type Config struct {
	// URL is the AMQP URL, amqp://user:pass@host:5672/vhost. The password is never logged and
	// never appears in an error: see RedactURL.
	URL string

	// Name is the connection name shown by rabbitmqctl and the management UI and the prefix of
	// consumer tags, so an operator can tell which service holds which connection. Default
	// "ringbridge".
	Name string

	// Prefetch is the per-consumer QoS (unacknowledged deliveries the broker pushes ahead) used
	// when a QueueSpec does not set its own. Default 32.
	Prefetch int

	// ReconnectMin and ReconnectMax bound the exponential backoff between connection attempts.
	// Defaults 250ms and 30s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// DialTimeout bounds the TCP connect and the AMQP handshake of one attempt. Default 5s.
	DialTimeout time.Duration

	// Heartbeat is the AMQP heartbeat; a dead peer is noticed after about two of them.
	// Default 10s.
	Heartbeat time.Duration

	// PublishBuffer is how many messages may wait locally to be sent while the broker is
	// unreachable (or slower than the callers). When it is full, Publish blocks until its ctx is
	// done: back-pressure, never a silent drop. Default 1024.
	PublishBuffer int

	// MaxInFlight is how many published messages may await their confirm at once. Default 512.
	MaxInFlight int

	// RetryDelays are the TTLs of the retry queues Q.retry.1..N of a consumer queue Q, in order;
	// their count is the number of retries before a message is parked. A QueueSpec may override
	// it. Default 1s, 5s, 30s, 2m.
	RetryDelays []time.Duration

	// Exchanges are declared on every (re)connection. Default StandardExchanges().
	Exchanges []Exchange

	// Logger receives the package's log lines. Default: a logger that discards.
	Logger logrus.FieldLogger

	// Registerer receives the metrics; nil means they are kept but not registered.
	Registerer prometheus.Registerer
}

// DefaultRetryDelays are the retry queue TTLs used when Config.RetryDelays is empty: quick enough
// to ride out a blip, long enough at the end to outlast a CRM outage of a couple of minutes.
func DefaultRetryDelays() []time.Duration {
	return []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "ringbridge"
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 32
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 250 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 30 * time.Second
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.PublishBuffer <= 0 {
		c.PublishBuffer = 1024
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 512
	}
	if len(c.RetryDelays) == 0 {
		c.RetryDelays = DefaultRetryDelays()
	}
	if c.Exchanges == nil {
		c.Exchanges = StandardExchanges()
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
	return c
}

// parseURL validates the URL and returns the broker's host:port for messages. Its errors never
// wrap the parser's error: url.Error repeats the whole URL, password included.
func parseURL(raw string) (amqp.URI, string, error) {
	if raw == "" {
		return amqp.URI{}, "", errors.New("bus: no AMQP URL configured")
	}
	u, err := amqp.ParseURI(raw)
	if err != nil {
		red := newRedactor(raw)
		return amqp.URI{}, "", fmt.Errorf("bus: invalid AMQP URL %q: %s", RedactURL(raw), red.String(err.Error()))
	}
	return u, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)), nil
}

func validateDelays(ds []time.Duration) error {
	for i, d := range ds {
		if d < time.Millisecond {
			return fmt.Errorf("retry delay %d is %s: must be at least 1ms", i+1, d)
		}
	}
	return nil
}
