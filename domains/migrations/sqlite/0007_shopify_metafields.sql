-- The metafields (`namespace.key`, a JSON array) a shop's sync asks for with each product.
ALTER TABLE shopify_connections ADD COLUMN metafields TEXT;
