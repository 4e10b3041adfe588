-- What a document was made from (a normalised Shopify product as JSON), so a partial update
-- such as an inventory webhook can re-render it without the original file; and secondary keys
-- (`inventory_item:<id>`) that find the document such an update is about.
ALTER TABLE documents ADD COLUMN source TEXT;
CREATE TABLE document_keys (
    domain_id   BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    key         TEXT   NOT NULL,
    external_id TEXT   NOT NULL,
    PRIMARY KEY (domain_id, key)
);
CREATE INDEX document_keys_document ON document_keys (domain_id, external_id);
