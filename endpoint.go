package rampart

import (
	"context"
	"time"
)

// PrefixEndpoint and PrefixEndpointGrant are the ID prefixes of serving objects.
const (
	PrefixEndpoint      = "ep"
	PrefixEndpointGrant = "eg"
)

// Guard modes (INF-2, INF-3, INF-5).
const (
	OutputLabel = "label" // the label only
	OutputTopK  = "topk"  // the K most probable labels with rounded probabilities
	OutputProba = "proba" // every class probability, rounded

	OODOff    = "off"
	OODFlag   = "flag"
	OODReject = "reject"

	ExtractionOff      = "off"
	ExtractionAlert    = "alert"
	ExtractionThrottle = "throttle"
	ExtractionBlock    = "block"
)

// GuardPolicy configures an endpoint's guard pipeline. The zero value of a
// field means its default (serving.DefaultPolicy); every guard is on by
// default and switching one off is an explicit choice.
type GuardPolicy struct {
	// RatePerSec and Burst are the token bucket per principal × endpoint
	// (INF-1); requests beyond it get 429 with Retry-After. RatePerSec < 0
	// switches the rate limit off.
	RatePerSec float64 `json:"rate_per_sec" doc:"Requests per second per principal (INF-1); negative switches the limit off."`
	Burst      int     `json:"burst" doc:"Bucket size; default max(1, rate)."`
	// BudgetPerDay and BudgetTotal bound the rows a principal may score
	// per UTC day and in total (INF-1); < 0 is unlimited.
	BudgetPerDay int64 `json:"budget_per_day" doc:"Rows per principal per UTC day; negative = unlimited."`
	BudgetTotal  int64 `json:"budget_total" doc:"Rows per principal in total; negative = unlimited."`
	// MaxRows bounds one request (INF-4).
	MaxRows int `json:"max_rows" doc:"Rows per request."`
	// RangeMargin widens the training range [min, max] of every numeric
	// feature by this fraction of its width on each side (INF-4); < 0
	// disables the range check.
	RangeMargin float64 `json:"range_margin" doc:"Fraction of the training range allowed beyond [min,max]; negative disables the range check."`
	// OOD is off, flag or reject (INF-5); OODThreshold overrides the
	// default score threshold.
	OOD          string  `json:"ood" doc:"Out-of-distribution policy (INF-5)."`
	OODThreshold float64 `json:"ood_threshold" doc:"Row score above which a row is out of distribution; 0 = default."`
	// Output is label, topk or proba; Decimals the rounding of returned
	// probabilities and regression values; TopK for topk (INF-2).
	Output   string `json:"output" doc:"Output policy (INF-2)."`
	TopK     int    `json:"top_k" doc:"K for output=topk."`
	Decimals int    `json:"decimals" doc:"Decimals of probabilities and values; 0 = default (2); -1 = none (label only)."`
	// Extraction is off, alert, throttle or block (INF-3).
	Extraction string `json:"extraction" doc:"Action when a principal's query stream looks like extraction (INF-3)."`
	// Sign adds a JWS (Ed25519) over request digest, response and model
	// digest to every prediction (INF-6).
	Sign bool `json:"sign" doc:"Sign every prediction (JWS, Ed25519; INF-6)."`
}

// Endpoint serves one model version of its tenant behind the guard pipeline.
type Endpoint struct {
	ID           string      `json:"id"`
	TenantID     string      `json:"tenant_id"`
	Name         string      `json:"name"`
	ModelID      string      `json:"model_id"`
	ModelName    string      `json:"model_name"`
	ModelVersion int         `json:"model_version"`
	ModelDigest  string      `json:"model_digest" doc:"sha256:<hex> of the served artifact."`
	Policy       GuardPolicy `json:"policy"`
	CreatedBy    string      `json:"created_by"`
	CreatedAt    time.Time   `json:"created_at"`
	UpdatedAt    time.Time   `json:"updated_at"`
	// Generation increases with every update (optimistic concurrency).
	Generation int64 `json:"generation"`
}

// EndpointGrant lets another tenant (all its service users) or one
// principal call an endpoint (authz purpose "predict").
type EndpointGrant struct {
	ID          string     `json:"id"`
	TenantID    string     `json:"tenant_id" doc:"The endpoint's tenant."`
	EndpointID  string     `json:"endpoint_id"`
	ToTenant    string     `json:"to_tenant,omitempty"`
	ToPrincipal string     `json:"to_principal,omitempty"`
	GrantedBy   string     `json:"granted_by"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// Covers reports whether the live grant covers principal p.
func (g EndpointGrant) Covers(p Principal) bool {
	return g.RevokedAt == nil && (g.ToPrincipal == p.ID || (g.ToPrincipal == "" && g.ToTenant == p.TenantID))
}

// EndpointStore persists endpoints, their grants and query budgets. Reads
// are scoped by tenant (TEN-1); errors match ErrNotFound and ErrConflict.
type EndpointStore interface {
	CreateEndpoint(ctx context.Context, e Endpoint) error
	GetEndpoint(ctx context.Context, tenantID, id string) (Endpoint, error)
	GetEndpointByName(ctx context.Context, tenantID, name string) (Endpoint, error)
	ListEndpoints(ctx context.Context, tenantID string, p Page) ([]Endpoint, string, error)
	// UpdateEndpoint stores e if the stored generation is e.Generation-1,
	// else a conflict.
	UpdateEndpoint(ctx context.Context, e Endpoint) error
	DeleteEndpoint(ctx context.Context, tenantID, id string) error

	CreateEndpointGrant(ctx context.Context, g EndpointGrant) error
	ListEndpointGrants(ctx context.Context, tenantID, endpointID string) ([]EndpointGrant, error)
	RevokeEndpointGrant(ctx context.Context, tenantID, id string, at time.Time) error
	// GrantsTo returns the live grants on endpoint id to principal p or its
	// tenant; the grants name the endpoint's tenant.
	GrantsTo(ctx context.Context, endpointID string, p Principal) ([]EndpointGrant, error)

	// ReservedQueries returns the rows reserved so far by a principal on an
	// endpoint in a period ("total" or a UTC day "2006-01-02").
	ReservedQueries(ctx context.Context, endpointID, principalID, period string) (int64, error)
	// ReserveQueries raises the reservation to upTo (never lowers it).
	ReserveQueries(ctx context.Context, endpointID, principalID, period string, upTo int64) error
}
