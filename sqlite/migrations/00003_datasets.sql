-- +goose Up
-- Datasets (dataset.Store). Data and audit reports live sealed in the
-- barrier; these tables hold only metadata, digests and references.
CREATE TABLE datasets (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    label         TEXT NOT NULL DEFAULT '',
    schema_json   BLOB,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    next_version  INTEGER NOT NULL DEFAULT 1,
    deleted_at    INTEGER
) STRICT;
-- A deleted dataset's name may be reused.
CREATE UNIQUE INDEX datasets_name ON datasets(tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX datasets_tenant ON datasets(tenant_id, id);

CREATE TABLE dataset_versions (
    dataset_id     TEXT NOT NULL REFERENCES datasets(id),
    version        INTEGER NOT NULL,
    tenant_id      TEXT NOT NULL,
    status         TEXT NOT NULL,
    format         TEXT NOT NULL,
    digest         TEXT NOT NULL DEFAULT '',
    size           INTEGER NOT NULL DEFAULT 0,
    rows           INTEGER NOT NULL DEFAULT 0,
    columns        INTEGER NOT NULL DEFAULT 0,
    report_digest  TEXT NOT NULL DEFAULT '',
    pii_kinds      TEXT NOT NULL DEFAULT '',
    flagged        INTEGER NOT NULL DEFAULT 0,
    quarantined    INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    deleted_at     INTEGER,
    PRIMARY KEY (dataset_id, version)
) STRICT;
CREATE INDEX dataset_versions_pending ON dataset_versions(status) WHERE status = 'ingesting';

CREATE TABLE dataset_grants (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    dataset_id            TEXT NOT NULL REFERENCES datasets(id),
    grantee_tenant_id     TEXT NOT NULL,
    grantee_principal_id  TEXT NOT NULL DEFAULT '',
    purpose               TEXT NOT NULL,
    require_dp            INTEGER NOT NULL DEFAULT 0,
    max_epsilon           REAL,
    expires_at            INTEGER,
    revoked_at            INTEGER,
    created_at            INTEGER NOT NULL,
    created_by            TEXT NOT NULL
) STRICT;
CREATE INDEX dataset_grants_dataset ON dataset_grants(dataset_id, id);
CREATE INDEX dataset_grants_grantee ON dataset_grants(grantee_tenant_id, id);

CREATE TABLE dataset_policies (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id),
    pii         TEXT NOT NULL,
    label       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
) STRICT;

-- What was derived from which version; kept after deletion so that the
-- models trained on deleted data can be listed (DATA-8).
CREATE TABLE dataset_lineage (
    dataset_id          TEXT NOT NULL,
    version             INTEGER NOT NULL,
    tenant_id           TEXT NOT NULL,
    kind                TEXT NOT NULL,
    object_id           TEXT NOT NULL,
    object_tenant_id    TEXT NOT NULL,
    grant_id            TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    dataset_deleted_at  INTEGER,
    PRIMARY KEY (dataset_id, version, kind, object_id)
) STRICT;
CREATE INDEX dataset_lineage_object ON dataset_lineage(kind, object_id);

-- +goose Down
DROP TABLE dataset_lineage;
DROP TABLE dataset_policies;
DROP TABLE dataset_grants;
DROP TABLE dataset_versions;
DROP TABLE datasets;
