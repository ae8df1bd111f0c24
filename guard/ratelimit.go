package guard

import (
	"math"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// Limiter holds token buckets keyed by principal × endpoint (INF-1). It
// is exact on one node: every decision takes the bucket's lock.
type Limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	// maxIdle buckets are kept; beyond it, full (idle) buckets are dropped,
	// which is lossless because a full bucket is the initial state.
	maxIdle int
}

type bucket struct {
	tokens, rate, burst float64
	last                time.Time
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter { return &Limiter{buckets: map[string]*bucket{}, maxIdle: 100_000} }

// Allow takes n tokens from key's bucket of rate tokens/s and size burst.
// When the bucket lacks them it returns a rate-limited Rejection with the
// time until they are available. rate < 0 disables the limit.
func (l *Limiter) Allow(key string, rate float64, burst int, n int, now time.Time) error {
	if rate < 0 {
		return nil
	}
	if burst < 1 {
		burst = max(1, int(math.Ceil(rate)))
	}
	need := float64(n)
	if need > float64(burst) {
		return reject(KindRateLimited, rampart.CodeRateLimited, "", 0,
			"the request needs %d tokens but the bucket holds %d; send smaller requests", n, burst)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxIdle {
			l.evict(now)
		}
		b = &bucket{tokens: float64(burst), last: now}
		l.buckets[key] = b
	}
	b.rate, b.burst = rate, float64(burst)
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+dt*rate)
		b.last = now
	}
	if b.tokens >= need {
		b.tokens -= need
		return nil
	}
	wait := time.Hour
	if rate > 0 {
		wait = time.Duration((need - b.tokens) / rate * float64(time.Second))
	}
	return reject(KindRateLimited, rampart.CodeRateLimited, "", wait, "rate limit exceeded; retry later")
}

// evict drops buckets that have refilled (lossless) under l.mu.
func (l *Limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst {
			delete(l.buckets, k)
		}
	}
}
