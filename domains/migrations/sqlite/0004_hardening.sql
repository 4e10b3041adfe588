-- A domain's identity: a random id made at creation. Deleting `x` and creating `x` again makes
-- a new domain; shards record the identity they were built for, so a shard or a cache entry of
-- the old one is never served for the new one.
ALTER TABLE domains ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE domains SET uid = lower(hex(randomblob(16))) WHERE uid = '';
-- Documents the store holds but a shard refused: quarantined (with the reason) so the
-- applier goes on with every change after them. A new write of the document clears it.
CREATE TABLE quarantine (
    domain_id   BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    external_id TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    reason      TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (domain_id, external_id)
);
-- A key's highest role (NULL: the principal's grants decide alone): credentials only narrow.
ALTER TABLE api_keys ADD COLUMN role TEXT CHECK (role IN ('read', 'write', 'admin'));
-- Webhook deliveries already processed, by the sender's delivery id (X-Shopify-Webhook-Id):
-- a retried delivery is acknowledged without being processed again. Kept for three days.
CREATE TABLE webhook_deliveries (
    domain_id   BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    delivery_id TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (domain_id, delivery_id)
);
CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at);
-- Refused authentications are counted in memory and written as one row with a count.
ALTER TABLE audit ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
