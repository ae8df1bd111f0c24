package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/atomicfile"
)

// bootstrap creates, on the first start only, the system tenant and the
// first operator with its key. The key is written to DIR/operator.key (0600)
// before the principal is committed, so a crash never leaves an operator
// nobody can log in as; once the operator exists the file is never rewritten.
func (s *Server) bootstrap(ctx context.Context) error {
	sys, err := s.DB.GetTenantByName(ctx, rampart.SystemTenantName)
	switch {
	case errors.Is(err, rampart.ErrNotFound):
		sys = rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: rampart.SystemTenantName, CreatedAt: time.Now().UTC(), CreatedBy: "bootstrap"}
		if err := s.DB.CreateTenant(ctx, sys); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	case err != nil:
		return fmt.Errorf("bootstrap: %w", err)
	}
	ps, _, err := s.DB.ListPrincipals(ctx, sys.ID, rampart.Page{Limit: 1})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if len(ps) > 0 {
		return nil // bootstrapped before: never again
	}
	p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: sys.ID, Name: "operator",
		Kind: rampart.PrincipalUser, Role: rampart.RoleOperator, CreatedAt: time.Now().UTC()}
	tok, k, err := s.Authn.Mint(p, "bootstrap", 0)
	if err != nil {
		return err
	}
	path := filepath.Join(s.cfg.DataDir, operatorFile)
	if err := writeFileAtomic(path, []byte(tok.Reveal()+"\n"), 0o600); err != nil {
		return fmt.Errorf("bootstrap: write %s: %w", path, err)
	}
	if err := s.DB.CreatePrincipalWithKey(ctx, p, k); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.Audit.Record(ctx, rampart.AuditEvent{Time: time.Now().UTC(), TenantID: sys.ID, Principal: "bootstrap",
		Action: "principal.create", Resource: "principal/" + p.ID, Allow: true, Reason: "first start", Outcome: "ok",
		Details: map[string]string{"name": p.Name, "role": string(p.Role)}}); err != nil {
		return fmt.Errorf("bootstrap: audit: %w", err)
	}
	s.OperatorToken = tok
	if !s.cfg.Quiet {
		fmt.Fprintf(os.Stdout, "Bootstrapped Rampart. Operator API key (shown once; also in %s, mode 0600):\n\n    %s\n\n", path, tok.Reveal())
	}
	return nil
}

// writeFileAtomic writes b to path atomically (see atomicfile).
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return atomicfile.Write(path, b, mode)
}
