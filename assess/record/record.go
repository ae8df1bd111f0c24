// Package record holds the stored form of an assessment and the store
// interface the assessment service, its promotion gate and the metadata
// store share (issue 8, MODEL-5). It imports nothing but the root package,
// so storage adapters can implement it without pulling in the attacks.
package record

import (
	"context"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// Statuses of an assessment. An assessment is written twice: created
// running, then finished (succeeded with its report, or failed with a
// reason) in one update, so it is never half-written; one interrupted by
// a crash is failed at the next start.
const (
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
)

// Assessment is one assessment of one model version.
type Assessment struct {
	ID           string             `json:"id"`
	TenantID     string             `json:"tenant_id"`
	ModelID      string             `json:"model_id"`
	ModelVersion int                `json:"model_version"`
	Endpoint     string             `json:"endpoint,omitempty"`
	Attacks      []string           `json:"attacks"`
	Status       string             `json:"status"`
	Reason       string             `json:"reason,omitempty"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	CreatedBy    string             `json:"created_by"`
	CreatedAt    time.Time          `json:"created_at"`
	FinishedAt   *time.Time         `json:"finished_at,omitempty"`
	// Report is the JSON report (assess.Report); only Get returns it.
	Report []byte `json:"-"`
}

// Store keeps assessments and the tenants' assessment thresholds.
type Store interface {
	CreateAssessment(ctx context.Context, a Assessment) error
	// FinishAssessment moves a running assessment to Succeeded or Failed
	// with its metrics, report and reason in one update; anything but a
	// running assessment is a conflict.
	FinishAssessment(ctx context.Context, a Assessment) error
	GetAssessment(ctx context.Context, tenantID, id string) (Assessment, error)
	// ListAssessments lists a model's assessments newest first (without
	// reports); version 0 lists every version.
	ListAssessments(ctx context.Context, tenantID, modelID string, version int) ([]Assessment, error)
	// LatestAssessment is the newest successful assessment of a version.
	LatestAssessment(ctx context.Context, tenantID, modelID string, version int) (Assessment, bool, error)
	// FailRunningAssessments fails every running assessment (at start-up:
	// their process is gone) and returns how many.
	FailRunningAssessments(ctx context.Context, reason string, now time.Time) (int, error)
	SetAssessmentThresholds(ctx context.Context, tenantID string, th []rampart.GateSpec) error
	AssessmentThresholds(ctx context.Context, tenantID string) ([]rampart.GateSpec, error)
}
