// Command assess is the benchmark of the attack assessment (issue 8,
// PRIV-1..3, DATA-5): membership inference on hr_attrition (an overfit
// GBDT and a DP logistic regression with ε = 1), extraction on credit_data
// with the guards off and on, evasion of logistic regression, MLP and GBDT
// on breast_cancer and spambase, and the wall time of every attack on
// credit_data. It reads the shared datasets directly and writes JSON and
// HTML reports.
//
//	go run ./bench/assess -data ../shared/datasets -out bench/out/assess
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-mlaas/rampart/assess"
	"github.com/rampart-mlaas/rampart/ml"
)

func main() {
	data := flag.String("data", "../shared/datasets", "directory of the shared datasets")
	out := flag.String("out", "bench/out/assess", "directory for the reports")
	seed := flag.Uint64("seed", 1, "seed of splits, attacks and models")
	shadows := flag.Int("shadows", 8, "LiRA shadow models")
	only := flag.String("only", "", "run one part: membership, extraction, evasion, credit")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	b := &bench{data: *data, out: *out, seed: *seed, shadows: *shadows}
	parts := []struct {
		name string
		run  func(context.Context) error
	}{{"membership", b.membership}, {"extraction", b.extraction}, {"evasion", b.evasion}, {"credit", b.creditTimings}}
	for _, p := range parts {
		if *only != "" && *only != p.name {
			continue
		}
		if err := p.run(context.Background()); err != nil {
			fatal(fmt.Errorf("%s: %w", p.name, err))
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/assess:", err)
	os.Exit(1)
}

type bench struct {
	data, out string
	seed      uint64
	shadows   int
}

func (b *bench) load(name string) (*ml.Frame, error) {
	f, err := os.Open(filepath.Join(b.data, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ml.ReadCSV(f, ml.CSVOptions{})
}

func splitFrame(f *ml.Frame, label string, test float64, seed uint64) (*ml.Frame, *ml.Frame) {
	c, _ := f.Column(label)
	tr, te := ml.StratifiedSplit(c.Labels(), test, seed)
	return f.Take(tr), f.Take(te)
}

func (b *bench) write(name string, r *assess.Report) error {
	jf, err := os.Create(filepath.Join(b.out, name+".json"))
	if err != nil {
		return err
	}
	defer jf.Close()
	if err := r.WriteJSON(jf); err != nil {
		return err
	}
	hf, err := os.Create(filepath.Join(b.out, name+".html"))
	if err != nil {
		return err
	}
	defer hf.Close()
	return r.WriteHTML(hf)
}

func printMembership(title string, m *assess.MembershipReport) {
	fmt.Printf("%s: %d members / %d non-members, accuracy %.3f / %.3f\n", title, m.Members, m.NonMembers, m.MemberAccuracy, m.NonMemberAccuracy)
	for _, a := range m.Attacks {
		fmt.Printf("  %-15s AUC %.3f [%.3f, %.3f]  TPR@1%%FPR %.3f [%.3f, %.3f]  TPR@0.1%%FPR %.3f [%.3f, %.3f]",
			a.Name, a.AUC.Value, a.AUC.Lo, a.AUC.Hi, a.TPR1.Value, a.TPR1.Lo, a.TPR1.Hi, a.TPR01.Value, a.TPR01.Lo, a.TPR01.Hi)
		if a.DP != nil {
			fmt.Printf("  DP(ε=%.3g): %d/%d points violate (raw %d), ε lower bound %.3f", a.DP.Epsilon, a.DP.Violations, a.DP.Points, a.DP.PointViolations, a.DP.EpsilonLowerBound)
		}
		fmt.Println()
	}
}

// membership: PRIV-1 acceptance on hr_attrition.
func (b *bench) membership(ctx context.Context) error {
	data, err := b.load("hr_attrition.csv")
	if err != nil {
		return err
	}
	members, non := splitFrame(data, "Attrition", 0.5, b.seed)
	for _, c := range []struct {
		name string
		spec ml.TrainSpec
	}{
		{"hr_gbdt_overfit", ml.TrainSpec{Algorithm: ml.GBDT, Target: "Attrition", Seed: b.seed,
			Params: map[string]string{"n_estimators": "300", "max_depth": "10", "learning_rate": "0.3", "min_child_weight": "0.01", "reg_lambda": "0.1"}}},
		{"hr_logreg_dp_eps1", ml.TrainSpec{Algorithm: ml.LogReg, Target: "Attrition", Seed: b.seed, DP: &ml.DPSpec{Epsilon: 1, Delta: 1e-5}}},
	} {
		start := time.Now()
		m, err := ml.Train(ctx, members, c.spec, nil)
		if err != nil {
			return err
		}
		trainT := time.Since(start)
		rep := &assess.Report{Title: "Membership inference: " + c.name, Created: time.Now(), Seed: b.seed,
			Model: assess.ModelInfo{Name: c.name, Algorithm: m.Algorithm, Dataset: "hr_attrition"}, Timings: map[string]float64{"train_target": trainT.Seconds()}}
		cfg := assess.MembershipConfig{Target: assess.NewModelOracle(m, assess.OutputPolicy{Mode: assess.OutputProba, Decimals: -1}),
			Space: assess.SpaceOf(m), Label: "Attrition", Members: members, NonMembers: non, Seed: b.seed,
			Shadow: &assess.ShadowConfig{Spec: c.spec, Models: b.shadows, Decimals: -1}}
		if m.DP != nil {
			rep.Model.DP = &assess.DPGuarantee{Epsilon: m.DP.Epsilon, Delta: m.DP.Delta}
			cfg.DP = rep.Model.DP
			rep.Notes = append(rep.Notes, fmt.Sprintf("DP-SGD: noise multiplier %.3f, %d steps, sample rate %.4f, private noise %v; %s",
				m.DP.NoiseMultiplier, m.DP.Steps, m.DP.SampleRate, m.DP.Private, m.DP.Accountant))
		}
		start = time.Now()
		if rep.Membership, err = assess.Membership(ctx, cfg); err != nil {
			return err
		}
		rep.Timings["membership"] = time.Since(start).Seconds()
		printMembership(c.name, rep.Membership)
		fmt.Printf("  wall time: train %.2fs, attacks %.2fs\n", trainT.Seconds(), rep.Timings["membership"])
		if err := b.write(c.name, rep); err != nil {
			return err
		}
	}
	return nil
}

// creditTarget trains the credit_data GBDT the extraction and timing
// parts attack, and splits the rest into the attacker's natural pool and
// the evaluation rows.
func (b *bench) creditTarget(ctx context.Context) (*ml.Model, *ml.Frame, *ml.Frame, *ml.Frame, error) {
	data, err := b.load("credit_data.csv")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tr, rest := splitFrame(data, "Status", 0.5, b.seed)
	pool, eval := splitFrame(rest, "Status", 0.4, b.seed+1)
	m, err := ml.Train(ctx, tr, ml.TrainSpec{Algorithm: ml.GBDT, Target: "Status", Seed: b.seed}, nil)
	return m, tr, pool, eval, err
}

func (b *bench) extractionReports(ctx context.Context, m *ml.Model, pool, eval *ml.Frame, budgets []int) ([]*assess.ExtractionReport, error) {
	s := assess.SpaceOf(m)
	natural, err := s.Rows(pool)
	if err != nil {
		return nil, err
	}
	ev, err := s.Rows(eval)
	if err != nil {
		return nil, err
	}
	p, err := assess.NewModelOracle(m, assess.OutputPolicy{Mode: assess.OutputLabel, Decimals: -1}).Predict(ctx, ev)
	if err != nil {
		return nil, err
	}
	labels := make([]int, len(p))
	for i := range p {
		labels[i] = p[i].Class
	}
	var reps []*assess.ExtractionReport
	for _, g := range []struct {
		name string
		make assess.OracleFactory
	}{
		{"off", func(context.Context, string) (assess.Oracle, error) {
			return assess.NewModelOracle(m, assess.OutputPolicy{Mode: assess.OutputProba, Decimals: -1}), nil
		}},
		{"on (default policy: label + p to 2 decimals, 100,000 rows/day, OOD flag, extraction monitor)", func(context.Context, string) (assess.Oracle, error) {
			return newGuarded(m, 100_000), nil
		}},
	} {
		rep, err := assess.Extraction(ctx, assess.ExtractionConfig{Target: g.make, Space: s, Budgets: budgets, Natural: natural,
			Eval: ev, EvalLabels: labels, Seed: b.seed, Batch: 100})
		if err != nil {
			return nil, err
		}
		rep.Guards = g.name
		reps = append(reps, rep)
	}
	return reps, nil
}

// extraction: PRIV-2 curves on credit_data.
func (b *bench) extraction(ctx context.Context) error {
	m, _, pool, eval, err := b.creditTarget(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	reps, err := b.extractionReports(ctx, m, pool, eval, []int{50, 100, 200, 500, 1000, 2000, 5000, 10000})
	if err != nil {
		return err
	}
	rep := &assess.Report{Title: "Extraction: credit_data GBDT", Created: time.Now(), Seed: b.seed, Extraction: reps,
		Model:   assess.ModelInfo{Name: "credit_gbdt", Algorithm: m.Algorithm, Dataset: "credit_data"},
		Timings: map[string]float64{"extraction (both guard settings)": time.Since(start).Seconds()}}
	for _, r := range reps {
		fmt.Printf("extraction, guards %s (eval %d rows)\n", r.Guards, r.EvalRows)
		for _, c := range r.Curves {
			fmt.Printf("  %-9s", c.Strategy)
			for _, p := range c.Points {
				fmt.Printf(" %d:%.3f", p.Queries, p.Fidelity)
			}
			if c.FlaggedAt > 0 {
				fmt.Printf("  flagged after %d queries (%s)", c.FlaggedAt, c.FlagReason)
			}
			if c.Refused != "" {
				fmt.Printf("  stopped: %s", c.Refused)
			}
			fmt.Println()
		}
	}
	return b.write("credit_extraction", rep)
}

// evasion: PRIV-3 on breast_cancer and spambase.
func (b *bench) evasion(ctx context.Context) error {
	rep := &assess.Report{Title: "Evasion: breast_cancer and spambase", Created: time.Now(), Seed: b.seed, Timings: map[string]float64{}}
	for _, ds := range []struct{ file, label string }{{"breast_cancer.csv", "diagnosis"}, {"spambase.csv", "type"}} {
		data, err := b.load(ds.file)
		if err != nil {
			return err
		}
		tr, te := splitFrame(data, ds.label, 0.3, b.seed)
		for _, spec := range []ml.TrainSpec{
			{Algorithm: ml.LogReg},
			{Algorithm: ml.MLP, Params: map[string]string{"hidden_layer_sizes": "32"}},
			{Algorithm: ml.GBDT},
		} {
			spec.Target, spec.Seed = ds.label, b.seed
			m, err := ml.Train(ctx, tr, spec, nil)
			if err != nil {
				return err
			}
			s := assess.SpaceOf(m)
			rows, err := s.Rows(te)
			if err != nil {
				return err
			}
			y, err := s.Labels(te, ds.label)
			if err != nil {
				return err
			}
			start := time.Now()
			g := newGuarded(m, 0)
			ev, err := assess.Evasion(ctx, assess.EvasionConfig{Model: m, Space: s, Rows: rows, Labels: y, MaxRows: 100, Seed: b.seed, OOD: oodScorer{g}})
			if err != nil {
				return err
			}
			name := ds.file[:len(ds.file)-4] + " " + m.Algorithm
			ev.Model = name
			rep.Evasion = append(rep.Evasion, ev)
			rep.Timings["evasion "+name] = time.Since(start).Seconds()
			fmt.Printf("evasion %-22s %-21s found %3d/%3d median L2 %.3f σ, OOD caught %.1f %% (clean %.1f %%), %6d queries, %.2fs; success:",
				name, ev.Method, ev.Found, ev.Attacked, ev.Median, 100*ev.OODCaught, 100*ev.CleanOOD, ev.Queries, time.Since(start).Seconds())
			for _, p := range ev.Curve {
				fmt.Printf(" %g:%.2f", p.Budget, p.SuccessRate)
			}
			fmt.Println()
		}
	}
	return b.write("evasion", rep)
}

// creditTimings: the wall time of each attack on credit_data.
func (b *bench) creditTimings(ctx context.Context) error {
	m, tr, pool, eval, err := b.creditTarget(ctx)
	if err != nil {
		return err
	}
	rep := &assess.Report{Title: "Assessment of the credit_data GBDT", Created: time.Now(), Seed: b.seed, Timings: map[string]float64{},
		Model: assess.ModelInfo{Name: "credit_gbdt", Algorithm: m.Algorithm, Dataset: "credit_data"}}
	s := assess.SpaceOf(m)
	start := time.Now()
	if rep.Membership, err = assess.Membership(ctx, assess.MembershipConfig{
		Target: assess.NewModelOracle(m, assess.OutputPolicy{Mode: assess.OutputLabel, Decimals: 2}), Space: s, Label: "Status",
		Members: tr, NonMembers: pool, Seed: b.seed,
		Shadow: &assess.ShadowConfig{Spec: ml.TrainSpec{Algorithm: ml.GBDT, Target: "Status"}, Extra: eval, Models: b.shadows, Decimals: 2}}); err != nil {
		return err
	}
	rep.Timings["membership (loss + LiRA, "+fmt.Sprint(b.shadows)+" shadows)"] = time.Since(start).Seconds()
	start = time.Now()
	if rep.Extraction, err = b.extractionReports(ctx, m, pool, eval, []int{100, 500, 1000, 2000}); err != nil {
		return err
	}
	rep.Timings["extraction (3 strategies × guards off/on, 2,000 queries)"] = time.Since(start).Seconds()
	rows, _ := s.Rows(eval)
	y, _ := s.Labels(eval, "Status")
	start = time.Now()
	ev, err := assess.Evasion(ctx, assess.EvasionConfig{Model: m, Space: s, Rows: rows, Labels: y, MaxRows: 100, Seed: b.seed, OOD: oodScorer{newGuarded(m, 0)}})
	if err != nil {
		return err
	}
	ev.Model = "credit_data gbdt"
	rep.Evasion = append(rep.Evasion, ev)
	rep.Timings["evasion (decision-based, 100 rows)"] = time.Since(start).Seconds()
	data, err := b.load("credit_data.csv")
	if err != nil {
		return err
	}
	start = time.Now()
	if rep.Poisoning, err = assess.Poison(ctx, assess.PoisonConfig{Data: data, Label: "Status", Spec: ml.TrainSpec{Algorithm: ml.GBDT}, Seed: b.seed}); err != nil {
		return err
	}
	rep.Timings["poisoning drill (0/5/10/20 %)"] = time.Since(start).Seconds()
	printMembership("credit_data membership", rep.Membership)
	for _, p := range rep.Poisoning.Points {
		fmt.Printf("poisoning %4.0f%%: flipped %d flagged %d recall %.3f precision %.3f accuracy %.3f → %.3f with screening\n",
			100*p.Rate, p.Flipped, p.Flagged, p.Recall, p.Precision, p.AccuracyUnscreened, p.AccuracyScreened)
	}
	for k, v := range rep.Timings {
		fmt.Printf("wall time %-60s %7.2fs\n", k, v)
	}
	return b.write("credit_assessment", rep)
}
