package serving

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests   *prometheus.CounterVec
	rows       *prometheus.CounterVec
	rejections *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	ood        *prometheus.CounterVec
	extraction *prometheus.CounterVec
	psi        *prometheus.GaugeVec
	loads      prometheus.Counter

	byEndpoint sync.Map // endpoint ID → *endpointMetrics
}

// endpointMetrics are an endpoint's per-request series, looked up once.
type endpointMetrics struct {
	ok      prometheus.Counter
	rows    prometheus.Counter
	latency prometheus.Observer
}

func (m *metrics) of(endpointID string) *endpointMetrics {
	if v, ok := m.byEndpoint.Load(endpointID); ok {
		return v.(*endpointMetrics)
	}
	em := &endpointMetrics{ok: m.requests.WithLabelValues(endpointID, "ok"), rows: m.rows.WithLabelValues(endpointID),
		latency: m.latency.WithLabelValues(endpointID)}
	v, _ := m.byEndpoint.LoadOrStore(endpointID, em)
	return v.(*endpointMetrics)
}

// Metric labels carry endpoint IDs (random, not names) so no tenant's
// naming leaks to the operator's dashboards.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_predict_requests_total",
			Help: "Prediction requests by endpoint and outcome (ok or the rejecting guard)."}, []string{"endpoint", "outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_predict_rows_total",
			Help: "Rows scored by endpoint."}, []string{"endpoint"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_guard_rejections_total",
			Help: "Requests refused by guard."}, []string{"endpoint", "guard"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rampart_predict_duration_seconds",
			Help: "Prediction latency inside the service (guards, model, audit).", Buckets: prometheus.ExponentialBuckets(25e-6, 2, 18)},
			[]string{"endpoint"}),
		ood: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_ood_rows_total",
			Help: "Rows scored out of distribution (INF-5), flagged or rejected."}, []string{"endpoint", "action"}),
		extraction: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_extraction_alerts_total",
			Help: "Principals newly flagged by the extraction monitor (INF-3)."}, []string{"endpoint"}),
		psi: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_drift_psi",
			Help: "Population stability index of the last closed window (INF-7)."}, []string{"endpoint", "kind"}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{Name: "rampart_model_loads_total",
			Help: "Verified model loads (MODEL-1)."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.rows, m.rejections, m.latency, m.ood, m.extraction, m.psi, m.loads} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
