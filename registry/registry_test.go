package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/blob/disk"
	"github.com/rampart-mlaas/rampart/keyring"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/signer"
	"github.com/rampart-mlaas/rampart/sqlite"
)

// recorder is an in-memory rampart.Auditor; fail makes it refuse.
type recorder struct {
	mu   sync.Mutex
	evs  []rampart.AuditEvent
	fail bool
}

func (r *recorder) Record(_ context.Context, ev rampart.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("audit down")
	}
	r.evs = append(r.evs, ev)
	return nil
}

func (r *recorder) find(action string, allow bool) []rampart.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []rampart.AuditEvent
	for _, ev := range r.evs {
		if ev.Action == action && ev.Allow == allow {
			out = append(out, ev)
		}
	}
	return out
}

type env struct {
	t      testing.TB
	dir    string
	db     *sqlite.DB
	keys   *keyring.Keyring
	blobs  *disk.Store
	bar    *barrier.Barrier
	audit  *recorder
	svc    *Service
	tenant rampart.Tenant
	dev    rampart.Principal // registers
	dev2   rampart.Principal // approves
	dev3   rampart.Principal
	user   rampart.Principal
	clock  time.Time
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
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
	t.Cleanup(func() { blobs.Close() })
	e := &env{t: t, dir: dir, db: db, keys: keys, blobs: blobs, bar: barrier.New(keys, blobs), audit: &recorder{},
		clock: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)}
	e.tenant = rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: "acme", CreatedAt: e.clock}
	if err := db.CreateTenant(ctx, e.tenant); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, role rampart.Role) rampart.Principal {
		p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: e.tenant.ID, Name: name, Kind: rampart.PrincipalUser, Role: role, CreatedAt: e.clock}
		if err := db.CreatePrincipal(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e.dev, e.dev2, e.dev3 = mk("dev", rampart.RoleModelDeveloper), mk("dev2", rampart.RoleModelDeveloper), mk("dev3", rampart.RoleModelDeveloper)
	e.user = mk("user", rampart.RoleServiceUser)
	e.svc, err = New(Options{Store: db, Principals: db, Keys: keys, Barrier: e.bar, Audit: e.audit, Version: "test",
		Now: func() time.Time { return e.clock }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func as(p rampart.Principal) context.Context {
	return rampart.WithCaller(context.Background(), rampart.Caller{Principal: p, RequestID: "req_test"})
}

var (
	artOnce sync.Once
	artData []byte
	artErr  error
)

// artifact trains a small logistic regression once per test binary.
func artifact(t testing.TB) []byte {
	t.Helper()
	artOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		n := 200
		x1, x2, y := make([]float64, n), make([]float64, n), make([]string, n)
		for i := range n {
			x1[i], x2[i] = rng.NormFloat64(), rng.NormFloat64()
			y[i] = "no"
			if x1[i]+0.5*x2[i]+0.3*rng.NormFloat64() > 0 {
				y[i] = "yes"
			}
		}
		f, err := ml.NewFrame(ml.NumericColumn("x1", x1), ml.NumericColumn("x2", x2), ml.CategoricalColumn("label", y))
		if err != nil {
			artErr = err
			return
		}
		m, err := ml.Train(context.Background(), f, ml.TrainSpec{Algorithm: ml.LogReg, Target: "label", Seed: 7}, nil)
		if err != nil {
			artErr = err
			return
		}
		artData, artErr = m.Marshal()
	})
	if artErr != nil {
		t.Fatal(artErr)
	}
	return artData
}

func (e *env) trained(name, job string) TrainedInput {
	return TrainedInput{Owner: e.dev, RequestID: "job:" + job, ModelName: name, Artifact: artifact(e.t),
		Spec:     TrainSpec{Algorithm: "logreg", Target: "label", Params: map[string]string{"C": "1"}, Seed: 7},
		Datasets: []DatasetInput{{ID: "ds_aaaa", Name: "loans", Version: 3, Digest: "sha256:" + hex.EncodeToString(make([]byte, 32)), GrantID: "gr_x"}},
		Metrics:  map[string]float64{"accuracy": 0.91, "auc": 0.95}, DP: &DPParams{Epsilon: 2, Delta: 1e-5, NoiseMultiplier: 1.1, Private: true},
		JobID: job, StartedAt: e.clock.Add(-time.Minute), FinishedAt: e.clock}
}

func (e *env) register(name string) rampart.ModelVersion {
	e.t.Helper()
	v, err := e.svc.RegisterTrained(context.Background(), e.trained(name, "job_"+strconv.Itoa(len(e.audit.evs))))
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func TestRegisterTrainedAndLoad(t *testing.T) {
	e := newEnv(t)
	v := e.register("churn")
	sum := sha256.Sum256(artifact(t))
	if v.Digest != "sha256:"+hex.EncodeToString(sum[:]) || v.Version != 1 || v.Stage != rampart.StageCandidate || v.Provenance != rampart.ProvenanceTrained {
		t.Fatalf("version %+v", v)
	}
	// AUDIT-5: the lineage event names dataset (by digest), grant, job and model.
	evs := e.audit.find("model.version.create", true)
	if len(evs) != 1 || evs[0].Details["job"] == "" || evs[0].Details["dataset:ds_aaaa"] == "" || evs[0].Digest != v.Digest || evs[0].Details["grant:ds_aaaa"] != "gr_x" {
		t.Fatalf("lineage events %+v", evs)
	}
	v2 := e.register("churn")
	if v2.Version != 2 || v2.ModelID != v.ModelID {
		t.Fatalf("second version %+v", v2)
	}
	lm, err := e.svc.Load(context.Background(), e.tenant.ID, v.ModelID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if lm.Native == nil || lm.External != nil || lm.Version.Digest != v.Digest {
		t.Fatalf("loaded %+v", lm)
	}
	if _, err := lm.Native.PredictRecord(map[string]any{"x1": 1.0, "x2": 0.0}); err != nil {
		t.Fatal(err)
	}
	if got := len(e.audit.find("model.load", true)); got != 1 {
		t.Fatalf("%d load events", got)
	}
	// Load of version 0 means production: there is none yet.
	if _, err := e.svc.Load(context.Background(), e.tenant.ID, v.ModelID, 0); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("production load without production: %v", err)
	}
	// Another tenant's ID for the same model is not found (TEN-1).
	if _, err := e.svc.Load(context.Background(), rampart.NewID(rampart.PrefixTenant), v.ModelID, 1); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("foreign tenant load: %v", err)
	}
	// Reads through the caller API.
	got, err := e.svc.GetVersion(as(e.dev2), v.ModelID, 2)
	if err != nil || got.Digest != v2.Digest || got.Metrics["accuracy"] != 0.91 {
		t.Fatalf("get version: %+v %v", got, err)
	}
	if _, err := e.svc.GetModel(as(e.user), v.ModelID); !errors.Is(err, rampart.ErrForbidden) {
		t.Fatalf("service user read a model: %v", err)
	}
}

func TestRegisterValidation(t *testing.T) {
	e := newEnv(t)
	cases := map[string]func(*TrainedInput){
		"bad name":      func(in *TrainedInput) { in.ModelName = "Bad Name" },
		"no artifact":   func(in *TrainedInput) { in.Artifact = nil },
		"junk artifact": func(in *TrainedInput) { in.Artifact = []byte("not a model") },
		"spec mismatch": func(in *TrainedInput) { in.Spec.Algorithm = "gbdt" },
		"no datasets":   func(in *TrainedInput) { in.Datasets = nil },
		"bad digest":    func(in *TrainedInput) { in.Datasets[0].Digest = "abc" },
		"nan metric":    func(in *TrainedInput) { in.Metrics["x"] = nanf() },
		"service user":  func(in *TrainedInput) { in.Owner = e.user },
	}
	for name, mut := range cases {
		in := e.trained("m", "job_1")
		in.Datasets = append([]DatasetInput(nil), in.Datasets...)
		in.Metrics = map[string]float64{"accuracy": 1}
		mut(&in)
		if _, err := e.svc.RegisterTrained(context.Background(), in); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
	// A failing audit log refuses the registration (fail closed).
	e.audit.fail = true
	if _, err := e.svc.RegisterTrained(context.Background(), e.trained("m", "job_2")); !errors.Is(err, rampart.ErrUnavailable) {
		t.Fatalf("audit down: %v", err)
	}
}

func nanf() float64 { z := 0.0; return z / z }

// TestDeterministicAttestation (TRAIN-6, TRAIN-1): identical inputs give a
// byte-identical attestation apart from runDetails.metadata (times and
// the job's invocation ID).
func TestDeterministicAttestation(t *testing.T) {
	e := newEnv(t)
	var envs [][]byte
	for i := range 3 {
		in := e.trained("det", fmt.Sprintf("job_%d", i))
		in.StartedAt = e.clock.Add(time.Duration(-i) * time.Hour)
		in.FinishedAt = e.clock.Add(time.Duration(i) * time.Minute)
		v, err := e.svc.RegisterTrained(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.db.GetModelVersion(context.Background(), e.tenant.ID, v.ModelID, v.Version)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, r.Attestation)
	}
	st := make([]string, len(envs))
	for i, b := range envs {
		lm, err := e.svc.Load(context.Background(), e.tenant.ID, mustModel(t, e, "det").ID, i+1)
		if err != nil {
			t.Fatal(err)
		}
		s := *lm.Statement
		s.Predicate.RunDetails.Metadata = signerMetadataZero
		p, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		st[i] = string(p)
		_ = b
	}
	if st[0] != st[1] || st[1] != st[2] {
		t.Fatalf("attestations differ beyond times:\n%s\n%s", st[0], st[1])
	}
	// With identical times (and no job, so the second call is not taken as
	// a retry of the first) the whole envelope is identical: Ed25519 is
	// deterministic and the JSON canonical.
	in := e.trained("det2", "")
	in.JobID = ""
	v1, err := e.svc.RegisterTrained(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := e.svc.RegisterTrained(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != v1.Version+1 {
		t.Fatalf("versions %d, %d", v1.Version, v2.Version)
	}
	r1, _ := e.db.GetModelVersion(context.Background(), e.tenant.ID, v1.ModelID, v1.Version)
	r2, _ := e.db.GetModelVersion(context.Background(), e.tenant.ID, v2.ModelID, v2.Version)
	if len(r1.Attestation) == 0 || string(r1.Attestation) != string(r2.Attestation) {
		t.Fatal("identical inputs gave different envelopes")
	}
}

func mustModel(t *testing.T, e *env, name string) rampart.Model {
	t.Helper()
	m, err := e.db.GetModelByName(context.Background(), e.tenant.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var signerMetadataZero = signer.BuildMetadata{}

var tinyXGB = mustRead("testdata/xgboost/multi_softprob.json")

func mustRead(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		panic(err)
	}
	return b
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestCardAndBOM: every version has a complete model card (MODEL-3) and a
// CycloneDX ML-BOM naming the model by digest, its datasets by digest and
// the platform (SUP-1).
func TestCardAndBOM(t *testing.T) {
	e := newEnv(t)
	v := e.register("cards")
	cardJSON, _, err := e.svc.GetDocument(as(e.dev), v.ModelID, v.Version, DocCard)
	if err != nil {
		t.Fatal(err)
	}
	var card Card
	if err := json.Unmarshal(cardJSON, &card); err != nil {
		t.Fatal(err)
	}
	if m := card.Missing(); len(m) != 0 {
		t.Fatalf("card incomplete: %v", m)
	}
	if card.Digest != v.Digest || card.Owner != e.dev.ID || card.DP == nil || card.DP.Epsilon != 2 || card.Datasets[0].GrantID != "gr_x" ||
		card.Metrics["auc"] != 0.95 || card.JobID == "" || card.Signing.KeyID != v.KeyID {
		t.Fatalf("card: %s", cardJSON)
	}
	bomJSON, _, err := e.svc.GetDocument(as(e.dev), v.ModelID, v.Version, DocBOM)
	if err != nil {
		t.Fatal(err)
	}
	var bom BOM
	if err := json.Unmarshal(bomJSON, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.6" || !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") {
		t.Fatalf("bom header: %s", bomJSON)
	}
	kinds := map[string]BOMComponent{}
	for _, c := range bom.Components {
		kinds[c.Type] = c
	}
	model, data, tool := kinds["machine-learning-model"], kinds["data"], kinds["application"]
	if model.Hashes[0].Content != strings.TrimPrefix(v.Digest, "sha256:") || model.ModelCard == nil ||
		model.ModelCard.QuantitativeAnalysis == nil || len(model.ModelCard.ModelParameters.Datasets) != 1 {
		t.Fatalf("model component: %+v", model)
	}
	if data.Hashes[0].Content != strings.Repeat("0", 64) || tool.Name != "rampart" || tool.Version != "test" {
		t.Fatalf("data/tool components: %+v %+v", data, tool)
	}
	if len(bom.Dependencies) != 1 || len(bom.Dependencies[0].DependsOn) != 2 {
		t.Fatalf("dependencies: %+v", bom.Dependencies)
	}
	// The attestation document is the signed envelope.
	att, _, err := e.svc.GetDocument(as(e.auditorCtx()), v.ModelID, v.Version, DocAttestation)
	if err != nil {
		t.Fatal(err)
	}
	pem, _, err := e.svc.PublicKey(as(e.user))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signer.ParsePublicKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	st, err := signer.VerifyArtifact(att, artifact(t), pub)
	if err != nil {
		t.Fatal(err)
	}
	deps := st.Predicate.BuildDefinition.ResolvedDependencies
	if len(deps) != 1 || deps[0].Digest["sha256"] != strings.Repeat("0", 64) || st.Predicate.BuildDefinition.ExternalParameters["seed"] == nil {
		t.Fatalf("provenance: %+v", st.Predicate.BuildDefinition)
	}
}

func (e *env) auditorCtx() rampart.Principal {
	p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: e.tenant.ID, Name: "aud", Kind: rampart.PrincipalUser,
		Role: rampart.RoleAuditor, CreatedAt: e.clock}
	if err := e.db.CreatePrincipal(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// TestRegisterDisabledOwner: a job whose submitter was disabled after
// submission cannot register its model.
// The job's principal (in.Owner) was still active, so the artifact's seal
// started before the re-read: it must have been shredded, leaving no blob.
func TestRegisterDisabledOwner(t *testing.T) {
	e := newEnv(t)
	if err := e.db.SetPrincipalDisabled(context.Background(), e.dev.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RegisterTrained(context.Background(), e.trained("m", "job_1")); code(err) != rampart.CodeForbidden {
		t.Fatalf("disabled owner registered: %v", err)
	}
	in := e.trained("m", "job_2")
	in.Owner.ID = rampart.NewID(rampart.PrefixPrincipal)
	if _, err := e.svc.RegisterTrained(context.Background(), in); err == nil {
		t.Fatal("unknown owner registered")
	}
	if n := e.blobCount(); n != 0 {
		t.Fatalf("%d blobs left by refused registrations", n)
	}
}

// blobCount counts the files in the blob store (sealed artifacts), once
// every seal started has ended.
func (e *env) blobCount() int {
	e.svc.seals.Wait()
	n := 0
	_ = filepath.WalkDir(filepath.Join(e.dir, "blobs"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestRegisterIdempotentPerJob: a job that registers again (a retry after a
// crash, TRAIN-5) gets its first version back, not a second one; another
// artifact under the same job is a conflict.
func TestRegisterIdempotentPerJob(t *testing.T) {
	e := newEnv(t)
	in := e.trained("idem", "job_retry")
	v1, err := e.svc.RegisterTrained(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := e.svc.RegisterTrained(context.Background(), in)
	if err != nil || v2.Version != v1.Version || v2.ModelID != v1.ModelID {
		t.Fatalf("retry registered %+v, %v (first %d)", v2, err, v1.Version)
	}
	if got := len(e.audit.find("model.version.create", true)); got != 1 {
		t.Fatalf("%d versions created", got)
	}
	// The retry's artifact was sealed before the first version was found:
	// it is shredded, not left as an unreferenced ciphertext.
	if n := e.blobCount(); n != 1 {
		t.Fatalf("%d blobs after a retried registration; want 1", n)
	}
	other := in
	m, err := ml.Unmarshal(in.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	m.Seed++
	if other.Artifact, err = m.Marshal(); err != nil {
		t.Fatal(err)
	}
	other.Spec.Seed = m.Seed
	if _, err := e.svc.RegisterTrained(context.Background(), other); code(err) != rampart.CodeConflict {
		t.Fatalf("other artifact under the same job: %v", err)
	}
	if n := e.blobCount(); n != 1 {
		t.Fatalf("%d blobs after a conflicting registration; want 1", n)
	}
}
