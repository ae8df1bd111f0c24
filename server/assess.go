package server

import (
	"context"
	"fmt"

	"github.com/rampart-mlaas/rampart/assess/service"
	"github.com/rampart-mlaas/rampart/dataset"
)

// openAssess assembles the assessment service (issue 8) over the server's
// store (assessments and thresholds, sqlite/assess.go), its own registry
// instance (the assessed model is loaded verified, MODEL-1), the dataset
// service (training and held-out rows, read under the caller's grants) and
// the audit log; assessments a crash left running are failed first.
func openAssess(ctx context.Context, s *Server) error {
	reg, err := newRegistry(s)
	if err != nil {
		return err
	}
	svc, err := service.New(ctx, s.DB, reg, dataset.New(s.DB, s.Barrier, s.Audit, s.log, nil), s.Audit, s.log)
	if err != nil {
		return fmt.Errorf("assessments: %w", err)
	}
	s.closers = append(s.closers, svc.Close)
	s.API.RouteAssess(svc)
	return nil
}
