-- A domain's embedding generations (switching its model online): the one serving and at most
-- one other, being built with a new model or kept after a switch for rollback, as JSON (NULL: a
-- domain that never switched, serving its first generation from slot 1). Each generation's
-- vectors live in a slot of the chunks table: `embedding` (slot 1) or `embedding_alt` (slot 2);
-- an empty value is a vector the generation does not have yet.
ALTER TABLE domains ADD COLUMN generations TEXT;
ALTER TABLE chunks ADD COLUMN embedding_alt BLOB;
-- A change only one slot's shards apply (a backfilled vector of a generation being built);
-- NULL: every generation applies it.
ALTER TABLE changelog ADD COLUMN slot BIGINT;
