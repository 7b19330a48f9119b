package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringbridge/ringbridge/ami-gateway/calls"
)

type metrics struct {
	amiEvents   prometheus.Counter
	published   *prometheus.CounterVec
	unroutable  prometheus.Counter
	resyncs     prometheus.Counter
	stateErrors prometheus.Counter
	originates  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, corr *calls.Correlator) (*metrics, error) {
	m := &metrics{
		amiEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_gateway_ami_events_total", Help: "AMI events handed to the correlator."}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_gateway_call_events_total", Help: "Call events published, by kind."}, []string{"kind"}),
		unroutable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_gateway_call_events_unroutable_total", Help: "Call events no queue was bound for."}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_gateway_resyncs_total", Help: "Resyncs with CoreShowChannels after an AMI (re)connection."}),
		stateErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringbridge_gateway_state_save_errors_total", Help: "Failed saves of the calls in progress to Redis."}),
		originates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_gateway_originates_total", Help: "Click-to-call originates, by result."}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	// The correlator is read only by the loop goroutine; the gauge reads a counter it keeps.
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ringbridge_gateway_calls_in_progress", Help: "Calls the gateway follows now."},
		func() float64 { return float64(corr.OpenCalls()) })
	for _, c := range []prometheus.Collector{m.amiEvents, m.published, m.unroutable, m.resyncs, m.stateErrors, m.originates, open} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway metrics: %w", err)
		}
	}
	return m, nil
}
