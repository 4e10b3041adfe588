// The client: one method per route of the HTTP API (server/src/http/mod.rs), `fetch` only, so that it
// runs in Cloudflare Workers, Node 20+, Deno and browsers alike.

import { DartmouthError } from "./errors.js";
import type {
  AuditEntry,
  AuditQuery,
  CatalogQuery,
  Chunk,
  ConnectInput,
  ContextInput,
  ContextOutput,
  DelegateInput,
  DelegatedToken,
  DeleteInput,
  DeleteOutput,
  Document,
  Domain,
  DomainInput,
  DomainStats,
  DomainUpdate,
  Grant,
  GrantInput,
  IndexSummary,
  IngestDocument,
  IngestInput,
  IngestOutput,
  Key,
  KeyInput,
  LiveStats,
  Model,
  NewKey,
  Principal,
  PrincipalInput,
  ReindexOutput,
  RollbackOutput,
  SearchInput,
  SearchOutput,
  ShopConnection,
  ShopifyOutput,
  SimilarOptions,
  Snapshot,
  Task,
  TaskStatus,
} from "./types.js";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface RetryOptions {
  /** Retries of a request answered 429 or 503 (default 3; 0: none). */
  maxRetries?: number;
  /** The most one request waits in all between its retries, in ms (default 30 000): a
   * `Retry-After` that would take it past this is not waited for, the error is thrown. */
  maxWaitMs?: number;
}

export interface DartmouthOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8787`. */
  url: string;
  /** An API key (`dk_…`) or a JWT (a delegated token). */
  key: string;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchLike;
  retry?: RetryOptions;
  /** Send, with each search and context, the highest `seq` this client's writes to the domains
   * searched were acknowledged with, as `min_seq`: a read then sees the client's own writes. */
  readYourWrites?: boolean;
  /** Headers sent with every request (besides `Authorization`). */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  /** Query parameters; `undefined` ones are left out. */
  query?: Record<string, string | number | boolean | undefined> | undefined;
  /** A JSON body. */
  json?: unknown;
  /** Any other body (FormData, Blob, text), sent as it is. */
  body?: BodyInit | undefined;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

/** A file's bytes: a Blob (or File), bytes, or text. */
export type FileContent = Blob | ArrayBuffer | ArrayBufferView | string;
/** A File (its name is used), or a name and content. The name is the document id and tells
 * the format (`faq.md`, `terms.pdf`, `products.csv`) unless `format` does. */
export type UploadFile = Blob & { readonly name: string } | { name: string; content: FileContent; type?: string };

export interface UploadOptions {
  /** Every file's format (markdown, html, text, pdf, json, jsonl, shopify-csv, …); default: from each name. */
  format?: string;
  /** Delete the domain's documents the files do not mention (only when no record failed). */
  fullSync?: boolean;
  /** Answer at once with a task (`tasks.wait` it) instead of the summary. */
  async?: boolean;
  /** A Shopify file's shop address (product URLs). */
  baseUrl?: string;
  signal?: AbortSignal;
}

export interface CatalogOptions {
  format?: NonNullable<CatalogQuery["format"]>;
  fullSync?: boolean;
  baseUrl?: string;
}

export interface WaitOptions {
  /** Give up after this long, in ms (default 300 000): a DartmouthError `timeout`. */
  timeoutMs?: number;
  /** The first poll's delay, in ms (default 200); each next one is 1.5 times longer, at most 2 s. */
  intervalMs?: number;
  signal?: AbortSignal;
}

export const TERMINAL_STATUSES: readonly TaskStatus[] = ["succeeded", "failed", "canceled"];

const MAX_MIN_SEQ = 64;

/** The Content-Type a catalog's text is sent with, by its `format`. */
const CATALOG_TYPES: Record<string, string> = { json: "application/json", csv: "text/csv", bulk: "application/jsonl" };

/** A path with each interpolated part percent-encoded. */
function path(strings: TemplateStringsArray, ...parts: (string | number)[]): string {
  return strings.reduce((out, s, i) => out + s + (i < parts.length ? encodeURIComponent(String(parts[i])) : ""), "");
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function blobOf(content: FileContent, type: string | undefined): Blob {
  if (content instanceof Blob) return content;
  const options = type === undefined ? {} : { type };
  if (typeof content === "string") return new Blob([content], options);
  // A copy, so that a view on a shared or larger buffer sends exactly its own bytes.
  const bytes = content instanceof ArrayBuffer
    ? new Uint8Array(content.slice(0))
    : new Uint8Array(content.buffer.slice(content.byteOffset, content.byteOffset + content.byteLength) as ArrayBuffer);
  return new Blob([bytes], options);
}

export class Dartmouth {
  readonly url: string;
  private readonly key: string;
  private readonly fetchImpl: FetchLike;
  private readonly maxRetries: number;
  private readonly maxWaitMs: number;
  private readonly readYourWrites: boolean;
  private readonly headers: Record<string, string>;
  /** Domain → the highest sequence a write of this client was acknowledged with. */
  private readonly written = new Map<string, number>();

  constructor(options: DartmouthOptions) {
    if (!options.url) throw new TypeError("Dartmouth: `url` is required");
    if (!options.key) throw new TypeError("Dartmouth: `key` is required");
    this.url = options.url.replace(/\/+$/, "");
    this.key = options.key;
    const given = options.fetch;
    // Called as a plain function: Workers and browsers refuse `fetch` called on another object.
    this.fetchImpl = given ? (input, init) => given(input, init) : (input, init) => globalThis.fetch(input, init);
    this.maxRetries = Math.max(0, options.retry?.maxRetries ?? 3);
    this.maxWaitMs = Math.max(0, options.retry?.maxWaitMs ?? 30_000);
    this.readYourWrites = options.readYourWrites ?? false;
    this.headers = { ...options.headers };
  }

  // ---- the transport -------------------------------------------------------------------------

  /**
   * One request: JSON in and out, errors as DartmouthError, 429 and 503 retried after their
   * `Retry-After` within the retry bounds. Answers the parsed JSON (text when the answer is not
   * JSON, `undefined` when it is empty). For a route this client has no method for.
   */
  async request<T = unknown>(method: string, route: string, options: RequestOptions = {}): Promise<T> {
    return (await this.send(method, route, options)).data as T;
  }

  private async send(method: string, route: string, options: RequestOptions): Promise<{ status: number; data: unknown }> {
    let url = this.url + route;
    if (options.query) {
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries(options.query)) {
        if (value !== undefined) params.append(name, String(value));
      }
      const query = params.toString();
      if (query) url += `?${query}`;
    }
    const headers: Record<string, string> = {
      accept: "application/json",
      ...this.headers,
      ...options.headers,
      authorization: `Bearer ${this.key}`,
    };
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["content-type"] = "application/json";
    }
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      const init: RequestInit = { method, headers };
      if (body !== undefined) init.body = body;
      if (options.signal) init.signal = options.signal;
      const response = await this.fetchImpl(url, init);
      const text = await response.text();
      if (response.ok) {
        if (text === "") return { status: response.status, data: undefined };
        const type = response.headers.get("content-type") ?? "";
        if (!type.includes("json")) return { status: response.status, data: text };
        try {
          return { status: response.status, data: JSON.parse(text) };
        } catch {
          throw new DartmouthError("invalid_response", response.status, `${method} ${route}: the answer is not JSON`);
        }
      }
      const error = DartmouthError.fromAnswer(response.status, text, response.headers);
      if ((response.status === 429 || response.status === 503) && attempt < this.maxRetries) {
        const delay = error.retryAfter !== undefined ? error.retryAfter * 1000 : Math.min(500 * 2 ** attempt, 8000);
        if (waited + delay <= this.maxWaitMs) {
          await sleep(delay, options.signal);
          waited += delay;
          continue;
        }
      }
      throw error;
    }
  }

  private call<T>(method: string, route: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>(method, route, options);
  }

  // ---- read your writes ------------------------------------------------------------------------

  private remember(domain: string | undefined, seq: number | null | undefined): void {
    if (!this.readYourWrites || !domain || typeof seq !== "number" || seq <= 0) return;
    if (seq > (this.written.get(domain) ?? 0)) this.written.set(domain, seq);
  }

  /** `min_seq` for a read of `domains` (empty: every domain this client wrote to), the
   * caller's own entries kept unless this client's are higher. */
  private minSeq<M extends Record<string, unknown>>(domains: string[] | undefined, given: M | undefined): M | undefined {
    if (!this.readYourWrites || this.written.size === 0) return given;
    const names = domains && domains.length > 0 ? domains : [...this.written.keys()];
    const out: Record<string, unknown> = { ...given };
    for (const name of names) {
      const seq = this.written.get(name);
      if (seq === undefined) continue;
      const mine = out[name];
      if (typeof mine === "number" && mine >= seq) continue;
      if (!(name in out) && Object.keys(out).length >= MAX_MIN_SEQ) break;
      out[name] = seq;
    }
    return out as M;
  }

  /** The sequences this client's writes were acknowledged with, by domain (with `readYourWrites`). */
  writtenSequences(): Record<string, number> {
    return Object.fromEntries(this.written);
  }

  private seenTask(task: Task): Task {
    this.remember(task.domain, task.seq);
    return task;
  }

  // ---- search and documents ------------------------------------------------------------------

  /** `POST /v1/search`. */
  search(input: SearchInput): Promise<SearchOutput> {
    const minSeq = this.minSeq(input.domains, input.min_seq);
    return this.call("POST", "/v1/search", { json: minSeq === undefined ? input : { ...input, min_seq: minSeq } });
  }

  /** `POST /v1/context`: a token budget of cited passages for a prompt. */
  context(input: ContextInput): Promise<ContextOutput> {
    const minSeq = this.minSeq(input.domains, input.min_seq);
    return this.call("POST", "/v1/context", { json: minSeq === undefined ? input : { ...input, min_seq: minSeq } });
  }

  /** "More like this": a search by the document's own vectors, the document left out. */
  similar(domain: string, docId: string, options: SimilarOptions = {}): Promise<SearchOutput> {
    return this.search({ ...options, similar_to: { domain, doc_id: docId } });
  }

  /** `GET /v1/domains/{d}/documents/{id}`. */
  getDocument(domain: string, id: string): Promise<Document> {
    return this.call("GET", path`/v1/domains/${domain}/documents/${id}`);
  }

  /** `GET /v1/domains/{d}/documents/{id}/chunks/{idx}`. */
  getChunk(domain: string, id: string, idx: number): Promise<Chunk> {
    return this.call("GET", path`/v1/domains/${domain}/documents/${id}/chunks/${idx}`);
  }

  /** `POST /v1/domains/{d}/documents`: chunked, embedded, acknowledged with `seq`. */
  async indexDocuments(domain: string, documents: IngestDocument[] | IngestInput): Promise<IngestOutput> {
    const input: IngestInput = Array.isArray(documents) ? { documents } : documents;
    const out = await this.call<IngestOutput>("POST", path`/v1/domains/${domain}/documents`, { json: input });
    this.remember(domain, out.seq);
    return out;
  }

  /**
   * `POST /v1/domains/{d}/files`: files in any format `dartmouth index` reads, as
   * multipart/form-data. Answers the summary, or with `async: true` the task at once.
   */
  uploadFiles(domain: string, files: UploadFile | UploadFile[], options: UploadOptions & { async: true }): Promise<Task>;
  uploadFiles(domain: string, files: UploadFile | UploadFile[], options?: UploadOptions & { async?: false }): Promise<IndexSummary>;
  uploadFiles(domain: string, files: UploadFile | UploadFile[], options?: UploadOptions): Promise<IndexSummary | Task>;
  async uploadFiles(domain: string, files: UploadFile | UploadFile[], options: UploadOptions = {}): Promise<IndexSummary | Task> {
    const form = new FormData();
    for (const file of Array.isArray(files) ? files : [files]) {
      if ("content" in file) form.append("file", blobOf(file.content, file.type), file.name);
      else form.append("file", file, file.name);
    }
    const { status, data } = await this.send("POST", path`/v1/domains/${domain}/files`, {
      query: {
        format: options.format,
        full_sync: options.fullSync ? true : undefined,
        async: options.async ? true : undefined,
        base_url: options.baseUrl,
      },
      body: form,
      signal: options.signal,
    });
    if (status === 202) return this.seenTask(data as Task);
    const summary = data as IndexSummary;
    this.remember(domain, summary.applied_seq);
    return summary;
  }

  /** `POST /v1/domains/{d}/delete`: documents by `ids`, or every document `filter` matches. */
  async delete(domain: string, input: DeleteInput): Promise<DeleteOutput> {
    const out = await this.call<DeleteOutput>("POST", path`/v1/domains/${domain}/delete`, { json: input });
    this.remember(domain, out.seq);
    return out;
  }

  /** `DELETE /v1/domains/{d}/documents/{id}` (`deleted: 0` for an id the domain does not hold). */
  async deleteDocument(domain: string, id: string): Promise<DeleteOutput> {
    const out = await this.call<DeleteOutput>("DELETE", path`/v1/domains/${domain}/documents/${id}`);
    this.remember(domain, out.seq);
    return out;
  }

  // ---- tasks -----------------------------------------------------------------------------------

  readonly tasks = {
    /** `GET /v1/tasks`: this node's tasks the caller created, newest first. */
    list: (): Promise<Task[]> => this.call("GET", "/v1/tasks"),
    /** `GET /v1/tasks/{id}`. */
    get: async (id: string, signal?: AbortSignal): Promise<Task> =>
      this.seenTask(await this.call<Task>("GET", path`/v1/tasks/${id}`, { signal })),
    /** `POST /v1/tasks/{id}/cancel`: stops a queued or running task between batches. */
    cancel: async (id: string): Promise<Task> => this.seenTask(await this.call<Task>("POST", path`/v1/tasks/${id}/cancel`)),
    /** Polls the task until it is succeeded, failed or canceled, and answers it (whatever that
     * status); a DartmouthError `timeout` (status 0) past `timeoutMs`. */
    wait: async (id: string, options: WaitOptions = {}): Promise<Task> => {
      const timeoutMs = options.timeoutMs ?? 300_000;
      const started = Date.now();
      let interval = options.intervalMs ?? 200;
      for (;;) {
        const task = await this.tasks.get(id, options.signal);
        if (task.status !== undefined && TERMINAL_STATUSES.includes(task.status)) return task;
        const left = timeoutMs - (Date.now() - started);
        if (left <= 0) {
          throw new DartmouthError("timeout", 0, `task \`${id}\` is still ${task.status ?? "unfinished"} after ${timeoutMs} ms`);
        }
        await sleep(Math.min(interval, left), options.signal);
        interval = Math.min(interval * 1.5, 2000);
      }
    },
  };

  // ---- domains ---------------------------------------------------------------------------------

  readonly domains = {
    /** `GET /v1/domains`: the domains the caller can read. */
    list: (): Promise<Domain[]> => this.call("GET", "/v1/domains"),
    /** `POST /v1/domains` (admin). */
    create: async (input: DomainInput): Promise<Domain> => {
      const domain = await this.call<Domain>("POST", "/v1/domains", { json: input });
      this.written.delete(input.name);
      return domain;
    },
    /** `GET /v1/domains/{d}`: the domain's state (documents, chunks, sequences, generations). */
    get: (name: string): Promise<DomainStats> => this.call("GET", path`/v1/domains/${name}`),
    /** `PATCH /v1/domains/{d}`: description, option names, default reranking, or a model switch. */
    update: (name: string, changes: DomainUpdate): Promise<Domain> =>
      this.call("PATCH", path`/v1/domains/${name}`, { json: changes }),
    /** `DELETE /v1/domains/{d}` with its documents (admin). */
    delete: async (name: string): Promise<Domain> => {
      const domain = await this.call<Domain>("DELETE", path`/v1/domains/${name}`);
      this.written.delete(name);
      return domain;
    },
    /** `POST /v1/domains/{d}/reindex`: rebuild the shard from the store, no re-embedding. */
    reindex: (name: string): Promise<ReindexOutput> => this.call("POST", path`/v1/domains/${name}/reindex`),
    /** `POST /v1/domains/{d}/rollback-model`: back to the generation kept by the last switch. */
    rollbackModel: (name: string): Promise<RollbackOutput> => this.call("POST", path`/v1/domains/${name}/rollback-model`),
    /** `POST /v1/domains/{d}/drop-old-generation`. */
    dropOldGeneration: (name: string): Promise<Domain> => this.call("POST", path`/v1/domains/${name}/drop-old-generation`),
  };

  // ---- Shopify ---------------------------------------------------------------------------------

  readonly shopify = {
    /** `POST /v1/domains/{d}/shopify`: a catalog (REST/storefront JSON as an object or text,
     * a CSV export, GraphQL bulk JSONL), synced as by `dartmouth index`. */
    uploadCatalog: async (domain: string, catalog: object | string | Blob, options: CatalogOptions = {}): Promise<ShopifyOutput> => {
      const headers: Record<string, string> = {};
      let body: BodyInit;
      if (typeof catalog === "string" || catalog instanceof Blob) {
        body = catalog;
        const type = options.format === undefined ? undefined : CATALOG_TYPES[options.format];
        if (type !== undefined) headers["content-type"] = type;
      } else {
        body = JSON.stringify(catalog);
        headers["content-type"] = "application/json";
      }
      const out = await this.call<ShopifyOutput>("POST", path`/v1/domains/${domain}/shopify`, {
        query: { format: options.format, full_sync: options.fullSync ? true : undefined, base_url: options.baseUrl },
        body,
        headers,
      });
      this.remember(domain, out.seq);
      return out;
    },
    /** `POST /v1/domains/{d}/shopify/connection`: connect a shop for pull sync (checked against the shop). */
    connect: (domain: string, input: ConnectInput): Promise<ShopConnection> =>
      this.call("POST", path`/v1/domains/${domain}/shopify/connection`, { json: input }),
    /** `GET /v1/domains/{d}/shopify/connection`. */
    connection: (domain: string): Promise<ShopConnection> => this.call("GET", path`/v1/domains/${domain}/shopify/connection`),
    /** `GET /v1/domains/{d}/shopify/status`: the last run, the mark, the next run. */
    status: (domain: string): Promise<ShopConnection> => this.call("GET", path`/v1/domains/${domain}/shopify/status`),
    /** `DELETE /v1/domains/{d}/shopify/connection` (the documents stay). */
    disconnect: async (domain: string): Promise<void> => {
      await this.call("DELETE", path`/v1/domains/${domain}/shopify/connection`);
    },
    /** `POST /v1/domains/{d}/shopify/sync`: a task (incremental, or `full`). */
    sync: async (domain: string, options: { full?: boolean } = {}): Promise<Task> =>
      this.seenTask(await this.call<Task>("POST", path`/v1/domains/${domain}/shopify/sync`, { json: options })),
  };

  // ---- access control --------------------------------------------------------------------------

  readonly principals = {
    list: (): Promise<Principal[]> => this.call("GET", "/v1/principals"),
    create: (input: PrincipalInput): Promise<Principal> => this.call("POST", "/v1/principals", { json: input }),
    /** With its keys, grants and memberships. */
    delete: async (name: string): Promise<void> => {
      await this.call("DELETE", path`/v1/principals/${name}`);
    },
  };

  readonly groups = {
    listMembers: (group: string): Promise<string[]> => this.call("GET", path`/v1/groups/${group}/members`),
    addMember: async (group: string, member: string): Promise<void> => {
      await this.call("POST", path`/v1/groups/${group}/members`, { json: { member } });
    },
    removeMember: async (group: string, member: string): Promise<void> => {
      await this.call("DELETE", path`/v1/groups/${group}/members/${member}`);
    },
  };

  readonly grants = {
    list: (): Promise<Grant[]> => this.call("GET", "/v1/grants"),
    grant: (input: GrantInput): Promise<Grant> => this.call("POST", "/v1/grants", { json: input }),
    revoke: async (principal: string, domain: string): Promise<void> => {
      await this.call("DELETE", path`/v1/grants/${principal}/${domain}`);
    },
  };

  readonly keys = {
    list: (): Promise<Key[]> => this.call("GET", "/v1/keys"),
    /** The secret is in the answer, once. */
    create: (input: KeyInput): Promise<NewKey> => this.call("POST", "/v1/keys", { json: input }),
    revoke: async (id: string): Promise<void> => {
      await this.call("DELETE", path`/v1/keys/${id}`);
    },
  };

  readonly tokens = {
    /** `POST /v1/tokens/delegate`: a short-lived read-only JWT for an agent acting for an end user. */
    delegate: (input: DelegateInput): Promise<DelegatedToken> => this.call("POST", "/v1/tokens/delegate", { json: input }),
  };

  readonly audit = {
    /** `GET /v1/audit`: newest first; times in unix milliseconds. */
    query: (query: AuditQuery = {}): Promise<AuditEntry[]> => this.call("GET", "/v1/audit", { query: { ...query } }),
  };

  readonly snapshots = {
    list: async (): Promise<Snapshot[]> => (await this.call<{ snapshots?: Snapshot[] }>("GET", "/v1/snapshots")).snapshots ?? [],
    /** Named by the time it is taken unless `name` is given. */
    create: (name?: string): Promise<Snapshot> => this.call("POST", "/v1/snapshots", { json: name === undefined ? {} : { name } }),
    /** Into this node's store, which must be empty (`conflict` otherwise). */
    restore: (name: string): Promise<Snapshot> => this.call("POST", path`/v1/snapshots/${name}/restore`),
  };

  readonly models = {
    list: async (): Promise<Model[]> => (await this.call<{ models?: Model[] }>("GET", "/v1/models")).models ?? [],
  };

  /** `GET /v1/stats`: this node's last minute of requests and the applier's lag. */
  stats(): Promise<LiveStats> {
    return this.call("GET", "/v1/stats");
  }

  /** `GET /healthz` (`"ok"`). */
  health(): Promise<string> {
    return this.call("GET", "/healthz");
  }

  /** `GET /readyz` (`"ready"`; `unavailable` otherwise). */
  ready(): Promise<string> {
    return this.call("GET", "/readyz");
  }

  /** `GET /openapi.json`: the server's OpenAPI document. */
  openapi(): Promise<Record<string, unknown>> {
    return this.call("GET", "/openapi.json");
  }
}
