// Package registry is the signed model registry: models with immutable
// versions, each stored as a sealed artifact with a model card (MODEL-3), a
// CycloneDX ML-BOM (SUP-1) and an in-toto/SLSA attestation in a DSSE
// envelope signed with the platform's Ed25519 key (TRAIN-1). Every load
// verifies the signature and the artifact digest (MODEL-1); imports accept
// only non-executable formats by pinned digest (MODEL-2, SUP-3); promotion
// to production needs a second principal's approval and passes gates
// (MODEL-5); rollback (MODEL-6) and export under an explicit grant (MODEL-4).
//
// Like the identity service, every caller-facing method loads the object,
// authorizes the caller against it through authz, records the decision in
// the audit log (fail closed) and only then acts.
package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/enforce"
	"github.com/rampart-mlaas/rampart/keyring"
)

// SigningKeyName is the keyring name of the platform's model-signing key.
const SigningKeyName = "model-signing"

// Options configure the service.
type Options struct {
	Store rampart.ModelStore
	// Principals resolves grantees of export grants.
	Principals interface {
		GetPrincipal(ctx context.Context, id string) (rampart.Principal, error)
	}
	Keys    *keyring.Keyring
	Barrier *barrier.Barrier
	Audit   rampart.Auditor
	// Version is the platform version recorded in attestations and BOMs.
	Version string
	// Gates every promotion to production must pass (MODEL-5). Nil means
	// DefaultGates().
	Gates []Gate
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Service is the model registry.
type Service struct {
	store      rampart.ModelStore
	principals interface {
		GetPrincipal(ctx context.Context, id string) (rampart.Principal, error)
	}
	keys     *keyring.Keyring
	barrier  *barrier.Barrier
	audit    rampart.Auditor
	platform string
	gates    []Gate
	now      func() time.Time

	// regMu serialises registrations, so version numbers are allocated
	// without races between sealing the artifact and storing the row.
	regMu sync.Mutex
	// seals counts seals in progress (startSeal); tests wait for it so
	// that a leaked ciphertext is seen deterministically.
	seals sync.WaitGroup
}

// New returns the service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Keys == nil || o.Barrier == nil || o.Audit == nil || o.Principals == nil {
		return nil, errors.New("registry: store, principals, keys, barrier and audit are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Gates == nil {
		o.Gates = DefaultGates()
	}
	return &Service{store: o.Store, principals: o.Principals, keys: o.Keys, barrier: o.Barrier, audit: o.Audit,
		platform: o.Version, gates: o.Gates, now: o.Now}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckName validates a model name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return rampart.Invalid("name", "model name must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

func missing(kind string) error {
	return &rampart.Error{Code: rampart.CodeNotFound, Message: kind + " not found"}
}

func unavailable(err error) error { return enforce.Unavailable(err) }

func modelResource(m rampart.Model) authz.Resource {
	return authz.Resource{Kind: "model", ID: m.ID, TenantID: m.TenantID}
}

// audited is one guarded, recorded action (see enforce).
type audited = enforce.Outcome

// recorder applies decisions through enforce with this service's clock.
func (s *Service) recorder() *enforce.Recorder { return &enforce.Recorder{Audit: s.audit, Now: s.now} }

// guard authorizes the caller in ctx for action on res and records the
// decision (AUDIT-3, fail closed).
func (s *Service) guard(ctx context.Context, action authz.Action, res authz.Resource, details map[string]string) (rampart.Caller, *audited, error) {
	return s.recorder().Guard(ctx, action, res, details)
}

func (s *Service) decide(ctx context.Context, p rampart.Principal, requestID string, action authz.Action, res authz.Resource, details map[string]string) (*audited, error) {
	return s.recorder().Decide(ctx, p, requestID, action, res, details)
}

// refuse records a refusal that follows an allowed authorization (a failed
// precondition such as self-approval) and returns err.
func (s *Service) refuse(ctx context.Context, a *audited, reason string, err error) error {
	a.Event.Reason = reason
	return a.Done(ctx, err)
}

// model loads a model of the caller's tenant; foreign or missing models
// are both not found (TEN-1).
func (s *Service) model(ctx context.Context, id string) (rampart.Model, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.Model{}, rampart.ErrUnauthenticated
	}
	if !rampart.ValidID(rampart.PrefixModel, id) {
		return rampart.Model{}, missing("model")
	}
	m, err := s.store.GetModel(ctx, c.Principal.TenantID, id)
	if errors.Is(err, rampart.ErrNotFound) {
		return m, missing("model")
	}
	return m, err
}

// authorizedModel loads the model and authorizes action on it.
func (s *Service) authorizedModel(ctx context.Context, id string, action authz.Action, details map[string]string) (rampart.Model, rampart.Caller, *audited, error) {
	m, err := s.model(ctx, id)
	if err != nil {
		// Record the attempt on an unknown ID like a foreign one.
		if errors.Is(err, rampart.ErrNotFound) {
			if c, ok := rampart.CallerFrom(ctx); ok {
				_, derr := s.decide(ctx, c.Principal, c.RequestID, action, authz.Resource{Kind: "model", ID: safeID(id), TenantID: "unknown"}, details)
				if derr != nil && !errors.Is(derr, rampart.ErrNotFound) {
					return m, c, nil, derr
				}
			}
			return m, rampart.Caller{}, nil, missing("model")
		}
		return m, rampart.Caller{}, nil, err
	}
	c, a, err := s.guard(ctx, action, modelResource(m), details)
	return m, c, a, err
}

// truncate cuts s to at most n bytes of valid UTF-8 (audit fields must be).
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

// safeID is an ID as given by a caller, fit for the audit log: the ID if it
// has an ID's shape, else "invalid".
func safeID(s string) string {
	if len(s) == 0 || len(s) > 80 {
		return "invalid"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return "invalid"
		}
	}
	return s
}

func (s *Service) versionOf(ctx context.Context, m rampart.Model, v int) (rampart.ModelRecord, error) {
	if v <= 0 {
		v = m.LatestVersion
	}
	if v <= 0 {
		return rampart.ModelRecord{}, missing("model version")
	}
	r, err := s.store.GetModelVersion(ctx, m.TenantID, m.ID, v)
	if errors.Is(err, rampart.ErrNotFound) {
		return r, missing("model version")
	}
	return r, err
}

// ListModels lists the caller's tenant's models; name filters to one.
func (s *Service) ListModels(ctx context.Context, name string, p rampart.Page) ([]rampart.Model, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	a, err := s.decide(ctx, c.Principal, c.RequestID, authz.ModelRead, authz.Resource{Kind: "model", TenantID: c.Principal.TenantID}, map[string]string{"list": "models"})
	if err != nil {
		return nil, "", err
	}
	if name != "" {
		m, err := s.store.GetModelByName(ctx, c.Principal.TenantID, name)
		if errors.Is(err, rampart.ErrNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", a.Done(ctx, err)
		}
		return []rampart.Model{m}, "", nil
	}
	ms, next, err := s.store.ListModels(ctx, c.Principal.TenantID, p)
	return ms, next, a.Done(ctx, err)
}

// GetModel returns one model.
func (s *Service) GetModel(ctx context.Context, id string) (rampart.Model, error) {
	m, _, _, err := s.authorizedModel(ctx, id, authz.ModelRead, nil)
	return m, err
}

// ListVersions lists a model's versions, newest first.
func (s *Service) ListVersions(ctx context.Context, id string, p rampart.Page) ([]rampart.ModelVersion, string, error) {
	m, _, a, err := s.authorizedModel(ctx, id, authz.ModelRead, nil)
	if err != nil {
		return nil, "", err
	}
	vs, next, err := s.store.ListModelVersions(ctx, m.TenantID, m.ID, p)
	return vs, next, a.Done(ctx, err)
}

// VersionDetail is a version with its approvals.
type VersionDetail struct {
	rampart.ModelVersion
	Approvals []rampart.ModelApproval `json:"approvals"`
}

// GetVersion returns one version (0: the latest) with its approvals.
func (s *Service) GetVersion(ctx context.Context, id string, version int) (VersionDetail, error) {
	m, _, a, err := s.authorizedModel(ctx, id, authz.ModelRead, map[string]string{"version": fmt.Sprint(version)})
	if err != nil {
		return VersionDetail{}, err
	}
	r, err := s.versionOf(ctx, m, version)
	if err != nil {
		return VersionDetail{}, a.Done(ctx, err)
	}
	aps, err := s.store.ListApprovals(ctx, m.TenantID, m.ID, r.Version)
	if err != nil {
		return VersionDetail{}, a.Done(ctx, err)
	}
	if aps == nil {
		aps = []rampart.ModelApproval{}
	}
	return VersionDetail{ModelVersion: r.ModelVersion, Approvals: aps}, nil
}

// Document names one of a version's stored documents.
type Document string

// The documents of a version.
const (
	DocCard        Document = "card"
	DocBOM         Document = "bom"
	DocAttestation Document = "attestation"
)

// GetDocument returns a version's model card, ML-BOM or DSSE attestation as
// stored (JSON). Documents are checked against the row's binding first, so
// a tampered card is never served as genuine.
func (s *Service) GetDocument(ctx context.Context, id string, version int, doc Document) ([]byte, rampart.ModelVersion, error) {
	m, c, a, err := s.authorizedModel(ctx, id, authz.ModelRead, map[string]string{"version": fmt.Sprint(version), "document": string(doc)})
	if err != nil {
		return nil, rampart.ModelVersion{}, err
	}
	r, err := s.versionOf(ctx, m, version)
	if err != nil {
		return nil, rampart.ModelVersion{}, a.Done(ctx, err)
	}
	if err := s.checkBinding(ctx, r); err != nil {
		return nil, r.ModelVersion, s.integrityFailure(ctx, c.Principal, c.RequestID, r.ModelVersion, "binding", err)
	}
	switch doc {
	case DocCard:
		return r.Card, r.ModelVersion, nil
	case DocBOM:
		return r.BOM, r.ModelVersion, nil
	case DocAttestation:
		return r.Attestation, r.ModelVersion, nil
	}
	return nil, r.ModelVersion, a.Done(ctx, rampart.Invalid("document", "unknown document %q", doc))
}

// PublicKey returns the platform's model-signing public key as PEM, for
// offline verification (`rampart model verify`).
func (s *Service) PublicKey(ctx context.Context) ([]byte, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	if _, err := s.decide(ctx, c.Principal, c.RequestID, authz.SigningKeyRead, authz.Resource{Kind: "platform"}, nil); err != nil {
		return nil, "", err
	}
	return s.publicKeyPEM(ctx)
}
