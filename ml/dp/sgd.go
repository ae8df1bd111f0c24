package dp

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/rampart-mlaas/rampart/ml/internal/parallel"
)

// ErrDiverged is returned when the DP-SGD loss becomes NaN or infinite (TRAIN-4).
var ErrDiverged = errors.New("training diverged: loss is not finite")

// Problem is a differentiable per-example loss over a flat parameter vector.
type Problem interface {
	NumParams() int
	NumExamples() int
	// ExampleGrad writes example i's loss gradient at params into g (length
	// NumParams) and returns the loss. It must be safe for concurrent calls
	// with distinct g.
	ExampleGrad(params []float64, i int, g []float64) float64
}

// cryptoSource is a math/rand/v2 Source reading the operating system's CSPRNG.
// TRAIN-2: in production the lot sampling and the Gaussian noise come from
// here, so an adversary who learns a seed cannot subtract the noise.
type cryptoSource struct {
	mu  sync.Mutex
	buf [4096]byte
	off int
}

func (s *cryptoSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off == 0 || s.off+8 > len(s.buf) {
		// crypto/rand.Read never returns an error on supported platforms
		// (it crashes the program instead), so a short read cannot happen.
		_, _ = crand.Read(s.buf[:])
		s.off = 0
	}
	v := binary.LittleEndian.Uint64(s.buf[s.off:])
	s.off += 8
	return v
}

// Noise is where DP-SGD draws lot membership and Gaussian noise.
type Noise struct {
	rng     *rand.Rand
	private bool
}

// SecureNoise draws from crypto/rand: the production mode (TRAIN-2).
func SecureNoise() *Noise {
	return &Noise{rng: rand.New(&cryptoSource{}), private: true}
}

// SeededNoise draws from a seeded PRNG so tests are reproducible.
// NOT PRIVATE: anyone who knows the seed can regenerate and remove the noise.
// Models trained this way record Private=false.
func SeededNoise(seed uint64) *Noise {
	return &Noise{rng: rand.New(rand.NewPCG(seed, 0xd1ff)), private: false}
}

// Private reports whether the noise is cryptographically secure.
func (n *Noise) Private() bool { return n.private }

// SGDConfig configures DP-SGD.
type SGDConfig struct {
	Epochs          int
	BatchSize       int     // expected lot size; the sampling rate is BatchSize/N
	LearningRate    float64 // step size of plain SGD (or Adam when Adam is set)
	Adam            bool
	MaxGradNorm     float64 // per-example clipping bound C
	NoiseMultiplier float64 // σ: noise std is σ·C
	L2              float64 // weight decay on params (data-independent, costs no privacy)
	Noise           *Noise
}

// Steps is the number of DP-SGD steps the config will take on n examples.
func (c SGDConfig) Steps(n int) int {
	return int(math.Ceil(float64(c.Epochs) * float64(n) / float64(c.BatchSize)))
}

// Progress reports the finished epoch and the mean clipped-loss estimate.
type Progress func(epoch int, loss float64)

// SGD runs DP-SGD (Abadi et al. 2016) on params in place: each step samples a
// lot by independent Bernoulli(q) draws (Poisson sampling, which the
// accountant assumes), clips every per-example gradient to MaxGradNorm, adds
// N(0, σ²C²) to the sum and divides by the expected lot size qN.
// Per-example gradients are computed on all cores over fixed blocks and summed
// in block order, so seeded runs are reproducible (TRAIN-6).
func SGD(ctx context.Context, p Problem, params []float64, cfg SGDConfig, progress Progress) error {
	n := p.NumExamples()
	if cfg.BatchSize <= 0 || cfg.BatchSize > n || cfg.Epochs <= 0 || cfg.MaxGradNorm <= 0 || cfg.NoiseMultiplier < 0 || cfg.Noise == nil || cfg.LearningRate <= 0 {
		return fmt.Errorf("%w: DP-SGD config %+v on %d examples", ErrParams, cfg, n)
	}
	q := float64(cfg.BatchSize) / float64(n)
	steps := cfg.Steps(n)
	stepsPerEpoch := max(1, n/cfg.BatchSize)
	np := p.NumParams()
	sum := make([]float64, np)
	var m1, m2 []float64
	if cfg.Adam {
		m1, m2 = make([]float64, np), make([]float64, np)
	}
	lot := make([]int, 0, 2*cfg.BatchSize)
	epochLoss, epochCount := 0.0, 0
	for step := 1; step <= steps; step++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("DP-SGD: %w", err)
		}
		lot = lot[:0]
		for i := range n {
			if cfg.Noise.rng.Float64() < q {
				lot = append(lot, i)
			}
		}
		blocks := parallel.Blocks(len(lot), 32, 16)
		parts := make([][]float64, len(blocks))
		losses := make([]float64, len(blocks))
		parallel.Run(len(blocks), func(b int) {
			acc := make([]float64, np)
			g := make([]float64, np)
			var l float64
			for _, i := range lot[blocks[b][0]:blocks[b][1]] {
				l += p.ExampleGrad(params, i, g)
				var norm float64
				for _, v := range g {
					norm += v * v
				}
				norm = math.Sqrt(norm)
				// TRAIN-2: per-example clipping bounds each example's influence.
				scale := 1.0
				if norm > cfg.MaxGradNorm {
					scale = cfg.MaxGradNorm / norm
				}
				for t, v := range g {
					acc[t] += v * scale
				}
			}
			parts[b] = acc
			losses[b] = l
		})
		clear(sum)
		for b := range blocks {
			for t, v := range parts[b] {
				sum[t] += v
			}
			epochLoss += losses[b]
		}
		epochCount += len(lot)
		// TRAIN-2: Gaussian noise calibrated to the clipping bound.
		std := cfg.NoiseMultiplier * cfg.MaxGradNorm
		denom := q * float64(n)
		for t := range sum {
			g := (sum[t]+std*cfg.Noise.rng.NormFloat64())/denom + cfg.L2*params[t]
			if cfg.Adam {
				const b1, b2, eps = 0.9, 0.999, 1e-8
				m1[t] = b1*m1[t] + (1-b1)*g
				m2[t] = b2*m2[t] + (1-b2)*g*g
				mh := m1[t] / (1 - math.Pow(b1, float64(step)))
				vh := m2[t] / (1 - math.Pow(b2, float64(step)))
				params[t] -= cfg.LearningRate * mh / (math.Sqrt(vh) + eps)
			} else {
				params[t] -= cfg.LearningRate * g
			}
		}
		if step%stepsPerEpoch == 0 || step == steps {
			mean := epochLoss / math.Max(1, float64(epochCount))
			// TRAIN-4: divergence ends training with a reason.
			if math.IsNaN(mean) || math.IsInf(mean, 0) {
				return fmt.Errorf("DP-SGD at step %d: %w", step, ErrDiverged)
			}
			for _, v := range params {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return fmt.Errorf("DP-SGD at step %d: %w", step, ErrDiverged)
				}
			}
			if progress != nil {
				progress((step+stepsPerEpoch-1)/stepsPerEpoch, mean)
			}
			epochLoss, epochCount = 0, 0
		}
	}
	return nil
}
