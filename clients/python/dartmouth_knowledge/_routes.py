"""Every HTTP route the client calls, by a stable operation name.

The one table both the client (``_ops.py`` fills these paths) and the model generator
(``scripts/gen_models.py`` names each route's request, query and response types after the
operation: ``search`` -> ``SearchRequest``, ``SearchResponse``) read. The names are the
server's handler names in ``server/src/http/mod.rs`` (two routes share ``shop_status`` there; here
the connection's is ``shop_connection``), so they do not move when the OpenAPI document's
component names do. ``tests/test_routes.py`` checks this table against ``http/mod.rs``: every
route but those in ``NOT_COVERED`` has an operation.
"""

from __future__ import annotations

ROUTES: dict[str, tuple[str, str]] = {
    # retrieval
    "search": ("POST", "/v1/search"),
    "context": ("POST", "/v1/context"),
    "document": ("GET", "/v1/domains/{domain}/documents/{id}"),
    "chunk": ("GET", "/v1/domains/{domain}/documents/{id}/chunks/{idx}"),
    # writes
    "ingest": ("POST", "/v1/domains/{domain}/documents"),
    "upload_files": ("POST", "/v1/domains/{domain}/files"),
    "upload_catalog": ("POST", "/v1/domains/{domain}/shopify"),
    "delete_documents": ("POST", "/v1/domains/{domain}/delete"),
    "delete_document": ("DELETE", "/v1/domains/{domain}/documents/{id}"),
    # tasks
    "list_tasks": ("GET", "/v1/tasks"),
    "task": ("GET", "/v1/tasks/{id}"),
    "cancel_task": ("POST", "/v1/tasks/{id}/cancel"),
    # domains
    "list_domains": ("GET", "/v1/domains"),
    "create_domain": ("POST", "/v1/domains"),
    "domain_stats": ("GET", "/v1/domains/{domain}"),
    "update_domain": ("PATCH", "/v1/domains/{domain}"),
    "delete_domain": ("DELETE", "/v1/domains/{domain}"),
    "reindex": ("POST", "/v1/domains/{domain}/reindex"),
    "rollback_model": ("POST", "/v1/domains/{domain}/rollback-model"),
    "drop_old_generation": ("POST", "/v1/domains/{domain}/drop-old-generation"),
    # shop pull sync
    "connect_shop": ("POST", "/v1/domains/{domain}/shopify/connection"),
    "shop_connection": ("GET", "/v1/domains/{domain}/shopify/connection"),
    "disconnect_shop": ("DELETE", "/v1/domains/{domain}/shopify/connection"),
    "shop_status": ("GET", "/v1/domains/{domain}/shopify/status"),
    "sync_shop": ("POST", "/v1/domains/{domain}/shopify/sync"),
    # principals, groups, grants, keys, tokens
    "list_principals": ("GET", "/v1/principals"),
    "create_principal": ("POST", "/v1/principals"),
    "delete_principal": ("DELETE", "/v1/principals/{name}"),
    "members": ("GET", "/v1/groups/{group}/members"),
    "add_member": ("POST", "/v1/groups/{group}/members"),
    "remove_member": ("DELETE", "/v1/groups/{group}/members/{member}"),
    "list_grants": ("GET", "/v1/grants"),
    "grant": ("POST", "/v1/grants"),
    "revoke_grant": ("DELETE", "/v1/grants/{principal}/{domain}"),
    "list_keys": ("GET", "/v1/keys"),
    "create_key": ("POST", "/v1/keys"),
    "revoke_key": ("DELETE", "/v1/keys/{id}"),
    "delegate": ("POST", "/v1/tokens/delegate"),
    # operations
    "audit": ("GET", "/v1/audit"),
    "live_stats": ("GET", "/v1/stats"),
    "list_models": ("GET", "/v1/models"),
    "list_snapshots": ("GET", "/v1/snapshots"),
    "create_snapshot": ("POST", "/v1/snapshots"),
    "restore_snapshot": ("POST", "/v1/snapshots/{name}/restore"),
    "healthz": ("GET", "/healthz"),
    "readyz": ("GET", "/readyz"),
    "openapi": ("GET", "/openapi.json"),
}

# Routes of the server the client leaves out on purpose: MCP has its own clients, the admin
# console is a page, Shopify signs its webhooks (no API key), metrics are Prometheus text.
NOT_COVERED: tuple[str, ...] = (
    "/mcp",
    "/admin",
    "/admin/",
    "/admin/app.js",
    "/admin/style.css",
    "/v1/webhooks/shopify/{domain}",
    "/metrics",
)
