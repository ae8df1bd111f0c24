package rampart

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// ID prefixes, one per kind of object (DESIGN.md "API conventions").
const (
	PrefixTenant    = "tn"
	PrefixPrincipal = "pr"
	PrefixKey       = "ak"
	PrefixRequest   = "req"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 128 random bits in lower-case base32. IDs are
// unguessable so that a foreign ID cannot be found by enumeration (TEN-1).
func NewID(prefix string) string {
	return prefix + "_" + RandomToken(16)
}

// RandomToken returns n random bytes from crypto/rand in lower-case base32
// (no padding, no underscore), so tokens can be joined with "_".
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+); if it
		// did, continuing with a weak ID would be worse than stopping.
		panic("rampart: crypto/rand failed: " + err.Error())
	}
	return idEncoding.EncodeToString(b)
}

// ValidID reports whether s looks like an ID of the given prefix: right
// prefix and only base32 characters, bounded length. It lets handlers reject
// garbage before touching storage.
func ValidID(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) == 0 || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
