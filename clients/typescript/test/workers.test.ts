// The client in a Workers runtime (workerd, through miniflare) against a real server, and a
// scan of the emitted JavaScript for anything Node-only.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";

import { Miniflare } from "miniflare";
import { Dartmouth } from "@dartmouth/knowledge";
import { startServer, type Server } from "./server.js";

const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
const DIST = join(PACKAGE, "dist");

describe("the emitted JavaScript", () => {
  it("imports nothing but itself (and @langchain/core in langchain.js) and uses no Node-only API", () => {
    const files = readdirSync(DIST).filter((f) => f.endsWith(".js"));
    assert.ok(files.includes("index.js") && files.includes("client.js") && files.includes("langchain.js"), files.join(", "));
    for (const file of files) {
      const code = readFileSync(join(DIST, file), "utf8")
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/^\s*\/\/.*$/gm, "");
      const imports = [
        ...code.matchAll(/(?:^|[;\s])(?:import|export)\b[^'"]*?from\s*["']([^"']+)["']|\bimport\s*\(?\s*["']([^"']+)["']/g),
      ].map((m) => m[1] ?? m[2] ?? "");
      for (const spec of imports) {
        const allowed = spec.startsWith("./") || (file === "langchain.js" && spec.startsWith("@langchain/core/"));
        assert.ok(allowed, `${file} imports ${spec}`);
      }
      for (const [what, pattern] of [
        ["a node: import", /["']node:/],
        ["require()", /\brequire\s*\(/],
        ["Buffer", /\bBuffer\b/],
        ["process", /\bprocess\b/],
        ["__dirname", /\b__dirname\b|\b__filename\b/],
      ] as const) {
        assert.ok(!pattern.test(code), `${file} uses ${what}`);
      }
    }
  });
});

describe("the client in workerd (miniflare)", () => {
  let server: Server;
  let mf: Miniflare | undefined;

  before(async () => {
    server = await startServer();
    const admin = new Dartmouth({ url: server.url, key: server.adminKey });
    await admin.domains.create({ name: "edge", embedder: "fake", dim: 32 });
    await admin.indexDocuments("edge", [{ id: "hours.md", title: "Opening hours", text: "The shop opens at nine and closes at five." }]);
    // A worker that imports the built package (dist/index.js) and searches with it.
    mf = new Miniflare({
      modules: [
        {
          type: "ESModule",
          path: join(DIST, "worker.js"),
          contents: `
            import { Dartmouth, DartmouthError } from "./index.js";
            export default {
              async fetch(request, env) {
                const client = new Dartmouth({ url: env.DK_URL, key: env.DK_KEY, readYourWrites: true });
                const q = new URL(request.url).searchParams.get("q");
                const ack = await client.indexDocuments("edge", [{ id: "edge.md", title: "From the edge", text: "Written from a worker at the edge." }]);
                const found = await client.search({ query: q, domains: ["edge"], k: 3 });
                let error = null;
                try { await client.getDocument("no-such-domain", "x"); }
                catch (e) { error = { isDartmouthError: e instanceof DartmouthError, code: e.code, status: e.status, message: e.message }; }
                const upload = await client.uploadFiles("edge", [{ name: "note.txt", content: new TextEncoder().encode("A note uploaded from the worker.") }]);
                return Response.json({ ack, hits: found.hits.map((h) => h.doc_id), error, added: upload.added,
                                       runtime: typeof navigator === "object" ? navigator.userAgent : "" });
              },
            };`,
        },
        ...["index.js", "client.js", "errors.js", "types.js", "schema.js"].map((f) => ({
          type: "ESModule" as const,
          path: join(DIST, f),
          contents: readFileSync(join(DIST, f), "utf8").replace(/\/\/# sourceMappingURL=.*$/m, ""),
        })),
      ],
      compatibilityDate: "2025-07-01",
      bindings: { DK_URL: server.url, DK_KEY: server.adminKey },
    });
  });

  after(async () => {
    await mf?.dispose();
    await server?.stop();
  });

  it("searches, writes, uploads and meets a DartmouthError inside workerd", async () => {
    assert.ok(mf);
    const response = await mf.dispatchFetch("http://worker.local/?q=opening%20hours");
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const out = JSON.parse(text) as { ack: { seq: number }; hits: string[]; error: Record<string, unknown>; added: number; runtime: string };
    assert.equal(out.runtime, "Cloudflare-Workers");
    assert.ok(out.ack.seq > 0);
    assert.equal(out.hits[0], "hours.md");
    assert.deepEqual(out.error, { isDartmouthError: true, code: "not_found", status: 404, message: "domain `no-such-domain` does not exist" });
    assert.equal(out.added, 1);
    const check = new Dartmouth({ url: server.url, key: server.adminKey });
    assert.equal((await check.getDocument("edge", "edge.md")).title, "From the edge");
  });
});
