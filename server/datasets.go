package server

import (
	"context"
	"fmt"

	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// MaxUploadBytes bounds one dataset upload body. Memory does not grow with
// it: uploads stream through parsing and encryption.
const MaxUploadBytes = 64 << 30

// openDatasets assembles the dataset service (issue 5), discards uploads a
// crash left half-done, and registers its routes with a streaming body
// limit for uploads.
func openDatasets(ctx context.Context, s *Server) error {
	svc := dataset.New(s.DB, s.Barrier, s.Audit, s.log, nil)
	if err := svc.RecoverPending(ctx); err != nil {
		return fmt.Errorf("datasets: recover pending uploads: %w", err)
	}
	s.API.StreamingRoute("POST", httpapi.UploadPath, MaxUploadBytes)
	s.API.RouteDatasets(svc)
	return nil
}
