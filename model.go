package rampart

import (
	"context"
	"time"
)

// PrefixModel and PrefixExportGrant are the ID prefixes of registry objects.
const (
	PrefixModel       = "mdl"
	PrefixExportGrant = "xg"
	PrefixArtifact    = "art"
)

// Stage is where a model version is in its promotion lifecycle (MODEL-5).
type Stage string

// The stages. A version moves candidate → staging → production; when another
// version replaces it in production it becomes archived, and a rollback can
// bring an archived version back (MODEL-6).
const (
	StageCandidate  Stage = "candidate"
	StageStaging    Stage = "staging"
	StageProduction Stage = "production"
	StageArchived   Stage = "archived"
)

// Valid reports whether s is a defined stage.
func (s Stage) Valid() bool {
	switch s {
	case StageCandidate, StageStaging, StageProduction, StageArchived:
		return true
	}
	return false
}

// Model formats the registry stores. Only non-executable formats exist
// (MODEL-2): each is parsed by a bounded decoder, never evaluated.
const (
	FormatRampart  = "rampart-ml/v1" // the ml package's canonical artifact
	FormatXGBoost  = "xgboost-json"
	FormatLightGBM = "lightgbm-text"
)

// Provenance of a model version.
const (
	ProvenanceTrained  = "trained"
	ProvenanceImported = "imported"
)

// Model is a named series of immutable versions in one tenant.
type Model struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Name      string    `json:"name"`
	Owner     string    `json:"owner" doc:"Principal that created the model."`
	CreatedAt time.Time `json:"created_at"`
	// LatestVersion is the highest version number (0: none yet).
	LatestVersion int `json:"latest_version"`
	// ProductionVersion is the version serving production (0: none).
	ProductionVersion int `json:"production_version"`
	// Gates are this model's own promotion gates (MODEL-5), checked with
	// the platform's.
	Gates []GateSpec `json:"gates"`
}

// GateSpec bounds a metric (or assessment result) of the model card that a
// version must meet to enter production (MODEL-5). A missing metric fails.
type GateSpec struct {
	Metric string   `json:"metric" minLength:"1" maxLength:"64"`
	Min    *float64 `json:"min,omitempty"`
	Max    *float64 `json:"max,omitempty"`
}

// ModelVersion is one immutable version of a model. Only Stage changes
// after registration; artifact, card, ML-BOM and attestation never do.
type ModelVersion struct {
	ModelID    string             `json:"model_id"`
	TenantID   string             `json:"tenant_id"`
	ModelName  string             `json:"model_name"`
	Version    int                `json:"version"`
	Stage      Stage              `json:"stage"`
	Format     string             `json:"format"`
	Provenance string             `json:"provenance" doc:"trained or imported"`
	Digest     string             `json:"digest" doc:"sha256:<hex> of the artifact bytes."`
	Size       int64              `json:"size"`
	Algorithm  string             `json:"algorithm,omitempty"`
	Task       string             `json:"task,omitempty"`
	Metrics    map[string]float64 `json:"metrics"`
	JobID      string             `json:"job_id,omitempty"`
	CreatedBy  string             `json:"created_by"`
	CreatedAt  time.Time          `json:"created_at"`
	KeyID      string             `json:"key_id" doc:"ID of the platform key that signed the attestation."`
	// WasProduction is set once the version has served production, which is
	// what makes it a rollback target (MODEL-6).
	WasProduction bool `json:"was_production"`
}

// ModelRecord is a version with its immutable documents, as stored.
type ModelRecord struct {
	ModelVersion
	// ArtifactID names the sealed artifact in the barrier (kind "model"):
	// random per registration attempt, so concurrent registrations never
	// collide and a crash leaves at most an unreferenced sealed blob.
	ArtifactID  string
	Card        []byte // model card JSON (MODEL-3)
	BOM         []byte // CycloneDX ML-BOM JSON (SUP-1)
	Attestation []byte // DSSE envelope JSON (TRAIN-1, MODEL-1)
	// Binding is a tenant-keyed MAC over the record's identity and the
	// digests of artifact, card, BOM and attestation, so rows cannot be
	// swapped between versions or models undetected.
	Binding []byte
}

// ModelApproval is a second principal's approval of a version for
// production (MODEL-5).
type ModelApproval struct {
	ModelID   string    `json:"model_id"`
	Version   int       `json:"version"`
	Principal string    `json:"principal"`
	CreatedAt time.Time `json:"created_at"`
}

// ExportGrant lets one principal export one model's weights (MODEL-4).
type ExportGrant struct {
	ID          string     `json:"id"`
	TenantID    string     `json:"tenant_id"`
	ModelID     string     `json:"model_id"`
	PrincipalID string     `json:"principal_id"`
	GrantedBy   string     `json:"granted_by"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// Active reports whether the grant is usable at now.
func (g ExportGrant) Active(now time.Time) bool {
	return g.RevokedAt == nil && (g.ExpiresAt == nil || now.Before(*g.ExpiresAt))
}

// ModelStore persists the registry. Every read is scoped by tenant on the
// server side (TEN-1); errors match ErrNotFound and ErrConflict.
type ModelStore interface {
	// CreateModel stores a new model; a duplicate name in the tenant is a conflict.
	CreateModel(ctx context.Context, m Model) error
	GetModel(ctx context.Context, tenantID, id string) (Model, error)
	GetModelByName(ctx context.Context, tenantID, name string) (Model, error)
	ListModels(ctx context.Context, tenantID string, p Page) ([]Model, string, error)
	// SetModelGates replaces the model's gates.
	SetModelGates(ctx context.Context, tenantID, modelID string, gates []GateSpec) error

	// AddModelVersion stores a new version; its number must be the model's
	// latest + 1 (else a conflict), and it becomes the latest.
	AddModelVersion(ctx context.Context, r ModelRecord) error
	GetModelVersion(ctx context.Context, tenantID, modelID string, version int) (ModelRecord, error)
	// GetModelVersionByJob returns the version a training job registered
	// (jobs register at most one), for idempotent retries and lineage.
	GetModelVersionByJob(ctx context.Context, tenantID, jobID string) (ModelVersion, error)
	// ListModelVersions lists versions newest first; the cursor is opaque.
	ListModelVersions(ctx context.Context, tenantID, modelID string, p Page) ([]ModelVersion, string, error)

	// SetStage moves a version to stage. Moving to production archives the
	// previous production version and records the model's production
	// version, atomically. from guards against concurrent changes: the
	// current stage must equal it, else a conflict.
	SetStage(ctx context.Context, tenantID, modelID string, version int, from, to Stage) error

	AddApproval(ctx context.Context, tenantID string, a ModelApproval) error
	ListApprovals(ctx context.Context, tenantID, modelID string, version int) ([]ModelApproval, error)

	CreateExportGrant(ctx context.Context, g ExportGrant) error
	ListExportGrants(ctx context.Context, tenantID, modelID string) ([]ExportGrant, error)
	RevokeExportGrant(ctx context.Context, tenantID, id string, at time.Time) error
}
