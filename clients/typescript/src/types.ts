// The client's types, every one taken from the generated `schema.ts` (the server's OpenAPI
// document): named schemas where the document has them, otherwise the request or response of
// the route itself. Regenerating `schema.ts` (`npm run gen -- <url or file>`) updates them all;
// this file is the only place that names schema parts.

import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
type Method = "get" | "post" | "patch" | "delete";
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type JsonContent<R> = R extends { content: { "application/json": infer T } } ? T : never;

/** The JSON answer of a route's 2xx responses. */
export type ResponseOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { responses: infer R }
    ? JsonContent<R[Extract<keyof R, 200 | 201 | 202>]>
    : never;

/** The JSON body a route takes. */
export type RequestOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody?: infer B } ? JsonContent<NonNullable<B>> : never;

/** The query parameters a route takes. */
export type QueryOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

type Item<T> = T extends readonly (infer I)[] ? I : never;

// Search and context.
export type SearchInput = Schemas["SearchInput"];
export type SearchOutput = Schemas["SearchOutput"];
export type Hit = Schemas["Hit"];
export type ContextInput = Schemas["ContextInput"];
export type ContextOutput = Schemas["ContextOutput"];
/** A search without `similar_to`, for `similar()`. */
export type SimilarOptions = Omit<SearchInput, "similar_to">;

// Documents.
export type Document = Schemas["Document"];
export type Chunk = ResponseOf<"/v1/domains/{domain}/documents/{id}/chunks/{idx}", "get">;
export type IngestInput = Schemas["IngestInput"];
export type IngestDocument = Item<IngestInput["documents"]>;
export type IngestOutput = Schemas["IngestOutput"];
export type DeleteInput = RequestOf<"/v1/domains/{domain}/delete", "post">;
export type DeleteOutput = Schemas["DeleteOutput"];
export type IndexSummary = Schemas["IndexSummary"];
export type Task = Schemas["Task"];
export type TaskStatus = NonNullable<Task["status"]>;
/** The upload's query parameters as the document names them (`full_sync`, `async`, …). */
export type UploadQuery = QueryOf<"/v1/domains/{domain}/files", "post">;

// Domains.
export type Domain = Schemas["Domain"];
export type DomainInput = Schemas["DomainInput"];
export type DomainUpdate = RequestOf<"/v1/domains/{domain}", "patch">;
export type DomainStats = Schemas["DomainStats"];
export type ReindexOutput = ResponseOf<"/v1/domains/{domain}/reindex", "post">;
export type RollbackOutput = ResponseOf<"/v1/domains/{domain}/rollback-model", "post">;
export type Rerank = Schemas["Rerank"];

// Shopify.
export type ShopifyOutput = Schemas["ShopifyOutput"];
export type ShopConnection = Schemas["ShopConnection"];
export type ConnectInput = RequestOf<"/v1/domains/{domain}/shopify/connection", "post">;
export type CatalogQuery = QueryOf<"/v1/domains/{domain}/shopify", "post">;

// Access control and administration.
export type Principal = ResponseOf<"/v1/principals", "post">;
export type PrincipalInput = RequestOf<"/v1/principals", "post">;
export type Grant = ResponseOf<"/v1/grants", "post">;
export type GrantInput = RequestOf<"/v1/grants", "post">;
export type Key = Item<ResponseOf<"/v1/keys", "get">>;
export type KeyInput = RequestOf<"/v1/keys", "post">;
export type NewKey = ResponseOf<"/v1/keys", "post">;
export type DelegateInput = RequestOf<"/v1/tokens/delegate", "post">;
export type DelegatedToken = ResponseOf<"/v1/tokens/delegate", "post">;
export type AuditQuery = QueryOf<"/v1/audit", "get">;
export type AuditEntry = Item<ResponseOf<"/v1/audit", "get">>;
export type Snapshot = Schemas["Snapshot"];
export type Model = Schemas["Model"];
export type LiveStats = ResponseOf<"/v1/stats", "get">;
