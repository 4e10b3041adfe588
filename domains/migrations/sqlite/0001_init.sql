-- Domains, principals, grants, keys, audit, documents with chunks and embeddings, and the
-- changelog the shards apply. SQLite flavour; migrations/postgres has the same tables.
CREATE TABLE domains (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    settings    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE principals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL CHECK (kind IN ('agent', 'user', 'service', 'group')),
    superuser  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT  NOT NULL
);

CREATE TABLE memberships (
    group_id  BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    member_id BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);

CREATE TABLE grants (
    principal_id BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    domain_id    BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    role         TEXT   NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    PRIMARY KEY (principal_id, domain_id)
);

CREATE TABLE api_keys (
    id           TEXT   PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    hash         TEXT   NOT NULL,
    domains      TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    target  TEXT   NOT NULL,
    outcome TEXT   NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    detail  TEXT   NOT NULL
);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE documents (
    domain_id    BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    external_id  TEXT   NOT NULL,
    content_hash TEXT   NOT NULL,
    title        TEXT   NOT NULL,
    url          TEXT,
    attributes   TEXT   NOT NULL,
    seq          BIGINT NOT NULL,
    PRIMARY KEY (domain_id, external_id)
);

CREATE TABLE chunks (
    domain_id   BIGINT  NOT NULL,
    external_id TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    text        TEXT    NOT NULL,
    char_start  BIGINT  NOT NULL,
    char_end    BIGINT  NOT NULL,
    heading     TEXT,
    embedding   BLOB    NOT NULL,
    PRIMARY KEY (domain_id, external_id, idx),
    FOREIGN KEY (domain_id, external_id) REFERENCES documents (domain_id, external_id) ON DELETE CASCADE
);

CREATE TABLE changelog (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id   BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    op          TEXT   NOT NULL CHECK (op IN ('upsert', 'delete')),
    external_id TEXT   NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX changelog_domain_seq ON changelog (domain_id, seq);
