package consumers

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the consumer's Prometheus collectors.
type Metrics struct {
	Applied      *prometheus.CounterVec // by topic
	DeadLetters  *prometheus.CounterVec // by reason
	FlushSeconds prometheus.Histogram
	Fenced       prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visrec_consumer_applied_total", Help: "Messages applied to the models.",
		}, []string{"topic"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visrec_consumer_deadletter_total", Help: "Messages sent to the dead-letter topic.",
		}, []string{"reason"}),
		FlushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "visrec_updater_flush_seconds", Help: "Duration of a flush to the feature store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		Fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visrec_updater_fenced_total", Help: "Flushes refused because another updater owns a partition.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Applied, m.DeadLetters, m.FlushSeconds, m.Fenced)
	}
	return m
}
