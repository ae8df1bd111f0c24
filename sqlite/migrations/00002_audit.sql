-- +goose Up
-- The audit log (auditlog.Store). One row per event: the canonical event
-- bytes, its RFC 6962 leaf hash followed by the hashes of the perfect
-- subtrees it completes (so proofs never rebuild the tree), and copies of the
-- fields that queries filter on.
CREATE TABLE audit_leaves (
    idx        INTEGER PRIMARY KEY,
    data       BLOB NOT NULL,
    hashes     BLOB NOT NULL,
    time_ns    INTEGER NOT NULL,
    tenant     TEXT NOT NULL,
    principal  TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL
) STRICT;
CREATE INDEX audit_leaves_time ON audit_leaves(time_ns);

-- One row per appended batch: its index range and the tenants it holds (a
-- JSON array), so that tenant queries skip batches without the tenant. A
-- per-event (tenant, idx) index would dirty one page per tenant per commit
-- and cost a large part of the insert rate; this appends one row per batch.
-- It is only a hint: queries still filter rows by their tenant column.
CREATE TABLE audit_batches (
    first_idx  INTEGER PRIMARY KEY,
    last_idx   INTEGER NOT NULL,
    tenants    TEXT NOT NULL
) STRICT;

CREATE TABLE audit_checkpoints (
    size        INTEGER PRIMARY KEY,
    root        BLOB NOT NULL,
    note        BLOB NOT NULL,
    tsa_token   BLOB,
    created_ns  INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_checkpoints_untimestamped ON audit_checkpoints(size) WHERE tsa_token IS NULL;

-- Append-only, as a guard against bugs (AUDIT-1). Whoever owns the file can
-- drop these; the Merkle tree and signed checkpoints are what detect that.
-- +goose StatementBegin
CREATE TRIGGER audit_leaves_no_update BEFORE UPDATE ON audit_leaves
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_leaves_no_delete BEFORE DELETE ON audit_leaves
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_token_only BEFORE UPDATE ON audit_checkpoints
WHEN OLD.tsa_token IS NOT NULL OR NEW.size IS NOT OLD.size OR NEW.root IS NOT OLD.root
  OR NEW.note IS NOT OLD.note OR NEW.created_ns IS NOT OLD.created_ns
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only; only a missing time-stamp may be added'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_batches;
DROP TABLE audit_checkpoints;
DROP TABLE audit_leaves;
