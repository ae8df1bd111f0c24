package assess

import (
	"context"
	"testing"

	"github.com/rampart-mlaas/rampart/ml"
)

// DATA-5 drill: the dataset package's screening finds most flipped labels
// on breast_cancer, and screening recovers accuracy lost to poisoning.
func TestPoisonDrill(t *testing.T) {
	data := loadFrame(t, "breast_cancer.csv")
	rep, err := Poison(context.Background(), PoisonConfig{Data: data, Label: "diagnosis", Rates: []float64{0, 0.10},
		Spec: ml.TrainSpec{Algorithm: ml.LogReg}, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Points {
		t.Logf("%+v", p)
	}
	clean, ten := rep.Points[0], rep.Points[1]
	if clean.Flipped != 0 || clean.FlaggedShare > 0.05 {
		t.Errorf("clean data: %+v", clean)
	}
	if ten.Flipped != int(0.1*float64(rep.TrainRows)+0.5) || ten.Recall < 0.6 || ten.Precision < 0.6 {
		t.Errorf("10 %% flips: %+v", ten)
	}
	if ten.AccuracyScreened+0.02 < ten.AccuracyUnscreened {
		t.Errorf("screening lost accuracy: %+v", ten)
	}
}

func TestPoisonBadInput(t *testing.T) {
	data := loadFrame(t, "breast_cancer.csv")
	for _, cfg := range []PoisonConfig{
		{Data: data, Label: "nope"},
		{Data: data, Label: "diagnosis", Rates: []float64{0.6}},
		{Label: "diagnosis"},
	} {
		if _, err := Poison(context.Background(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg.Rates)
		}
	}
}
