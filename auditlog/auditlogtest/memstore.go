package auditlogtest

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
)

// MemStore is an in-memory auditlog.Store: the reference implementation of
// the contract, for fuzz targets and tests that must not touch a database.
// It is not durable.
type MemStore struct {
	mu     sync.Mutex
	leaves []auditlog.Leaf
	cps    map[uint64]auditlog.StoredCheckpoint
}

var _ auditlog.Store = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{cps: map[uint64]auditlog.StoredCheckpoint{}} }

func cloneLeaf(l auditlog.Leaf) auditlog.Leaf {
	l.Data, l.Hashes = bytes.Clone(l.Data), bytes.Clone(l.Hashes)
	return l
}

// AppendLeaves implements auditlog.Store.
func (m *MemStore) AppendLeaves(_ context.Context, ls []auditlog.Leaf) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, l := range ls {
		if l.Index != uint64(len(m.leaves)+i) {
			return rampart.Errorf(rampart.CodeConflict, "audit leaves are not consecutive")
		}
	}
	for _, l := range ls {
		m.leaves = append(m.leaves, cloneLeaf(l))
	}
	return nil
}

// LeafCount implements auditlog.Store.
func (m *MemStore) LeafCount(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.leaves)), nil
}

// LeafHashes implements auditlog.Store.
func (m *MemStore) LeafHashes(_ context.Context, idx []uint64) (map[uint64][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64][]byte{}
	for _, i := range idx {
		if i < uint64(len(m.leaves)) {
			out[i] = bytes.Clone(m.leaves[i].Hashes)
		}
	}
	return out, nil
}

// ReadLeaves implements auditlog.Store.
func (m *MemStore) ReadLeaves(_ context.Context, begin, end uint64) ([]auditlog.Leaf, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []auditlog.Leaf
	for i := begin; i < end && i < uint64(len(m.leaves)); i++ {
		out = append(out, cloneLeaf(m.leaves[i]))
	}
	return out, nil
}

// QueryLeaves implements auditlog.Store.
func (m *MemStore) QueryLeaves(_ context.Context, q auditlog.LeafQuery) ([]auditlog.Leaf, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := q.Limit
	if limit <= 0 {
		limit = rampart.DefaultPageSize
	}
	var out []auditlog.Leaf
	for i := max(q.After+1, 0); i < int64(len(m.leaves)) && len(out) < limit; i++ {
		l := m.leaves[i]
		if (q.Tenant != "" && l.Tenant != q.Tenant) || (q.Principal != "" && l.Principal != q.Principal) ||
			(q.Action != "" && l.Action != q.Action) || (q.Resource != "" && l.Resource != q.Resource) ||
			(!q.Since.IsZero() && l.Time.Before(q.Since)) || (!q.Until.IsZero() && !l.Time.Before(q.Until)) {
			continue
		}
		out = append(out, cloneLeaf(l))
	}
	return out, nil
}

// PutCheckpoint implements auditlog.Store.
func (m *MemStore) PutCheckpoint(_ context.Context, c auditlog.StoredCheckpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.cps[c.Size]; ok {
		return rampart.Errorf(rampart.CodeConflict, "audit checkpoint already exists")
	}
	c.Root, c.Note, c.Timestamp = bytes.Clone(c.Root), bytes.Clone(c.Note), bytes.Clone(c.Timestamp)
	m.cps[c.Size] = c
	return nil
}

// SetCheckpointTimestamp implements auditlog.Store.
func (m *MemStore) SetCheckpointTimestamp(_ context.Context, size uint64, token []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cps[size]
	if !ok || c.Timestamp != nil {
		return rampart.Errorf(rampart.CodeNotFound, "audit checkpoint %d without a time-stamp not found", size)
	}
	c.Timestamp = bytes.Clone(token)
	m.cps[size] = c
	return nil
}

func (m *MemStore) sorted() []auditlog.StoredCheckpoint {
	out := make([]auditlog.StoredCheckpoint, 0, len(m.cps))
	for _, c := range m.cps {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Size < out[j].Size })
	return out
}

// LatestCheckpoint implements auditlog.Store.
func (m *MemStore) LatestCheckpoint(context.Context) (auditlog.StoredCheckpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sorted()
	if len(s) == 0 {
		return auditlog.StoredCheckpoint{}, rampart.Errorf(rampart.CodeNotFound, "audit checkpoint not found")
	}
	return s[len(s)-1], nil
}

// CheckpointAt implements auditlog.Store.
func (m *MemStore) CheckpointAt(_ context.Context, size uint64) (auditlog.StoredCheckpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cps[size]
	if !ok {
		return auditlog.StoredCheckpoint{}, rampart.Errorf(rampart.CodeNotFound, "audit checkpoint not found")
	}
	return c, nil
}

// Checkpoints implements auditlog.Store.
func (m *MemStore) Checkpoints(_ context.Context, from uint64, limit int) ([]auditlog.StoredCheckpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []auditlog.StoredCheckpoint
	for _, c := range m.sorted() {
		if c.Size >= from && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

// UntimestampedCheckpoints implements auditlog.Store.
func (m *MemStore) UntimestampedCheckpoints(_ context.Context, since time.Time, limit int) ([]auditlog.StoredCheckpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []auditlog.StoredCheckpoint
	for _, c := range m.sorted() {
		if c.Timestamp == nil && !c.CreatedAt.Before(since) && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}
