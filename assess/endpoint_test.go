package assess

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rampart-mlaas/rampart/ml"
)

// fakeEndpoint speaks the /v1 predict wire format (rows as objects keyed
// by feature; predictions under the output policy; problem+json refusals)
// over a model, with a row budget and an extraction block after it.
func fakeEndpoint(t *testing.T, m *ml.Model, proba bool, budget int64) *httptest.Server {
	s := SpaceOf(m)
	var used atomic.Int64
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/endpoints/ep1/predict" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		var body struct {
			Rows []map[string]any `json:"rows"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
			return
		}
		if n := used.Add(int64(len(body.Rows))); n > budget {
			kind, status := "budget-exhausted", http.StatusTooManyRequests
			if n > budget+100 {
				kind, status = "extraction-suspected", http.StatusForbidden
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"type":"urn:rampart:problem:%s","detail":"%s","status":%d}`, kind, kind, status)
			return
		}
		var out []string
		for _, row := range body.Rows {
			rec := map[string]any{}
			for k, v := range row {
				rec[k] = v
			}
			p, err := m.PredictRecord(rec)
			if err != nil {
				t.Error(err)
				return
			}
			if proba {
				var ps []string
				for i, c := range s.Classes {
					ps = append(ps, fmt.Sprintf("%q:%g", c, math.Round(p.Proba[i]*100)/100))
				}
				out = append(out, fmt.Sprintf(`{"label":%q,"probabilities":{%s}}`, p.Label, strings.Join(ps, ",")))
			} else {
				out = append(out, fmt.Sprintf(`{"label":%q}`, p.Label))
			}
		}
		fmt.Fprintf(w, `{"endpoint":"ep1","predictions":[%s]}`, strings.Join(out, ","))
	}))
}

func TestHTTPOracle(t *testing.T) {
	data := loadFrame(t, "credit_data.csv")
	tr, te := split(t, data, "Status", 0.2, 10)
	m := train(t, tr, ml.TrainSpec{Algorithm: ml.LogReg, Target: "Status"})
	s := SpaceOf(m)
	rows, _ := s.Rows(te.Take([]int{0, 1, 2, 3, 4, 5, 6, 7}))
	direct, _ := NewModelOracle(m, OutputPolicy{Mode: OutputProba, Decimals: 2}).Predict(context.Background(), rows)
	for _, proba := range []bool{true, false} {
		srv := fakeEndpoint(t, m, proba, 10)
		o := &HTTPOracle{Client: srv.Client(), BaseURL: srv.URL, Endpoint: "ep1", Token: "tok", Space: s}
		got, err := o.Predict(context.Background(), rows)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i].Class != direct[i].Class {
				t.Errorf("row %d: class %d, direct %d", i, got[i].Class, direct[i].Class)
			}
			if proba && math.Abs(got[i].Proba[got[i].Class]-direct[i].PLabel) > 1e-9 {
				t.Errorf("row %d: probabilities %v vs %v", i, got[i].Proba, direct[i].Proba)
			}
			if !proba && (got[i].Proba != nil || !math.IsNaN(got[i].PLabel)) {
				t.Errorf("row %d: label-only answer carries probabilities", i)
			}
		}
		// The budget refuses; past it the monitor blocks and flags.
		if _, err := o.Predict(context.Background(), rows); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "budget") {
			t.Errorf("over budget: %v", err)
		}
		if f, _, _ := o.Flagged(context.Background()); f {
			t.Error("flagged before the monitor said so")
		}
		big := make([][]float64, 100)
		for i := range big {
			big[i] = rows[0]
		}
		if _, err := o.Predict(context.Background(), big); !errors.Is(err, ErrRefused) {
			t.Errorf("blocked: %v", err)
		}
		if f, why, _ := o.Flagged(context.Background()); !f || why != "extraction-suspected" {
			t.Errorf("not flagged: %v %q", f, why)
		}
		if o.Queries() != 8 || fmt.Sprint(o.Token) != "[redacted]" {
			t.Errorf("queries %d, token %v", o.Queries(), o.Token)
		}
		srv.Close()
	}
}
