-- Changelog sequences count per domain. With one global sequence, a write's acknowledgement and
-- a hit's index_seq would let a reader of one domain watch the write activity of another.
-- Existing rows keep their numbers (still increasing within each domain), so shards that
-- recorded an applied sequence carry on from it.
ALTER TABLE domains ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE changelog ADD COLUMN domain_seq BIGINT NOT NULL DEFAULT 0;
UPDATE changelog SET domain_seq = seq;
UPDATE domains SET last_seq = COALESCE((SELECT MAX(c.seq) FROM changelog c WHERE c.domain_id = domains.id), 0);
DROP INDEX changelog_domain_seq;
CREATE UNIQUE INDEX changelog_domain_dseq ON changelog (domain_id, domain_seq);
