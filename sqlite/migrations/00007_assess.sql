-- +goose Up
-- Security assessments of model versions (issue 8, PRIV-1..3, MODEL-5).
-- A row is inserted running and finished in one update with its report,
-- so it is never half-written; running rows left by a crash are failed
-- at start-up.
CREATE TABLE assessments (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    model_id      TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    endpoint      TEXT NOT NULL DEFAULT '',
    attacks       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    reason        TEXT NOT NULL DEFAULT '',
    metrics       TEXT NOT NULL DEFAULT '{}',
    report        BLOB,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    CHECK ((status = 'running') = (finished_at IS NULL))
) STRICT;
CREATE INDEX assessments_version ON assessments(tenant_id, model_id, model_version, created_at);

-- A finished assessment never changes again.
-- +goose StatementBegin
CREATE TRIGGER assessments_immutable BEFORE UPDATE ON assessments
WHEN OLD.status <> 'running'
BEGIN SELECT RAISE(ABORT, 'assessment is finished'); END;
-- +goose StatementEnd

-- Per-tenant thresholds that promotion to production checks (MODEL-5).
CREATE TABLE assessment_thresholds (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    metric    TEXT NOT NULL,
    min_value REAL,
    max_value REAL,
    PRIMARY KEY (tenant_id, metric)
) STRICT;

-- +goose Down
DROP TABLE assessment_thresholds;
DROP TRIGGER assessments_immutable;
DROP TABLE assessments;
