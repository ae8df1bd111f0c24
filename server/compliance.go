package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/compliance"
	"github.com/rampart-mlaas/rampart/registry"
)

// maxVerify bounds how many model versions one compliance run re-verifies.
const maxVerify = 200

// complianceState remembers the last checkpoint a compliance run verified,
// so the next run also checks consistency with it.
type complianceState struct {
	mu   sync.Mutex
	last *auditlog.Checkpoint
	reg  *registry.Service
}

func (s *Server) openCompliance() error {
	reg, err := newRegistry(s)
	if err != nil {
		return err
	}
	cs := &complianceState{reg: reg}
	s.API.RegisterCompliance(func(ctx context.Context) (compliance.Evaluation, error) { return s.evaluate(ctx, cs) })
	return nil
}

// evaluate gathers what this deployment actually does right now.
func (s *Server) evaluate(ctx context.Context, cs *complianceState) (compliance.Evaluation, error) {
	var f compliance.Facts
	f.TLS, f.Loopback = s.cfg.TLS(), loopback(s.cfg.Addr)
	switch {
	case s.cfg.RootKey != "":
		f.RootKeySource = "RAMPART_ROOT_KEY"
	case s.cfg.RootKeyFile != "":
		f.RootKeySource = "file " + s.cfg.RootKeyFile
	default:
		f.RootKeySource, f.RootKeyBesideData = "file beside the data", true
	}
	// IAM-1: probe a protected route without a credential.
	rec := httptest.NewRecorder()
	s.API.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/whoami", nil))
	f.UnauthProbeStatus = rec.Code
	f.AuthzDecisions, f.AuthzViolations = authz.CheckInvariants()

	// AUDIT-1/2: sign a checkpoint now, verify it and its consistency
	// with the one the previous run verified.
	st := s.AuditLog.Status()
	f.AuditSize = st.Size
	f.TSAConfigured, f.TSAHealthy, f.TSAPending = st.TSA.Configured, st.TSA.Healthy, st.TSA.Pending
	if err := cs.checkAudit(ctx, s.AuditLog, &f); err != nil {
		f.AuditCheckpointErr = err.Error()
	}

	db := s.DB.SQL()
	if err := s.modelFacts(ctx, db, cs.reg, &f); err != nil {
		return compliance.Evaluation{}, err
	}
	if err := endpointFacts(ctx, db, &f); err != nil {
		return compliance.Evaluation{}, err
	}
	var iso sql.NullString
	err := db.QueryRowContext(ctx, `SELECT isolation FROM jobs WHERE state='succeeded' ORDER BY finished_at DESC LIMIT 1`).Scan(&iso)
	if err == nil && iso.Valid {
		_ = json.Unmarshal([]byte(iso.String), &f.LastJobIsolation)
	} else if err != nil && err != sql.ErrNoRows {
		return compliance.Evaluation{}, fmt.Errorf("compliance: jobs: %w", err)
	}
	return compliance.Evaluate(f, time.Now()), nil
}

func (cs *complianceState) checkAudit(ctx context.Context, l *auditlog.Log, f *compliance.Facts) error {
	cp, err := l.Publish(ctx)
	if err != nil {
		return err
	}
	v, err := auditlog.NewVerifier(l.VerifierKey())
	if err != nil {
		return err
	}
	parsed, err := auditlog.ParseCheckpoint(cp.Note, v)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.last != nil && cs.last.Size > 0 && cs.last.Size < parsed.Size {
		prf, err := l.ConsistencyProof(ctx, cs.last.Size, parsed.Size)
		if err != nil {
			return err
		}
		if err := auditlog.VerifyConsistency(*cs.last, parsed, prf); err != nil {
			return err
		}
	}
	cs.last = &parsed
	f.AuditCheckpointOK, f.AuditCheckpointSize = true, parsed.Size
	f.AuditCheckpointAge = time.Since(l.Status().PublishedAt)
	return nil
}

// modelFacts re-verifies the newest model versions through the registry's
// load path (MODEL-1) and counts cards, DP models and assessed production
// models. Only counts and IDs leave this function: no tenant content.
func (s *Server) modelFacts(ctx context.Context, db *sql.DB, reg *registry.Service, f *compliance.Facts) error {
	rows, err := db.QueryContext(ctx, `SELECT tenant_id, model_id, version, length(card) FROM model_versions ORDER BY created_at DESC LIMIT ?`, maxVerify)
	if err != nil {
		return fmt.Errorf("compliance: models: %w", err)
	}
	type ver struct {
		tenant, model string
		version, card int
	}
	var vs []ver
	for rows.Next() {
		var v ver
		if err := rows.Scan(&v.tenant, &v.model, &v.version, &v.card); err != nil {
			rows.Close()
			return err
		}
		vs = append(vs, v)
	}
	rows.Close()
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM model_versions`).Scan(&f.ModelVersions); err != nil {
		return err
	}
	for _, v := range vs {
		if v.card == 0 {
			f.ModelCardsMissing++
		}
		lm, err := reg.Load(ctx, v.tenant, v.model, v.version)
		if err != nil {
			f.ModelVerifyFailed = append(f.ModelVerifyFailed, fmt.Sprintf("%s@%d: %s", v.model, v.version, rampart.ErrorCode(err)))
			continue
		}
		f.ModelsVerified++
		if lm.Native != nil && lm.Native.DP != nil && lm.Native.DP.Private {
			f.DPModels++
		}
	}
	prod, err := db.QueryContext(ctx, `SELECT m.id, m.production_version,
		(SELECT count(*) FROM assessments a WHERE a.model_id = m.id AND a.model_version = m.production_version
		  AND a.status = 'succeeded' AND a.finished_at > ?)
		FROM models m WHERE m.production_version > 0`, time.Now().Add(-30*24*time.Hour).UnixNano())
	if err != nil {
		return fmt.Errorf("compliance: production models: %w", err)
	}
	defer prod.Close()
	for prod.Next() {
		var id string
		var v, n int
		if err := prod.Scan(&id, &v, &n); err != nil {
			return err
		}
		f.ProductionModels++
		if n > 0 {
			f.ProductionAssessedRecent++
		}
	}
	return prod.Err()
}

// endpointFacts reads every endpoint's guard policy.
func endpointFacts(ctx context.Context, db *sql.DB, f *compliance.Facts) error {
	rows, err := db.QueryContext(ctx, `SELECT policy FROM endpoints`)
	if err != nil {
		return fmt.Errorf("compliance: endpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		var p rampart.GuardPolicy
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return fmt.Errorf("compliance: endpoint policy: %w", err)
		}
		f.Endpoints++
		if p.RatePerSec < 0 {
			f.EndpointsNoRate++
		}
		if p.BudgetPerDay < 0 && p.BudgetTotal < 0 {
			f.EndpointsNoBudget++
		}
		if p.Output == "proba" && p.Decimals > 4 {
			f.EndpointsRawOutput++
		}
		if p.Extraction == "off" {
			f.EndpointsNoExtract++
		}
		if p.OOD == "off" {
			f.EndpointsNoOOD++
		}
	}
	return rows.Err()
}
