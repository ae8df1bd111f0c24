-- +goose Up
-- The model registry (registry package, rampart.ModelStore). Every row
-- carries its tenant and every query filters on it (TEN-1).
CREATE TABLE models (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id),
    name                TEXT NOT NULL,
    owner               TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    latest_version      INTEGER NOT NULL DEFAULT 0,
    production_version  INTEGER NOT NULL DEFAULT 0,
    gates               TEXT NOT NULL DEFAULT '[]',
    UNIQUE (tenant_id, name)
) STRICT;

-- Versions are immutable (MODEL-6): only stage and was_production change.
-- card, bom and attestation are JSON documents; binding is a tenant-keyed
-- MAC over the row's identity and the digests of all four objects.
CREATE TABLE model_versions (
    model_id        TEXT NOT NULL REFERENCES models(id),
    version         INTEGER NOT NULL CHECK (version > 0),
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    model_name      TEXT NOT NULL,
    stage           TEXT NOT NULL,
    format          TEXT NOT NULL,
    provenance      TEXT NOT NULL,
    digest          TEXT NOT NULL,
    size            INTEGER NOT NULL,
    algorithm       TEXT NOT NULL DEFAULT '',
    task            TEXT NOT NULL DEFAULT '',
    metrics         TEXT NOT NULL DEFAULT '{}',
    job_id          TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    key_id          TEXT NOT NULL,
    was_production  INTEGER NOT NULL DEFAULT 0,
    artifact_id     TEXT NOT NULL,
    card            BLOB NOT NULL,
    bom             BLOB NOT NULL,
    attestation     BLOB NOT NULL,
    binding         BLOB NOT NULL,
    PRIMARY KEY (model_id, version)
) STRICT;
CREATE INDEX model_versions_job ON model_versions(tenant_id, job_id);

-- +goose StatementBegin
CREATE TRIGGER model_versions_immutable BEFORE UPDATE OF model_id, version, tenant_id, model_name, format, provenance,
    digest, size, algorithm, task, metrics, job_id, created_by, created_at, key_id, artifact_id, card, bom, attestation, binding
ON model_versions
BEGIN
    SELECT RAISE(ABORT, 'model versions are immutable');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER model_versions_no_delete BEFORE DELETE ON model_versions
BEGIN
    SELECT RAISE(ABORT, 'model versions are immutable');
END;
-- +goose StatementEnd

CREATE TABLE model_approvals (
    model_id    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    principal   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (model_id, version, principal),
    FOREIGN KEY (model_id, version) REFERENCES model_versions(model_id, version)
) STRICT;

CREATE TABLE model_export_grants (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    model_id      TEXT NOT NULL REFERENCES models(id),
    principal_id  TEXT NOT NULL REFERENCES principals(id),
    granted_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER
) STRICT;
CREATE INDEX model_export_grants_model ON model_export_grants(model_id, principal_id);

-- +goose Down
DROP TABLE model_export_grants;
DROP TABLE model_approvals;
DROP TRIGGER model_versions_no_delete;
DROP TRIGGER model_versions_immutable;
DROP TABLE model_versions;
DROP TABLE models;
