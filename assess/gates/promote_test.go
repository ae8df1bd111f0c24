package gates_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess"
	"github.com/rampart-mlaas/rampart/assess/gates"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/blob/disk"
	"github.com/rampart-mlaas/rampart/keyring"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/registry"
	"github.com/rampart-mlaas/rampart/sqlite"
)

type recorder struct {
	mu  sync.Mutex
	evs []rampart.AuditEvent
}

func (r *recorder) Record(_ context.Context, ev rampart.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

// TestPromotionGate: with the gate in the registry (MODEL-5), an overfit
// GBDT whose real membership assessment exceeds the tenant's threshold is
// refused production with the failing metric named, a version without an
// assessment is refused, and one within the thresholds is promoted.
func TestPromotionGate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rv, err := keyring.NewRootKeyValue()
	if err != nil {
		t.Fatal(err)
	}
	root, err := keyring.ParseRootKey(rv)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(ctx, db, root)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	now := time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)
	tn := rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: "acme", CreatedAt: now}
	if err := db.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) rampart.Principal {
		p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: tn.ID, Name: name, Kind: rampart.PrincipalUser,
			Role: rampart.RoleModelDeveloper, CreatedAt: now}
		if err := db.CreatePrincipal(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dev, dev2 := mk("dev"), mk("dev2")
	as := func(p rampart.Principal) context.Context {
		return rampart.WithCaller(ctx, rampart.Caller{Principal: p, RequestID: "req_test"})
	}
	reg, err := registry.New(registry.Options{Store: db, Principals: db, Keys: keys, Barrier: barrier.New(keys, blobs), Audit: &recorder{},
		Version: "test", Now: func() time.Time { return now }, Gates: append(registry.DefaultGates(), gates.Gate{Store: db})})
	if err != nil {
		t.Fatal(err)
	}

	// An overfit GBDT on half of hr_attrition, and its real membership assessment.
	f, err := os.Open("../testdata/hr_attrition.csv")
	if err != nil {
		t.Fatal(err)
	}
	data, err := ml.ReadCSV(f, ml.CSVOptions{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	lc, _ := data.Column("Attrition")
	tr, te := ml.StratifiedSplit(lc.Labels(), 0.5, 1)
	spec := ml.TrainSpec{Algorithm: ml.GBDT, Target: "Attrition", Seed: 1,
		Params: map[string]string{"n_estimators": "100", "max_depth": "8", "learning_rate": "0.3", "min_child_weight": "0.01", "reg_lambda": "0.1"}}
	m, err := ml.Train(ctx, data.Take(tr), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	art, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	register := func(job string) rampart.ModelVersion {
		v, err := reg.RegisterTrained(ctx, registry.TrainedInput{Owner: dev, RequestID: "job:" + job, ModelName: "attrition", Artifact: art,
			Spec:     registry.TrainSpec{Algorithm: spec.Algorithm, Target: spec.Target, Params: spec.Params, Seed: spec.Seed},
			Datasets: []registry.DatasetInput{{ID: "ds_hr", Name: "hr", Version: 1, Digest: "sha256:" + hex.EncodeToString(make([]byte, 32))}},
			Metrics:  map[string]float64{"accuracy": 0.9}, JobID: job, StartedAt: now.Add(-time.Minute), FinishedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Promote(as(dev), v.ModelID, v.Version, rampart.StageStaging); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Approve(as(dev2), v.ModelID, v.Version); err != nil {
			t.Fatal(err)
		}
		return v
	}
	rep, err := assess.Membership(ctx, assess.MembershipConfig{Target: assess.NewModelOracle(m, assess.OutputPolicy{Mode: assess.OutputProba, Decimals: -1}),
		Space: assess.SpaceOf(m), Label: "Attrition", Members: data.Take(tr), NonMembers: data.Take(te), Bootstrap: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	metrics := (&assess.Report{Membership: rep}).Metrics()
	store := func(v rampart.ModelVersion, id string) {
		a := record.Assessment{ID: id, TenantID: tn.ID, ModelID: v.ModelID, ModelVersion: v.Version, Attacks: []string{"membership"},
			Status: record.Running, CreatedBy: dev.ID, CreatedAt: now}
		if err := db.CreateAssessment(ctx, a); err != nil {
			t.Fatal(err)
		}
		fin := now.Add(time.Minute)
		a.Status, a.Metrics, a.FinishedAt, a.Report = record.Succeeded, metrics, &fin, []byte("{}")
		if err := db.FinishAssessment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	auc := 0.6
	if err := db.SetAssessmentThresholds(ctx, tn.ID, []rampart.GateSpec{{Metric: assess.MetricMembershipAUC, Max: &auc}}); err != nil {
		t.Fatal(err)
	}

	v1 := register("job_1")
	_, err = reg.Promote(as(dev), v1.ModelID, v1.Version, rampart.StageProduction)
	if err == nil || !strings.Contains(err.Error(), "no successful security assessment") {
		t.Fatalf("unassessed version promoted: %v", err)
	}
	store(v1, "asm_1")
	_, err = reg.Promote(as(dev), v1.ModelID, v1.Version, rampart.StageProduction)
	if err == nil || !strings.Contains(err.Error(), assess.MetricMembershipAUC) || !strings.Contains(err.Error(), "above 0.6") {
		t.Fatalf("leaky version (AUC %.3f) promoted or wrong reason: %v", metrics[assess.MetricMembershipAUC], err)
	}
	t.Logf("refused: %v", err)
	// The tenant relaxes its threshold: the same assessment passes.
	loose := 0.95
	if err := db.SetAssessmentThresholds(ctx, tn.ID, []rampart.GateSpec{{Metric: assess.MetricMembershipAUC, Max: &loose}}); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Promote(as(dev), v1.ModelID, v1.Version, rampart.StageProduction)
	if err != nil || got.Stage != rampart.StageProduction {
		t.Fatalf("assessed version within thresholds: %+v %v", got, err)
	}
}
