package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-mlaas/rampart"

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
	if s.serving != nil {
		svc.SetEndpointAccess(&service.EndpointAccess{
			Resolve: s.serving.Get,
			Mint:    s.mintAssessmentPrincipal,
			BaseURL: func() string {
				if u := s.selfURL.Load(); u != nil {
					return *u
				}
				return ""
			},
			// The server calls itself on its own listener: a self-signed
			// certificate is its own, so trust only that.
			Client: s.selfClient(),
		})
	}
	s.API.RouteAssess(svc)
	return nil
}

// mintAssessmentPrincipal creates a short-lived service-user principal in
// tenantID for an endpoint assessment and returns its key and a function
// that disables it. Both are audited as platform actions.
func (s *Server) mintAssessmentPrincipal(ctx context.Context, tenantID, name string) (string, func(), error) {
	p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: tenantID, Name: name,
		Kind: rampart.PrincipalService, Role: rampart.RoleServiceUser, CreatedAt: time.Now().UTC()}
	c, _ := rampart.CallerFrom(ctx)
	ev := rampart.AuditEvent{Time: time.Now().UTC(), TenantID: tenantID, Principal: c.Principal.ID, Role: c.Principal.Role,
		Action: "principal.create", Resource: "principal/" + p.ID, Allow: true, Reason: "endpoint assessment attacker",
		Outcome: "ok", RequestID: c.RequestID, Details: map[string]string{"name": name, "role": string(p.Role)}}
	if err := s.Audit.Record(ctx, ev); err != nil {
		return "", nil, err
	}
	tok, _, err := s.Authn.CreatePrincipal(ctx, p, "assessment", time.Hour)
	if err != nil {
		return "", nil, err
	}
	retire := func() {
		bg := context.WithoutCancel(ctx)
		if err := s.DB.SetPrincipalDisabled(bg, p.ID, true); err != nil {
			s.log.Warn("disable assessment principal", "principal", p.ID, "err", err)
		}
		s.Authn.InvalidatePrincipal(p.ID)
		ev.Action, ev.Reason, ev.Time = "principal.disable", "endpoint assessment finished", time.Now().UTC()
		_ = s.Audit.Record(bg, ev)
	}
	return tok.Reveal(), retire, nil
}

// selfClient is an HTTP client for calls to this server's own listener.
func (s *Server) selfClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.cfg.TLS() {
		pool := x509.NewCertPool()
		certFile := s.cfg.TLSCert
		if s.cfg.TLSSelfSigned {
			certFile = filepath.Join(s.cfg.DataDir, "tls", "cert.pem")
			// Listen would create it later; create it now so it can be trusted.
			if err := ensureSelfSigned(certFile, filepath.Join(s.cfg.DataDir, "tls", "key.pem"), s.cfg.Addr); err != nil {
				s.log.Warn("self-signed certificate", "err", err)
			}
		}
		if pem, err := os.ReadFile(certFile); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
