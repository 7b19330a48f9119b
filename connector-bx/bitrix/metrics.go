package bitrix

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec // HTTP requests to the portal by kind (single, batch, upload) and outcome
	commands  *prometheus.CounterVec // REST commands by method and outcome, whether sent alone or in a batch
	batchSize prometheus.Histogram
	wait      prometheus.Histogram // from a command's submission to its request
	throttled prometheus.Counter
	refreshes *prometheus.CounterVec
	paused    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_bitrix_requests_total",
			Help: "HTTP requests sent to the Bitrix24 portal, by kind (single, batch, upload) and outcome (ok or the error code).",
		}, []string{"kind", "outcome"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_bitrix_commands_total",
			Help: "REST commands (methods called) by method and outcome, alone or inside a batch.",
		}, []string{"method", "outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringbridge_connector_bx_bitrix_commands_per_request",
			Help:    "Commands carried by one HTTP request: 1 when not throttled, up to 50 in a batch.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 40, 50},
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringbridge_connector_bx_bitrix_command_wait_seconds",
			Help:    "Time a command waited for the rate limit before its request was sent.",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_bitrix_query_limit_exceeded_total",
			Help: "Answers 503 QUERY_LIMIT_EXCEEDED (the portal's request-intensity limit).",
		}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_bitrix_token_refreshes_total",
			Help: "OAuth access-token refreshes by outcome.",
		}, []string{"outcome"}),
		paused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_bitrix_method_paused_total",
			Help: "Methods blocked by Bitrix24's operating-time limit (429 OPERATION_TIME_LIMIT).",
		}, []string{"method"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.commands, m.batchSize, m.wait, m.throttled, m.refreshes, m.paused} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err) // a programming error: two different collectors with one name
				}
			}
		}
	}
	return m
}

// outcome is the label of an error: its code, its kind, or ok.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Code != "" {
			return e.Code
		}
		if e.Status != 0 {
			return "http_" + strconv.Itoa(e.Status)
		}
		return e.Kind.String()
	}
	return "error"
}
