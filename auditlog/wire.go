package auditlog

import (
	"encoding/base64"
	"fmt"
)

// MaxProofLen bounds a proof received from the network (a tree of 2^64
// leaves needs at most 64 hashes; a consistency proof one more).
const MaxProofLen = 65

// EncodeProof returns the JSON/HTTP form of a proof: standard base64 hashes.
func EncodeProof(p [][]byte) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

// DecodeProof parses the JSON/HTTP form of a proof: at most MaxProofLen
// canonical base64 strings of HashSize bytes each.
func DecodeProof(s []string) ([][]byte, error) {
	if len(s) > MaxProofLen {
		return nil, fmt.Errorf("%w: proof of %d hashes, at most %d", errFormat, len(s), MaxProofLen)
	}
	out := make([][]byte, len(s))
	for i, h := range s {
		b, err := base64.StdEncoding.Strict().DecodeString(h)
		if err != nil || len(b) != HashSize || base64.StdEncoding.EncodeToString(b) != h {
			return nil, fmt.Errorf("%w: proof hash %d is not %d bytes of canonical base64", errFormat, i, HashSize)
		}
		out[i] = b
	}
	return out, nil
}
