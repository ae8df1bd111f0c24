package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/tsa"
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
	l, err := auditlog.Open(ctx, auditlog.Config{Store: s.DB.Audit(), Origin: origin, SigningKey: key.PrivateKey(),
		HMAC: hmacFn, TSA: tc, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	s.closers = append(s.closers, func() error { return l.Close(context.Background()) })
	return l, nil
}

var _ rampart.Auditor = (*auditlog.Log)(nil)

// routeAudit serves the log's routes.
func (s *Server) routeAudit() { s.API.RegisterAudit(s.AuditLog) }
