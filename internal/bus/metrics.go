package bus

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of a Bus. Names are ringbridge_bus_*; consumer-side counters carry a queue label.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	published  prometheus.Counter
	confirmed  prometheus.Counter
	nacked     prometheus.Counter
	unroutable prometheus.Counter
	reconnects prometheus.Counter
	consumed   *prometheus.CounterVec
	retried    *prometheus.CounterVec
	parked     *prometheus.CounterVec
	requeued   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, buffered func() float64) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "ringbridge", Subsystem: "bus", Name: name, Help: help})
	}
	perQueue := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "ringbridge", Subsystem: "bus", Name: name, Help: help}, []string{"queue"})
	}
	m := &metrics{
		reg:        reg,
		published:  counter("published_total", "Messages sent to the broker, re-sends after a connection loss included."),
		confirmed:  counter("confirmed_total", "Published messages the broker confirmed."),
		nacked:     counter("nacked_total", "Published messages the broker refused (nack, or a channel error caused by the message)."),
		unroutable: counter("unroutable_total", "Published messages returned as unroutable."),
		reconnects: counter("reconnects_total", "Connections re-established after a loss."),
		consumed:   perQueue("consumed_total", "Deliveries handled successfully and acknowledged."),
		retried:    perQueue("retried_total", "Deliveries whose handler failed and that went to a retry queue."),
		parked:     perQueue("parked_total", "Deliveries moved to the parking queue."),
		requeued:   perQueue("requeued_total", "Parked messages moved back to their queue."),
	}
	bufferedGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "ringbridge", Subsystem: "bus", Name: "buffered",
		Help: "Messages waiting in the local buffer to be sent (broker unreachable or slower than the publishers).",
	}, buffered)
	all := []prometheus.Collector{m.published, m.confirmed, m.nacked, m.unroutable, m.reconnects,
		m.consumed, m.retried, m.parked, m.requeued, bufferedGauge}
	if reg == nil {
		return m
	}
	for i, c := range all {
		err := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			// A second Bus on the same registry (tests, a tool) shares the counters.
			all[i] = are.ExistingCollector
			switch x := are.ExistingCollector.(type) {
			case prometheus.Counter:
				m.replace(c, x)
			case *prometheus.CounterVec:
				m.replaceVec(c, x)
			}
			continue
		}
		if err == nil {
			m.collectors = append(m.collectors, c)
		}
	}
	return m
}

func (m *metrics) replace(old prometheus.Collector, c prometheus.Counter) {
	for _, p := range []*prometheus.Counter{&m.published, &m.confirmed, &m.nacked, &m.unroutable, &m.reconnects} {
		if *p == old {
			*p = c
		}
	}
}

func (m *metrics) replaceVec(old prometheus.Collector, c *prometheus.CounterVec) {
	for _, p := range []**prometheus.CounterVec{&m.consumed, &m.retried, &m.parked, &m.requeued} {
		if *p == old {
			*p = c
		}
	}
}

// unregister removes the collectors this Bus registered, so a closed Bus's gauge does not keep
// reporting and a new Bus can register its own.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}
