-- +goose Up
-- Training jobs (TRAIN-4, TRAIN-5). The queue itself (leases, retries,
-- worker slots) lives in River's own tables, created by River's migrator.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    created_by      TEXT NOT NULL,
    dataset_id      TEXT NOT NULL,
    dataset_digest  TEXT NOT NULL DEFAULT '',
    spec            TEXT NOT NULL,
    state           TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    attempt         INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    progress        TEXT NOT NULL DEFAULT '{}',
    result          TEXT,
    isolation       TEXT NOT NULL DEFAULT '[]',
    grantee         TEXT NOT NULL DEFAULT '',
    epsilon         REAL NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER
) STRICT;
CREATE INDEX jobs_tenant ON jobs(tenant_id, id);
CREATE INDEX jobs_state ON jobs(state);

CREATE TABLE job_events (
    job_id  TEXT NOT NULL REFERENCES jobs(id),
    seq     INTEGER NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT;

-- The privacy-budget ledger (TRAIN-3): one row per admitted DP job, charged
-- before it runs; the spent budget of (dataset, grantee) is the sum of its
-- rows (basic composition). Rows are never updated or deleted.
CREATE TABLE privacy_ledger (
    job_id      TEXT PRIMARY KEY REFERENCES jobs(id),
    dataset_id  TEXT NOT NULL,
    grantee     TEXT NOT NULL,
    epsilon     REAL NOT NULL CHECK (epsilon >= 0),
    delta       REAL NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX privacy_ledger_key ON privacy_ledger(dataset_id, grantee);
CREATE TRIGGER privacy_ledger_no_update BEFORE UPDATE ON privacy_ledger
BEGIN SELECT RAISE(ABORT, 'privacy ledger is append-only'); END;
CREATE TRIGGER privacy_ledger_no_delete BEFORE DELETE ON privacy_ledger
BEGIN SELECT RAISE(ABORT, 'privacy ledger is append-only'); END;

-- +goose Down
DROP TABLE privacy_ledger;
DROP TABLE job_events;
DROP TABLE jobs;
