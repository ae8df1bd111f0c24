package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/signer"
)

// maxDatasets bounds the datasets of one model (each becomes an audit
// detail and an attestation dependency).
const maxDatasets = 12

// TrainSpec is what a training run was asked to do.
type TrainSpec struct {
	Algorithm string
	Task      string
	Target    string
	Features  []string
	Params    map[string]string
	Seed      uint64
}

// TrainedInput is everything the jobs service hands over when a training
// job finishes.
type TrainedInput struct {
	// Owner is the principal that submitted the job; it must still hold
	// model.register in its tenant. Its tenant is the model's tenant.
	Owner     rampart.Principal
	RequestID string
	// ModelName names the model (created on first registration).
	ModelName string
	// Artifact is the ml artifact bytes (ml.Model.Marshal).
	Artifact []byte
	Spec     TrainSpec
	Datasets []DatasetInput
	Metrics  map[string]float64
	// DP is the guarantee of a DP-trained model; nil for non-private runs.
	DP         *DPParams
	JobID      string
	StartedAt  time.Time
	FinishedAt time.Time
	// IntendedUse and Limitations go to the model card; defaults describe
	// the training data when empty.
	IntendedUse string
	Limitations []string
	// Presealed, when set, is this artifact already being sealed
	// (PreSeal): it is used instead of a new seal when it holds exactly
	// Artifact for the owner's tenant. RegisterTrained takes it over in
	// every case: it is referenced by the stored version or shredded.
	Presealed *Presealed
	// Then, when set and the store supports it (AddModelVersionThen), runs
	// in the transaction that stores the new version, with the version: a
	// training job's final state is then durable together with its model
	// version, in one commit. It is not called when the job's version
	// already exists (a retried job) or the store cannot; the caller then
	// records its state itself.
	Then func(tx *sql.Tx, v rampart.ModelVersion) error
}

// versionThenStore is a store that adds a version together with the
// caller's own write (sqlite.DB).
type versionThenStore interface {
	AddModelVersionThen(ctx context.Context, r rampart.ModelRecord, then func(*sql.Tx) error) error
}

// RegisterTrained registers the artifact of a finished training job as a
// new candidate version: it seals the artifact, builds the model card
// (MODEL-3) and ML-BOM (SUP-1), signs an in-toto/SLSA attestation of the
// datasets, algorithm, parameters, seed, platform version and times
// (TRAIN-1), stores the immutable version and records the lineage dataset →
// job → model in the audit log (AUDIT-5).
//
// It is called by the jobs service, not by an HTTP handler: the owner is
// authorized for model.register here. Identical inputs give an identical
// attestation apart from runDetails.metadata (times, invocation ID).
func (s *Service) RegisterTrained(ctx context.Context, in TrainedInput) (rampart.ModelVersion, error) {
	// A presealed artifact not taken over below (an early refusal, another
	// tenant or other bytes) is shredded.
	pre := in.Presealed
	defer func() { pre.Discard(ctx) }()
	if err := CheckName(in.ModelName); err != nil {
		return rampart.ModelVersion{}, err
	}
	if len(in.Artifact) == 0 || len(in.Artifact) > ml.MaxArtifactSize {
		return rampart.ModelVersion{}, rampart.Invalid("artifact", "artifact must be 1..%d bytes", ml.MaxArtifactSize)
	}
	mm, err := ml.Unmarshal(in.Artifact)
	if err != nil {
		return rampart.ModelVersion{}, &rampart.Error{Code: rampart.CodeInvalid, Field: "artifact", Message: "not a valid model artifact", Err: err}
	}
	spec := in.Spec
	if spec.Algorithm == "" {
		spec.Algorithm = mm.Algorithm
	}
	if spec.Task == "" {
		spec.Task = string(mm.Task)
	}
	if spec.Target == "" {
		spec.Target = mm.Target
	}
	if spec.Algorithm != mm.Algorithm || spec.Task != string(mm.Task) || spec.Target != mm.Target {
		return rampart.ModelVersion{}, rampart.Invalid("spec", "the training spec does not match the artifact (%s/%s/%s)", mm.Algorithm, mm.Task, mm.Target)
	}
	if spec.Features == nil {
		for _, f := range mm.Schema() {
			spec.Features = append(spec.Features, f.Name)
		}
	}
	if len(in.Datasets) == 0 {
		return rampart.ModelVersion{}, rampart.Invalid("datasets", "a trained model needs its datasets (TRAIN-1)")
	}
	if len(in.Datasets) > maxDatasets {
		return rampart.ModelVersion{}, rampart.Invalid("datasets", "at most %d datasets", maxDatasets)
	}
	for _, d := range in.Datasets {
		if safeID(d.ID) != d.ID || d.GrantID != "" && safeID(d.GrantID) != d.GrantID || len(d.Name) > 128 ||
			!barrier.ValidDigest(strings.TrimPrefix(d.Digest, "sha256:")) {
			return rampart.ModelVersion{}, rampart.Invalid("datasets", "every dataset needs an ID and a sha256 digest")
		}
	}
	if safeID(in.JobID) != in.JobID && in.JobID != "" {
		return rampart.ModelVersion{}, rampart.Invalid("job_id", "malformed job ID")
	}
	for k, v := range in.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return rampart.ModelVersion{}, rampart.Invalid("metrics", "metric %s is not finite", k)
		}
	}
	dp := in.DP
	if dp == nil && mm.DP != nil {
		dp = &DPParams{Epsilon: mm.DP.Epsilon, Delta: mm.DP.Delta, NoiseMultiplier: mm.DP.NoiseMultiplier, Private: mm.DP.Private}
	}
	datasets := slices.Clone(in.Datasets)
	for i := range datasets {
		datasets[i].Digest = strings.TrimPrefix(datasets[i].Digest, "sha256:")
	}
	card := Card{Provenance: rampart.ProvenanceTrained, Format: rampart.FormatRampart, Algorithm: spec.Algorithm,
		Task: spec.Task, Target: spec.Target, Features: spec.Features, Params: spec.Params, Seed: &spec.Seed,
		Datasets: datasets, Metrics: in.Metrics, DP: dp, JobID: in.JobID, IntendedUse: in.IntendedUse, Limitations: in.Limitations}
	if card.IntendedUse == "" {
		card.IntendedUse = fmt.Sprintf("%s of %s from tabular records distributed like the training datasets listed in this card", spec.Task, spec.Target)
	}
	if len(card.Limitations) == 0 {
		card.Limitations = []string{"not evaluated on data from outside the distribution of the listed training datasets",
			"no security assessment (membership inference, extraction, evasion) was recorded at registration"}
	}
	if card.Metrics == nil {
		card.Metrics = map[string]float64{}
	}
	ext := map[string]any{"model": in.ModelName, "algorithm": spec.Algorithm, "task": spec.Task, "target": spec.Target,
		"features": spec.Features, "params": nonNil(spec.Params), "seed": spec.Seed}
	internal := map[string]any{"rampart_version": s.platform, "format": rampart.FormatRampart}
	if dp != nil {
		ext["dp"] = map[string]any{"epsilon": dp.Epsilon, "delta": dp.Delta}
		internal["dp_noise_multiplier"] = dp.NoiseMultiplier
		internal["dp_private"] = dp.Private
	}
	var deps []signer.ResourceDescriptor
	for _, d := range datasets {
		rd := signer.ResourceDescriptor{Name: cmpOr(d.Name, d.ID), URI: fmt.Sprintf("rampart:dataset/%s@%d", d.ID, d.Version),
			Digest: map[string]string{"sha256": d.Digest}}
		if d.GrantID != "" {
			rd.Annotations = map[string]any{"grant_id": d.GrantID}
		}
		deps = append(deps, rd)
	}
	bd := signer.BuildDefinition{BuildType: signer.BuildTypeTrain, ExternalParameters: ext, InternalParameters: internal, ResolvedDependencies: deps}
	started, finished := in.StartedAt.UTC(), in.FinishedAt.UTC()
	md := signer.BuildMetadata{InvocationID: in.JobID}
	if !in.StartedAt.IsZero() {
		md.StartedOn = &started
	}
	if !in.FinishedAt.IsZero() {
		md.FinishedOn = &finished
	}
	res := authz.Resource{Kind: "model", ID: in.ModelName, TenantID: in.Owner.TenantID}
	// The artifact (parsed above) is sealed while the owner is re-read, the
	// job's earlier version looked up and the decision recorded: the seal's
	// durable writes are the longest step of a registration. It starts only
	// when the owner the job ran as may register (authz.Decide is a pure
	// function of these inputs). The ciphertext is unreferenced until the
	// version row, which is stored only after the decision and the lineage
	// event are durable (AUDIT-3, AUDIT-5); every path that does not store
	// it (owner now disabled or moved, a retried job's existing version, a
	// refusal, a failed record) shreds it (discard). An owner refused when
	// the job ran never has the artifact sealed.
	var ps *pendingSeal
	if authz.Decide(in.Owner, authz.ModelRegister, res).Allow {
		if pre != nil && pre.p.ref.Tenant == in.Owner.TenantID && pre.p.want == hexSHA256(in.Artifact) {
			ps, pre = pre.p, nil
		} else {
			ps = s.startSeal(ctx, in.Owner.TenantID, in.Artifact)
		}
	}
	// The owner is re-read: a principal disabled (or moved) since the job
	// was submitted can no longer register.
	if owner, err := s.principals.GetPrincipal(ctx, in.Owner.ID); err == nil && owner.TenantID == in.Owner.TenantID {
		in.Owner = owner
	} else if err == nil || errors.Is(err, rampart.ErrNotFound) {
		in.Owner.Disabled = true
	} else {
		ps.discard(ctx)
		return rampart.ModelVersion{}, fmt.Errorf("registry: owner: %w", err)
	}
	// A job retried after a crash (TRAIN-5) may register twice: the second
	// call returns the version the first stored, if it is the same artifact.
	if in.JobID != "" {
		prev, err := s.store.GetModelVersionByJob(ctx, in.Owner.TenantID, in.JobID)
		switch {
		case err == nil && prev.Digest == "sha256:"+hexSHA256(in.Artifact) && prev.ModelName == in.ModelName:
			ps.discard(ctx)
			if _, err := s.decide(ctx, in.Owner, in.RequestID, authz.ModelRegister, authz.Resource{Kind: "model", ID: prev.ModelID, TenantID: prev.TenantID},
				map[string]string{"job": in.JobID, "name": in.ModelName, "existing_version": fmt.Sprint(prev.Version)}); err != nil {
				return rampart.ModelVersion{}, err
			}
			return prev, nil
		case err == nil:
			ps.discard(ctx)
			return rampart.ModelVersion{}, rampart.Errorf(rampart.CodeConflict, "job %s already registered %s@%d with another artifact", in.JobID, prev.ModelName, prev.Version)
		case !errors.Is(err, rampart.ErrNotFound):
			ps.discard(ctx)
			return rampart.ModelVersion{}, err
		}
	}
	// The re-read owner decides (a disabled one is refused and recorded
	// below): a seal started for the owner the job ran as is shredded.
	if ps != nil && !authz.Decide(in.Owner, authz.ModelRegister, res).Allow {
		ps.discard(ctx)
		ps = nil
	}
	a, err := s.decide(ctx, in.Owner, in.RequestID, authz.ModelRegister, res, map[string]string{"job": in.JobID, "name": in.ModelName})
	if err != nil {
		ps.discard(ctx)
		return rampart.ModelVersion{}, err
	}
	return s.register(ctx, a, in.Owner, in.RequestID, in.ModelName, in.Artifact, rampart.FormatRampart, card, bd, md, ps, in.Then)
}

// Presealed is a trained artifact whose seal started before its job's
// run ended (PreSeal), to be handed to RegisterTrained.
type Presealed struct {
	p    *pendingSeal
	once sync.Once
}

// PreSeal starts sealing a training job's artifact as soon as the worker
// has sent it, while the run ends (the worker's exit, the checks of its
// outcome): the seal's durable writes are the longest step of a
// registration. The bytes are not trusted yet: the ciphertext is an
// unreferenced object under a fresh random name until RegisterTrained,
// which parses the artifact first, stores a version naming it; if the
// run fails, the caller must Discard it, which shreds it. It returns nil
// (nothing sealed) when owner may not register models (authz.Decide, as
// in RegisterTrained).
func (s *Service) PreSeal(ctx context.Context, owner rampart.Principal, artifact []byte) *Presealed {
	if len(artifact) == 0 || len(artifact) > ml.MaxArtifactSize ||
		!authz.Decide(owner, authz.ModelRegister, authz.Resource{Kind: "model", TenantID: owner.TenantID}).Allow {
		return nil
	}
	return &Presealed{p: s.startSeal(context.WithoutCancel(ctx), owner.TenantID, artifact)}
}

// Discard shreds a presealed artifact once its seal has ended; it is
// idempotent, and a no-op on nil or once RegisterTrained took it over.
func (p *Presealed) Discard(ctx context.Context) {
	if p != nil {
		p.once.Do(func() { p.p.discard(ctx) })
	}
}

// pendingSeal is an artifact being sealed under a fresh random reference:
// nothing can collide with it, and until a version row names it, it is an
// unreferenced ciphertext that a failure shreds.
type pendingSeal struct {
	s          *Service
	artifactID string
	ref        barrier.Ref
	want       string // the artifact's hex SHA-256
	ch         chan error
	waited     bool
	err        error
}

// startSeal seals artifact in the background (data key, ciphertext file,
// directory: three durable writes).
func (s *Service) startSeal(ctx context.Context, tenant string, artifact []byte) *pendingSeal {
	p := &pendingSeal{s: s, artifactID: rampart.NewID(rampart.PrefixArtifact), ch: make(chan error, 1)}
	p.ref = artifactRef(tenant, p.artifactID)
	want := hexSHA256(artifact)
	p.want = want
	s.seals.Add(1)
	go func() {
		defer s.seals.Done()
		sealed, err := s.barrier.PutBytes(ctx, p.ref, artifact)
		if err == nil && sealed.Digest != want {
			_ = s.barrier.Shred(context.WithoutCancel(ctx), p.ref)
			err = fmt.Errorf("registry: sealed digest differs")
		} else if err != nil {
			err = fmt.Errorf("registry: seal artifact: %w", err)
		}
		p.ch <- err
	}()
	return p
}

// wait returns the seal's outcome (nil: sealed, with the expected digest).
func (p *pendingSeal) wait() error {
	if !p.waited {
		p.err, p.waited = <-p.ch, true
	}
	return p.err
}

// discard waits for the seal and shreds what it stored; nil is a no-op.
func (p *pendingSeal) discard(ctx context.Context) {
	if p != nil && p.wait() == nil {
		_ = p.s.barrier.Shred(context.WithoutCancel(ctx), p.ref)
	}
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// register stores a new version of the named model (created if new). The
// artifact is sealed (ps, started here when nil) while the version is
// prepared and its lineage event recorded; the row is stored only after
// both (fail closed). A failure shreds the sealed artifact.
func (s *Service) register(ctx context.Context, a *audited, owner rampart.Principal, requestID, name string, artifact []byte, format string,
	card Card, bd signer.BuildDefinition, md signer.BuildMetadata, ps *pendingSeal, then func(*sql.Tx, rampart.ModelVersion) error) (_ rampart.ModelVersion, err error) {
	if ps == nil {
		ps = s.startSeal(ctx, owner.TenantID, artifact)
	}
	defer func() {
		if err != nil {
			ps.discard(ctx)
		}
	}()
	sum := sha256.Sum256(artifact)
	hexDigest := hex.EncodeToString(sum[:])
	digest := "sha256:" + hexDigest
	key, err := s.keys.SigningKey(ctx, SigningKeyName)
	if err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, fmt.Errorf("registry: signing key: %w", err))
	}
	st := &signer.Statement{Type: signer.StatementType, PredicateType: signer.PredicateSLSAv1,
		Subject:   []signer.Subject{{Name: name, Digest: map[string]string{"sha256": hexDigest}}},
		Predicate: signer.Provenance{BuildDefinition: bd, RunDetails: signer.RunDetails{Builder: signer.Builder{ID: signer.BuilderID, Version: map[string]string{"rampart": s.platform}}, Metadata: md}}}
	payload, err := st.Marshal()
	if err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, fmt.Errorf("registry: statement: %w", err))
	}
	env, err := signer.Sign(key, signer.PayloadTypeInToto, payload).Marshal()
	if err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, fmt.Errorf("registry: envelope: %w", err))
	}
	// The row is stored only once the seal succeeded (storeVersion waits),
	// so what a crash can leave is unchanged: at worst an unreferenced
	// ciphertext, never a version without its artifact or its lineage
	// record (AUDIT-5, MODEL-1).
	s.regMu.Lock()
	defer s.regMu.Unlock()
	// Another process (or service instance) may take the same version
	// number first: the store refuses the second, and we try the next.
	for attempt := 0; ; attempt++ {
		v, err := s.storeVersion(ctx, owner, requestID, name, ps.artifactID, int64(len(artifact)), digest, format, card, env, key.PublicKey(), ps.wait, then)
		if err == nil || !errors.Is(err, rampart.ErrConflict) || attempt == 4 || ps.wait() != nil {
			if err != nil {
				return rampart.ModelVersion{}, a.Done(ctx, err)
			}
			return v, nil
		}
	}
}

// storeVersion allocates the next version number of the named model
// (creating the model), builds card, BOM and binding for it, records the
// lineage event (AUDIT-5), waits for the artifact to be sealed (sealed)
// and stores the row, with then in its transaction when the store can.
func (s *Service) storeVersion(ctx context.Context, owner rampart.Principal, requestID, name, artifactID string, size int64,
	digest, format string, card Card, env []byte, pub ed25519.PublicKey, sealed func() error,
	then func(*sql.Tx, rampart.ModelVersion) error) (rampart.ModelVersion, error) {
	m, err := s.store.GetModelByName(ctx, owner.TenantID, name)
	if errors.Is(err, rampart.ErrNotFound) {
		m = rampart.Model{ID: rampart.NewID(rampart.PrefixModel), TenantID: owner.TenantID, Name: name, Owner: owner.ID, CreatedAt: s.now().UTC()}
		err = s.store.CreateModel(ctx, m)
	}
	if err != nil {
		return rampart.ModelVersion{}, err
	}
	v := m.LatestVersion + 1
	card.Model, card.ModelID, card.Version, card.Owner, card.Digest = name, m.ID, v, owner.ID, digest
	card.Signing = CardSigning{KeyID: signer.KeyID(pub), PredicateType: signer.PredicateSLSAv1}
	cardJSON, err := card.Marshal()
	if err != nil {
		return rampart.ModelVersion{}, err
	}
	bomJSON, err := canonicalJSON(buildBOM(&card, s.platform))
	if err != nil {
		return rampart.ModelVersion{}, err
	}
	rec := rampart.ModelRecord{ModelVersion: rampart.ModelVersion{ModelID: m.ID, TenantID: m.TenantID, ModelName: name, Version: v,
		Stage: rampart.StageCandidate, Format: format, Provenance: card.Provenance, Digest: digest, Size: size,
		Algorithm: card.Algorithm, Task: card.Task, Metrics: maps.Clone(card.Metrics), JobID: card.JobID, CreatedBy: owner.ID,
		CreatedAt: s.now().UTC(), KeyID: card.Signing.KeyID}, ArtifactID: artifactID, Card: cardJSON, BOM: bomJSON, Attestation: env}
	if rec.Binding, err = s.binding(ctx, rec); err != nil {
		return rampart.ModelVersion{}, err
	}
	// AUDIT-5: the lineage event names the datasets (by digest), the grant,
	// the job and the new version with its artifact digest, and is durable
	// before the version exists.
	lineage := map[string]string{"model": name, "version": fmt.Sprint(v), "provenance": card.Provenance, "format": format}
	if card.JobID != "" {
		lineage["job"] = card.JobID
	}
	for _, d := range card.Datasets {
		lineage["dataset:"+d.ID] = fmt.Sprintf("v%d sha256:%s", d.Version, d.Digest)
		if d.GrantID != "" {
			lineage["grant:"+d.ID] = d.GrantID
		}
	}
	ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: m.TenantID, Principal: owner.ID, Role: owner.Role,
		Action: "model.version.create", Resource: fmt.Sprintf("model/%s@%d", m.ID, v), Allow: true, Outcome: "ok",
		Reason: "signed " + card.Provenance + " model version", RequestID: requestID, Digest: digest, Details: lineage}
	if err := s.audit.Record(ctx, ev); err != nil {
		return rampart.ModelVersion{}, unavailable(err)
	}
	err = sealed()
	if err == nil {
		if ts, ok := s.store.(versionThenStore); ok && then != nil {
			err = ts.AddModelVersionThen(ctx, rec, func(tx *sql.Tx) error { return then(tx, rec.ModelVersion) })
		} else {
			err = s.store.AddModelVersion(ctx, rec)
		}
	}
	if err != nil {
		ev.Outcome, ev.Allow, ev.Time = string(rampart.ErrorCode(err)), false, s.now().UTC()
		if aerr := s.audit.Record(ctx, ev); aerr != nil {
			return rampart.ModelVersion{}, errors.Join(err, unavailable(aerr))
		}
		return rampart.ModelVersion{}, err
	}
	return rec.ModelVersion, nil
}

func artifactRef(tenant, artifactID string) barrier.Ref {
	return barrier.Ref{Tenant: tenant, Kind: "model", ID: artifactID, Version: 0}
}

// bindingMessage is what the tenant MAC covers: the version's identity and
// every immutable field, with the documents by digest.
func bindingMessage(r rampart.ModelRecord) ([]byte, error) {
	h := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	return canonicalJSON(struct {
		Domain                                   string
		Tenant, Model, Name                      string
		Version                                  int
		Format, Provenance, Digest               string
		Size                                     int64
		Algorithm, Task, JobID, CreatedBy, KeyID string
		ArtifactID                               string
		CreatedAt                                int64
		Metrics                                  map[string]float64
		Card, BOM, Attestation                   string
	}{"rampart/model-version/v1", r.TenantID, r.ModelID, r.ModelName, r.Version, r.Format, r.Provenance, r.Digest, r.Size,
		r.Algorithm, r.Task, r.JobID, r.CreatedBy, r.KeyID, r.ArtifactID, r.CreatedAt.UnixNano(), r.Metrics, h(r.Card), h(r.BOM), h(r.Attestation)})
}

func (s *Service) binding(ctx context.Context, r rampart.ModelRecord) ([]byte, error) {
	msg, err := bindingMessage(r)
	if err != nil {
		return nil, err
	}
	mac, err := s.keys.TenantMAC(ctx, r.TenantID)
	if err != nil {
		return nil, fmt.Errorf("registry: tenant MAC: %w", err)
	}
	return mac.ComputeMAC(msg)
}

// checkBinding verifies the row's MAC: a row moved to another version or
// model, or any changed field or document, fails (MODEL-1, MODEL-6).
func (s *Service) checkBinding(ctx context.Context, r rampart.ModelRecord) error {
	msg, err := bindingMessage(r)
	if err != nil {
		return err
	}
	mac, err := s.keys.TenantMAC(ctx, r.TenantID)
	if err != nil {
		return fmt.Errorf("registry: tenant MAC: %w", err)
	}
	if err := mac.VerifyMAC(r.Binding, msg); err != nil {
		return fmt.Errorf("%w: the version record's binding does not verify", signer.ErrVerify)
	}
	return nil
}
