package server

import "testing"

// TestGCPercentBounds: the GC target is range-checked with the rest of the
// configuration, before anything is touched.
func TestGCPercentBounds(t *testing.T) {
	for _, tc := range []struct {
		v  int
		ok bool
	}{{0, true}, {100, true}, {400, true}, {10000, true}, {-1, false}, {10001, false}} {
		cfg := Defaults()
		cfg.GCPercent = tc.v
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("GCPercent %d: Validate() = %v, want ok=%v", tc.v, err, tc.ok)
		}
	}
	if Defaults().GCPercent != 400 {
		t.Errorf("default GCPercent %d, want 400", Defaults().GCPercent)
	}
}
