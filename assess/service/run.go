package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/registry"
)

// maxTargets bounds the members and non-members scored (each side).
const maxTargets = 5_000

func (s *Service) attack(ctx context.Context, a record.Assessment, v rampart.ModelVersion, in CreateInput) (*assess.Report, error) {
	progress := func(msg string) { s.emit(a.ID, msg, false) }
	progress("loading and verifying the model")
	lm, err := s.registry.Load(ctx, a.TenantID, a.ModelID, a.ModelVersion)
	if err != nil {
		return nil, err
	}
	m := lm.Native
	if m == nil || m.Task != ml.Classification {
		return nil, rampart.Invalid("model", "only classification models trained on Rampart can be assessed (imported models: not yet)")
	}
	cardBytes, _, err := s.registry.GetDocument(ctx, a.ModelID, a.ModelVersion, registry.DocCard)
	if err != nil {
		return nil, err
	}
	var card registry.Card
	if err := json.Unmarshal(cardBytes, &card); err != nil {
		return nil, fmt.Errorf("card: %w", err)
	}
	if len(card.Datasets) == 0 {
		return nil, rampart.Invalid("model", "the model card names no training dataset")
	}
	progress("reading the training data")
	// The rows never leave the platform: the report holds only aggregates.
	train, err := s.readFrame(ctx, card.Datasets[0].ID, card.Datasets[0].Version, authz.PurposeTrain)
	if err != nil {
		return nil, err
	}
	var holdout *ml.Frame
	if in.HoldoutID != "" {
		progress("reading the held-out data")
		if holdout, err = s.readFrame(ctx, in.HoldoutID, in.HoldoutVersion, authz.PurposeEvaluate); err != nil {
			return nil, err
		}
	}
	space := assess.SpaceOf(m)
	rep := &assess.Report{Title: fmt.Sprintf("Security assessment of %s v%d", v.ModelName, v.Version), Created: s.now().UTC(), Seed: in.Seed,
		Model:   assess.ModelInfo{Name: v.ModelName, Version: v.Version, Digest: v.Digest, Algorithm: m.Algorithm, Dataset: card.Datasets[0].Name},
		Timings: map[string]float64{}}
	if m.DP != nil {
		rep.Model.DP = &assess.DPGuarantee{Epsilon: m.DP.Epsilon, Delta: m.DP.Delta}
	}
	rep.Notes = append(rep.Notes, "Model-level assessment: the attacks query the verified model directly with full probabilities (the worst case of any output policy); an endpoint's guards are assessed through its HTTP API.")
	spec := ml.TrainSpec{Algorithm: m.Algorithm, Task: m.Task, Target: m.Target, Params: m.Params, Seed: m.Seed}
	for _, fi := range m.Schema() {
		spec.Features = append(spec.Features, fi.Name)
	}
	full := assess.OutputPolicy{Mode: assess.OutputProba, Decimals: -1}
	for _, attack := range in.Attacks {
		start := time.Now()
		switch attack {
		case "membership":
			members := sample(train, maxTargets, in.Seed)
			non := sample(holdout, maxTargets, in.Seed+1)
			shadow := spec
			if m.DP != nil {
				shadow.DP = &ml.DPSpec{Epsilon: m.DP.Epsilon, Delta: math.Min(m.DP.Delta, 0.5/float64(non.NumRows()))}
			}
			cfg := assess.MembershipConfig{Target: assess.NewModelOracle(m, full), Space: space, Label: m.Target,
				Members: members, NonMembers: non, Seed: in.Seed, DP: rep.Model.DP, Progress: progress,
				Shadow: &assess.ShadowConfig{Spec: shadow, Models: 4, Decimals: -1}}
			if rep.Membership, err = assess.Membership(ctx, cfg); err != nil {
				return nil, err
			}
		case "extraction":
			pool := holdout
			if pool == nil {
				pool = train
				rep.Notes = append(rep.Notes, "Extraction: no held-out dataset; the attacker's natural rows and the evaluation rows come from the training data.")
			}
			rows, err := space.Rows(sample(pool, 2*maxTargets, in.Seed+2))
			if err != nil {
				return nil, err
			}
			half := len(rows) / 2
			eval := rows[half:]
			p, err := assess.NewModelOracle(m, full).Predict(ctx, eval)
			if err != nil {
				return nil, err
			}
			labels := make([]int, len(p))
			for i := range p {
				labels[i] = p[i].Class
			}
			var budgets []int
			for b := 50; b < in.Queries; b *= 2 {
				budgets = append(budgets, b)
			}
			budgets = append(budgets, in.Queries)
			ex, err := assess.Extraction(ctx, assess.ExtractionConfig{
				Target: func(context.Context, string) (assess.Oracle, error) {
					return assess.NewModelOracle(m, assess.OutputPolicy{Mode: assess.OutputLabel, Decimals: -1}), nil
				},
				Space: space, Budgets: budgets, Natural: rows[:half], Eval: eval, EvalLabels: labels, Seed: in.Seed, Progress: progress, Batch: 100})
			if err != nil {
				return nil, err
			}
			ex.Guards = "off"
			rep.Extraction = append(rep.Extraction, ex)
			if in.Endpoint != "" && s.endpoints != nil {
				progress("extraction through the endpoint, guards on")
				var retire []func()
				exOn, err := assess.Extraction(ctx, assess.ExtractionConfig{
					// One fresh service-user principal per strategy: what a
					// real attacker gets by signing up as a customer.
					Target: func(ctx context.Context, strategy string) (assess.Oracle, error) {
						tok, r, err := s.endpoints.Mint(ctx, a.TenantID, "assess-"+a.ID+"-"+strategy)
						if err != nil {
							return nil, err
						}
						retire = append(retire, r)
						return &assess.HTTPOracle{Client: s.endpoints.Client, BaseURL: s.endpoints.BaseURL(), Endpoint: in.Endpoint,
							Token: assess.Token(tok), Space: space}, nil
					},
					Space: space, Budgets: budgets, Natural: rows[:half], Eval: eval, EvalLabels: labels, Seed: in.Seed, Progress: progress, Batch: 10})
				for _, r := range retire {
					r()
				}
				if err != nil {
					return nil, err
				}
				exOn.Guards = "on"
				rep.Extraction = append(rep.Extraction, exOn)
			}
		case "evasion":
			pool := holdout
			if pool == nil {
				pool = train
			}
			f := sample(pool, 50, in.Seed+3)
			rows, err := space.Rows(f)
			if err != nil {
				return nil, err
			}
			y, err := space.Labels(f, m.Target)
			if err != nil {
				return nil, err
			}
			progress("evasion")
			ev, err := assess.Evasion(ctx, assess.EvasionConfig{Model: m, Space: space, Rows: rows, Labels: y, MaxRows: 50, Seed: in.Seed,
				QueriesPerRow: 1000, OOD: oodScorer{space: space, schema: guard.SchemaFromML(m.Schema(), 0.5)}})
			if err != nil {
				return nil, err
			}
			ev.Model = m.Algorithm
			rep.Evasion = append(rep.Evasion, ev)
		case "poisoning":
			ps := spec
			ps.Features = nil
			ps.DP = nil
			if m.Algorithm != ml.GBDT && m.Algorithm != ml.LogReg && m.Algorithm != ml.MLP {
				continue
			}
			if rep.Poisoning, err = assess.Poison(ctx, assess.PoisonConfig{Data: sample(train, 5_000, in.Seed+4), Label: m.Target,
				Spec: ps, Seed: in.Seed, Progress: progress}); err != nil {
				return nil, err
			}
		}
		rep.Timings[attack] = time.Since(start).Seconds()
	}
	return rep, nil
}

// sample returns at most n rows of f, chosen with the seed.
func sample(f *ml.Frame, n int, seed uint64) *ml.Frame {
	if f == nil || f.NumRows() <= n {
		return f
	}
	idx := make([]int, f.NumRows())
	for i := range idx {
		idx[i] = i
	}
	labels := make([]string, len(idx)) // one stratum: a seeded shuffle
	tr, _ := ml.StratifiedSplit(labels, 1-float64(n)/float64(len(idx)), seed)
	slices.Sort(tr)
	return f.Take(tr)
}

// oodScorer is the endpoint's OOD score (INF-5, guard.Schema.Score) with
// the default threshold.
type oodScorer struct {
	space  assess.Space
	schema *guard.Schema
}

func (o oodScorer) Scores(_ context.Context, rows [][]float64) ([]float64, error) {
	F := len(o.space.Features)
	r := &guard.Rows{N: len(rows), Num: make([][]float64, F), Cat: make([][]string, F)}
	for j, f := range o.space.Features {
		if f.Categorical {
			r.Cat[j] = make([]string, len(rows))
			for i, row := range rows {
				if k := row[j]; !math.IsNaN(k) && int(k) >= 0 && int(k) < len(f.Categories) {
					r.Cat[j][i] = f.Categories[int(k)]
				}
			}
			continue
		}
		r.Num[j] = make([]float64, len(rows))
		for i, row := range rows {
			r.Num[j][i] = row[j]
		}
	}
	out := make([]float64, len(rows))
	for i := range rows {
		out[i] = o.schema.Score(r, i)
	}
	return out, nil
}

func (o oodScorer) Threshold() float64 { return guard.DefaultOODThreshold }
