package guard_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/sqlite"
)

func kindOf(err error) string {
	var rj *guard.Rejection
	if errors.As(err, &rj) {
		return rj.Kind
	}
	return ""
}

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		rate      float64
		burst     int
		calls     []time.Duration // offsets from t0
		wantOK    int
		wantRetry string // Retry-After of the last refusal
	}{
		{"burst then refuse", 10, 5, []time.Duration{0, 0, 0, 0, 0, 0, 0}, 5, "1"},
		{"refill", 10, 1, []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}, 3, "1"},
		{"slow rate waits", 0.1, 1, []time.Duration{0, time.Second}, 1, "9"},
		{"off", -1, 0, []time.Duration{0, 0, 0, 0}, 4, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := guard.NewLimiter()
			ok, last := 0, ""
			for _, d := range c.calls {
				err := l.Allow("k", c.rate, c.burst, 1, t0.Add(d))
				if err == nil {
					ok++
					continue
				}
				if kindOf(err) != guard.KindRateLimited || rampart.ErrorCode(err) != rampart.CodeRateLimited {
					t.Fatalf("refusal %v", err)
				}
				last = err.(*guard.Rejection).RetryAfter()
			}
			if ok != c.wantOK || last != c.wantRetry {
				t.Fatalf("%d allowed (Retry-After %q), want %d (%q)", ok, last, c.wantOK, c.wantRetry)
			}
		})
	}
}

// TestLimiterTenX is INF-1 at 10x the rate: over 10 simulated seconds at
// 100/s against a 10/s bucket of 10, the allowed requests are the bucket
// plus the refill, and ≥ 99 % of the excess is refused.
func TestLimiterTenX(t *testing.T) {
	l := guard.NewLimiter()
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	allowed, refused := 0, 0
	for i := range 1000 {
		if l.Allow("k", 10, 10, 1, t0.Add(time.Duration(i)*10*time.Millisecond)) == nil {
			allowed++
		} else {
			refused++
		}
	}
	capacity := 10 + 10*10 // burst + 10 s × 10/s
	excess := 1000 - capacity
	if allowed > capacity || float64(refused) < 0.99*float64(excess) {
		t.Fatalf("allowed %d (capacity %d), refused %d of excess %d", allowed, capacity, refused, excess)
	}
	t.Logf("INF-1: %d of 1000 allowed (capacity %d), %d refused", allowed, capacity, refused)
}

func openDB(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestBudgetExact: concurrent takes never exceed the budget, the day and
// total limits both hold, and a restart (a new Budget over the same store)
// resumes from the reservation, never below the rows granted.
func TestBudgetExact(t *testing.T) {
	db := openDB(t)
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b := guard.NewBudget(db)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				err := b.Take(context.Background(), "ep_x", "pr_x", 3, 100, 1000, t0)
				if err == nil {
					mu.Lock()
					granted += 3
					mu.Unlock()
				} else if kindOf(err) != guard.KindBudgetExhausted {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if granted != 99 { // 33 takes of 3 fit in 100
		t.Fatalf("granted %d rows of a 100-row daily budget", granted)
	}
	err := b.Take(context.Background(), "ep_x", "pr_x", 2, 100, 1000, t0)
	if rj, ok := err.(*guard.Rejection); !ok || rj.Kind != guard.KindBudgetExhausted || rj.RetryAfter() != "50400" {
		t.Fatalf("exhausted day: %v", err)
	}
	// Next day: the daily budget is fresh, the total carries on.
	if err := b.Take(context.Background(), "ep_x", "pr_x", 1, 100, 1000, t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Restart: the count resumes at or above what was granted.
	b2 := guard.NewBudget(db)
	if err := b2.Take(context.Background(), "ep_x", "pr_x", 2, 100, 1000, t0); err == nil {
		t.Fatal("restart forgot the day's usage")
	}
	if used := b2.Used("ep_x", "pr_x", guard.Day(t0)); used < 99 {
		t.Fatalf("restart resumed at %d < 99", used)
	}
	// Total: exhausted with no Retry-After.
	b3 := guard.NewBudget(db)
	err = b3.Take(context.Background(), "ep_y", "pr_x", 5, -1, 4, t0)
	if rj, ok := err.(*guard.Rejection); !ok || rj.RetryAfter() != "" || rj.Kind != guard.KindBudgetExhausted {
		t.Fatalf("total: %v", err)
	}
}

func TestOutputPolicy(t *testing.T) {
	classes := []string{"a", "b", "c"}
	p := []float64{0.2345678, 0.6123456, 0.1530866}
	cases := []struct {
		name   string
		op     guard.OutputPolicy
		label  string
		labels []string
		proba  []float64
	}{
		{"default label + p", guard.OutputPolicy{Mode: rampart.OutputLabel, Decimals: 2}, "b", nil, []float64{0.61}},
		{"label only", guard.OutputPolicy{Mode: rampart.OutputLabel, Decimals: -1}, "b", nil, nil},
		{"top2", guard.OutputPolicy{Mode: rampart.OutputTopK, TopK: 2, Decimals: 1}, "b", []string{"b", "a"}, []float64{0.6, 0.2}},
		{"top9 clamps", guard.OutputPolicy{Mode: rampart.OutputTopK, TopK: 9, Decimals: -1}, "b", []string{"b", "a", "c"}, nil},
		{"proba 3", guard.OutputPolicy{Mode: rampart.OutputProba, Decimals: 3}, "b", nil, []float64{0.235, 0.612, 0.153}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var pr guard.Prediction
			c.op.Apply(classes, p, false, &pr)
			if pr.Label != c.label || !eqS(pr.Labels, c.labels) || !eqF(pr.Proba, c.proba) {
				t.Fatalf("%+v", pr)
			}
		})
	}
	var pr guard.Prediction
	guard.OutputPolicy{Mode: rampart.OutputLabel, Decimals: 1}.Apply(nil, []float64{3.14159}, true, &pr)
	if pr.Value != 3.1 {
		t.Fatalf("regression %v", pr.Value)
	}
}

func eqS(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func eqF(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestShapiroWilk against scipy.stats.shapiro (Debian python3-scipy, the
// same AS R94 algorithm as R's shapiro.test) on fixed samples.
func TestShapiroWilk(t *testing.T) {
	cases := []struct {
		x    []float64
		want float64
	}{
		// scipy.stats.shapiro([148,154,158,160,161,162,166,170,182,195,236]).statistic = 0.788815
		{[]float64{148, 154, 158, 160, 161, 162, 166, 170, 182, 195, 236}, 0.788815},
		// scipy.stats.shapiro(range(1, 21)).statistic = 0.960375
		{seqF(1, 20), 0.960375},
		{[]float64{1, 2}, 1},
		{[]float64{5, 5, 5, 5}, 1},
	}
	for _, c := range cases {
		if w := guard.ShapiroWilkW(c.x); math.Abs(w-c.want) > 0.001 {
			t.Errorf("W(%v) = %.4f, want %.4f", c.x, w, c.want)
		}
	}
}

func seqF(lo, hi int) []float64 {
	var out []float64
	for i := lo; i <= hi; i++ {
		out = append(out, float64(i))
	}
	return out
}

func TestValidate(t *testing.T) {
	fr, err := ml.NewFrame(ml.NumericColumn("x", []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 10}),
		ml.CategoricalColumn("c", []string{"a", "b", "a", "b", "a", "b", "a", "b", "a", "b"}),
		ml.NumericColumn("m", []float64{1, math.NaN(), 1, 2, 3, 4, 5, 6, 7, 8}))
	if err != nil {
		t.Fatal(err)
	}
	prep, _, err := ml.FitPreprocessor(fr, []string{"x", "c", "m"}, true, true)
	if err != nil {
		t.Fatal(err)
	}
	s := guard.SchemaFromML(prep.Features, 0.5)
	row := func(x float64, c string, m float64) *guard.Rows {
		return &guard.Rows{N: 1, Num: [][]float64{{x}, nil, {m}}, Cat: [][]string{nil, {c}, nil}}
	}
	cases := []struct {
		name  string
		r     *guard.Rows
		max   int
		field string // "" = valid
	}{
		{"ok", row(3, "a", 2), 0, ""},
		{"unseen category is valid (scored by OOD)", row(3, "zzz", 2), 0, ""},
		{"margin", row(14.9, "a", 2), 0, ""},
		{"above range", row(15.1, "a", 2), 0, "x"},
		{"below range", row(-5.1, "a", 2), 0, "x"},
		{"missing not seen in training", row(math.NaN(), "a", 2), 0, "x"},
		{"missing seen in training", row(1, "a", math.NaN()), 0, ""},
		{"inf", row(math.Inf(1), "a", 2), 0, "x"},
		{"missing category", row(1, "", 2), 0, "c"},
		{"too many rows", &guard.Rows{N: 2, Num: [][]float64{{1, 1}, nil, {1, 1}}, Cat: [][]string{nil, {"a", "a"}, nil}}, 1, "inputs"},
		{"ragged", &guard.Rows{N: 2, Num: [][]float64{{1}, nil, {1, 1}}, Cat: [][]string{nil, {"a", "a"}, nil}}, 0, "x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Validate(c.r, c.max)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var re *rampart.Error
			if !errors.As(err, &re) || re.Field != c.field || kindOf(err) != guard.KindInvalidInput {
				t.Fatalf("err %v, want field %s", err, c.field)
			}
		})
	}
	_ = http.StatusOK
}

func TestPSI(t *testing.T) {
	if p := guard.PSI([]float64{10, 10, 10}, []float64{1, 1, 1}); p != 0 {
		t.Fatalf("identical: %v", p)
	}
	if p := guard.PSI([]float64{90, 5, 5}, []float64{1, 1, 1}); p < 0.25 {
		t.Fatalf("shifted: %v", p)
	}
}

// TestDrift is INF-7: a clean replay of a dataset's test split does not
// alert; the same replay with one feature scaled does (PSI > 0.25).
func TestDrift(t *testing.T) {
	s := load(t, datasets[1].name, datasets[1].path, datasets[1].target)
	idx := make([]int, s.test.NumRows())
	for i := range idx {
		idx[i] = i
	}
	clean := rows(s, s.test, idx)
	d := guard.NewDrift(s.schema, 2, 500)
	rep, closed := d.Observe(clean, nil)
	if !closed || rep.Alert {
		t.Fatalf("clean replay: %+v (closed %v)", rep, closed)
	}
	shifted := cloneRows(clean)
	j := numericIdx(s)[0]
	for i := range shifted.Num[j] {
		shifted.Num[j][i] *= 1.5
	}
	d2 := guard.NewDrift(s.schema, 2, 500)
	rep, closed = d2.Observe(shifted, nil)
	if !closed || !rep.Alert || rep.Feature != s.features[j] {
		t.Fatalf("shifted replay: %+v", rep)
	}
	t.Logf("INF-7: clean max PSI %.3f; %s ×1.5: PSI %.3f", d.Report().InputPSI, rep.Feature, rep.InputPSI)
}

// TestDriftBatchEqualsRows: observing a batch gives the same windows as
// observing its rows one at a time (the batch is counted column by column
// within each window), missing values and predictions included.
func TestDriftBatchEqualsRows(t *testing.T) {
	for _, ds := range datasets {
		s := load(t, ds.name, ds.path, ds.target)
		idx := make([]int, s.test.NumRows())
		for i := range idx {
			idx[i] = i
		}
		r := rows(s, s.test, idx)
		for _, j := range numericIdx(s) {
			for i := 0; i < r.N; i += 7 {
				r.Num[j][i] = math.NaN()
			}
		}
		cls := make([]int, r.N)
		for i := range cls {
			cls[i] = i % 3
		}
		batch, single := guard.NewDrift(s.schema, 2, 37), guard.NewDrift(s.schema, 2, 37)
		var last guard.DriftReport
		for lo := 0; lo < r.N; lo += 250 { // batches straddle windows
			hi := min(r.N, lo+250)
			sub := &guard.Rows{N: hi - lo, Num: make([][]float64, len(r.Num)), Cat: make([][]string, len(r.Cat))}
			for j := range r.Num {
				if r.Num[j] != nil {
					sub.Num[j] = r.Num[j][lo:hi]
				}
				if r.Cat[j] != nil {
					sub.Cat[j] = r.Cat[j][lo:hi]
				}
			}
			batch.Observe(sub, cls[lo:hi])
			for i := range sub.N {
				one := &guard.Rows{N: 1, Num: make([][]float64, len(r.Num)), Cat: make([][]string, len(r.Cat))}
				for j := range r.Num {
					if sub.Num[j] != nil {
						one.Num[j] = sub.Num[j][i : i+1]
					}
					if sub.Cat[j] != nil {
						one.Cat[j] = sub.Cat[j][i : i+1]
					}
				}
				if rep, closed := single.Observe(one, cls[lo+i:lo+i+1]); closed {
					last = rep
				}
			}
			if b, s := batch.Report(), single.Report(); b != s {
				t.Fatalf("%s rows %d-%d: batch %+v, row by row %+v", ds.name, lo, hi, b, s)
			}
		}
		if last.Windows == 0 {
			t.Fatalf("%s: no window closed", ds.name)
		}
	}
}
