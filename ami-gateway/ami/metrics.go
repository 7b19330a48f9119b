package ami

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of one Client. With a nil Registerer they are kept but never registered.
type metrics struct {
	events        prometheus.Counter
	responses     prometheus.Counter
	bytes         prometheus.Counter
	parseErrors   *prometheus.CounterVec
	missingBlank  prometheus.Counter
	connects      *prometheus.CounterVec
	reconnects    prometheus.Counter
	overflows     prometheus.Counter
	unmatched     prometheus.Counter
	connected     prometheus.Gauge
	queueCapacity prometheus.Gauge
	queueDepth    prometheus.GaugeFunc
	actionLatency *prometheus.HistogramVec
}

// parse error kinds as metric labels.
var parseErrorKinds = []struct {
	err   error
	label string
}{
	{ErrMalformedLine, "malformed_line"},
	{ErrLineTooLong, "line_too_long"},
	{ErrPacketTooLarge, "packet_too_large"},
	{ErrTruncated, "truncated"},
	{ErrBadBanner, "bad_banner"},
}

func kindLabel(kind error) string {
	for _, k := range parseErrorKinds {
		if k.err == kind {
			return k.label
		}
	}
	return "other"
}

func newMetrics(reg prometheus.Registerer, depth func() float64) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ami_events_read_total", Help: "AMI event packets read from Asterisk.",
		}),
		responses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ami_responses_read_total", Help: "AMI response packets read from Asterisk.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ami_read_bytes_total", Help: "Bytes read from the AMI socket.",
		}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ami_parse_errors_total", Help: "Bad AMI input, by kind; the packet was skipped (truncated: the connection ended mid-packet).",
		}, []string{"kind"}),
		missingBlank: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ami_missing_blank_line_total", Help: "Event packets split because a second Event line came before the blank line.",
		}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ami_connect_attempts_total", Help: "AMI connection attempts, by result (ok, auth_failed, login_rejected, error).",
		}, []string{"result"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ami_reconnects_total", Help: "AMI sessions established after the first one.",
		}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ami_event_queue_overflows_total", Help: "Times the event queue was full, so the connection was dropped for a resync.",
		}),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ami_unmatched_responses_total", Help: "AMI responses whose ActionID no action waited for (e.g. it timed out).",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ami_connected", Help: "1 while an AMI session is logged in.",
		}),
		queueCapacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ami_event_queue_capacity", Help: "Events the queue holds before the overflow policy applies.",
		}),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ami_event_queue_depth", Help: "Events waiting for the consumer.",
		}, depth),
		actionLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ami_action_duration_seconds",
			Help:    "Time from sending an AMI action to its complete reply (event lists: the Complete event).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"action"}),
	}
	for _, k := range parseErrorKinds {
		m.parseErrors.WithLabelValues(k.label)
	}
	for _, r := range []string{"ok", "auth_failed", "login_rejected", "error"} {
		m.connects.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	all := []prometheus.Collector{
		m.events, m.responses, m.bytes, m.parseErrors, m.missingBlank, m.connects, m.reconnects,
		m.overflows, m.unmatched, m.connected, m.queueCapacity, m.queueDepth, m.actionLatency,
	}
	for i, c := range all {
		if err := reg.Register(c); err != nil {
			for _, done := range all[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}
