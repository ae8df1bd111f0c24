package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/tsa"
	"github.com/rampart-mlaas/rampart/authz"
)

// AuditKeyName names the checkpoint signing key in the keyring.
const AuditKeyName = "audit-checkpoint"

// openAudit opens the tamper-evident audit log (AUDIT-1..3): events in the
// metadata store's Merkle tree, checkpoints signed with a keyring-held
// Ed25519 key, sensitive values HMAC'd with the tenant's key, time-stamped by
// the configured TSA (AUDIT-2).
func openAudit(ctx context.Context, s *Server) (*auditlog.Log, error) {
	key, err := s.Keyring.SigningKey(ctx, AuditKeyName)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	// The origin names this log for as long as its key lives.
	sum := sha256.Sum256(key.PublicKey())
	origin := "rampart/audit/" + hex.EncodeToString(sum[:8])
	hmacFn := func(ctx context.Context, tenant string, v []byte) ([]byte, error) {
		if tenant == "" {
			tenant = "platform"
		}
		m, err := s.Keyring.TenantMAC(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return m.ComputeMAC(v)
	}
	var tc *tsa.Client
	if s.cfg.TSAURL != "" {
		tc = &tsa.Client{URL: s.cfg.TSAURL}
	}
	st := s.DB.Audit()
	s.closers = append(s.closers, st.Close) // closed after the log (closers run in reverse)
	cfg := auditlog.Config{Store: st, Origin: origin, SigningKey: key.PrivateKey(),
		HMAC: hmacFn, TSA: tc, Logger: s.log}
	if !s.cfg.AuditFsyncPredictions {
		// AUDIT-3/AUDIT-5: every prediction is still logged before it is
		// answered, committed (it survives a crash of the server); only its
		// flush to disk is shared with the next ones instead of awaited,
		// which is what keeps the audited prediction path within
		// milliseconds on an ordinary disk. Refused predictions (rate
		// limit, budget, guards, no grant) too: otherwise a flood of
		// over-limit requests would force a disk flush per batch and slow
		// every other tenant's predictions sharing those batches (TEN-3).
		cfg.AckOnWrite = func(ev *auditlog.Event) bool { return ev.Action == string(authz.Predict) }
	}
	l, err := auditlog.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	s.closers = append(s.closers, func() error { return l.Close(context.Background()) })
	return l, nil
}

var _ rampart.Auditor = (*auditlog.Log)(nil)

// routeAudit serves the log's routes and exports its state as metrics.
func (s *Server) routeAudit() {
	s.API.RegisterAudit(s.AuditLog)
	l := s.AuditLog
	g := func(name, help string, f func(auditlog.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(l.Status()) })
	}
	s.API.Metrics().MustRegister(
		g("rampart_audit_size", "Committed audit events.", func(st auditlog.Status) float64 { return float64(st.Size) }),
		g("rampart_audit_durable_size", "Committed audit events known flushed to disk.", func(st auditlog.Status) float64 { return float64(st.DurableSize) }),
		g("rampart_audit_sync_errors", "Failed background flushes of the audit log to disk since start.", func(st auditlog.Status) float64 { return float64(st.SyncErrors) }),
		g("rampart_audit_published_size", "Tree size of the latest signed checkpoint.", func(st auditlog.Status) float64 { return float64(st.PublishedSize) }),
		g("rampart_audit_queue_length", "Audit events waiting to be committed.", func(st auditlog.Status) float64 { return float64(st.QueueLen) }),
		g("rampart_audit_commit_errors", "Failed audit batch commits since start.", func(st auditlog.Status) float64 { return float64(st.CommitErrors) }),
		g("rampart_audit_tsa_pending", "Checkpoints still waiting for an RFC 3161 time-stamp.", func(st auditlog.Status) float64 { return float64(st.TSA.Pending) }),
		g("rampart_audit_tsa_healthy", "1 if the time-stamping authority answered last time (or none is configured).", func(st auditlog.Status) float64 {
			if !st.TSA.Configured || st.TSA.Healthy {
				return 1
			}
			return 0
		}),
	)
}

// checks reports the audit log's state in /readyz. An unreachable TSA delays
// time-stamps (retried) but never blocks events, so it is reported, not fatal.
func (s *Server) checks(context.Context) map[string]string {
	st := s.AuditLog.Status()
	m := map[string]string{
		"audit": fmt.Sprintf("size %d, on disk %d, checkpoint %d", st.Size, st.DurableSize, st.PublishedSize),
	}
	switch {
	case !st.TSA.Configured:
		m["tsa"] = "not configured"
	case st.TSA.Healthy:
		m["tsa"] = fmt.Sprintf("ok, %d pending", st.TSA.Pending)
	default:
		// /readyz is public: the error (and so the TSA's address) goes to
		// the log and metrics, not here.
		m["tsa"] = fmt.Sprintf("unreachable since %s, %d checkpoints waiting, retrying", st.TSA.LastErrorAt.UTC().Format(time.RFC3339), st.TSA.Pending)
	}
	return m
}
