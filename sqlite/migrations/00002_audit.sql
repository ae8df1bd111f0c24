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

-- Where each tenant's events are: one row per tenant per appended batch
-- (the smallest and largest index of its events in that batch). A per-event
-- (tenant, idx) index costs a third of the insert rate under load; this
-- costs one row per tenant per batch and still narrows tenant queries.
CREATE TABLE audit_tenant_ranges (
    tenant     TEXT NOT NULL,
    first_idx  INTEGER NOT NULL,
    last_idx   INTEGER NOT NULL,
    PRIMARY KEY (tenant, first_idx)
) STRICT, WITHOUT ROWID;

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
DROP TABLE audit_tenant_ranges;
DROP TABLE audit_checkpoints;
DROP TABLE audit_leaves;
