-- A shop bound to a domain for pull sync (issue 29): the shop's host, the API version, the
-- name of the environment variable (or secret file) that holds its access token on each node —
-- never the token itself — and an optional schedule. `state` is the sync state as JSON (last
-- run, its counts, the high-water mark of the incremental sync, the last error in words);
-- `lease_owner` / `lease_until` let one node at a time sync the shop.
CREATE TABLE shopify_connections (
    domain_id   BIGINT PRIMARY KEY REFERENCES domains (id) ON DELETE CASCADE,
    shop        TEXT NOT NULL,
    api_version TEXT NOT NULL,
    token_env   TEXT NOT NULL,
    every_ms    BIGINT,
    next_run    BIGINT,
    state       TEXT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT
);
