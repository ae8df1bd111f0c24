-- +goose Up
-- Inference endpoints (issue 7): each serves one model version of its
-- tenant behind a guard policy (INF-1..7).
CREATE TABLE endpoints (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    model_name    TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    model_digest  TEXT NOT NULL,
    policy        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    generation    INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;

-- Access to another tenant (all its principals) or one principal.
CREATE TABLE endpoint_grants (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    endpoint_id  TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    to_tenant    TEXT NOT NULL DEFAULT '',
    to_principal TEXT NOT NULL DEFAULT '',
    granted_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX endpoint_grants_endpoint ON endpoint_grants(endpoint_id);

-- Query budgets (INF-1): rows reserved per principal × endpoint × period
-- ("total" or a UTC day). Reservations run ahead of use in small chunks, so
-- a crash can only make the count larger than the truth, never smaller.
CREATE TABLE query_budgets (
    endpoint_id  TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    reserved     INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, principal_id, period)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE query_budgets;
DROP TABLE endpoint_grants;
DROP TABLE endpoints;
