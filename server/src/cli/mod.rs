//! The `dartmouth` command line: a thin adapter over the same [`Service`] as HTTP and gRPC
//! (the local operator is the caller, `--as` acts as another principal), plus `serve` and the
//! shards-only `eval` (no store). No command calls the store itself.
//!
//! - `admin.rs`: domains, principals, grants, keys, reindex, audit, snapshots.
//! - `index.rs`: `dartmouth index` (files into a domain).
//! - `search.rs`: `dartmouth search`.
//! - `eval.rs`: `dartmouth eval` (judged collections into evaluation shards; no store).

mod admin;
mod eval;
mod index;
mod search;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dartmouth_domains::{Caller, Store, now_millis};
use dartmouth_engine::{Fusion, Shards};

use dartmouth_server::config::{ServeArgs, ServeConfig};
use dartmouth_server::models::{EmbedderKind, ModelArgs};
use dartmouth_server::service::{Limits, ReadMode, Service, ServiceConfig};

#[derive(Parser)]
#[command(
    name = "dartmouth",
    version,
    about = "Dartmouth Knowledge: hybrid retrieval over access-controlled knowledge domains"
)]
struct Cli {
    /// Where domains and their indexes live.
    #[arg(
        long,
        env = "DARTMOUTH_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// The store: sqlite://… or postgres://… [default: store.sqlite3 in the data directory]
    #[arg(long, env = "DARTMOUTH_STORE", global = true)]
    store: Option<String>,
    /// The longest a request waits for the store before it is answered 503 `unavailable`
    /// with Retry-After (searches then answer from the credentials and grants kept), in
    /// milliseconds [default: 2000].
    #[arg(long, env = "DARTMOUTH_STORE_TIMEOUT_MS", global = true, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    store_timeout_ms: Option<u64>,
    /// The oldest kept credential or grant a search may use while the store is unreachable,
    /// in seconds [default: 600].
    #[arg(long, env = "DARTMOUTH_STORE_STALE_FOR_S", global = true, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    store_stale_for_s: Option<u64>,
    /// Where snapshots are created and listed [default: snapshots in the data directory]
    #[arg(long, env = "DARTMOUTH_SNAPSHOT_DIR", global = true)]
    snapshot_dir: Option<PathBuf>,
    /// The environment variable holding the snapshot key (32 random bytes, base64): what
    /// `serve` encrypts snapshots with when asked, and what restores an encrypted one.
    #[arg(long, env = "DARTMOUTH_SNAPSHOT_KEY_ENV", global = true)]
    snapshot_key_env: Option<String>,
    /// Act as this principal (its grants decide what is visible); the local operator is the
    /// bootstrap admin otherwise.
    #[arg(long = "as", global = true)]
    as_principal: Option<String>,
    #[command(flatten)]
    models: ModelArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP and gRPC query server (http://127.0.0.1:8787, grpc 127.0.0.1:50051).
    Serve(ServeArgs),
    /// The model catalogue: every local model, its settings and speed, and what this node has.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Create, list, inspect and delete knowledge domains.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// Index files into a domain: BEIR corpus.jsonl, Markdown or text (files or directories).
    Index(IndexArgs),
    /// Search one or more domains.
    Search(SearchArgs),
    /// Evaluate relevance on BEIR-layout collections (indexes each once into `eval-<name>`).
    Eval(EvalArgs),
    /// Create and list principals (agents, users, services, groups); add group members.
    Principal {
        #[command(subcommand)]
        command: PrincipalCommand,
    },
    /// Give a principal read, write or admin on a domain.
    Grant {
        principal: String,
        domain: String,
        /// read | write | admin
        role: String,
    },
    /// Take a principal's grant on a domain away.
    Revoke { principal: String, domain: String },
    /// Create, list and revoke API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Rebuild a domain's shard from the store (no re-embedding).
    Reindex {
        #[arg(long)]
        domain: String,
    },
    /// Who did what, and every denied access (oldest first).
    Audit {
        /// How far back: 30s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Only this actor's entries.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action's (create-domain, grant, search, …).
        #[arg(long)]
        action: Option<String>,
        /// Only entries about this domain, principal or key.
        #[arg(long)]
        target: Option<String>,
        /// ok | denied | failed
        #[arg(long)]
        outcome: Option<String>,
        /// At most this many, the newest [default: all].
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Delete documents from a domain, by id or by filter.
    Delete {
        #[arg(long)]
        domain: String,
        /// Document ids.
        #[arg(conflicts_with = "filter", required_unless_present = "filter")]
        ids: Vec<String>,
        /// Every document the filter matches: 'vendor = "Acme" AND in_stock = false'.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Connect a Shopify shop to a domain and keep the domain equal to it (pull sync from the
    /// Admin API: a bulk operation for a full sync, the products changed since for an
    /// incremental one).
    Shopify {
        #[command(subcommand)]
        command: ShopifyCommand,
    },
    /// Snapshots of the store and the shards: create, list, restore (into an empty store).
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Serve the MCP tools (search, context, get_document) on stdin/stdout for an agent
    /// runtime, as the principal of `--key` (or `--as`, or the local operator).
    Mcp {
        /// An API key (dk_…) whose grants the tools use.
        #[arg(long, env = "DARTMOUTH_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// A running server (http://host:8787): each message goes to its `/mcp`, so the tools
        /// search what it serves. Without it, the data directory is opened here (no server may
        /// be running on it).
        #[arg(long, env = "DARTMOUTH_URL")]
        url: Option<String>,
    },
    /// Print the HTTP API's OpenAPI 3.1 document (as `GET /openapi.json` serves it): the
    /// clients' types are generated from it.
    Openapi,
}

#[derive(Subcommand)]
enum ShopifyCommand {
    /// Bind a shop to a domain; the access token is read from an environment variable (or a
    /// `file:PATH`) on each node, never stored.
    Connect {
        domain: String,
        /// The shop's domain: acme.myshopify.com.
        #[arg(long)]
        shop: String,
        /// The environment variable holding the Admin API access token (or `file:PATH`).
        #[arg(long)]
        token_env: String,
        /// The Admin API version [default: 2026-01].
        #[arg(long)]
        api_version: Option<String>,
        /// Sync on a schedule when a server runs: 15m, 1h (at least 1m).
        #[arg(long)]
        every: Option<String>,
        /// A metafield to read with each product, `namespace.key` (repeat for more): the
        /// attribute `metafield.namespace.key`.
        #[arg(long = "metafield")]
        metafields: Vec<String>,
        /// This service's public https:// base URL: subscribe the shop's product and
        /// inventory webhooks to it (the domain must take webhooks: a [[shopify]] table).
        #[arg(long, value_name = "URL")]
        register_webhooks: Option<String>,
    },
    /// Sync now: the products changed since the last good run (and the deletions), or all of
    /// them with --full (then what the shop no longer has is deleted).
    Sync {
        domain: String,
        #[arg(long)]
        full: bool,
    },
    /// The connection, its last run (counts, duration, error) and the next.
    Status {
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// Unbind the shop; the domain's documents stay.
    Disconnect { domain: String },
}

#[derive(Subcommand)]
enum PrincipalCommand {
    Create {
        name: String,
        /// agent | user | service | group
        #[arg(long, default_value = "agent")]
        kind: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add MEMBER to GROUP (a principal of kind group).
    AddMember { group: String, member: String },
    /// Take MEMBER out of GROUP.
    RemoveMember { group: String, member: String },
    /// GROUP's direct members.
    Members {
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a principal with its keys, grants and memberships.
    Delete { name: String },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// A consistent copy of the store and of the shards, in the snapshot directory.
    Create {
        /// Its name [default: the time, 2026-11-29T19-30-00Z].
        #[arg(long)]
        name: Option<String>,
        /// Encrypt it with the key in this environment variable (32 random bytes, base64:
        /// `head -c 32 /dev/urandom | base64`); restoring it then needs the same key.
        #[arg(long, value_name = "VAR")]
        encrypt_key_env: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot into an empty store (`--store`) and data directory; the shards then
    /// catch up from the changelog.
    Restore {
        /// A snapshot's name in the snapshot directory, or the path of a snapshot directory
        /// (one copied from another machine): anything with a `/` is a path (`./nightly`).
        snapshot: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Prints the key once; only its hash is stored.
    Create {
        #[arg(long)]
        principal: String,
        /// Restrict the key to these domains (repeat); it can only narrow the grants.
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Expire after this long: 30s, 15m, 1h, 7d.
        #[arg(long)]
        expires_in: Option<String>,
        /// The highest role the key may use: read | write | admin (default: the grants').
        #[arg(long)]
        role: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Revoke {
        id: String,
    },
}

#[derive(clap::Args)]
struct EvalArgs {
    /// BEIR-layout directories (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
    #[arg(required = true)]
    datasets: Vec<PathBuf>,
    #[arg(long, default_value = "bm25,vector,hybrid", value_delimiter = ',')]
    modes: Vec<String>,
    /// Write report.json, report.md and chart.svg here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The split to report.
    #[arg(long, default_value = "test")]
    split: String,
    /// Tune fusion on this split over the --sweep grid; report the best on --split.
    #[arg(long)]
    tune_on: Option<String>,
    /// NAME=V1,V2,… for rrf_k, bm25_weight, vector_weight, fusion, candidates, title_boost.
    #[arg(long)]
    sweep: Vec<String>,
    /// A report.json to compare against: exit non-zero when a metric drops by more than --max-drop.
    #[arg(long)]
    baseline: Option<PathBuf>,
    #[arg(long, default_value_t = 0.005)]
    max_drop: f64,
    #[command(flatten)]
    fusion: FusionArgs,
    #[arg(long, default_value_t = 0.0)]
    title_boost: f32,
    /// Catalog query understanding on every query, as `search --parse`.
    #[arg(long)]
    parse: bool,
    /// The embedding models to evaluate, each a local model of the catalogue (repeat).
    #[arg(long = "model", default_value = "all-minilm-l6-v2")]
    models: Vec<String>,
    /// Also report hybrid with another fusion method, with its defaults, and optionally another
    /// number of candidates per branch (repeat): a row `Hybrid (METHOD)` beside the configured
    /// fusion's `Hybrid`, e.g. `weighted`, `weighted:100`, `zscore:300`.
    #[arg(long = "compare-fusion", value_name = "METHOD[:CANDIDATES]")]
    compare_fusions: Vec<String>,
    /// Also report hybrid with its first N documents re-ordered by the cross-encoder (repeat):
    /// a row `Hybrid + rerank N` per N and --rerank-blend.
    #[arg(long = "rerank", value_name = "N")]
    reranks: Vec<usize>,
    /// Weight of the cross-encoder's score against the fused score, 0 to 1 (repeat; default 1,
    /// the cross-encoder alone).
    #[arg(long = "rerank-blend", value_name = "B")]
    rerank_blends: Vec<f32>,
    /// The reranker (a catalogue id; `dartmouth models list`).
    #[arg(long, default_value = dartmouth_server::models::DEFAULT_RERANKER)]
    rerank_model: String,
    /// Write each branch's candidate lists (documents, raw scores, top 1000) of every split
    /// with judgments here, per dataset and model, for offline fusion research.
    #[arg(long, value_name = "DIR")]
    dump_runs: Option<PathBuf>,
    /// Keep the reranker's scores in this file across runs (read first, written after each
    /// dataset): a pair already scored is not scored again.
    #[arg(long, value_name = "FILE")]
    rerank_cache: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ModelsCommand {
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DomainCommand {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A local embedding model of the catalogue (`dartmouth models list`).
        #[arg(long)]
        model: Option<String>,
        /// Where the domain's vectors come from: a local model (`--model`), or another embedder.
        #[arg(long, value_enum, default_value = "local")]
        embedder: EmbedderKind,
        /// Remote model name (with --embedder openai).
        #[arg(long)]
        openai_model: Option<String>,
        /// Vector dimension (with --embedder openai or fake).
        #[arg(long)]
        dim: Option<usize>,
        /// Token budget of a chunk.
        #[arg(long, default_value_t = 256)]
        chunk_tokens: usize,
        /// Tokens shared by consecutive chunks.
        #[arg(long, default_value_t = 32)]
        chunk_overlap: usize,
        /// A shop's option filed under a canonical field: `case_size=device`, or `mug_size=`
        /// for none (repeat). Others follow the built-in vocabulary (size, color, …).
        #[arg(long = "option-name", value_name = "OPTION=FIELD")]
        option_names: Vec<String>,
        /// Its searches rerank their best N by default (the built-in cross-encoder).
        #[arg(long, value_name = "N")]
        rerank: Option<usize>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Stats {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a domain's description or catalog option names.
    Update {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Replace the option names (`case_size=device`, repeat); `--option-name ''` clears.
        #[arg(long = "option-name", value_name = "OPTION=FIELD")]
        option_names: Option<Vec<String>>,
        /// Its searches rerank their best N by default (0: no default reranking).
        #[arg(long, value_name = "N")]
        rerank: Option<usize>,
    },
    Delete {
        name: String,
    },
    /// Switch the domain to another embedding model online: the new generation is built from
    /// the stored text while the old one serves, then takes over (the old one is kept).
    SetModel {
        name: String,
        /// A local embedding model of the catalogue (`dartmouth models list`).
        #[arg(long)]
        model: String,
        /// Start it and return (a serving node's applier carries it on); by default the
        /// command builds it and returns when the new generation serves.
        #[arg(long)]
        no_wait: bool,
    },
    /// Switch back to the generation kept from the last switch.
    RollbackModel {
        name: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Drop the generation kept from the last switch (no rollback after this), or abandon a
    /// switch being built.
    DropOldGeneration {
        name: String,
    },
}

/// How the branches are fused; shared by `search` and `eval`.
#[derive(clap::Args)]
struct FusionArgs {
    /// Candidates per branch before fusion.
    #[arg(long, default_value_t = 100)]
    candidates: usize,
    /// zscore (standardised scores; the tuned default) | weighted (min-max normalised) | rrf
    #[arg(long, default_value = "zscore")]
    fusion: String,
    /// RRF's k [default: 60]
    #[arg(long)]
    rrf_k: Option<f32>,
    /// Weight of the BM25 branch [default: 1]
    #[arg(long)]
    bm25_weight: Option<f32>,
    /// Weight of the vector branch [default: 1.2 for zscore (tuned), 0.7 for weighted, 1 for rrf]
    #[arg(long)]
    vector_weight: Option<f32>,
}

impl FusionArgs {
    /// The method by its name with its own defaults, the weights given in their place.
    fn fusion(&self) -> Result<Fusion> {
        Fusion::parse(
            &self.fusion,
            self.rrf_k,
            self.bm25_weight,
            self.vector_weight,
        )
        .map_err(anyhow::Error::msg)
    }
}

#[derive(clap::Args)]
struct SearchArgs {
    /// Domain to search; repeat for several.
    #[arg(long = "domain", required = true)]
    domains: Vec<String>,
    /// The query (or use --queries).
    query: Option<String>,
    /// A BEIR queries.jsonl: prints one JSON line per query, hits collapsed to documents.
    #[arg(long, conflicts_with = "query")]
    queries: Option<PathBuf>,
    #[arg(long, default_value = "hybrid")]
    mode: String,
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    #[command(flatten)]
    fusion: FusionArgs,
    /// Filter expression, e.g. 'in_stock = true AND price <= 50'.
    #[arg(long)]
    filter: Option<String>,
    /// Attributes to count values of among the filtered documents: vendor,product_type.
    #[arg(long, value_delimiter = ',')]
    facets: Vec<String>,
    /// Keep only the best chunk per document.
    #[arg(long)]
    collapse: bool,
    /// Catalog query understanding: price bounds, sizes, colours and stock wording in the
    /// query become a filter; the rest of the text is searched.
    #[arg(long)]
    parse: bool,
    /// More like this: the documents nearest to document ID of the first --domain (itself left
    /// out); the query text is then optional.
    #[arg(long, value_name = "ID")]
    similar_to: Option<String>,
    /// Order by an attribute instead of relevance: price, price:asc, price:desc.
    #[arg(long)]
    sort: Option<String>,
    /// Hits skipped before the -k returned (paging).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Re-order the best N candidates with the cross-encoder (0: none, whatever the domains'
    /// default; unset: the domains' default).
    #[arg(long, value_name = "N")]
    rerank: Option<usize>,
    /// The reranker (a catalogue id; `dartmouth models list`).
    #[arg(long)]
    rerank_model: Option<String>,
    /// Weight of the reranker's score against the fused score, 0 to 1 (default 0.5; 1: the reranker alone).
    #[arg(long)]
    rerank_blend: Option<f32>,
    /// The reranking budget in milliseconds.
    #[arg(long)]
    rerank_timeout_ms: Option<u64>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct IndexArgs {
    #[arg(long)]
    domain: String,
    /// Files or directories.
    #[arg(required_unless_present = "webhook")]
    paths: Vec<PathBuf>,
    /// jsonl (beir), json, markdown, html, text, pdf, shopify-json, shopify-csv, shopify-bulk,
    /// shopify-webhook (detected from the name and, for JSON, the content, by default).
    #[arg(long)]
    format: Option<String>,
    /// A Shopify webhook payload (products/create|update|delete, inventory_levels/update,
    /// inventory_items/update); repeat for several.
    #[arg(long)]
    webhook: Vec<PathBuf>,
    /// The webhook's topic, when the payload does not say (the X-Shopify-Topic header).
    #[arg(long)]
    topic: Option<String>,
    /// Remove the domain's documents that the input does not mention.
    #[arg(long)]
    full_sync: bool,
    /// Write nothing if any record is malformed (checked before the first write).
    #[arg(long)]
    strict: bool,
    /// JSON records: the field holding the id (default `_id`, else `id`).
    #[arg(long)]
    id_field: Option<String>,
    /// JSON records: the field holding the title.
    #[arg(long, default_value = "title")]
    title_field: String,
    /// JSON records: the field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// JSON records: the field holding the URL.
    #[arg(long, default_value = "url")]
    url_field: String,
    /// A shop's address; product URLs become <base-url>/products/<handle>.
    #[arg(long)]
    base_url: Option<String>,
    /// Documents per atomic write batch.
    #[arg(long, default_value_t = 256)]
    batch_docs: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Print `ack <sequence>` on stdout as each batch is acknowledged by the store.
    #[arg(long)]
    print_acks: bool,
}

/// What a command works with: the service, who is acting, and a runtime for it.
struct Ctx {
    rt: tokio::runtime::Runtime,
    svc: Arc<Service>,
    caller: Caller,
}

impl Ctx {
    /// Runs one service call to its end; its error is the service's message.
    fn call<T>(&self, f: impl Future<Output = dartmouth_server::error::ApiResult<T>>) -> Result<T> {
        self.rt
            .block_on(f)
            .map_err(|e| anyhow::anyhow!("{}", e.message))
    }
}

/// The store `--store` names (SQLite in the data directory by default); errors show the URL
/// without its credentials.
async fn open_store(cli: &Cli) -> Result<Store> {
    let url = cli
        .store
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(&cli.data_dir));
    let defaults = dartmouth_domains::StoreOptions::default();
    let options = dartmouth_domains::StoreOptions {
        timeout: cli
            .store_timeout_ms
            .map_or(defaults.timeout, std::time::Duration::from_millis),
        stale_for: cli
            .store_stale_for_s
            .map_or(defaults.stale_for, std::time::Duration::from_secs),
    };
    Store::open_with(&url, options)
        .await
        .with_context(|| format!("store {}", url.split('@').next_back().unwrap_or("")))
}

fn serve_cmd(
    shards: Shards,
    cli: &Cli,
    config: ServeConfig,
    rt: &tokio::runtime::Runtime,
) -> Result<()> {
    rt.block_on(async {
        let store = open_store(cli).await?;
        let svc = Service::new(ServiceConfig {
            store,
            shards: Arc::new(shards),
            models: cli.models.clone(),
            preloaded: Default::default(),
            jwt: config.jwt.clone(),
            rate_limits: config.rate_limits.clone(),
            limits: config.limits.clone(),
            embedding_cache_bytes: config.embedding_cache_bytes,
            result_cache_bytes: config.result_cache_bytes,
            shopify: config.shopify.clone(),
            read_mode: ReadMode::AsApplied,
            placement: config.placement.clone(),
            snapshot_dir: snapshot_dir(cli),
            snapshot_key: snapshot_key(cli.snapshot_key_env.as_deref())?,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        svc.check_webhooks()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        dartmouth_server::serve(config, Arc::new(svc)).await
    })
}

/// The snapshot key in the variable `var` names, when it names one; the error names the
/// variable, never the key.
fn snapshot_key(var: Option<&str>) -> Result<Option<dartmouth_views::seal::SnapshotKey>> {
    var.map(|v| dartmouth_views::seal::SnapshotKey::from_env(v).map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()
}

fn snapshot_dir(cli: &Cli) -> PathBuf {
    cli.snapshot_dir
        .clone()
        .unwrap_or_else(|| cli.data_dir.join("snapshots"))
}

/// `30s`, `15m`, `1h`, `7d` in milliseconds.
fn parse_duration(text: &str) -> Result<i64> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = n
        .parse()
        .with_context(|| format!("duration `{text}`: expected a number then s, m, h or d"))?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("duration `{text}`: the unit must be s, m, h or d"),
    };
    n.checked_mul(ms)
        .with_context(|| format!("duration `{text}` is too long"))
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    // `serve` reads its configuration and starts its runtime first: span export runs on it.
    let serving = match &cli.command {
        Command::Serve(args) => {
            let config = args.resolve()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.workers)
                .enable_all()
                .build()?;
            Some((config, rt))
        }
        _ => None,
    };
    // Dropped last: flushes the spans not yet exported, while the runtime still runs.
    let telemetry = {
        let _entered = serving.as_ref().map(|(_, rt)| rt.enter());
        dartmouth_server::trace::init(serving.as_ref().and_then(|(c, _)| c.otlp.as_ref()))?
    };
    if let Command::Openapi = cli.command {
        #[allow(clippy::print_stdout)]
        {
            println!("{:#}", dartmouth_server::http::openapi::document());
        }
        return Ok(());
    }
    std::fs::create_dir_all(&cli.data_dir)
        .with_context(|| format!("data directory {}", cli.data_dir.display()))?;
    let shards = Shards::open(&cli.data_dir)
        .with_context(|| format!("data directory {}", cli.data_dir.display()))?;
    if let Command::Eval(args) = cli.command {
        // Evaluation domains live in the catalog only: they are rebuilt from the collections.
        return eval::eval_cmd(&shards, &cli.data_dir, &cli.models, args);
    }
    if let Some((config, rt)) = serving {
        let served = serve_cmd(shards, &cli, config, &rt);
        drop(telemetry);
        return served;
    }
    if let Command::Mcp {
        url: Some(url),
        key,
    } = &cli.command
    {
        return mcp_bridge(url, key.as_deref());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let store = rt.block_on(open_store(&cli))?;
    // A one-shot command: no applier task runs, so reads catch up first; no request limits
    // (a command line is the operator's) beyond the engine's own.
    let svc = Arc::new(
        Service::new(ServiceConfig {
            store,
            shards: Arc::new(shards),
            models: cli.models.clone(),
            preloaded: Default::default(),
            jwt: None,
            rate_limits: Default::default(),
            limits: Limits {
                max_k: dartmouth_engine::MAX_K,
                max_query_bytes: dartmouth_engine::MAX_QUERY_BYTES,
                max_filter_bytes: 64 * 1024,
                max_domains: usize::MAX,
                ..Limits::default()
            },
            embedding_cache_bytes: 16 << 20,
            result_cache_bytes: 0,
            shopify: Vec::new(),
            read_mode: ReadMode::CaughtUp,
            placement: None,
            snapshot_dir: snapshot_dir(&cli),
            // `snapshot create --encrypt-key-env` names its own variable.
            snapshot_key: snapshot_key(match &cli.command {
                Command::Snapshot {
                    command:
                        SnapshotCommand::Create {
                            encrypt_key_env: Some(var),
                            ..
                        },
                } => Some(var.as_str()),
                _ => cli.snapshot_key_env.as_deref(),
            })?,
        })
        .map_err(|e| anyhow::anyhow!("{}", e.message))?,
    );
    let caller = match &cli.command {
        Command::Mcp { key: Some(key), .. } => rt
            .block_on(svc.authenticate(Some(format!("Bearer {key}").as_bytes())))
            .map_err(|e| anyhow::anyhow!("--key: {}", e.message))?,
        _ => rt
            .block_on(svc.local_caller(cli.as_principal.as_deref()))
            .map_err(|e| anyhow::anyhow!("{}", e.message))?,
    };
    if let Command::Mcp { .. } = &cli.command {
        let result = mcp_stdio(&rt, &svc, &caller);
        rt.block_on(svc.store().close());
        return result;
    }
    let ctx = Ctx { rt, svc, caller };
    let result = match cli.command {
        Command::Models {
            command: ModelsCommand::List { json },
        } => admin::models(&ctx, json),
        Command::Domain { command } => admin::domain(&ctx, command),
        Command::Index(args) => index::index(&ctx, &args),
        Command::Search(args) => search::search_cmd(&ctx, args),
        Command::Eval(_) | Command::Serve(_) => unreachable!("handled above"),
        Command::Principal { command } => admin::principal(&ctx, command),
        Command::Grant {
            principal,
            domain,
            role,
        } => admin::grant(&ctx, principal, domain, &role),
        Command::Revoke { principal, domain } => admin::revoke(&ctx, &principal, &domain),
        Command::Key { command } => admin::key(&ctx, command),
        Command::Reindex { domain } => admin::reindex(&ctx, &domain),
        Command::Snapshot { command } => admin::snapshot(&ctx, command),
        Command::Shopify { command } => admin::shopify(&ctx, command),
        Command::Audit {
            since,
            actor,
            action,
            target,
            outcome,
            limit,
            json,
        } => {
            let query = dartmouth_server::service::AuditInput {
                since: Some(now_millis() - parse_duration(&since)?),
                actor,
                action,
                target,
                outcome,
                limit,
                until: None,
            };
            admin::audit(&ctx, query, json)
        }
        Command::Delete {
            domain,
            ids,
            filter,
        } => index::delete(&ctx, &domain, ids, filter),
        Command::Mcp { .. } | Command::Openapi => unreachable!("handled above"),
    };
    // Counted refusals and the like are written before the process ends.
    ctx.rt.block_on(ctx.svc.store().close());
    result
}

/// MCP on stdin/stdout relayed to a running server's `/mcp` (streamable HTTP, JSON answers)
/// with the key as the bearer credential. The key is checked first, so that a refused one
/// ends the command with the server's message rather than an unanswerable error.
fn mcp_bridge(url: &str, key: Option<&str>) -> Result<()> {
    use std::io::{BufRead, Write};
    let endpoint = format!("{}/mcp", url.trim_end_matches('/'));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let post = |body: &str| -> Result<(u16, String)> {
        let mut request = agent
            .post(&endpoint)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(k) = key {
            request = request.header("Authorization", &format!("Bearer {k}"));
        }
        let mut response = request
            .send(body.as_bytes())
            .with_context(|| format!("--url: {endpoint}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("--url: {endpoint}"))?;
        Ok((status, text))
    };
    let (status, text) = post(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)?;
    if status != 200 {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("--key: {message}");
    }
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let (status, text) = post(&line)?;
        if status == 202 {
            continue;
        }
        let id = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|m| m.get("id").cloned())
            .unwrap_or(serde_json::Value::Null);
        let answer = relayed_answer(status, &text, id);
        stdout.write_all(answer.to_string().as_bytes())?;
        stdout.write_all(b"\n").context("stdout")?;
        stdout.flush().context("stdout")?;
    }
    Ok(())
}

/// The server's answer as one JSON-RPC message with the request's id: an error without an id
/// gets it, and an answer that is not JSON-RPC (a 429 or 413 before the MCP handler, a
/// proxy's page) becomes an error that says what came back.
fn relayed_answer(status: u16, text: &str, id: serde_json::Value) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) if v.get("jsonrpc").is_some() => {
            if v.get("id").is_none_or(serde_json::Value::is_null) && !id.is_null() {
                v["id"] = id;
            }
            v
        }
        other => {
            let message = other
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.chars().take(200).collect());
            dartmouth_server::mcp::error(
                id,
                dartmouth_server::mcp::INTERNAL_ERROR,
                format!("the server answered {status}: {message}"),
            )
        }
    }
}

/// MCP on stdin/stdout: one JSON-RPC message per line in, one answer per line out; logs go
/// to stderr. Ends at the end of stdin.
fn mcp_stdio(rt: &tokio::runtime::Runtime, svc: &Arc<Service>, caller: &Caller) -> Result<()> {
    use std::io::{BufRead, Write};
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(message) => rt.block_on(dartmouth_server::mcp::handle(svc, caller, message)),
            Err(e) => Some(dartmouth_server::mcp::error(
                serde_json::Value::Null,
                dartmouth_server::mcp::PARSE_ERROR,
                format!("line: {e}"),
            )),
        };
        if let Some(answer) = answer {
            serde_json::to_writer(&mut stdout, &answer)?;
            stdout.write_all(b"\n").context("stdout")?;
            stdout.flush().context("stdout")?;
        }
    }
    Ok(())
}

fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}
