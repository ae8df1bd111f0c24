package server

import (
	"fmt"

	"github.com/rampart-mlaas/rampart/assess/gates"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/registry"
)

// newRegistry assembles a model registry service over the server's store,
// keyring, barrier and audit log. Instances are independent and safe to
// use side by side (version numbers are allocated by the store), so the
// jobs wiring may take its own: newRegistry(s) gives RegisterTrained.
func newRegistry(s *Server) (*registry.Service, error) {
	// MODEL-5: promotion to production also passes the tenant's
	// assessment thresholds (membership TPR, extraction fidelity, …).
	svc, err := registry.New(registry.Options{Store: s.DB, Principals: s.DB, Keys: s.Keyring, Barrier: s.Barrier,
		Audit: s.Audit, Version: Version, Gates: append(registry.DefaultGates(), gates.Gate{Store: s.DB})})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return svc, nil
}

// openRegistry assembles the signed model registry (issue 6) and registers
// its routes, the import route with a body limit of registry.MaxImportSize.
func openRegistry(s *Server) (*registry.Service, error) {
	svc, err := newRegistry(s)
	if err != nil {
		return nil, err
	}
	s.API.StreamingRoute("POST", httpapi.ImportPath, registry.MaxImportSize)
	s.API.RouteRegistry(svc)
	return svc, nil
}
