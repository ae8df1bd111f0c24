package registry

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
)

func code(err error) rampart.Code { return rampart.ErrorCode(err) }

// TestPromotionApproval is the MODEL-5 acceptance: self-approval is
// refused, promotion to production without a second principal's approval
// is refused, stages cannot be skipped, and a failing gate blocks.
func TestPromotionApproval(t *testing.T) {
	e := newEnv(t)
	v := e.register("credit")
	dev, dev2, dev3 := as(e.dev), as(e.dev2), as(e.dev3)

	// candidate → production directly: refused.
	if _, err := e.svc.Promote(dev, v.ModelID, 1, rampart.StageProduction); code(err) != rampart.CodeConflict {
		t.Fatalf("skip staging: %v", err)
	}
	if _, err := e.svc.Promote(dev, v.ModelID, 1, rampart.StageStaging); err != nil {
		t.Fatal(err)
	}
	// Without any approval: refused.
	if _, err := e.svc.Promote(dev, v.ModelID, 1, rampart.StageProduction); code(err) != rampart.CodeForbidden || !strings.Contains(err.Error(), "MODEL-5") {
		t.Fatalf("unapproved promotion: %v", err)
	}
	// The registrant approving its own version: refused.
	if _, err := e.svc.Approve(dev, v.ModelID, 1); code(err) != rampart.CodeForbidden || !strings.Contains(err.Error(), "self-approval") {
		t.Fatalf("self-approval: %v", err)
	}
	// A service user cannot approve at all.
	if _, err := e.svc.Approve(as(e.user), v.ModelID, 1); code(err) != rampart.CodeForbidden {
		t.Fatalf("service user approval: %v", err)
	}
	if _, err := e.svc.Approve(dev2, v.ModelID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Approve(dev2, v.ModelID, 1); code(err) != rampart.CodeConflict {
		t.Fatalf("double approval: %v", err)
	}
	// The approver promoting on its own approval: not a second principal.
	if _, err := e.svc.Promote(dev2, v.ModelID, 1, rampart.StageProduction); code(err) != rampart.CodeForbidden {
		t.Fatalf("approver promoting its own approval: %v", err)
	}
	got, err := e.svc.Promote(dev, v.ModelID, 1, rampart.StageProduction)
	if err != nil || got.Stage != rampart.StageProduction {
		t.Fatalf("approved promotion: %+v %v", got, err)
	}
	m, _ := e.svc.GetModel(dev, v.ModelID)
	if m.ProductionVersion != 1 {
		t.Fatalf("production version %d", m.ProductionVersion)
	}
	// Self-approval and refusals are in the audit log.
	var self, unapproved int
	for _, ev := range e.audit.evs {
		if ev.Reason == "MODEL-5: self-approval" {
			self++
		}
		if ev.Reason == "MODEL-5: no approval by a second principal" {
			unapproved++
		}
	}
	if self != 1 || unapproved != 2 {
		t.Fatalf("audit: %d self-approval, %d unapproved refusals", self, unapproved)
	}

	// Gates: a metric gate the version fails blocks production.
	minAUC := 0.99
	e.svc.gates = append(DefaultGates(), MetricGate{Metric: "auc", Min: &minAUC})
	v2 := e.register("credit")
	if _, err := e.svc.Promote(dev3, v.ModelID, v2.Version, rampart.StageStaging); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Approve(dev2, v.ModelID, v2.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Promote(dev3, v.ModelID, v2.Version, rampart.StageProduction); code(err) != rampart.CodeConflict || !strings.Contains(err.Error(), "gate metric:auc") {
		t.Fatalf("gated promotion: %v", err)
	}
	// Per-model gates (configurable, audited): block, then pass once the
	// bound is met; bad gates are refused.
	e.svc.gates = DefaultGates()
	hi, lo := 0.99, 0.5
	if _, err := e.svc.SetGates(dev, v.ModelID, []rampart.GateSpec{{Metric: "auc", Min: &hi}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Promote(dev3, v.ModelID, v2.Version, rampart.StageProduction); code(err) != rampart.CodeConflict || !strings.Contains(err.Error(), "auc = 0.95 is below 0.99") {
		t.Fatalf("model gate: %v", err)
	}
	nan := math.NaN()
	for _, bad := range [][]rampart.GateSpec{{{Metric: "auc"}}, {{Metric: "Bad Name", Min: &lo}}, {{Metric: "auc", Min: &hi, Max: &lo}}, {{Metric: "auc", Min: &nan}}} {
		if _, err := e.svc.SetGates(dev, v.ModelID, bad); code(err) != rampart.CodeInvalid {
			t.Fatalf("bad gates %+v: %v", bad, err)
		}
	}
	if _, err := e.svc.SetGates(as(e.user), v.ModelID, nil); code(err) != rampart.CodeForbidden {
		t.Fatalf("service user set gates: %v", err)
	}
	if m, err := e.svc.SetGates(dev, v.ModelID, []rampart.GateSpec{{Metric: "auc", Min: &lo}}); err != nil || len(m.Gates) != 1 {
		t.Fatalf("set gates: %+v %v", m, err)
	}
	if _, err := e.svc.Promote(dev3, v.ModelID, v2.Version, rampart.StageProduction); err != nil {
		t.Fatalf("promotion meeting the model gate: %v", err)
	}
	if evs := e.audit.find("model.gates", true); len(evs) != 2 || evs[1].Details["gate0"] != "auc >= 0.5" {
		t.Fatalf("gate changes not audited: %+v", evs)
	}
	// A complete card is required by default (MODEL-3).
	c := Card{Provenance: rampart.ProvenanceImported, Digest: "sha256:x", Owner: "pr_x"}
	if err := (CardComplete{}).Check(context.Background(), rampart.ModelVersion{}, &c); err == nil {
		t.Fatal("incomplete card passed")
	}
}

// TestRollback is the MODEL-6 acceptance at the registry: after promoting
// v2 over v1, a rollback makes v1 the production version again, and the
// production load (version 0) serves v1's digest.
func TestRollback(t *testing.T) {
	e := newEnv(t)
	dev, dev2 := as(e.dev), as(e.dev2)
	promote := func(v rampart.ModelVersion) {
		t.Helper()
		if _, err := e.svc.Promote(dev, v.ModelID, v.Version, rampart.StageStaging); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Approve(dev2, v.ModelID, v.Version); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Promote(dev, v.ModelID, v.Version, rampart.StageProduction); err != nil {
			t.Fatal(err)
		}
	}
	v1 := e.register("fraud")
	if _, err := e.svc.Rollback(dev, v1.ModelID, 0); code(err) != rampart.CodeConflict {
		t.Fatalf("rollback without history: %v", err)
	}
	promote(v1)
	// v2 has the same artifact bytes; versions tell them apart.
	v2 := e.register("fraud")
	promote(v2)
	lm, err := e.svc.Load(context.Background(), e.tenant.ID, v1.ModelID, 0)
	if err != nil || lm.Version.Version != 2 {
		t.Fatalf("production before rollback: %+v %v", lm, err)
	}
	if _, err := e.svc.Rollback(dev, v1.ModelID, 3); code(err) != rampart.CodeNotFound {
		t.Fatalf("rollback to a missing version: %v", err)
	}
	if _, err := e.svc.Rollback(as(e.user), v1.ModelID, 0); code(err) != rampart.CodeForbidden {
		t.Fatalf("service user rollback: %v", err)
	}
	rv, err := e.svc.Rollback(dev, v1.ModelID, 0)
	if err != nil || rv.Version != 1 || rv.Stage != rampart.StageProduction {
		t.Fatalf("rollback: %+v %v", rv, err)
	}
	lm, err = e.svc.Load(context.Background(), e.tenant.ID, v1.ModelID, 0)
	if err != nil || lm.Version.Version != 1 || lm.Version.Digest != v1.Digest {
		t.Fatalf("production after rollback: %+v %v", lm, err)
	}
	old, _ := e.svc.GetVersion(dev, v1.ModelID, 2)
	if old.Stage != rampart.StageArchived || !old.WasProduction {
		t.Fatalf("v2 after rollback: %+v", old)
	}
	// Roll forward again to v2 (it served production before).
	if rv, err := e.svc.Rollback(dev, v1.ModelID, 2); err != nil || rv.Version != 2 {
		t.Fatalf("roll forward: %+v %v", rv, err)
	}
	// A candidate that never served production is not a rollback target.
	v3 := e.register("fraud")
	if _, err := e.svc.Rollback(dev, v1.ModelID, v3.Version); code(err) != rampart.CodeConflict {
		t.Fatalf("rollback to a candidate: %v", err)
	}
}

// TestExport is the MODEL-4 acceptance: export without an explicit grant
// fails for every principal, including the model's owner; a grant from
// another principal enables exactly its grantee until revoked or expired;
// every export is audited with the digest.
func TestExport(t *testing.T) {
	e := newEnv(t)
	v := e.register("exp")
	dev, dev2, dev3 := as(e.dev), as(e.dev2), as(e.dev3)
	for _, c := range []context.Context{dev, dev2, dev3, as(e.user)} {
		if _, err := e.svc.Export(c, v.ModelID, 1); err == nil {
			t.Fatal("export without a grant")
		}
	}
	if _, err := e.svc.GrantExport(dev, v.ModelID, e.dev.ID, 0); code(err) != rampart.CodeForbidden {
		t.Fatalf("self-grant: %v", err)
	}
	if _, err := e.svc.GrantExport(dev, v.ModelID, e.user.ID, 0); code(err) != rampart.CodeInvalid {
		t.Fatalf("grant to a service user: %v", err)
	}
	if _, err := e.svc.GrantExport(dev, v.ModelID, rampart.NewID(rampart.PrefixPrincipal), 0); code(err) != rampart.CodeNotFound {
		t.Fatalf("grant to a missing principal: %v", err)
	}
	g, err := e.svc.GrantExport(dev, v.ModelID, e.dev2.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	x, err := e.svc.Export(dev2, v.ModelID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(x.Artifact) != v.Digest || len(x.Attestation) == 0 {
		t.Fatal("export returned other bytes")
	}
	if evs := e.audit.find("model.export.done", true); len(evs) != 1 || evs[0].Digest != v.Digest || evs[0].Details["grant"] != g.ID {
		t.Fatalf("export audit: %+v", evs)
	}
	// Only the grantee.
	if _, err := e.svc.Export(dev3, v.ModelID, 1); code(err) != rampart.CodeForbidden {
		t.Fatalf("export by a non-grantee: %v", err)
	}
	// Expiry.
	e.clock = e.clock.Add(2 * time.Hour)
	if _, err := e.svc.Export(dev2, v.ModelID, 1); code(err) != rampart.CodeForbidden {
		t.Fatalf("export after expiry: %v", err)
	}
	g2, err := e.svc.GrantExport(dev3, v.ModelID, e.dev2.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Export(dev2, v.ModelID, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeExportGrant(dev, v.ModelID, g2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Export(dev2, v.ModelID, 1); code(err) != rampart.CodeForbidden {
		t.Fatalf("export after revocation: %v", err)
	}
	if err := e.svc.RevokeExportGrant(dev, v.ModelID, rampart.NewID(rampart.PrefixExportGrant)); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("revoke a missing grant: %v", err)
	}
}
