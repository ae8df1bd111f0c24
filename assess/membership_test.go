package assess

import (
	"context"
	"testing"

	"github.com/rampart-mlaas/rampart/ml"
)

// PRIV-1: an overfit GBDT on hr_attrition is detected (AUC ≥ 0.6), and
// the DP check catches a false guarantee.
func TestMembershipOverfitGBDT(t *testing.T) {
	ctx := context.Background()
	data := loadFrame(t, "hr_attrition.csv")
	members, non := split(t, data, "Attrition", 0.5, 1)
	spec := ml.TrainSpec{Algorithm: ml.GBDT, Target: "Attrition", Params: overfitGBDT, Seed: 1}
	m := train(t, members, spec)
	o := NewModelOracle(m, OutputPolicy{Mode: OutputProba, Decimals: -1})
	rep, err := Membership(ctx, MembershipConfig{Target: o, Space: SpaceOf(m), Label: "Attrition",
		Members: members, NonMembers: non, Seed: 1, Bootstrap: 50,
		Shadow: &ShadowConfig{Spec: spec, Models: 4, Decimals: -1},
		// A guarantee this model does not have: the check must refute it.
		DP: &DPGuarantee{Epsilon: 0.1, Delta: 1e-5}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Attacks) != 2 {
		t.Fatalf("attacks: %+v", rep.Attacks)
	}
	for _, a := range rep.Attacks {
		t.Logf("%s: AUC %.3f [%.3f, %.3f], TPR@1%% %.3f, TPR@0.1%% %.3f, DP ε_lb %.2f, violations %d/%d",
			a.Name, a.AUC.Value, a.AUC.Lo, a.AUC.Hi, a.TPR1.Value, a.TPR01.Value, a.DP.EpsilonLowerBound, a.DP.Violations, a.DP.Points)
		if a.AUC.Lo > a.AUC.Value || a.AUC.Hi < a.AUC.Value {
			t.Errorf("%s: interval %+v does not hold the estimate", a.Name, a.AUC)
		}
	}
	if a := rep.Attacks[0]; a.AUC.Value < 0.6 {
		t.Errorf("loss attack AUC %.3f < 0.6 on an overfit GBDT", a.AUC.Value)
	}
	if !rep.Attacks[0].DP.Violated || rep.Attacks[0].DP.EpsilonLowerBound <= 0.1 {
		t.Errorf("ε = 0.1 claimed for an overfit model was not refuted: %+v", rep.Attacks[0].DP)
	}
	if rep.MemberAccuracy < rep.NonMemberAccuracy {
		t.Errorf("member accuracy %.3f below non-member %.3f", rep.MemberAccuracy, rep.NonMemberAccuracy)
	}
}

// PRIV-1: a DP logistic regression (ε = 1) never exceeds the DP bound.
func TestMembershipDPLogReg(t *testing.T) {
	ctx := context.Background()
	data := loadFrame(t, "hr_attrition.csv")
	members, non := split(t, data, "Attrition", 0.5, 2)
	spec := ml.TrainSpec{Algorithm: ml.LogReg, Target: "Attrition", Seed: 2,
		DP: &ml.DPSpec{Epsilon: 1, Delta: 1e-5, Seeded: true}}
	m := train(t, members, spec)
	if m.DP == nil || m.DP.Epsilon > 1+1e-9 {
		t.Fatalf("DP report %+v", m.DP)
	}
	o := NewModelOracle(m, OutputPolicy{Mode: OutputProba, Decimals: -1})
	rep, err := Membership(ctx, MembershipConfig{Target: o, Space: SpaceOf(m), Label: "Attrition",
		Members: members, NonMembers: non, Seed: 2, Bootstrap: 50,
		Shadow: &ShadowConfig{Spec: spec, Models: 4, Decimals: -1},
		DP:     &DPGuarantee{Epsilon: m.DP.Epsilon, Delta: m.DP.Delta}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rep.Attacks {
		t.Logf("%s: AUC %.3f, TPR@1%% %.3f, ε_lb %.3f, point violations %d, violations %d of %d points",
			a.Name, a.AUC.Value, a.TPR1.Value, a.DP.EpsilonLowerBound, a.DP.PointViolations, a.DP.Violations, a.DP.Points)
		if a.DP.Violated || a.DP.EpsilonLowerBound > m.DP.Epsilon {
			t.Errorf("%s: DP bound violated: %+v", a.Name, a.DP)
		}
	}
}

// Label-only outputs reduce the loss attack to correctness and skip LiRA.
func TestMembershipLabelOnly(t *testing.T) {
	data := loadFrame(t, "breast_cancer.csv")
	members, non := split(t, data, "diagnosis", 0.5, 3)
	m := train(t, members, ml.TrainSpec{Algorithm: ml.LogReg, Target: "diagnosis"})
	o := NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: -1})
	rep, err := Membership(context.Background(), MembershipConfig{Target: o, Space: SpaceOf(m), Label: "diagnosis",
		Members: members, NonMembers: non, Bootstrap: 20,
		Shadow: &ShadowConfig{Spec: ml.TrainSpec{Algorithm: ml.LogReg, Target: "diagnosis"}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Output != "label-only" || len(rep.Attacks) != 1 || len(rep.Skipped) != 1 {
		t.Fatalf("report %+v", rep)
	}
	// Two distinct scores: the curve has at most 3 points (0,0), one
	// corner, (1,1).
	if n := len(rep.Attacks[0].ROC); n > 3 {
		t.Errorf("label-only ROC has %d points", n)
	}
}
