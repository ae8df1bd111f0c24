package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/signer"
)

// ImportInput is an external model to import (MODEL-2, SUP-3).
type ImportInput struct {
	Name string
	// ExpectedDigest pins the bytes: "sha256:<hex>" (or bare hex). A
	// mismatch refuses the import (SUP-3).
	ExpectedDigest string
	// Format optionally asserts the format; it must match the content.
	Format      string
	Data        []byte
	IntendedUse string
	Limitations []string
	// Source is a free-form note on where the model came from.
	Source string
}

// Import registers an external model as a new candidate version, signed
// like a trained one with provenance "imported". The format is recognised
// from the content only; pickle, joblib, PyTorch and other code-carrying
// formats are rejected with the reason (MODEL-2).
func (s *Service) Import(ctx context.Context, in ImportInput) (rampart.ModelVersion, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.ModelVersion{}, rampart.ErrUnauthenticated
	}
	if err := CheckName(in.Name); err != nil {
		return rampart.ModelVersion{}, err
	}
	want := strings.ToLower(strings.TrimPrefix(in.ExpectedDigest, "sha256:"))
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		return rampart.ModelVersion{}, rampart.Invalid("digest", "the expected digest (sha256:<64 hex>) is required to import a model (SUP-3)")
	}
	if len(in.Source) > 512 || len(in.IntendedUse) > 2048 || len(in.Limitations) > 32 {
		return rampart.ModelVersion{}, rampart.Invalid("source", "source, intended use or limitations too long")
	}
	sum := sha256.Sum256(in.Data)
	got := hex.EncodeToString(sum[:])
	a, err := s.decide(ctx, c.Principal, c.RequestID, authz.ModelImport, authz.Resource{Kind: "model", ID: in.Name, TenantID: c.Principal.TenantID},
		map[string]string{"name": in.Name, "size": fmt.Sprint(len(in.Data))})
	if err != nil {
		return rampart.ModelVersion{}, err
	}
	a.Event.Digest = "sha256:" + got
	// SUP-3: only the pinned bytes are accepted.
	if got != want {
		return rampart.ModelVersion{}, s.refuse(ctx, a, "SUP-3: digest mismatch",
			rampart.Invalid("digest", "the model's sha256 is %s, not the expected %s (SUP-3)", got, want))
	}
	// MODEL-2: allow-list by content.
	det := Sniff(in.Data)
	if det.Format == "" {
		d := maps.Clone(a.Event.Details)
		d["detected"] = det.Kind
		a.Event.Details = d
		return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-2: rejected "+det.Kind, rampart.Invalid("model", "%s", det.Reason))
	}
	if in.Format != "" && in.Format != det.Format {
		return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-2: format mismatch",
			rampart.Invalid("format", "the content is %s, not %s", det.Format, in.Format))
	}
	card := Card{Provenance: rampart.ProvenanceImported, Format: det.Format, IntendedUse: in.IntendedUse, Limitations: in.Limitations,
		Datasets: []DatasetInput{}, Metrics: map[string]float64{}}
	ext := map[string]any{"model": in.Name, "format": det.Format, "expected_digest": "sha256:" + want}
	if in.Source != "" {
		ext["source"] = in.Source
	}
	var ferr error
	switch det.Format {
	case rampart.FormatXGBoost:
		var x *XGBoostModel
		if x, ferr = ParseXGBoostJSON(in.Data); ferr == nil {
			card.Algorithm, card.Task = "xgboost-gbtree", taskOf(x.Objective)
			card.Params = map[string]string{"objective": x.Objective, "num_features": fmt.Sprint(x.NumFeatures), "trees": fmt.Sprint(len(x.trees))}
			if x.Version != "" {
				card.Params["xgboost_version"] = x.Version
			}
		}
	case rampart.FormatLightGBM:
		var l *LightGBMModel
		if l, ferr = ParseLightGBMText(in.Data); ferr == nil {
			card.Algorithm, card.Task = "lightgbm", taskOf(l.Objective)
			card.Params = map[string]string{"objective": l.Objective, "num_features": fmt.Sprint(l.NumFeatures), "trees": fmt.Sprint(l.NumTrees)}
		}
	case rampart.FormatRampart:
		lm := &LoadedModel{}
		if ferr = decodeArtifact(lm, det.Format, in.Data); ferr == nil {
			card.Algorithm, card.Task, card.Target = lm.Native.Algorithm, string(lm.Native.Task), lm.Native.Target
		}
	}
	if ferr != nil {
		return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-2: invalid "+det.Format, &rampart.Error{Code: rampart.CodeInvalid, Field: "model",
			Message: "the model is not a valid " + det.Format + ": " + truncate(strings.TrimPrefix(ferr.Error(), ErrFormat.Error()+": "), 300), Err: ferr})
	}
	if card.IntendedUse == "" {
		card.IntendedUse = "imported " + det.Format + " model; intended use not declared by the importer"
	}
	if len(card.Limitations) == 0 {
		card.Limitations = []string{"imported: training data and procedure are not attested by Rampart",
			"no security assessment was recorded at import"}
	}
	bd := signer.BuildDefinition{BuildType: signer.BuildTypeImport, ExternalParameters: ext,
		InternalParameters: map[string]any{"rampart_version": s.platform}}
	now := s.now().UTC()
	md := signer.BuildMetadata{InvocationID: c.RequestID, StartedOn: &now, FinishedOn: &now}
	return s.register(ctx, a, c.Principal, c.RequestID, in.Name, in.Data, det.Format, card, bd, md, nil, nil)
}

// taskOf names the task of an imported objective. Only objectives whose
// predictions are class probabilities are "classification";
// binary:logitraw yields raw margins and so counts as a score (regression).
func taskOf(objective string) string {
	switch {
	case objective == "binary:logistic", objective == "reg:logistic", strings.HasPrefix(objective, "multi:"),
		strings.HasPrefix(objective, "binary sigmoid"), strings.HasPrefix(objective, "binary"), strings.HasPrefix(objective, "multiclass"):
		if objective != "binary:logitraw" {
			return "classification"
		}
	}
	return "regression"
}

// Gate is one condition a version must meet to enter production (MODEL-5).
// The assessment service adds gates on membership-inference TPR,
// extraction fidelity and robustness through Options.Gates.
type Gate interface {
	Name() string
	// Check returns nil if v passes; otherwise an error whose text says why.
	Check(ctx context.Context, v rampart.ModelVersion, card *Card) error
}

// DefaultGates is what production requires by default: a complete card.
func DefaultGates() []Gate { return []Gate{CardComplete{}} }

// CardComplete requires a complete model card (MODEL-3).
type CardComplete struct{}

// Name implements Gate.
func (CardComplete) Name() string { return "card-complete" }

// Check implements Gate.
func (CardComplete) Check(_ context.Context, _ rampart.ModelVersion, c *Card) error {
	if m := c.Missing(); len(m) > 0 {
		return fmt.Errorf("model card lacks %s", strings.Join(m, ", "))
	}
	return nil
}

// MetricGate requires a metric (or assessment result) within bounds; a
// missing metric fails.
type MetricGate struct {
	Metric   string
	Min, Max *float64
}

// Name implements Gate.
func (g MetricGate) Name() string { return "metric:" + g.Metric }

// Check implements Gate.
func (g MetricGate) Check(_ context.Context, _ rampart.ModelVersion, c *Card) error {
	v, ok := c.Metrics[g.Metric]
	if !ok {
		v, ok = c.Assessments[g.Metric]
	}
	switch {
	case !ok:
		return fmt.Errorf("metric %s is not recorded", g.Metric)
	case g.Min != nil && v < *g.Min:
		return fmt.Errorf("%s = %g is below %g", g.Metric, v, *g.Min)
	case g.Max != nil && v > *g.Max:
		return fmt.Errorf("%s = %g is above %g", g.Metric, v, *g.Max)
	}
	return nil
}

// maxGates bounds a model's own gates.
const maxGates = 16

// SetGates replaces the model's own promotion gates (MODEL-5): each bounds
// a card metric or assessment result that a version must meet to enter
// production, on top of the platform's gates. Every change is audited with
// the new gates.
func (s *Service) SetGates(ctx context.Context, id string, gates []rampart.GateSpec) (rampart.Model, error) {
	if len(gates) > maxGates {
		return rampart.Model{}, rampart.Invalid("gates", "at most %d gates", maxGates)
	}
	details := map[string]string{}
	for i, g := range gates {
		if !metricRE.MatchString(g.Metric) {
			return rampart.Model{}, rampart.Invalid("gates", "gate %d: metric must be 1-64 characters of a-z, 0-9, '_', '.', ':' or '-'", i)
		}
		if g.Min == nil && g.Max == nil {
			return rampart.Model{}, rampart.Invalid("gates", "gate %d (%s) has neither min nor max", i, g.Metric)
		}
		for _, b := range []*float64{g.Min, g.Max} {
			if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
				return rampart.Model{}, rampart.Invalid("gates", "gate %d (%s): bounds must be finite", i, g.Metric)
			}
		}
		if g.Min != nil && g.Max != nil && *g.Min > *g.Max {
			return rampart.Model{}, rampart.Invalid("gates", "gate %d (%s): min above max", i, g.Metric)
		}
		details[fmt.Sprintf("gate%d", i)] = MetricGate{Metric: g.Metric, Min: g.Min, Max: g.Max}.String()
	}
	m, _, a, err := s.authorizedModel(ctx, id, authz.ModelGates, details)
	if err != nil {
		return rampart.Model{}, err
	}
	if gates == nil {
		gates = []rampart.GateSpec{}
	}
	if err := s.store.SetModelGates(ctx, m.TenantID, m.ID, gates); err != nil {
		return rampart.Model{}, a.Done(ctx, err)
	}
	m.Gates = gates
	return m, nil
}

var metricRE = regexp.MustCompile(`^[a-z0-9_.:-]{1,64}$`)

// String renders the gate, e.g. "auc >= 0.8".
func (g MetricGate) String() string {
	var parts []string
	if g.Min != nil {
		parts = append(parts, fmt.Sprintf("%s >= %g", g.Metric, *g.Min))
	}
	if g.Max != nil {
		parts = append(parts, fmt.Sprintf("%s <= %g", g.Metric, *g.Max))
	}
	return strings.Join(parts, ", ")
}

// Promote moves a version one stage on: candidate → staging → production.
// Production needs an approval by a principal other than the promoter and
// the version's registrant, and every gate must pass (MODEL-5); the version
// must also verify (MODEL-1), so nothing unverifiable reaches production.
func (s *Service) Promote(ctx context.Context, id string, version int, to rampart.Stage) (rampart.ModelVersion, error) {
	m, c, a, err := s.authorizedModel(ctx, id, authz.ModelPromote, map[string]string{"version": fmt.Sprint(version), "to": string(to)})
	if err != nil {
		return rampart.ModelVersion{}, err
	}
	r, err := s.versionOf(ctx, m, version)
	if err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, err)
	}
	var from rampart.Stage
	switch to {
	case rampart.StageStaging:
		from = rampart.StageCandidate
	case rampart.StageProduction:
		from = rampart.StageStaging
	default:
		return rampart.ModelVersion{}, a.Done(ctx, rampart.Invalid("stage", "promote to staging or production (rollback restores an earlier production version)"))
	}
	if r.Stage != from {
		return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-5: wrong stage",
			rampart.Errorf(rampart.CodeConflict, "version %d is %s; only a %s version can be promoted to %s", r.Version, r.Stage, from, to))
	}
	if to == rampart.StageProduction {
		aps, err := s.store.ListApprovals(ctx, m.TenantID, m.ID, r.Version)
		if err != nil {
			return rampart.ModelVersion{}, a.Done(ctx, err)
		}
		approved := false
		for _, ap := range aps {
			// MODEL-5: a second principal: neither the promoter nor the registrant.
			if ap.Principal != c.Principal.ID && ap.Principal != r.CreatedBy {
				approved = true
			}
		}
		if !approved {
			return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-5: no approval by a second principal",
				rampart.Errorf(rampart.CodeForbidden, "promotion to production needs an approval by a second principal (not the promoter or the registrant) (MODEL-5)"))
		}
		if _, err := s.Load(ctx, m.TenantID, m.ID, r.Version); err != nil {
			return rampart.ModelVersion{}, a.Done(ctx, err)
		}
		var card Card
		if err := json.Unmarshal(r.Card, &card); err != nil {
			return rampart.ModelVersion{}, a.Done(ctx, fmt.Errorf("registry: card: %w", err))
		}
		gates := append([]Gate(nil), s.gates...)
		for _, gs := range m.Gates {
			gates = append(gates, MetricGate{Metric: gs.Metric, Min: gs.Min, Max: gs.Max})
		}
		for _, g := range gates {
			if err := g.Check(ctx, r.ModelVersion, &card); err != nil {
				return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-5: gate "+g.Name()+" failed",
					rampart.Errorf(rampart.CodeConflict, "gate %s failed: %v (MODEL-5)", g.Name(), err))
			}
		}
	}
	if err := s.store.SetStage(ctx, m.TenantID, m.ID, r.Version, from, to); err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, err)
	}
	r.Stage = to
	if to == rampart.StageProduction {
		r.WasProduction = true
	}
	return r.ModelVersion, nil
}

// Approve records the caller's approval of a version for production. The
// registrant of the version cannot approve it (no self-approval, MODEL-5).
func (s *Service) Approve(ctx context.Context, id string, version int) (rampart.ModelApproval, error) {
	m, c, a, err := s.authorizedModel(ctx, id, authz.ModelApprove, map[string]string{"version": fmt.Sprint(version)})
	if err != nil {
		return rampart.ModelApproval{}, err
	}
	r, err := s.versionOf(ctx, m, version)
	if err != nil {
		return rampart.ModelApproval{}, a.Done(ctx, err)
	}
	if r.CreatedBy == c.Principal.ID {
		return rampart.ModelApproval{}, s.refuse(ctx, a, "MODEL-5: self-approval",
			rampart.Errorf(rampart.CodeForbidden, "self-approval refused: the principal that registered a version cannot approve it (MODEL-5)"))
	}
	if r.Stage != rampart.StageCandidate && r.Stage != rampart.StageStaging {
		return rampart.ModelApproval{}, s.refuse(ctx, a, "MODEL-5: wrong stage",
			rampart.Errorf(rampart.CodeConflict, "version %d is %s; only candidate or staging versions are approved", r.Version, r.Stage))
	}
	ap := rampart.ModelApproval{ModelID: m.ID, Version: r.Version, Principal: c.Principal.ID, CreatedAt: s.now().UTC()}
	if err := s.store.AddApproval(ctx, m.TenantID, ap); err != nil {
		return rampart.ModelApproval{}, a.Done(ctx, err)
	}
	return ap, nil
}

// Rollback returns production to an earlier version that served production
// before (MODEL-6): to, or if 0 the most recent such version below the
// current one. The target must still verify; the switch is one store
// transaction, so serving sees either the old or the new version.
func (s *Service) Rollback(ctx context.Context, id string, to int) (rampart.ModelVersion, error) {
	m, _, a, err := s.authorizedModel(ctx, id, authz.ModelPromote, map[string]string{"rollback_to": fmt.Sprint(to)})
	if err != nil {
		return rampart.ModelVersion{}, err
	}
	if to <= 0 {
		for v := m.ProductionVersion - 1; v >= 1 && to == 0; v-- {
			r, err := s.store.GetModelVersion(ctx, m.TenantID, m.ID, v)
			if err != nil {
				return rampart.ModelVersion{}, a.Done(ctx, err)
			}
			if r.WasProduction && r.Stage == rampart.StageArchived {
				to = v
			}
		}
		if to == 0 {
			return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-6: no earlier production version",
				rampart.Errorf(rampart.CodeConflict, "no earlier production version to roll back to"))
		}
	}
	r, err := s.versionOf(ctx, m, to)
	if err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, err)
	}
	if !r.WasProduction || r.Stage != rampart.StageArchived {
		return rampart.ModelVersion{}, s.refuse(ctx, a, "MODEL-6: not a former production version",
			rampart.Errorf(rampart.CodeConflict, "version %d never served production (or serves it now); promote it instead", r.Version))
	}
	if _, err := s.Load(ctx, m.TenantID, m.ID, r.Version); err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, err)
	}
	if err := s.store.SetStage(ctx, m.TenantID, m.ID, r.Version, rampart.StageArchived, rampart.StageProduction); err != nil {
		return rampart.ModelVersion{}, a.Done(ctx, err)
	}
	r.Stage = rampart.StageProduction
	return r.ModelVersion, nil
}

// GrantExport lets another principal of the tenant export the model's
// weights (MODEL-4). Nobody can grant export to themselves.
func (s *Service) GrantExport(ctx context.Context, id, principalID string, ttl time.Duration) (rampart.ExportGrant, error) {
	if ttl < 0 || ttl > 365*24*time.Hour {
		return rampart.ExportGrant{}, rampart.Invalid("ttl_seconds", "ttl must be between 0 and one year")
	}
	m, c, a, err := s.authorizedModel(ctx, id, authz.ModelGrantExport, map[string]string{"grantee": safeID(principalID)})
	if err != nil {
		return rampart.ExportGrant{}, err
	}
	if !rampart.ValidID(rampart.PrefixPrincipal, principalID) {
		return rampart.ExportGrant{}, a.Done(ctx, missing("principal"))
	}
	p, err := s.principals.GetPrincipal(ctx, principalID)
	if errors.Is(err, rampart.ErrNotFound) || err == nil && p.TenantID != m.TenantID {
		return rampart.ExportGrant{}, a.Done(ctx, missing("principal"))
	} else if err != nil {
		return rampart.ExportGrant{}, a.Done(ctx, err)
	}
	if p.ID == c.Principal.ID {
		return rampart.ExportGrant{}, s.refuse(ctx, a, "MODEL-4: self-grant",
			rampart.Errorf(rampart.CodeForbidden, "an export grant must come from another principal (MODEL-4)"))
	}
	if !authz.Allowed(p.Role, authz.ModelExport, authz.Own) {
		return rampart.ExportGrant{}, a.Done(ctx, rampart.Invalid("principal_id", "role %s cannot export models", p.Role))
	}
	g := rampart.ExportGrant{ID: rampart.NewID(rampart.PrefixExportGrant), TenantID: m.TenantID, ModelID: m.ID, PrincipalID: p.ID,
		GrantedBy: c.Principal.ID, CreatedAt: s.now().UTC()}
	if ttl > 0 {
		exp := g.CreatedAt.Add(ttl)
		g.ExpiresAt = &exp
	}
	if err := s.store.CreateExportGrant(ctx, g); err != nil {
		return rampart.ExportGrant{}, a.Done(ctx, err)
	}
	return g, nil
}

// ListExportGrants lists a model's export grants.
func (s *Service) ListExportGrants(ctx context.Context, id string) ([]rampart.ExportGrant, error) {
	m, _, a, err := s.authorizedModel(ctx, id, authz.ModelRead, map[string]string{"list": "export_grants"})
	if err != nil {
		return nil, err
	}
	gs, err := s.store.ListExportGrants(ctx, m.TenantID, m.ID)
	return gs, a.Done(ctx, err)
}

// RevokeExportGrant revokes an export grant; it stops working at once.
func (s *Service) RevokeExportGrant(ctx context.Context, id, grantID string) error {
	m, _, a, err := s.authorizedModel(ctx, id, authz.ModelGrantExport, map[string]string{"revoke": safeID(grantID)})
	if err != nil {
		return err
	}
	if !rampart.ValidID(rampart.PrefixExportGrant, grantID) {
		return a.Done(ctx, missing("export grant"))
	}
	gs, err := s.store.ListExportGrants(ctx, m.TenantID, m.ID)
	if err != nil {
		return a.Done(ctx, err)
	}
	for _, g := range gs {
		if g.ID == grantID {
			return a.Done(ctx, s.store.RevokeExportGrant(ctx, m.TenantID, grantID, s.now().UTC()))
		}
	}
	return a.Done(ctx, missing("export grant"))
}

// Exported is an exported version: the artifact with its attestation, for
// `rampart model verify` offline.
type Exported struct {
	Version     rampart.ModelVersion
	Artifact    []byte
	Attestation []byte
}

// Export returns a version's weights to a principal holding a live export
// grant on the model (MODEL-4), after verifying it (MODEL-1). Every export
// is audited with the artifact digest.
func (s *Service) Export(ctx context.Context, id string, version int) (Exported, error) {
	m, c, a, err := s.authorizedModel(ctx, id, authz.ModelExport, map[string]string{"version": fmt.Sprint(version)})
	if err != nil {
		return Exported{}, err
	}
	gs, err := s.store.ListExportGrants(ctx, m.TenantID, m.ID)
	if err != nil {
		return Exported{}, a.Done(ctx, err)
	}
	grant := ""
	for _, g := range gs {
		if g.PrincipalID == c.Principal.ID && g.Active(s.now()) {
			grant = g.ID
		}
	}
	// MODEL-4: the role may export, but only under an explicit grant.
	if grant == "" {
		return Exported{}, s.refuse(ctx, a, "MODEL-4: no export grant",
			rampart.Errorf(rampart.CodeForbidden, "exporting weights needs an explicit export grant on this model (MODEL-4)"))
	}
	r, err := s.versionOf(ctx, m, version)
	if err != nil {
		return Exported{}, a.Done(ctx, err)
	}
	_, artifact, err := s.load(ctx, m.TenantID, m.ID, r.Version)
	if err != nil {
		return Exported{}, a.Done(ctx, err)
	}
	ev := a.Event
	ev.Action, ev.Resource, ev.Digest, ev.Time = "model.export.done", fmt.Sprintf("model/%s@%d", m.ID, r.Version), r.Digest, s.now().UTC()
	ev.Details = map[string]string{"grant": grant, "version": fmt.Sprint(r.Version)}
	if err := s.audit.Record(ctx, ev); err != nil {
		return Exported{}, unavailable(err)
	}
	return Exported{Version: r.ModelVersion, Artifact: artifact, Attestation: r.Attestation}, nil
}
