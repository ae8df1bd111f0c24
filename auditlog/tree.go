package auditlog

import (
	"context"
	"fmt"

	"github.com/rampart-mlaas/rampart"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size of every hash in the tree (SHA-256).
const HashSize = 32

// Hasher is the RFC 6962 hasher of the tree (AUDIT-1): leaf = SHA-256(0x00 ||
// event), node = SHA-256(0x01 || left || right).
var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash returns the RFC 6962 leaf hash of a canonical event.
func LeafHash(event []byte) []byte { return hasher.HashLeaf(event) }

// nodeRow says which leaf row stores the perfect node id, and where in its
// Hashes: node (L, k) is completed by leaf (k+1)·2^L − 1, at offset L·32.
func nodeRow(id compact.NodeID) (uint64, int) {
	return (id.Index+1)<<id.Level - 1, int(id.Level) * HashSize
}

// fetchNodes returns the stored hashes of perfect nodes, in the order given.
func fetchNodes(ctx context.Context, st Store, ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	rows := make([]uint64, 0, len(ids))
	seen := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		r, _ := nodeRow(id)
		if !seen[r] {
			seen[r] = true
			rows = append(rows, r)
		}
	}
	got, err := st.LeafHashes(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("audit: read tree nodes: %w", err)
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		r, off := nodeRow(id)
		h, ok := got[r]
		if !ok || len(h) < off+HashSize {
			return nil, fmt.Errorf("audit: tree node %d/%d missing from leaf %d: %w", id.Level, id.Index, r, rampart.ErrInternal)
		}
		out[i] = h[off : off+HashSize : off+HashSize]
	}
	return out, nil
}

// loadRange returns the compact range [0, size) from stored nodes.
func loadRange(ctx context.Context, st Store, size uint64) (*compact.Range, error) {
	hashes, err := fetchNodes(ctx, st, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	return rangeFactory.NewRange(0, size, hashes)
}

// rootAt returns the root hash of the tree of the given size.
func rootAt(ctx context.Context, st Store, size uint64) ([]byte, error) {
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	r, err := loadRange(ctx, st, size)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// rangeRoot returns the root of a compact range starting at 0.
func rangeRoot(r *compact.Range) []byte {
	if r.End() == 0 {
		return hasher.EmptyRoot()
	}
	root, err := r.GetRootHash(nil)
	if err != nil { // only for ranges not starting at 0, which we never build
		panic(err)
	}
	return root
}

// inclusionProof serves an RFC 6962 inclusion proof from stored nodes.
func inclusionProof(ctx context.Context, st Store, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return rehash(ctx, st, nodes)
}

// consistencyProof serves an RFC 6962 consistency proof from stored nodes.
func consistencyProof(ctx context.Context, st Store, from, to uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return rehash(ctx, st, nodes)
}

func rehash(ctx context.Context, st Store, nodes proof.Nodes) ([][]byte, error) {
	hashes, err := fetchNodes(ctx, st, nodes.IDs)
	if err != nil {
		return nil, err
	}
	// Rehash overwrites the slice in place: give it copies.
	cp := make([][]byte, len(hashes))
	for i, h := range hashes {
		cp[i] = append([]byte(nil), h...)
	}
	return nodes.Rehash(cp, hasher.HashChildren)
}
