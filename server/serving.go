package server

import (
	"context"
	"fmt"

	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/serving"
)

// openServing assembles inference endpoints (issue 7) over the server's
// store, its own registry instance (every model load verifies, MODEL-1),
// the audit log and the keyring (response signing, INF-6), and registers
// the endpoint and Open Inference Protocol routes, the prediction routes
// with a body limit of serving.MaxBody.
func openServing(_ context.Context, s *Server) error {
	reg, err := newRegistry(s)
	if err != nil {
		return err
	}
	svc, err := serving.New(serving.Options{Store: s.DB, Models: s.DB, Registry: reg, Audit: s.Audit, Keys: s.Keyring,
		Metrics: s.API.Metrics(), Log: s.log})
	if err != nil {
		return fmt.Errorf("serving: %w", err)
	}
	for _, p := range []string{httpapi.PredictPath, httpapi.InferPath, httpapi.InferVersionsPath} {
		s.API.StreamingRoute("POST", p, serving.MaxBody)
	}
	s.API.RouteServing(svc)
	s.serving = svc
	return nil
}
