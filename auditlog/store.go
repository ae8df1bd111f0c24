package auditlog

import (
	"context"
	"time"
)

// Store is the persistence the log needs. It is deliberately dumb — rows in,
// rows out — so that SQLite (sqlite.AuditStore) and later PostgreSQL can
// implement it and pass the same conformance suite (auditlogtest.Run).
//
// The Merkle tree is stored inside the leaf rows: when leaf i is appended it
// completes the perfect subtrees whose last leaf it is (one per trailing one
// bit of i), and their hashes are stored with it (Leaf.Hashes). So an append
// writes one row per event (O(log n) bytes, amortised O(1)), and any perfect
// node (level L, index k) is found in row (k+1)·2^L − 1 without rebuilding
// anything.
type Store interface {
	// AppendLeaves stores the leaves in one transaction: all or none. The
	// first leaf's Index must equal the current number of leaves and the
	// indexes must be consecutive; otherwise it returns an error matching
	// rampart.ErrConflict and stores nothing.
	AppendLeaves(ctx context.Context, leaves []Leaf) error
	// LeafCount returns the number of stored leaves.
	LeafCount(ctx context.Context) (uint64, error)
	// LeafHashes returns the Hashes of the leaves with the given indexes.
	// A missing index is absent from the map.
	LeafHashes(ctx context.Context, indexes []uint64) (map[uint64][]byte, error)
	// ReadLeaves returns the leaves with begin <= Index < end, in index order.
	ReadLeaves(ctx context.Context, begin, end uint64) ([]Leaf, error)
	// QueryLeaves returns up to q.Limit leaves with Index > q.After (or all
	// when q.After is -1) matching every non-empty filter, in index order.
	QueryLeaves(ctx context.Context, q LeafQuery) ([]Leaf, error)

	// PutCheckpoint stores a checkpoint; storing one for an existing size
	// returns an error matching rampart.ErrConflict.
	PutCheckpoint(ctx context.Context, c StoredCheckpoint) error
	// SetCheckpointTimestamp attaches an RFC 3161 token to the checkpoint of
	// the given size.
	SetCheckpointTimestamp(ctx context.Context, size uint64, token []byte) error
	// LatestCheckpoint returns the checkpoint with the largest size, or an
	// error matching rampart.ErrNotFound.
	LatestCheckpoint(ctx context.Context) (StoredCheckpoint, error)
	// CheckpointAt returns the checkpoint of exactly that size, or an error
	// matching rampart.ErrNotFound.
	CheckpointAt(ctx context.Context, size uint64) (StoredCheckpoint, error)
	// Checkpoints returns up to limit checkpoints with Size >= from, by size.
	Checkpoints(ctx context.Context, from uint64, limit int) ([]StoredCheckpoint, error)
	// UntimestampedCheckpoints returns up to limit checkpoints created at or
	// after since that have no time-stamp token yet, oldest first.
	UntimestampedCheckpoints(ctx context.Context, since time.Time, limit int) ([]StoredCheckpoint, error)
}

// DeferredSyncer is implemented by stores that can commit a batch without
// waiting for the disk, so that high-volume events (predictions) need not
// wait for an fsync each (see Config.AckOnWrite). The log calls Sync in the
// background, continuously while deferred batches are outstanding, and every
// AppendLeaves (the waiting kind) is itself durable together with every
// deferred batch before it.
type DeferredSyncer interface {
	// AppendLeavesDeferred is AppendLeaves without waiting for the disk: on
	// return the leaves are committed and visible, and survive a crash or
	// kill -9 of this process (they are in the operating system), but a
	// power loss before the next Sync may lose them. The log calls it
	// without holding back its other writes (checkpoints, time-stamps),
	// so the store serialises them itself.
	AppendLeavesDeferred(ctx context.Context, leaves []Leaf) error
	// Sync makes every leaf committed so far durable against power loss.
	Sync(ctx context.Context) error
}

// Leaf is one stored log entry.
type Leaf struct {
	Index uint64
	// Data is the canonical event encoding: what the leaf hash covers.
	Data []byte
	// Hashes is the RFC 6962 leaf hash followed by the hashes of the perfect
	// subtrees completed by this leaf, lowest level first (32 bytes each).
	Hashes []byte
	// Copies of event fields, for queries only; verification never trusts them.
	Time      time.Time
	Tenant    string
	Principal string
	Action    string
	Resource  string
}

// LeafQuery filters leaves. Empty strings and zero times do not filter.
type LeafQuery struct {
	After     int64 // -1: from the start
	Limit     int
	Tenant    string
	Principal string
	Action    string
	Resource  string
	Since     time.Time // inclusive
	Until     time.Time // exclusive
}

// StoredCheckpoint is a published checkpoint as stored.
type StoredCheckpoint struct {
	Size      uint64
	Root      []byte
	Note      []byte // the signed note (C2SP tlog-checkpoint)
	Timestamp []byte // DER RFC 3161 TimeStampToken, or nil
	CreatedAt time.Time
}
