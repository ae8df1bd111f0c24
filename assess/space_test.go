package assess

import (
	"math"
	"testing"

	"github.com/rampart-mlaas/rampart/ml"
)

// Rows and Frame are inverse on the features; Admissible fills only the
// missing values an endpoint would refuse.
func TestSpaceRoundTripAndAdmissible(t *testing.T) {
	data := loadFrame(t, "credit_data.csv")
	m := train(t, data, ml.TrainSpec{Algorithm: ml.LogReg, Target: "Status", Params: map[string]string{"max_iter": "5"}})
	s := SpaceOf(m)
	rows, err := s.Rows(data)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Frame(rows, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.Rows(f)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for i := range rows {
		for j := range rows[i] {
			a, b := rows[i][j], back[i][j]
			if a != b && !(math.IsNaN(a) && math.IsNaN(b)) {
				t.Fatalf("row %d feature %d: %v → %v", i, j, a, b)
			}
			if math.IsNaN(a) {
				missing++
			}
		}
	}
	if missing == 0 {
		t.Fatal("credit_data has missing values; none seen")
	}
	// Training saw missing values in every column that has them, so
	// nothing changes; a feature marked as never missing is filled.
	if adm := s.Admissible(rows); adm[0][0] != rows[0][0] {
		t.Fatal("admissible changed a present value")
	}
	for j := range s.Features {
		s.Features[j].Missing = false
	}
	for _, r := range s.Admissible(rows) {
		for j, v := range r {
			if math.IsNaN(v) {
				t.Fatalf("feature %s still missing", s.Features[j].Name)
			}
		}
	}
}
