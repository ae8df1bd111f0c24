package dp

import (
	"context"
	"errors"
	"math"
	"testing"
)

// tfOrders are the orders TensorFlow Privacy's compute_dp_sgd_privacy uses.
func tfOrders() []float64 {
	o := []float64{1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5}
	for a := 5; a < 64; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512)
}

// TestEpsilonPublished compares with values published by TensorFlow Privacy
// and Opacus for the same inputs (TRAIN-2 acceptance: within 1 %).
func TestEpsilonPublished(t *testing.T) {
	cases := []struct {
		source           string
		q, sigma         float64
		steps            int
		delta            float64
		orders           []float64
		wantEps, wantOrd float64
	}{
		// tensorflow/privacy, tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py,
		// test_compute_dp_sgd_privacy 'Test0': n=60000, batch=150, σ=1.3, 15 epochs, δ=1e-5.
		{"TF Privacy Test0", 150.0 / 60000, 1.3, 6000, 1e-5, tfOrders(), 0.7242234026109595, 19},
		// Same file, 'Test1': n=100000, batch=100, σ=1.0, 30 epochs, δ=1e-7.
		{"TF Privacy Test1", 100.0 / 100000, 1.0, 30000, 1e-7, tfOrders(), 1.4154988495444842, 13},
		// Same file, 'Test2': n=1e8, batch=1024, σ=0.1, 10 epochs, δ=1e-7 (fractional order 1.25).
		{"TF Privacy Test2", 1024.0 / 1e8, 0.1, 976563, 1e-7, tfOrders(), 5907982.3113978775, 1.25},
		// Same file, test_compute_dp_sgd_example_privacy 'no_microbatching_with_subsampling_rdp':
		// 1.2 epochs at q=0.01 (120 steps), σ=0.7, δ=1e-5 → 3.2392676 with dp_accounting's
		// default orders (ours are Opacus's, a slightly different grid: still within 1 %).
		{"TF Privacy example privacy", 0.01, 0.7, 120, 1e-5, nil, 3.2392676, 0},
		// Opacus documentation, opacus.scripts.compute_dp_sgd_privacy
		// (https://opacus.ai/api/compute_dp_sgd_privacy.html): sample rate 1 %, σ=1.0,
		// 300 steps, alphas [2, 5, 10, 20, 100], δ=1e-5 → ε = 2.39, optimal alpha 5.
		{"Opacus docs", 0.01, 1.0, 300, 1e-5, []float64{2, 5, 10, 20, 100}, 2.39, 5},
	}
	for _, c := range cases {
		t.Run(c.source, func(t *testing.T) {
			eps, ord, err := Epsilon(c.q, c.sigma, c.steps, c.delta, c.orders)
			if err != nil {
				t.Fatal(err)
			}
			if rel := math.Abs(eps-c.wantEps) / c.wantEps; rel > 0.01 {
				t.Errorf("ε = %.6g, published %.6g (%.3f %% off)", eps, c.wantEps, 100*rel)
			}
			if c.wantOrd != 0 && ord != c.wantOrd {
				t.Errorf("optimal order %g, published %g", ord, c.wantOrd)
			}
		})
	}
}

// TestRDPClosedForms checks the two exact special cases.
func TestRDPClosedForms(t *testing.T) {
	// q = 1 is the plain Gaussian mechanism: RDP(α) = α/(2σ²) (Mironov 2017, Prop. 7).
	for _, a := range []float64{1.5, 2, 10, 32.5} {
		if got, want := RDP(1, 2, a), a/8; math.Abs(got-want) > 1e-12 {
			t.Errorf("RDP(q=1, σ=2, α=%g) = %g, want %g", a, got, want)
		}
	}
	if RDP(0, 1, 2) != 0 {
		t.Error("q = 0 must cost nothing")
	}
	// Integer and fractional code paths must agree where they meet.
	lo, mid, hi := RDP(0.02, 1.1, 7.999999), RDP(0.02, 1.1, 8), RDP(0.02, 1.1, 8.000001)
	if math.Abs(lo-mid) > 1e-5*mid || math.Abs(hi-mid) > 1e-5*mid {
		t.Errorf("RDP discontinuous at α=8: %g %g %g", lo, mid, hi)
	}
	// Privacy amplification: subsampling never costs more than the full mechanism.
	if RDP(0.1, 1, 4) >= RDP(1, 1, 4) {
		t.Error("subsampled RDP exceeds the unsampled one")
	}
}

func TestLogErfcTail(t *testing.T) {
	for _, x := range []float64{19, 19.99, 20, 20.01, 25} {
		want := math.Log(math.Erfc(x))
		if got := logErfc(x); math.Abs(got-want) > 1e-9*math.Abs(want) {
			t.Errorf("logErfc(%g) = %.15g, want %.15g", x, got, want)
		}
	}
	if v := logErfc(1000); math.IsInf(v, 0) || v > -1e6 {
		t.Errorf("logErfc(1000) = %g", v)
	}
}

func TestEpsilonRejects(t *testing.T) {
	for _, c := range []struct{ q, s, d float64 }{{-0.1, 1, 1e-5}, {1.1, 1, 1e-5}, {0.1, 1, 0}, {0.1, 1, 1}, {0.1, -1, 1e-5}} {
		if _, _, err := Epsilon(c.q, c.s, 10, c.d, nil); !errors.Is(err, ErrParams) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestNoiseMultiplier: the bisection meets the target from below, and more
// privacy (smaller ε) needs more noise.
func TestNoiseMultiplier(t *testing.T) {
	prev := 0.0
	for _, eps := range []float64{8, 3, 1, 0.5} {
		s, err := NoiseMultiplier(eps, 1e-5, 256.0/4454, 350)
		if err != nil {
			t.Fatal(err)
		}
		got, _, _ := Epsilon(256.0/4454, s, 350, 1e-5, nil)
		if got > eps || got < 0.99*eps {
			t.Errorf("target ε=%g: σ=%g gives ε=%g", eps, s, got)
		}
		if s <= prev {
			t.Errorf("σ=%g for ε=%g not above %g", s, eps, prev)
		}
		prev = s
	}
	if _, err := NoiseMultiplier(0, 1e-5, 0.1, 10); err == nil {
		t.Error("ε = 0 accepted")
	}
}

// quadratic is ½‖w - c‖² per example, with gradient w - c.
type quadratic struct{ c []float64 }

func (q quadratic) NumParams() int   { return 2 }
func (q quadratic) NumExamples() int { return 1000 }
func (q quadratic) ExampleGrad(w []float64, i int, g []float64) float64 {
	g[0], g[1] = w[0]-q.c[0], w[1]-q.c[1]
	return 0.5 * (g[0]*g[0] + g[1]*g[1])
}

func TestSGD(t *testing.T) {
	cfg := SGDConfig{Epochs: 30, BatchSize: 100, LearningRate: 0.5, MaxGradNorm: 10, NoiseMultiplier: 1, Noise: SeededNoise(1)}
	w := []float64{0, 0}
	epochs := 0
	if err := SGD(context.Background(), quadratic{c: []float64{1, -2}}, w, cfg, func(int, float64) { epochs++ }); err != nil {
		t.Fatal(err)
	}
	if math.Abs(w[0]-1) > 0.2 || math.Abs(w[1]+2) > 0.2 {
		t.Errorf("DP-SGD did not converge: %v", w)
	}
	if epochs != 30 {
		t.Errorf("%d progress calls, want 30", epochs)
	}
	// Seeded noise is reproducible; secure noise is not (and says so).
	w2 := []float64{0, 0}
	cfg.Noise = SeededNoise(1)
	_ = SGD(context.Background(), quadratic{c: []float64{1, -2}}, w2, cfg, nil)
	if w2[0] != w[0] || w2[1] != w[1] {
		t.Error("seeded DP-SGD not reproducible")
	}
	if SeededNoise(1).Private() || !SecureNoise().Private() {
		t.Error("Private flags wrong")
	}
	a, b := SecureNoise(), SecureNoise()
	if a.rng.Uint64() == b.rng.Uint64() {
		t.Error("two secure sources agree")
	}
	// Clipping bounds each example: with C tiny, one step moves at most
	// lr·(C·|lot| + noise)/(qN).
	cfg = SGDConfig{Epochs: 1, BatchSize: 1000, LearningRate: 1, MaxGradNorm: 1e-3, NoiseMultiplier: 0, Noise: SeededNoise(2)}
	w3 := []float64{0, 0}
	_ = SGD(context.Background(), quadratic{c: []float64{100, 100}}, w3, cfg, nil)
	if n := math.Hypot(w3[0], w3[1]); n > 1.0001e-3 {
		t.Errorf("clipped step has norm %g > C", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := SGD(ctx, quadratic{c: []float64{1, 1}}, []float64{0, 0}, SGDConfig{Epochs: 1, BatchSize: 10, LearningRate: 1, MaxGradNorm: 1, Noise: SeededNoise(1)}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
}
