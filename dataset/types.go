package dataset

import (
	"context"
	"io"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/barrier"
)

// ID prefixes.
const (
	PrefixDataset = "ds"
	PrefixGrant   = "dg"
)

// Dataset is a named, tenant-owned series of immutable versions.
type Dataset struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id"`
	Name      string     `json:"name"`
	Label     string     `json:"label,omitempty"`
	Schema    *Schema    `json:"schema,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	Latest    int        `json:"latest_version,omitempty"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// Version statuses.
const (
	StatusIngesting = "ingesting"
	StatusReady     = "ready"
	StatusDeleted   = "deleted"
)

// Version is one immutable, content-addressed upload (DATA-3): Digest is
// the SHA-256 of the sealed bytes and is re-verified on every read.
type Version struct {
	DatasetID    string     `json:"dataset_id"`
	TenantID     string     `json:"tenant_id"`
	Version      int        `json:"version"`
	Status       string     `json:"status"`
	Format       string     `json:"format"`
	Digest       string     `json:"digest,omitempty"`
	Size         int64      `json:"size"`
	Rows         int64      `json:"rows"`
	Columns      int        `json:"columns"`
	ReportDigest string     `json:"-"`
	PIIKinds     []string   `json:"pii_kinds,omitempty"`
	Flagged      int        `json:"flagged_rows"`
	Quarantined  bool       `json:"quarantined"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    string     `json:"created_by"`
	DeletedAt    *time.Time `json:"deleted_at,omitempty"`
}

// Grant lets a principal, or every principal of a tenant, use a dataset for
// one purpose (DATA-7).
type Grant struct {
	ID                 string        `json:"id"`
	TenantID           string        `json:"tenant_id"`
	DatasetID          string        `json:"dataset_id"`
	GranteeTenantID    string        `json:"grantee_tenant_id"`
	GranteePrincipalID string        `json:"grantee_principal_id,omitempty"`
	Purpose            authz.Purpose `json:"purpose"`
	Terms              Terms         `json:"terms"`
	ExpiresAt          *time.Time    `json:"expires_at,omitempty"`
	RevokedAt          *time.Time    `json:"revoked_at,omitempty"`
	CreatedAt          time.Time     `json:"created_at"`
	CreatedBy          string        `json:"created_by"`
}

// Terms are the privacy conditions a grant puts on training; the training
// service enforces them (TRAIN-2, TRAIN-3).
type Terms struct {
	RequireDP  bool     `json:"require_dp,omitempty"`
	MaxEpsilon *float64 `json:"max_epsilon,omitempty"`
}

// Live reports whether the grant is usable at now.
func (g Grant) Live(now time.Time) bool {
	return g.RevokedAt == nil && (g.ExpiresAt == nil || now.Before(*g.ExpiresAt))
}

// Policy values.
const (
	PIIWarn         = "warn"
	PIIBlock        = "block"
	PIIRequireDecl  = "require-declaration"
	LabelWarn       = "warn"
	LabelQuarantine = "quarantine"
)

// Policy is a tenant's screening policy.
type Policy struct {
	TenantID  string    `json:"tenant_id"`
	PII       string    `json:"pii"`
	Label     string    `json:"label"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// Lineage records that an object (a model, a job) was derived from a
// dataset version, so that deletion can flag it (DATA-8).
type Lineage struct {
	DatasetID        string     `json:"dataset_id"`
	Version          int        `json:"version"`
	TenantID         string     `json:"tenant_id"`
	Kind             string     `json:"kind"`
	ObjectID         string     `json:"object_id"`
	ObjectTenantID   string     `json:"object_tenant_id"`
	GrantID          string     `json:"grant_id,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	DatasetDeletedAt *time.Time `json:"dataset_deleted_at,omitempty"`
}

// Store is the metadata the service needs; sqlite.DB implements it.
// Methods return errors matching rampart.ErrNotFound and ErrConflict.
type Store interface {
	GetTenant(ctx context.Context, id string) (rampart.Tenant, error)
	GetPrincipal(ctx context.Context, id string) (rampart.Principal, error)

	CreateDataset(ctx context.Context, d Dataset) error
	// GetDataset returns a dataset, deleted ones included (DeletedAt set).
	GetDataset(ctx context.Context, id string) (Dataset, error)
	ListDatasets(ctx context.Context, tenantID string, p rampart.Page) ([]Dataset, string, error)
	MarkDatasetDeleted(ctx context.Context, id string, at time.Time) error

	// ReserveVersion assigns the next version number (never reused) and
	// stores v with status ingesting.
	ReserveVersion(ctx context.Context, v Version) (Version, error)
	// FinishVersion stores the sealed version's metadata, status ready.
	FinishVersion(ctx context.Context, v Version) error
	// DropVersion removes a version that never became ready.
	DropVersion(ctx context.Context, datasetID string, version int) error
	GetVersion(ctx context.Context, datasetID string, version int) (Version, error)
	ListVersions(ctx context.Context, datasetID string, p rampart.Page) ([]Version, string, error)
	MarkVersionDeleted(ctx context.Context, datasetID string, version int, at time.Time) error
	// SetQuarantined sets whether a version's flagged rows are withheld
	// from training.
	SetQuarantined(ctx context.Context, datasetID string, version int, quarantined bool) error
	// PendingVersions lists versions left ingesting by a crash.
	PendingVersions(ctx context.Context) ([]Version, error)

	CreateGrant(ctx context.Context, g Grant) error
	GetGrant(ctx context.Context, id string) (Grant, error)
	ListGrants(ctx context.Context, datasetID string, p rampart.Page) ([]Grant, string, error)
	// ListGrantsTo lists grants naming the principal or its whole tenant.
	ListGrantsTo(ctx context.Context, principalID, tenantID string, p rampart.Page) ([]Grant, string, error)
	RevokeGrant(ctx context.Context, id string, at time.Time) error
	RevokeDatasetGrants(ctx context.Context, datasetID string, at time.Time) error

	GetDatasetPolicy(ctx context.Context, tenantID string) (Policy, error)
	PutDatasetPolicy(ctx context.Context, p Policy) error

	AddLineage(ctx context.Context, l Lineage) error
	ListLineage(ctx context.Context, datasetID string) ([]Lineage, error)
	MarkLineageDeleted(ctx context.Context, datasetID string, version int, at time.Time) error
}

// Sealer is the barrier as the service uses it (*barrier.Barrier).
type Sealer interface {
	Put(ctx context.Context, ref barrier.Ref, r io.Reader) (barrier.Sealed, error)
	Open(ctx context.Context, ref barrier.Ref, digest string) (io.ReadCloser, error)
	Verify(ctx context.Context, ref barrier.Ref, digest string) (barrier.Sealed, error)
	GetBytes(ctx context.Context, ref barrier.Ref, digest string, max int64) ([]byte, error)
	Shred(ctx context.Context, ref barrier.Ref) error
}

var _ Sealer = (*barrier.Barrier)(nil)

// streamSealer is a Sealer that also takes an object as writes
// (*barrier.Barrier); ingestion then seals without a pipe.
type streamSealer interface {
	Create(ctx context.Context, ref barrier.Ref) (*barrier.Writer, error)
}

var _ streamSealer = (*barrier.Barrier)(nil)

// Barrier object kinds.
const (
	kindData   = "dataset"
	kindReport = "dataset-report"
)

func dataRef(v Version) barrier.Ref {
	return barrier.Ref{Tenant: v.TenantID, Kind: kindData, ID: v.DatasetID, Version: v.Version}
}

func reportRef(v Version) barrier.Ref {
	return barrier.Ref{Tenant: v.TenantID, Kind: kindReport, ID: v.DatasetID, Version: v.Version}
}
