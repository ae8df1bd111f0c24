package guard

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestDayOfMatchesDay: the cached day is Day's answer at every instant,
// across midnights, time zones and before 1970, in any order.
func TestDayOfMatchesDay(t *testing.T) {
	b := NewBudget(nil)
	zones := []*time.Location{time.UTC, time.FixedZone("east", 14*3600), time.FixedZone("west", -12*3600)}
	var ts []time.Time
	for _, base := range []time.Time{time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)} {
		for _, d := range []time.Duration{-time.Nanosecond, 0, time.Nanosecond, time.Second, -time.Second, 12 * time.Hour, 24*time.Hour - 1} {
			ts = append(ts, base.Add(d))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ts = append(ts, time.Unix(rng.Int64N(1<<34)-1<<33, rng.Int64N(1e9)))
	}
	for i, t0 := range ts {
		for _, z := range zones {
			tz := t0.In(z)
			if got, want := b.dayOf(tz), Day(tz); got != want {
				t.Fatalf("%d: %v: dayOf %s, Day %s", i, tz, got, want)
			}
		}
	}
}
