"""Every operation once: its parameters (typed by the generated models) and its request.

Each function returns a ``Call`` (or a ``WaitForTask``) and sends nothing; ``_client.py``
binds them to the sync and the async client alike. Path parameters are positional; a JSON
body's fields and a query's parameters are keyword arguments named exactly as on the wire,
typed by ``models.<Op>Request`` / ``models.<Op>Query``, so a regenerated ``models.py`` retypes
them with no change here.
"""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

from ._core import Call, WaitForTask, acknowledged, task_acknowledged, upload_acknowledged

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from . import models as m

# A file to upload: a path (its base name is the document id), a (name, content) pair, or an
# open binary file (named by its `.name`).
FileLike = Union[str, "os.PathLike[str]", tuple[str, Union[bytes, str]], IO[bytes]]
Files = Union[Sequence[FileLike], Mapping[str, Union[bytes, str]]]
Catalog = Union[bytes, str, Mapping[str, Any], Sequence[Any]]


# --- retrieval --------------------------------------------------------------------------


def search(**body: Unpack[m.SearchRequest]) -> Call[m.SearchResponse]:
    """Search the domains the caller may read (``domains`` empty: all of them).

    With ``read_your_writes``, the ``min_seq`` of each domain this client wrote is added.
    """
    return Call("search", json=body, reads=list(body.get("domains") or ()))


def similar(domain: str, doc_id: str, /, **body: Unpack[m.SearchRequest]) -> Call[m.SearchResponse]:
    """"More like this": the documents nearest to `doc_id` (itself left out); a search with
    ``similar_to``, in `domain` unless ``domains`` says otherwise."""
    request: dict[str, Any] = {"domains": [domain], **body, "similar_to": {"domain": domain, "doc_id": doc_id}}
    return Call("search", json=request, reads=list(request.get("domains") or ()))


def context(**body: Unpack[m.ContextRequest]) -> Call[m.ContextResponse]:
    """The best passages for `query` within a token budget, ready for a prompt."""
    return Call("context", json=body, reads=list(body.get("domains") or ()))


def get_document(domain: str, doc_id: str, /) -> Call[m.DocumentResponse]:
    """One stored document with its chunks."""
    return Call("document", path={"domain": domain, "id": doc_id})


def get_chunk(domain: str, doc_id: str, idx: int, /) -> Call[m.ChunkResponse]:
    """One chunk of a document, with the document's provenance."""
    return Call("chunk", path={"domain": domain, "id": doc_id, "idx": idx})


# --- writes -----------------------------------------------------------------------------


def index_documents(domain: str, /, **body: Unpack[m.IngestRequest]) -> Call[m.IngestResponse]:
    """Index ``documents`` (``[{"id", "title", "text", "url", "attributes"}]``): chunked,
    embedded, committed; answers the acknowledged ``seq``."""
    return Call("ingest", path={"domain": domain}, json=body, wrote=acknowledged("seq", domain))


def upload_files(
    domain: str,
    files: Files,
    /,
    *,
    format: str | None = None,
    full_sync: bool = False,
    async_: bool = False,
    base_url: str | None = None,
) -> Call[m.UploadFilesResponse | m.UploadFilesResponse202]:
    """Index files (Markdown, HTML, text, PDF, JSON/JSONL records, Shopify exports), sent as
    multipart/form-data: each file's name is its document id and tells its format unless
    `format` does. Answers the summary; with ``async_=True`` at once the task (see
    ``tasks.wait``)."""
    parts = [("file", (name, content, mimetypes.guess_type(name)[0] or "application/octet-stream")) for name, content in _files(files)]
    return Call(
        "upload_files",
        path={"domain": domain},
        params={"format": format, "full_sync": full_sync or None, "async": async_ or None, "base_url": base_url},
        files=parts,
        wrote=upload_acknowledged(domain),
    )


def _files(files: Files) -> list[tuple[str, bytes]]:
    if isinstance(files, Mapping):
        return [(str(n), _bytes(c)) for n, c in files.items()]
    if isinstance(files, (str, bytes, os.PathLike)) or (isinstance(files, tuple) and len(files) == 2 and isinstance(files[0], str) and isinstance(files[1], (bytes, str))):
        raise TypeError("upload_files: pass a list of files (paths, (name, content) pairs or open files), or a {name: content} mapping")
    out: list[tuple[str, bytes]] = []
    for f in files:
        if isinstance(f, tuple):
            name, content = f
            out.append((name, _bytes(content)))
        elif isinstance(f, (str, os.PathLike)):
            path = Path(f)
            out.append((path.name, path.read_bytes()))
        elif isinstance(f, (bytes, bytearray)):
            raise TypeError("upload_files: a file's bytes need a name (its document id): pass (name, bytes)")
        elif hasattr(f, "read"):
            out.append((Path(str(getattr(f, "name", "upload"))).name, _bytes(f.read())))
        else:
            raise TypeError(f"upload_files: not a file: {f!r}")
    return out


def _bytes(content: bytes | str) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


def upload_catalog(
    domain: str,
    catalog: Catalog,
    /,
    *,
    format: str | None = None,
    full_sync: bool = False,
    base_url: str | None = None,
    content_type: str | None = None,
) -> Call[m.UploadCatalogResponse]:
    """Upload a Shopify catalog: Admin REST or storefront JSON (bytes, text, or the decoded
    JSON), a product CSV export, or GraphQL bulk JSONL; each product one document."""
    if isinstance(catalog, (bytes, bytearray)):
        content, kind = bytes(catalog), "application/octet-stream"
    elif isinstance(catalog, str):
        content, kind = catalog.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        content, kind = json.dumps(catalog).encode("utf-8"), "application/json"
    return Call(
        "upload_catalog",
        path={"domain": domain},
        params={"format": format, "full_sync": full_sync or None, "base_url": base_url},
        content=content,
        headers={"content-type": content_type or kind},
        wrote=acknowledged("seq", domain),
    )


def delete(domain: str, /, **body: Unpack[m.DeleteDocumentsRequest]) -> Call[m.DeleteDocumentsResponse]:
    """Delete documents by ``ids``, or every document ``filter`` matches."""
    return Call("delete_documents", path={"domain": domain}, json=body, wrote=acknowledged("seq", domain))


def delete_document(domain: str, doc_id: str, /) -> Call[m.DeleteDocumentResponse]:
    """Delete one document (``deleted: 0`` when the domain does not hold it)."""
    return Call("delete_document", path={"domain": domain, "id": doc_id}, wrote=acknowledged("seq", domain))


# --- tasks ------------------------------------------------------------------------------


def list_tasks() -> Call[m.ListTasksResponse]:
    """This node's tasks the caller created, newest first."""
    return Call("list_tasks")


def get_task(id: str, /) -> Call[m.TaskResponse]:
    """A task's status (another principal's task answers as a missing one)."""
    return Call("task", path={"id": id}, wrote=task_acknowledged)


def cancel_task(id: str, /) -> Call[m.CancelTaskResponse]:
    """Stop a queued or running task between batches (what it acknowledged stays written)."""
    return Call("cancel_task", path={"id": id}, wrote=task_acknowledged)


def wait_task(id: str, /, *, timeout: float | None = 300.0, interval: float = 0.1) -> WaitForTask[m.TaskResponse]:
    """Poll the task until it succeeded, failed or was canceled, and return it (a failed task
    is returned, its ``error`` set); ``TimeoutError`` after `timeout` seconds."""
    return WaitForTask(lambda: get_task(id), id, timeout, interval)


# --- domains ----------------------------------------------------------------------------


def list_domains() -> Call[m.ListDomainsResponse]:
    """The domains the caller can read."""
    return Call("list_domains")


def create_domain(**body: Unpack[m.CreateDomainRequest]) -> Call[m.CreateDomainResponse]:
    """Create a domain (admin)."""
    return Call("create_domain", json=body, forgets=[str(body.get("name", ""))])


def domain_stats(domain: str, /) -> Call[m.DomainStatsResponse]:
    """A domain's state: its shard on this node, its store, what the applier quarantined."""
    return Call("domain_stats", path={"domain": domain})


def update_domain(domain: str, /, **body: Unpack[m.UpdateDomainRequest]) -> Call[m.UpdateDomainResponse]:
    """Change a domain's description, option names or default reranking, or switch its model
    online (the answer's ``task``)."""
    return Call("update_domain", path={"domain": domain}, json=body)


def delete_domain(domain: str, /) -> Call[m.DeleteDomainResponse]:
    """Delete a domain with its documents (admin)."""
    return Call("delete_domain", path={"domain": domain}, forgets=[domain])


def reindex(domain: str, /) -> Call[m.ReindexResponse]:
    """Rebuild the domain's shard from the store, without re-embedding."""
    return Call("reindex", path={"domain": domain})


def rollback_model(domain: str, /) -> Call[m.RollbackModelResponse]:
    """Switch back to the generation kept from the last model switch (409 when none)."""
    return Call("rollback_model", path={"domain": domain})


def drop_old_generation(domain: str, /) -> Call[m.DropOldGenerationResponse]:
    """Drop the generation kept from the last model switch (409 when none)."""
    return Call("drop_old_generation", path={"domain": domain})


# --- shop pull sync ---------------------------------------------------------------------


def connect_shop(domain: str, /, **body: Unpack[m.ConnectShopRequest]) -> Call[m.ConnectShopResponse]:
    """Connect a Shopify shop to the domain for pull sync (the shop is asked once)."""
    return Call("connect_shop", path={"domain": domain}, json=body)


def shop_connection(domain: str, /) -> Call[m.ShopConnectionResponse]:
    """The shop connection and its sync state."""
    return Call("shop_connection", path={"domain": domain})


def shop_status(domain: str, /) -> Call[m.ShopStatusResponse]:
    """The shop connection's last run, incremental mark and next run."""
    return Call("shop_status", path={"domain": domain})


def disconnect_shop(domain: str, /) -> Call[m.DisconnectShopResponse]:
    """Disconnect the shop (the documents stay)."""
    return Call("disconnect_shop", path={"domain": domain})


def sync_shop(domain: str, /, **body: Unpack[m.SyncShopRequest]) -> Call[m.SyncShopResponse]:
    """Sync the shop now, as a task (``full=True``: a bulk operation over every product)."""
    return Call("sync_shop", path={"domain": domain}, json=body, wrote=task_acknowledged)


# --- principals, groups, grants, keys, tokens ------------------------------------------


def list_principals() -> Call[m.ListPrincipalsResponse]:
    """Principals (admin)."""
    return Call("list_principals")


def create_principal(**body: Unpack[m.CreatePrincipalRequest]) -> Call[m.CreatePrincipalResponse]:
    """Create a principal: ``name``, ``kind`` (agent, user, service or group)."""
    return Call("create_principal", json=body)


def delete_principal(name: str, /) -> Call[m.DeletePrincipalResponse]:
    """Delete a principal with its keys, grants and memberships."""
    return Call("delete_principal", path={"name": name})


def members(group: str, /) -> Call[m.MembersResponse]:
    """A group's direct members."""
    return Call("members", path={"group": group})


def add_member(group: str, /, **body: Unpack[m.AddMemberRequest]) -> Call[m.AddMemberResponse]:
    """Add ``member`` to a group."""
    return Call("add_member", path={"group": group}, json=body)


def remove_member(group: str, member: str, /) -> Call[m.RemoveMemberResponse]:
    """Take a member out of a group."""
    return Call("remove_member", path={"group": group, "member": member})


def list_grants() -> Call[m.ListGrantsResponse]:
    """Grants (admin)."""
    return Call("list_grants")


def grant(**body: Unpack[m.GrantRequest]) -> Call[m.GrantResponse]:
    """Grant ``principal`` a ``role`` (read, write, admin) on ``domain``."""
    return Call("grant", json=body)


def revoke_grant(principal: str, domain: str, /) -> Call[m.RevokeGrantResponse]:
    """Revoke a principal's grant on a domain."""
    return Call("revoke_grant", path={"principal": principal, "domain": domain})


def list_keys() -> Call[m.ListKeysResponse]:
    """API keys (admin: all; others: their own)."""
    return Call("list_keys")


def create_key(**body: Unpack[m.CreateKeyRequest]) -> Call[m.CreateKeyResponse]:
    """Create an API key for ``principal``; the answer's ``secret`` is shown once."""
    return Call("create_key", json=body)


def revoke_key(id: str, /) -> Call[m.RevokeKeyResponse]:
    """Revoke a key by its id (``dk_1a2b3c4d``)."""
    return Call("revoke_key", path={"id": id})


def delegate(**body: Unpack[m.DelegateRequest]) -> Call[m.DelegateResponse]:
    """A delegated token for an agent acting for ``end_user``: read-only, at most 15 minutes;
    use it as a key (``client.with_key(answer["token"])``)."""
    return Call("delegate", json=body)


# --- operations -------------------------------------------------------------------------


def audit(**query: Unpack[m.AuditQuery]) -> Call[m.AuditResponse]:
    """Audit entries, newest first (admin)."""
    return Call("audit", params=dict(query))


def live_stats() -> Call[m.LiveStatsResponse]:
    """This node's last minute of requests and the applier's lag per domain."""
    return Call("live_stats")


def list_models() -> Call[m.ListModelsResponse]:
    """The model catalogue (``{"models": [...]}``)."""
    return Call("list_models")


def list_snapshots() -> Call[m.ListSnapshotsResponse]:
    """The snapshots in the node's snapshot directory (``{"snapshots": [...]}``)."""
    return Call("list_snapshots")


def create_snapshot(**body: Unpack[m.CreateSnapshotRequest]) -> Call[m.CreateSnapshotResponse]:
    """Snapshot the store and this node's shards (``name`` optional)."""
    return Call("create_snapshot", json=body)


def restore_snapshot(name: str, /) -> Call[m.RestoreSnapshotResponse]:
    """Restore a snapshot into this node's store, which must be empty (409 otherwise)."""
    return Call("restore_snapshot", path={"name": name})


def health() -> Call[str]:
    """Liveness: ``"ok"``."""
    return Call("healthz", expect="text", retry=False)


def ready() -> Call[str]:
    """Readiness: ``"ready"``, or the 503 as a DartmouthError (not retried)."""
    return Call("readyz", expect="text", retry=False)


def openapi() -> Call[dict[str, Any]]:
    """The server's OpenAPI document."""
    return Call("openapi")
