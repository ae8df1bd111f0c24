package authz

import (
	"fmt"
	"strings"

	"github.com/rampart-mlaas/rampart"
)

// Markdown renders the policy table for docs/authz.md, so the document is
// generated from the code and cannot drift from it.
func Markdown() string {
	var b strings.Builder
	b.WriteString("# Authorization policy\n\n")
	b.WriteString("Generated from `authz/authz.go` by `go test ./authz -run TestDocs -update`; do not edit by hand.\n\n")
	b.WriteString("Deny by default (IAM-2). Relations: **self** (the caller itself or its keys), **own** (the caller's tenant), ")
	b.WriteString("**granted** (another tenant's object with a live grant for the needed purpose), **foreign** (another tenant's object, no grant), ")
	b.WriteString("**platform** (platform-wide resources). A denial on a foreign object answers 404, exactly like a missing object (TEN-1); ")
	b.WriteString("a denial inside the caller's tenant answers 403. A rule that allows *own* also allows *self*.\n\n")
	b.WriteString("| action |")
	for _, r := range rampart.Roles {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString(" grant purpose |\n|---|")
	for range rampart.Roles {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	for _, a := range Actions() {
		fmt.Fprintf(&b, "| `%s` |", a)
		for _, r := range rampart.Roles {
			rels := table[a][r]
			if len(rels) == 0 {
				b.WriteString(" — |")
				continue
			}
			s := make([]string, len(rels))
			for i, x := range rels {
				s[i] = string(x)
			}
			b.WriteString(" " + strings.Join(s, ", ") + " |")
		}
		if p, ok := purposeOf[a]; ok {
			fmt.Fprintf(&b, " %s |\n", p)
		} else {
			b.WriteString(" |\n")
		}
	}
	b.WriteString("\nThe operator has no data-plane action at all: it administers tenants, principals and keys but cannot read a tenant's datasets, models or predictions (IAM-4). ")
	b.WriteString("Operators may revoke any key (a security response) but cannot mint a key for another principal, which would let them impersonate it.\n")
	return b.String()
}
