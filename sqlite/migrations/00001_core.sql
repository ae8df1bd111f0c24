-- +goose Up
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, name)
) STRICT;

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL REFERENCES principals(id),
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    hash          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;
CREATE INDEX api_keys_principal ON api_keys(principal_id, id);

-- Wrapped key material (keyring): never plaintext keys.
CREATE TABLE keysets (
    name  TEXT PRIMARY KEY,
    blob  BLOB NOT NULL
) STRICT;

-- +goose Down
DROP TABLE keysets;
DROP TABLE api_keys;
DROP TABLE principals;
DROP TABLE tenants;
