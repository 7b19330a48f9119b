package callflow

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	events     *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	skipped    *prometheus.CounterVec
	registered prometheus.Counter
	shown      prometheus.Counter
	finished   *prometheus.CounterVec
	records    *prometheus.CounterVec
	leadErrors prometheus.Counter
	clicks     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_call_events_total",
			Help: "Call events handled, by kind and outcome (ok, or the kind of error).",
		}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ringbridge_connector_bx_call_event_seconds",
			Help:    "Time to apply one call event in Bitrix24 (the card shows on the ringing phone after the ringing event's time).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60},
		}, []string{"kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_call_events_skipped_total",
			Help: "Call events not sent to Bitrix24 by the rules (internal, skip lists), by reason.",
		}, []string{"reason"}),
		registered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_calls_registered_total",
			Help: "Calls registered in Bitrix24 (telephony.externalCall.register).",
		}),
		shown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_cards_shown_total",
			Help: "Call cards shown to an employee (telephony.externalCall.show).",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_calls_finished_total",
			Help: "Calls finished in Bitrix24, by STATUS_CODE.",
		}, []string{"status"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_recordings_total",
			Help: "Call recordings attached or given up.",
		}, []string{"outcome"}),
		leadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_lead_creation_errors_total",
			Help: "Registrations whose lead Bitrix24 did not create (LEAD_CREATION_ERROR).",
		}),
		clicks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_click_to_call_total",
			Help: "Click-to-call requests by result of the originate.",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.latency, m.skipped, m.registered, m.shown, m.finished, m.records, m.leadErrors, m.clicks} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err)
				}
			}
		}
	}
	return m
}
