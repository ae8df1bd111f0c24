package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/signer"
)

// ErrTampered is returned when a version fails verification on load: its
// record, attestation, signature or artifact is not what was registered.
// It matches rampart.ErrInternal; the audit log holds the reason.
var ErrTampered = &rampart.Error{Code: rampart.CodeInternal, Message: "model version failed verification and was not loaded"}

// External is an imported model (XGBoost JSON, LightGBM text) ready to
// score: one row of NumInputs features (NaN = missing) to NumOutputs
// predictions, as the originating library's predict() returns them.
type External interface {
	NumInputs() int
	NumOutputs() int
	Predict(x []float64, out []float64) error
}

// LoadedModel is a verified model version ready to score. Exactly one of
// Native (trained on Rampart) and External (imported) is set.
type LoadedModel struct {
	Version   rampart.ModelVersion
	Statement *signer.Statement
	Native    *ml.Model
	External  External
}

// Load verifies and decodes a version for serving (MODEL-1). version 0
// means the model's current production version. On every call it checks the
// row's tenant-keyed binding, the DSSE signature by the platform key, that
// the attestation covers the recorded digest, and — while decrypting — the
// artifact's SHA-256; any failure refuses the load with ErrTampered and an
// audit event. Load serves the platform itself (serving, export), so it
// does not authorize a caller; the caller in ctx, if any, is recorded.
func (s *Service) Load(ctx context.Context, tenantID, modelID string, version int) (*LoadedModel, error) {
	lm, _, err := s.load(ctx, tenantID, modelID, version)
	return lm, err
}

func (s *Service) load(ctx context.Context, tenantID, modelID string, version int) (*LoadedModel, []byte, error) {
	if !rampart.ValidID(rampart.PrefixModel, modelID) {
		return nil, nil, missing("model")
	}
	m, err := s.store.GetModel(ctx, tenantID, modelID)
	if errors.Is(err, rampart.ErrNotFound) {
		return nil, nil, missing("model")
	} else if err != nil {
		return nil, nil, err
	}
	if version <= 0 {
		if m.ProductionVersion == 0 {
			return nil, nil, &rampart.Error{Code: rampart.CodeNotFound, Message: "model has no production version"}
		}
		version = m.ProductionVersion
	}
	r, err := s.store.GetModelVersion(ctx, tenantID, modelID, version)
	if errors.Is(err, rampart.ErrNotFound) {
		return nil, nil, missing("model version")
	} else if err != nil {
		return nil, nil, err
	}
	p, rid := rampart.Principal{ID: "system", TenantID: tenantID}, ""
	if c, ok := rampart.CallerFrom(ctx); ok {
		p, rid = c.Principal, c.RequestID
	}
	st, artifact, step, err := s.verify(ctx, r)
	if err != nil {
		return nil, nil, s.integrityFailure(ctx, p, rid, r.ModelVersion, step, err)
	}
	lm := &LoadedModel{Version: r.ModelVersion, Statement: st}
	if err := decodeArtifact(lm, r.Format, artifact); err != nil {
		return nil, nil, s.integrityFailure(ctx, p, rid, r.ModelVersion, "decode", err)
	}
	ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: tenantID, Principal: p.ID, Role: p.Role, Action: "model.load",
		Resource: fmt.Sprintf("model/%s@%d", modelID, r.Version), Allow: true, Outcome: "ok",
		Reason: "signature and digest verified (MODEL-1)", RequestID: rid, Digest: r.Digest}
	if err := s.audit.Record(ctx, ev); err != nil {
		return nil, nil, unavailable(err)
	}
	return lm, artifact, nil
}

// verify runs every check of a load and names the step that failed.
func (s *Service) verify(ctx context.Context, r rampart.ModelRecord) (*signer.Statement, []byte, string, error) {
	if err := s.checkBinding(ctx, r); err != nil {
		return nil, nil, "binding", err
	}
	key, err := s.keys.SigningKey(ctx, SigningKeyName)
	if err != nil {
		return nil, nil, "key", err
	}
	env, err := signer.ParseEnvelope(r.Attestation)
	if err != nil {
		return nil, nil, "envelope", err
	}
	payload, err := env.Verify(key.PublicKey(), signer.PayloadTypeInToto)
	if err != nil {
		return nil, nil, "signature", err
	}
	st, err := signer.ParseStatement(payload)
	if err != nil {
		return nil, nil, "statement", err
	}
	hexDigest, ok := strings.CutPrefix(r.Digest, "sha256:")
	if !ok || !st.Covers(hexDigest) {
		return nil, nil, "subject", fmt.Errorf("%w: the attestation does not cover digest %s", signer.ErrVerify, r.Digest)
	}
	if r.Size < 0 || r.Size > ml.MaxArtifactSize {
		return nil, nil, "size", fmt.Errorf("%w: artifact size %d", signer.ErrVerify, r.Size)
	}
	// The barrier decrypts, authenticates every segment and compares the
	// plaintext SHA-256 with the attested digest (DATA-3, MODEL-1).
	b, err := s.barrier.GetBytes(ctx, artifactRef(r.TenantID, r.ArtifactID), hexDigest, r.Size)
	if err != nil {
		return nil, nil, "artifact", err
	}
	return st, b, "", nil
}

func decodeArtifact(lm *LoadedModel, format string, b []byte) error {
	var err error
	switch format {
	case rampart.FormatRampart:
		lm.Native, err = ml.Unmarshal(b)
	case rampart.FormatXGBoost:
		lm.External, err = ParseXGBoostJSON(b)
	case rampart.FormatLightGBM:
		lm.External, err = ParseLightGBMText(b)
	default:
		err = fmt.Errorf("unknown format %q", format)
	}
	return err
}

// integrityFailure records a refused load and returns ErrTampered.
func (s *Service) integrityFailure(ctx context.Context, p rampart.Principal, requestID string, v rampart.ModelVersion, step string, cause error) error {
	ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: v.TenantID, Principal: p.ID, Role: p.Role, Action: "model.load",
		Resource: fmt.Sprintf("model/%s@%d", v.ModelID, v.Version), Allow: false, Outcome: string(rampart.CodeInternal),
		Reason: "MODEL-1: verification failed at " + step, RequestID: requestID, Digest: v.Digest,
		Details: map[string]string{"check": step, "error": truncate(cause.Error(), 200)}}
	err := &rampart.Error{Code: ErrTampered.Code, Message: ErrTampered.Message + " (" + step + " check failed)", Err: cause}
	if aerr := s.audit.Record(ctx, ev); aerr != nil {
		return errors.Join(err, unavailable(aerr))
	}
	return err
}

func (s *Service) publicKeyPEM(ctx context.Context) ([]byte, string, error) {
	key, err := s.keys.SigningKey(ctx, SigningKeyName)
	if err != nil {
		return nil, "", err
	}
	pemBytes, err := signer.MarshalPublicKey(key.PublicKey())
	return pemBytes, signer.KeyID(key.PublicKey()), err
}

// VerifyResult reports a server-side verification.
type VerifyResult struct {
	Verified bool   `json:"verified"`
	Digest   string `json:"digest"`
	KeyID    string `json:"key_id"`
	Reason   string `json:"reason,omitempty"`
}

// Verify runs the load-time verification of a version for the caller
// (model.read) and reports the outcome instead of failing.
func (s *Service) Verify(ctx context.Context, id string, version int) (VerifyResult, error) {
	m, _, a, err := s.authorizedModel(ctx, id, authz.ModelRead, map[string]string{"version": fmt.Sprint(version), "verify": "true"})
	if err != nil {
		return VerifyResult{}, err
	}
	r, err := s.versionOf(ctx, m, version)
	if err != nil {
		return VerifyResult{}, a.Done(ctx, err)
	}
	_, _, err = s.load(ctx, m.TenantID, m.ID, r.Version)
	res := VerifyResult{Verified: err == nil, Digest: r.Digest, KeyID: r.KeyID}
	if err != nil {
		if !errors.Is(err, rampart.ErrInternal) {
			return VerifyResult{}, err
		}
		var re *rampart.Error
		if errors.As(err, &re) {
			res.Reason = re.Message
		}
	}
	return res, nil
}
