package guard

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// MonitorConfig tunes the extraction monitor (INF-3). Zero fields take the
// defaults in NewMonitor.
type MonitorConfig struct {
	// MinQueries before the distance test may flag (default 100).
	MinQueries int
	// Delta: the stream is flagged when the Shapiro-Wilk W of the
	// logarithms of its nearest-neighbour distances falls below it (default
	// 0.75) while its coverage is at least half the Coverage threshold. The
	// PRADA test alone (Juuti et al. 2019 use W < 0.90 on images) flags
	// natural tabular streams with discrete or sparse features (spambase:
	// W 0.35-0.86 for benign replays), so here it confirms rather than
	// decides.
	Delta float64
	// Window: distances kept per stream (default 500).
	Window int
	// MaxGrowth: points kept per class growing set (default 1000).
	MaxGrowth int
	// Coverage: flag when the mean per-feature PSI of the stream's inputs
	// against the training deciles exceeds it (default 0.2): synthetic
	// queries fill the input space unlike natural data.
	Coverage float64
	// Plausibility: flag when the mean of Query.Z2 over the last Window
	// queries exceeds it (default 1.5; natural rows average about 1):
	// synthetic queries spread into the tails of the training marginals.
	Plausibility float64
	// Boundary: flag when more than this fraction of the last Window
	// queries fall near a decision boundary (top probability < 0.6;
	// default 0.25): boundary-seeking queries.
	Boundary float64
	// VolumePerDay: flag beyond this many rows per day (default 50,000).
	VolumePerDay int64
	// CheckEvery runs the distance test every that many queries (default 10).
	CheckEvery int
}

// Monitor watches each principal's query stream on an endpoint for the
// shape of a model-extraction attack (INF-3): the PRADA test (Juuti et al.
// 2019) — the distribution of each new query's distance to the principal's
// earlier queries of the same predicted class is near normal for natural
// data and not for synthetic or boundary-seeking queries — plus volume,
// OOD-level and boundary-coverage signals.
type Monitor struct {
	cfg     MonitorConfig
	mu      sync.Mutex
	streams map[string]*stream
}

type stream struct {
	mu       sync.Mutex
	growth   map[int][][]float64
	thresh   map[int]float64
	gdists   map[int][]float64
	dists    []float64 // ring of the last Window min distances
	ood      []float64 // ring of OOD scores
	z2       []float64 // ring of plausibility values
	boundary []bool    // ring: near-boundary flags
	pos      int
	n        int
	day      string
	dayRows  int64
	flagged  bool
	reason   string
	inputs   *Drift // the stream's inputs against the training deciles
	seen     map[uint64]struct{}
}

// NewMonitor returns a monitor with cfg's zero fields defaulted.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.MinQueries <= 0 {
		cfg.MinQueries = 100
	}
	if cfg.Delta <= 0 {
		cfg.Delta = 0.6
	}
	if cfg.Window <= 0 {
		cfg.Window = 500
	}
	if cfg.MaxGrowth <= 0 {
		cfg.MaxGrowth = 1000
	}
	if cfg.Coverage <= 0 {
		cfg.Coverage = 0.2
	}
	if cfg.Plausibility <= 0 {
		cfg.Plausibility = 1.5
	}
	if cfg.Boundary <= 0 {
		cfg.Boundary = 0.25
	}
	if cfg.VolumePerDay <= 0 {
		cfg.VolumePerDay = 50_000
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 10
	}
	return &Monitor{cfg: cfg, streams: map[string]*stream{}}
}

// Query is one scored row as the monitor sees it.
type Query struct {
	X     []float64 // features in the monitor's normalised space
	Class int       // predicted class (0 for regression)
	PMax  float64   // top class probability (1 for regression)
	OOD   float64   // OOD score
	Z2    float64   // mean squared normal score of the numeric features (Schema.Plausibility)
}

// Verdict is the monitor's view of a stream after a batch.
type Verdict struct {
	Suspected bool
	New       bool // flagged by this batch
	Reason    string
	W         float64 // last Shapiro-Wilk W (1 before the test runs)
}

func (m *Monitor) stream(key string) *stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.streams[key]
	if !ok {
		s = &stream{growth: map[int][][]float64{}, thresh: map[int]float64{}, gdists: map[int][]float64{}, seen: map[uint64]struct{}{}}
		m.streams[key] = s
	}
	return s
}

// Flagged reports whether key's stream is flagged.
func (m *Monitor) Flagged(key string) (bool, string) {
	s := m.stream(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flagged, s.reason
}

// Reset clears a stream (an operator cleared the principal).
func (m *Monitor) Reset(key string) {
	m.mu.Lock()
	delete(m.streams, key)
	m.mu.Unlock()
}

func dist(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return math.Sqrt(s)
}

// Observe adds a batch of queries to key's stream and returns the
// verdict, without the coverage signal (use ObserveRows when the rows and
// their schema are at hand).
func (m *Monitor) Observe(key string, qs []Query, now time.Time) Verdict {
	return m.ObserveRows(key, nil, nil, qs, now)
}

// ObserveRows adds a batch of queries (rows r of schema sc, described by
// qs) to key's stream and returns the verdict.
func (m *Monitor) ObserveRows(key string, sc *Schema, r *Rows, qs []Query, now time.Time) Verdict {
	s := m.stream(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := m.cfg
	if s.inputs == nil && sc != nil && sc.Profiled {
		s.inputs = NewDrift(sc, 1, math.MaxInt)
	}

	if s.dists == nil {
		s.dists, s.ood, s.boundary = make([]float64, 0, c.Window), make([]float64, 0, c.Window), make([]bool, 0, c.Window)
		s.z2 = make([]float64, 0, c.Window)
	}
	if d := Day(now); d != s.day {
		s.day, s.dayRows = d, 0
	}
	s.dayRows += int64(len(qs))
	v := Verdict{W: 1}
	wasFlagged := s.flagged
	for i, q := range qs {
		// An exact repeat of an earlier query tells the caller nothing new
		// (health checks, retries, load tests): it is not evidence.
		h := hashQuery(q)
		if _, dup := s.seen[h]; dup {
			continue
		}
		if len(s.seen) < maxSeen {
			s.seen[h] = struct{}{}
		}
		if s.inputs != nil && r != nil && i < r.N {
			s.inputs.observeRow(r, i)
		}
		g := s.growth[q.Class]
		dmin := math.Inf(1)
		for _, p := range g {
			dmin = math.Min(dmin, dist(q.X, p))
		}
		if len(g) == 0 {
			s.growth[q.Class] = append(g, append([]float64(nil), q.X...))
		} else {
			s.push(c.Window, dmin, q.OOD, q.Z2, q.PMax < 0.6)
			if dmin > s.thresh[q.Class] && len(g) < c.MaxGrowth {
				s.growth[q.Class] = append(g, append([]float64(nil), q.X...))
				gd := append(s.gdists[q.Class], dmin)
				s.gdists[q.Class] = gd
				mean, sd := meanStd(gd)
				s.thresh[q.Class] = math.Max(s.thresh[q.Class], mean-sd)
			}
		}
		s.n++
		if s.flagged || s.n < c.MinQueries || s.n%c.CheckEvery != 0 {
			continue
		}
		v.W = ShapiroWilkW(logDistances(s.dists))
		_, bfrac := s.levels()
		z2 := mean(s.z2)
		psi := 0.0
		if s.inputs != nil {
			psi = s.inputs.MeanPSI()
		}
		switch {
		case psi > c.Coverage:
			s.flagged, s.reason = true, fmt.Sprintf("queries cover the input space unlike the training data (mean PSI %.2f > %.2f)", psi, c.Coverage)
		case v.W < c.Delta && (s.inputs == nil || psi > c.Coverage/2):
			s.flagged, s.reason = true, fmt.Sprintf("query distances are not log-normally distributed (PRADA-style W=%.3f < %.2f)", v.W, c.Delta)
		case z2 > c.Plausibility:
			s.flagged, s.reason = true, fmt.Sprintf("queries do not look like the training data (mean squared normal score %.2f > %.2f)", z2, c.Plausibility)
		case bfrac > c.Boundary:
			s.flagged, s.reason = true, fmt.Sprintf("queries concentrate on decision boundaries (%.0f%% > %.0f%%)", 100*bfrac, 100*c.Boundary)
		}
	}
	if !s.flagged && s.dayRows > c.VolumePerDay {
		s.flagged, s.reason = true, fmt.Sprintf("query volume %d rows today exceeds %d", s.dayRows, c.VolumePerDay)
	}
	v.Suspected, v.Reason, v.New = s.flagged, s.reason, s.flagged && !wasFlagged
	return v
}

func (s *stream) push(window int, d, ood, z2 float64, boundary bool) {
	if len(s.dists) < window {
		s.dists, s.ood, s.boundary, s.z2 = append(s.dists, d), append(s.ood, ood), append(s.boundary, boundary), append(s.z2, z2)
		return
	}
	s.dists[s.pos], s.ood[s.pos], s.boundary[s.pos], s.z2[s.pos] = d, ood, boundary, z2
	s.pos = (s.pos + 1) % window
}

func (s *stream) levels() (oodMean, bfrac float64) {
	if len(s.ood) == 0 {
		return 0, 0
	}
	nb := 0
	for i, o := range s.ood {
		oodMean += o
		if s.boundary[i] {
			nb++
		}
	}
	return oodMean / float64(len(s.ood)), float64(nb) / float64(len(s.ood))
}

func meanStd(x []float64) (float64, float64) {
	if len(x) == 0 {
		return 0, 0
	}
	m := 0.0
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	ss := 0.0
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	return m, math.Sqrt(ss / float64(len(x)))
}

// StreamStats are a stream's current signals (diagnostics and tests).
type StreamStats struct {
	N                         int
	W, WLog                   float64 // Shapiro-Wilk W of the distances and of their logarithms
	OODMean, Z2Mean, Boundary float64
	PSI                       float64 // mean per-feature PSI of the stream against the training deciles
}

// Stats returns key's current signals.
func (m *Monitor) Stats(key string) StreamStats {
	s := m.stream(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StreamStats{N: s.n, W: ShapiroWilkW(s.dists), WLog: ShapiroWilkW(logDistances(s.dists))}
	st.OODMean, st.Boundary = s.levels()
	if s.inputs != nil {
		st.PSI = s.inputs.MeanPSI()
	}
	for _, z := range s.z2 {
		st.Z2Mean += z
	}
	if len(s.z2) > 0 {
		st.Z2Mean /= float64(len(s.z2))
	}
	return st
}

// logDistances returns the logarithms of the positive distances: exact
// repeats (distance 0) carry no information about how a principal explores
// the input space and are left out.
func logDistances(d []float64) []float64 {
	out := make([]float64, 0, len(d))
	for _, v := range d {
		if v > 1e-9 {
			out = append(out, math.Log(v))
		}
	}
	return out
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// maxSeen bounds the repeat filter of one stream.
const maxSeen = 50_000

func hashQuery(q Query) uint64 {
	// FNV-1a over whole words with a fold of the high bits into the low
	// ones after each (the repeat filter's keys live in memory only).
	h := uint64(14695981039346656037)
	for _, v := range q.X {
		h = (h ^ math.Float64bits(v)) * 1099511628211
		h ^= h >> 29
	}
	return h ^ uint64(q.Class)*0x9e3779b97f4a7c15
}
