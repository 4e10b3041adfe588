// A LangChain.js retriever over `search` (or `context`): `@dartmouth/knowledge/langchain`.

import { BaseRetriever, type BaseRetrieverInput } from "@langchain/core/retrievers";
import { Document } from "@langchain/core/documents";
import type { Dartmouth } from "./client.js";
import type { ContextInput, SearchInput } from "./types.js";

export interface DartmouthRetrieverInput extends BaseRetrieverInput {
  client: Dartmouth;
  /** The domains searched (default: every domain the key may read). */
  domains?: string[];
  /** Hits returned (default 5). */
  k?: number;
  /** Other search fields: `mode`, `filter`, `collapse`, `rerank`, … */
  search?: Omit<SearchInput, "query" | "domains" | "k">;
  /** `"context"`: one document per passage of `POST /v1/context` (chunks of a document merged,
   * within `maxTokens`) instead of one per hit. */
  via?: "search" | "context";
  maxTokens?: number;
}

/** Each hit a Document: `pageContent` its text; metadata domain, doc_id, chunk_id, title, url, score. */
export class DartmouthRetriever extends BaseRetriever {
  static override lc_name(): string {
    return "DartmouthRetriever";
  }
  override lc_namespace = ["dartmouth", "retrievers"];

  private readonly client: Dartmouth;
  private readonly options: Omit<DartmouthRetrieverInput, "client">;

  constructor({ client, ...options }: DartmouthRetrieverInput) {
    super(options);
    this.client = client;
    this.options = options;
  }

  override async _getRelevantDocuments(query: string): Promise<Document[]> {
    const { domains = [], k = 5, via = "search" } = this.options;
    if (via === "context") {
      const input: ContextInput = { query, domains, ...(this.options.maxTokens ? { max_tokens: this.options.maxTokens } : {}) };
      const out = await this.client.context(input);
      return (out.passages ?? []).map((p) => new Document({
        pageContent: p.text ?? "",
        metadata: { domain: p.domain, doc_id: p.doc_id, chunk_ids: p.chunk_ids, title: p.title, url: p.url ?? null, score: p.score, marker: p.marker },
      }));
    }
    const out = await this.client.search({ ...this.options.search, query, domains, k });
    return (out.hits ?? []).map((hit) => new Document({
      pageContent: hit.text ?? "",
      metadata: { domain: hit.domain, doc_id: hit.doc_id, chunk_id: hit.chunk_id, title: hit.title, url: hit.url ?? null, score: hit.score },
      ...(hit.chunk_id ? { id: hit.chunk_id } : {}),
    }));
  }
}
