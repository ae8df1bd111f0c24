package server

import (
	"context"

	"github.com/rampart-mlaas/rampart"
)

// openAudit assembles the audit log. Until the Merkle log is wired, events
// go to the structured log.
func openAudit(ctx context.Context, s *Server) (rampart.Auditor, error) {
	return slogAuditor{s}, nil
}

type slogAuditor struct{ s *Server }

func (a slogAuditor) Record(ctx context.Context, ev rampart.AuditEvent) error {
	a.s.log.Debug("audit", "action", ev.Action, "allow", ev.Allow, "tenant", ev.TenantID, "principal", ev.Principal,
		"resource", ev.Resource, "outcome", ev.Outcome, "request_id", ev.RequestID)
	return nil
}
