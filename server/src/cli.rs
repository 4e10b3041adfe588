//! Command-line interface.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dartmouth_domains::{Caller, PrincipalKind, Role, Store};
use dartmouth_engine::{Catalog, DomainSettings, Filter, Fusion, Hit, Mode, SearchRequest, Shard};
use dartmouth_indexer::{
    Chunker, Format, IndexJob, Progress, RecordFields, SinkOp, SourceOptions, SourceReader,
    read_beir_queries,
};
use dartmouth_views::{Applier, StoreSink};
use serde_json::json;

use dartmouth_server::config::ServeArgs;
use dartmouth_server::models::{EmbedderKind, ModelArgs, spec_for};
use dartmouth_server::service::{Service, ServiceConfig};

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
    /// Who did what, and every denied access.
    Audit {
        /// How far back: 30s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        since: String,
        #[arg(long)]
        json: bool,
    },
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
}

#[derive(Subcommand)]
enum DomainCommand {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The embedding model of the domain's vectors.
        #[arg(long, value_enum, default_value = "minilm")]
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
    Delete {
        name: String,
    },
}

/// How the branches are fused; shared by `search` and `eval`.
#[derive(clap::Args)]
struct FusionArgs {
    /// Candidates per branch before fusion.
    #[arg(long, default_value_t = 100)]
    candidates: usize,
    /// weighted (min-max normalised scores; tuned default) | rrf
    #[arg(long, default_value = "weighted")]
    fusion: String,
    #[arg(long, default_value_t = dartmouth_engine::RRF_K_DEFAULT)]
    rrf_k: f32,
    /// Weight of the BM25 branch [default: 1]
    #[arg(long)]
    bm25_weight: Option<f32>,
    /// Weight of the vector branch [default: 0.7 for weighted (tuned), 1 for rrf]
    #[arg(long)]
    vector_weight: Option<f32>,
}

impl FusionArgs {
    fn fusion(&self) -> Result<Fusion> {
        let bm25_weight = self.bm25_weight.unwrap_or(1.0);
        Ok(match self.fusion.as_str() {
            "rrf" => Fusion::Rrf {
                k: self.rrf_k,
                bm25_weight,
                vector_weight: self.vector_weight.unwrap_or(1.0),
            },
            "weighted" => match Fusion::default() {
                Fusion::Weighted { vector_weight, .. } => Fusion::Weighted {
                    bm25_weight,
                    vector_weight: self.vector_weight.unwrap_or(vector_weight),
                },
                Fusion::Rrf { .. } => Fusion::Weighted {
                    bm25_weight,
                    vector_weight: self.vector_weight.unwrap_or(1.0),
                },
            },
            other => bail!("--fusion `{other}` is not one of rrf, weighted"),
        })
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
    #[arg(long)]
    json: bool,
}

/// What every command works with: the store, the shards, who is acting, and a runtime for the
/// store's futures (the engine is synchronous).
struct Ctx {
    rt: tokio::runtime::Runtime,
    store: Store,
    catalog: Catalog,
    caller: Caller,
}

impl Ctx {
    fn block<T>(&self, f: impl Future<Output = dartmouth_domains::Result<T>>) -> Result<T> {
        Ok(self.rt.block_on(f)?)
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            store: &self.store,
            catalog: &self.catalog,
            runtime: self.rt.handle().clone(),
            events: None,
        }
    }
}

/// The store `--store` names (SQLite in the data directory by default); errors show the URL
/// without its credentials.
async fn open_store(cli: &Cli) -> Result<Store> {
    let url = cli
        .store
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(&cli.data_dir));
    Store::open(&url)
        .await
        .with_context(|| format!("store {}", url.split('@').next_back().unwrap_or("")))
}

fn serve_cmd(catalog: Catalog, cli: &Cli, args: &ServeArgs) -> Result<()> {
    let config = args.resolve()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = open_store(cli).await?;
        let svc = Service::new(ServiceConfig {
            store,
            catalog: Arc::new(catalog),
            models: cli.models.clone(),
            jwt: config.jwt.clone(),
            rate_limits: config.rate_limits.clone(),
            limits: config.limits.clone(),
            embedding_cache_bytes: config.embedding_cache_bytes,
            result_cache_bytes: config.result_cache_bytes,
            shopify: config.shopify.clone(),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        svc.check_webhooks()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        dartmouth_server::serve(config, Arc::new(svc)).await
    })
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

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.data_dir)
        .with_context(|| format!("data directory {}", cli.data_dir.display()))?;
    let catalog = Catalog::open(&cli.data_dir)
        .with_context(|| format!("data directory {}", cli.data_dir.display()))?;
    if let Command::Eval(args) = cli.command {
        // Evaluation domains live in the catalog only: they are rebuilt from the collections.
        return eval_cmd(&catalog, &cli.data_dir, &cli.models, args);
    }
    if let Command::Serve(args) = &cli.command {
        return serve_cmd(catalog, &cli, args);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let store = rt.block_on(open_store(&cli))?;
    let operator = rt.block_on(store.local_admin())?;
    let caller = match &cli.as_principal {
        Some(name) => rt.block_on(store.act_as(&operator, name))?,
        None => operator,
    };
    let ctx = Ctx {
        rt,
        store,
        catalog,
        caller,
    };
    match cli.command {
        Command::Domain { command } => domain(&ctx, command),
        Command::Index(args) => index(&ctx, &cli.models, &args),
        Command::Search(args) => search_cmd(&ctx, &cli.models, args),
        Command::Eval(_) | Command::Serve(_) => unreachable!("handled above"),
        Command::Principal { command } => principal_cmd(&ctx, command),
        Command::Grant {
            principal,
            domain,
            role,
        } => {
            let g =
                ctx.block(
                    ctx.store
                        .grant(&ctx.caller, &principal, &domain, Role::parse(&role)?),
                )?;
            writeln!(
                out(),
                "granted {} {} on {}",
                g.principal,
                g.role.as_str(),
                g.domain
            )?;
            Ok(())
        }
        Command::Revoke { principal, domain } => {
            ctx.block(ctx.store.revoke_grant(&ctx.caller, &principal, &domain))?;
            writeln!(out(), "revoked {principal}'s grant on {domain}")?;
            Ok(())
        }
        Command::Key { command } => key_cmd(&ctx, command),
        Command::Reindex { domain } => {
            let pass = ctx.block(ctx.store.authorize(
                &ctx.caller,
                std::slice::from_ref(&domain),
                Role::Admin,
            ))?;
            let started = std::time::Instant::now();
            let seq = ctx.applier().rebuild(&pass.domains()[0])?;
            let stats = ctx.catalog.get(&domain)?.stats();
            writeln!(
                out(),
                "rebuilt {domain} from the store: {} documents, {} chunks, sequence {seq}, {:.1} s",
                stats.documents,
                stats.chunks,
                started.elapsed().as_secs_f64()
            )?;
            Ok(())
        }
        Command::Audit { since, json } => {
            let entries = ctx.block(
                ctx.store
                    .audit_since(&ctx.caller, now_millis() - parse_duration(&since)?),
            )?;
            let mut out = out();
            for e in entries {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&e)?)?;
                } else {
                    let times = if e.count > 1 {
                        format!(" (×{})", e.count)
                    } else {
                        String::new()
                    };
                    writeln!(
                        out,
                        "{} {:<8} {:<16} {:<18} {:<24} {}{times}",
                        e.at, e.outcome, e.actor, e.action, e.target, e.detail
                    )?;
                }
            }
            Ok(())
        }
    }
}

fn principal_cmd(ctx: &Ctx, command: PrincipalCommand) -> Result<()> {
    match command {
        PrincipalCommand::Create { name, kind } => {
            let p = ctx.block(ctx.store.create_principal(
                &ctx.caller,
                &name,
                PrincipalKind::parse(&kind)?,
            ))?;
            writeln!(out(), "created {} {}", p.kind.as_str(), p.name)?;
        }
        PrincipalCommand::List { json } => {
            let ps = ctx.block(ctx.store.list_principals(&ctx.caller))?;
            let grants = ctx.block(ctx.store.list_grants(&ctx.caller))?;
            if json {
                writeln!(out(), "{}", json!({ "principals": ps, "grants": grants }))?;
            } else {
                for p in ps {
                    let mine: Vec<String> = grants
                        .iter()
                        .filter(|g| g.principal == p.name)
                        .map(|g| format!("{}:{}", g.domain, g.role.as_str()))
                        .collect();
                    writeln!(
                        out(),
                        "{:<24} {:<8}{} {}",
                        p.name,
                        p.kind.as_str(),
                        if p.superuser { " (admin)" } else { "" },
                        mine.join(" ")
                    )?;
                }
            }
        }
        PrincipalCommand::AddMember { group, member } => {
            ctx.block(ctx.store.add_member(&ctx.caller, &group, &member))?;
            writeln!(out(), "added {member} to {group}")?;
        }
    }
    Ok(())
}

fn key_cmd(ctx: &Ctx, command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Create {
            principal,
            domains,
            expires_in,
            role,
        } => {
            let expires_at = expires_in
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .map(|d| now_millis() + d);
            let scope = dartmouth_domains::KeyScope {
                domains: (!domains.is_empty()).then_some(domains),
                role: role.as_deref().map(Role::parse).transpose()?,
                expires_at,
            };
            let (info, secret) = ctx.block(ctx.store.create_key(&ctx.caller, &principal, scope))?;
            eprintln!(
                "created key {} for {}; the secret below is shown once, store it now",
                info.id, info.principal
            );
            writeln!(out(), "{secret}")?;
        }
        KeyCommand::List { json } => {
            let keys = ctx.block(ctx.store.list_keys(&ctx.caller))?;
            let mut out = out();
            for k in keys {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&k)?)?;
                } else {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else if k.expires_at.is_some_and(|e| e <= now_millis()) {
                        "expired"
                    } else {
                        "active"
                    };
                    writeln!(
                        out,
                        "{}  {:<20} {:<8} {}",
                        k.id,
                        k.principal,
                        state,
                        k.domains
                            .map(|d| d.join(","))
                            .unwrap_or_else(|| "all granted".into())
                    )?;
                }
            }
        }
        KeyCommand::Revoke { id } => {
            ctx.block(ctx.store.revoke_key(&ctx.caller, &id))?;
            writeln!(out(), "revoked key {id}")?;
        }
    }
    Ok(())
}

fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

fn domain(ctx: &Ctx, command: DomainCommand) -> Result<()> {
    match command {
        DomainCommand::Create {
            name,
            description,
            embedder,
            openai_model,
            dim,
            chunk_tokens,
            chunk_overlap,
        } => {
            let mut settings =
                DomainSettings::new(spec_for(embedder, openai_model.as_deref(), dim)?);
            settings.chunk_tokens = chunk_tokens;
            settings.chunk_overlap = chunk_overlap;
            let settings = dartmouth_views::new_domain_settings(&name, &settings)?;
            let d =
                ctx.block(
                    ctx.store
                        .create_domain(&ctx.caller, &name, &description, &settings),
                )?;
            ctx.applier().shard(&d)?;
            writeln!(out(), "created domain {name}")?;
        }
        DomainCommand::List { json } => {
            let domains = ctx.block(ctx.store.list_domains(&ctx.caller))?;
            if json {
                let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
                writeln!(out(), "{}", json!({ "domains": names }))?;
            } else {
                for d in domains {
                    writeln!(out(), "{:<24} {}", d.name, d.description)?;
                }
            }
        }
        DomainCommand::Stats { name, json } => {
            let pass = ctx.block(ctx.store.authorize(
                &ctx.caller,
                std::slice::from_ref(&name),
                Role::Read,
            ))?;
            ctx.applier().catch_up(&pass.domains()[0])?;
            let stats = ctx.catalog.get(&name)?.stats();
            let stored = ctx.block(ctx.store.domain_stats(
                &pass,
                &name,
                dartmouth_indexer::shopify::VARIANT_KEY_PREFIX,
            ))?;
            let quarantined = if stored.quarantined > 0 {
                ctx.block(ctx.store.quarantined(&pass, &name))?
            } else {
                Vec::new()
            };
            let last_sync = stored.last_write_at.map(format_millis);
            if json {
                let mut v = serde_json::to_value(&stats)?;
                v["variants"] = json!(stored.keyed);
                v["stored_documents"] = json!(stored.documents);
                v["stored_chunks"] = json!(stored.chunks);
                v["last_seq"] = json!(stored.last_seq);
                v["last_sync"] = json!(last_sync);
                v["quarantined"] = json!(quarantined);
                writeln!(out(), "{v}")?;
            } else {
                writeln!(
                    out(),
                    "{}: {} documents, {} chunks, {} variants, model {} ({} dims), applied sequence {} of {}, last sync {}",
                    stats.domain,
                    stats.documents,
                    stats.chunks,
                    stored.keyed,
                    stats.model.id,
                    stats.model.dim,
                    stats.applied_seq,
                    stored.last_seq,
                    last_sync.as_deref().unwrap_or("never")
                )?;
                for q in &quarantined {
                    writeln!(
                        out(),
                        "quarantined {} (sequence {}, {}): {}",
                        q.external_id,
                        q.seq,
                        format_millis(q.at),
                        q.reason
                    )?;
                }
            }
        }
        DomainCommand::Delete { name } => {
            let deleted = ctx.block(ctx.store.delete_domain(&ctx.caller, &name))?;
            ctx.applier().remove_shard(&deleted)?;
            writeln!(out(), "deleted domain {name}")?;
        }
    }
    Ok(())
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

/// Prints each acknowledgement as it happens (for callers that track what is durable).
struct AckPrinter<'a>(StoreSink<'a>);

impl dartmouth_indexer::Sink for AckPrinter<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn settings(&self) -> &DomainSettings {
        self.0.settings()
    }

    fn acknowledged(&self) -> u64 {
        self.0.acknowledged()
    }

    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> dartmouth_indexer::Result<u64> {
        let seq = self.0.write(model_id, ops)?;
        let mut out = out();
        // A closed stdout must not fail an index job whose writes are already durable.
        let _ = writeln!(out, "ack {seq}").and_then(|()| out.flush());
        Ok(seq)
    }

    fn finish(&self) -> dartmouth_indexer::Result<()> {
        self.0.finish()
    }

    fn reusable(
        &self,
        ids: &[String],
    ) -> dartmouth_indexer::Result<std::collections::HashMap<String, dartmouth_indexer::Reusable>>
    {
        self.0.reusable(ids)
    }

    fn by_key(&self, key: &str) -> dartmouth_indexer::Result<Option<(String, Option<String>)>> {
        self.0.by_key(key)
    }

    fn document_ids(&self) -> dartmouth_indexer::Result<Option<Vec<String>>> {
        self.0.document_ids()
    }

    fn sources(
        &self,
        ids: &[String],
    ) -> dartmouth_indexer::Result<std::collections::HashMap<String, String>> {
        self.0.sources(ids)
    }
}

fn index(ctx: &Ctx, models: &ModelArgs, args: &IndexArgs) -> Result<()> {
    let domain = args.domain.as_str();
    let pass = ctx.block(
        ctx.store
            .authorize(&ctx.caller, &[domain.to_string()], Role::Write),
    )?;
    let target = pass.domains()[0].clone();
    let applier = ctx.applier();
    applier.catch_up(&target)?;
    let shard: Arc<Shard> = applier.shard(&target)?;
    let format: Option<Format> = args.format.as_deref().map(str::parse).transpose()?;
    let (paths, format) = if args.webhook.is_empty() {
        (args.paths.clone(), format)
    } else {
        if !args.paths.is_empty() {
            bail!("give files or --webhook payloads, not both");
        }
        (args.webhook.clone(), Some(Format::ShopifyWebhook))
    };
    let options = SourceOptions {
        format,
        fields: RecordFields {
            id: args.id_field.clone(),
            title: args.title_field.clone(),
            text: args.text_field.clone(),
            url: args.url_field.clone(),
        },
        base_url: args.base_url.clone(),
        topic: args.topic.clone(),
    };
    let open = || SourceReader::open_with(&paths, options.clone());
    let total = count_documents(&paths, format);
    let spec = shard.settings().model.clone();
    let embedder = models.embedder_for(&spec)?;
    let settings = shard.settings();
    let chunker = Chunker::new(
        models.sizer_for(&spec)?,
        settings.chunk_tokens,
        settings.chunk_overlap,
    );
    let progress = Progress::new(total, std::io::stderr().is_terminal());
    let sink = StoreSink {
        applier: &applier,
        pass,
        domain: target,
        shard: Arc::clone(&shard),
    };
    let sink: Arc<dyn dartmouth_indexer::Sink + '_> = if args.print_acks {
        Arc::new(AckPrinter(sink))
    } else {
        Arc::new(sink)
    };
    let job = IndexJob {
        sink,
        embedder: embedder.as_ref(),
        chunker,
        batch_docs: args.batch_docs,
        stop_on_error: false,
        full_sync: args.full_sync,
    };
    if args.strict {
        let failures = job.check(open()?);
        if !failures.is_empty() {
            for f in failures.iter().take(20) {
                eprintln!("failed {f}");
            }
            bail!(
                "--strict: {} records are malformed; nothing was written",
                failures.len()
            );
        }
    }
    let summary = job.run(open()?, &progress)?;
    for skipped in summary.skipped.iter().take(10) {
        eprintln!("skipped {skipped}");
    }
    if summary.skipped.len() > 10 {
        eprintln!(
            "… and {} more documents without text",
            summary.skipped.len() - 10
        );
    }
    for f in summary.failed.iter().take(20) {
        eprintln!("failed {f}");
    }
    if summary.failed_count > 20 {
        eprintln!("… and {} more failed records", summary.failed_count - 20);
    }
    for note in &summary.notes {
        eprintln!("note: {note}");
    }
    if args.json {
        writeln!(out(), "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(
            out(),
            "{}: {} added, {} updated, {} unchanged, {} deleted, {} failed; {} chunks written \
             ({} embedded) in {:.1} s (embedding {:.1} s)",
            summary.domain,
            summary.added,
            summary.updated,
            summary.unchanged,
            summary.deleted,
            summary.failed_count,
            summary.chunks,
            summary.embedded_chunks,
            summary.seconds,
            summary.embed_seconds
        )?;
    }
    if summary.failed_count > 0 {
        bail!(
            "{} records failed (the rest is written; see above)",
            summary.failed_count
        );
    }
    Ok(())
}

/// Counts items for the progress bar (its rate and ETA): lines of JSONL files, one per
/// document file, and for catalogs (a CSV product spans rows) a parse-only pass, which runs at
/// tens of thousands of products a second; `None` for directories.
fn count_documents(paths: &[PathBuf], format: Option<Format>) -> Option<u64> {
    let mut total = 0u64;
    for p in paths {
        if !p.is_file() {
            return None;
        }
        match format.or_else(|| Format::detect(p))? {
            Format::BeirJsonl => total += bytecount_lines(&std::fs::read(p).ok()?),
            Format::Markdown | Format::Html | Format::Text | Format::Pdf => total += 1,
            other => {
                total += SourceReader::open(std::slice::from_ref(p), Some(other))
                    .ok()?
                    .count() as u64;
            }
        }
    }
    Some(total)
}

fn bytecount_lines(bytes: &[u8]) -> u64 {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .count() as u64
}

fn search_cmd(ctx: &Ctx, models: &ModelArgs, args: SearchArgs) -> Result<()> {
    // Only what the caller may read; a domain it may not read is reported as missing.
    let pass = ctx.block(ctx.store.authorize(&ctx.caller, &args.domains, Role::Read))?;
    let reader = ctx.applier().reader(&pass)?;
    let mode: Mode = args.mode.parse()?;
    let fusion = args.fusion.fusion()?;
    let filter = args
        .filter
        .as_deref()
        .map(Filter::parse)
        .transpose()
        .context("--filter")?;
    let spec = reader.model()?.cloned();
    let embedder = match &spec {
        Some(spec) if mode != Mode::Bm25 => Some(models.embedder_for(spec)?),
        _ => None,
    };
    let base = |text: &str| {
        let mut r = SearchRequest::new(text);
        r.mode = mode;
        r.k = args.k;
        r.candidates = args.fusion.candidates;
        r.fusion = fusion;
        r.filter = filter.clone();
        r.facets = args.facets.clone();
        r
    };

    if let Some(path) = &args.queries {
        let queries = read_beir_queries(path)?;
        let vectors = match &embedder {
            Some(e) => {
                let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
                Some(e.embed_batch(&texts)?)
            }
            None => None,
        };
        let mut out = std::io::BufWriter::new(out());
        for (i, q) in queries.iter().enumerate() {
            let mut req = base(&q.text);
            req.collapse = true;
            req.vector =
                vectors
                    .as_ref()
                    .zip(spec.as_ref())
                    .map(|(v, spec)| dartmouth_engine::Embedding {
                        model_id: spec.id.clone(),
                        values: v[i].clone(),
                    });
            let response = reader
                .search(&req)
                .with_context(|| format!("query {}", q.id))?;
            let hits: Vec<_> = response.hits.iter().map(hit_json).collect();
            writeln!(out, "{}", json!({ "query_id": q.id, "hits": hits }))?;
        }
        return Ok(());
    }

    let query = args.query.context("give a query, or --queries FILE")?;
    let mut req = base(&query);
    req.collapse = args.collapse;
    if let Some(e) = &embedder {
        req.vector = Some(e.embed_query(&query)?);
    }
    let response = reader.search(&req)?;
    let mut out = out();
    if args.json {
        let hits: Vec<_> = response.hits.iter().map(hit_json).collect();
        writeln!(
            out,
            "{}",
            json!({
                "hits": hits,
                "filtered_chunks": response.filtered_chunks,
                "filtered_documents": response.filtered_documents,
                "facets": response.facets,
            })
        )?;
        return Ok(());
    }
    for (field, counts) in &response.facets {
        let values: Vec<String> = counts
            .iter()
            .map(|c| format!("{} ({})", c.value, c.count))
            .collect();
        writeln!(out, "facet {field}: {}", values.join(", "))?;
    }
    if response.hits.is_empty() {
        writeln!(out, "no hits")?;
    }
    for (i, h) in response.hits.iter().enumerate() {
        let ranks = [("bm25", h.bm25), ("vector", h.vector)]
            .iter()
            .filter_map(|(n, b)| b.map(|b| format!("{n} #{}", b.rank)))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "{:>2}. {:.4}  {}  [{}/{}]  ({ranks})",
            i + 1,
            h.score,
            h.title,
            h.domain,
            h.chunk_id
        )?;
        let snippet: String = h.text.chars().take(240).collect();
        writeln!(out, "    {}", snippet.replace('\n', " "))?;
    }
    Ok(())
}

fn hit_json(h: &Hit) -> serde_json::Value {
    json!({
        "domain": h.domain,
        "doc_id": h.doc_id,
        "chunk_id": h.chunk_id,
        "score": h.score,
        "title": h.title,
        "text": h.text,
        "url": h.url,
        "heading": h.heading,
        "char_start": h.char_start,
        "char_end": h.char_end,
        "bm25_rank": h.bm25.map(|b| b.rank),
        "bm25_score": h.bm25.map(|b| b.score),
        "vector_rank": h.vector.map(|b| b.rank),
        "vector_score": h.vector.map(|b| b.score),
        "attributes": h.attributes,
        "index_seq": h.index_seq,
    })
}

fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => match run(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{rev}-dirty"),
            _ => rev,
        },
        None => "unknown".into(),
    }
}

fn eval_cmd(
    catalog: &Catalog,
    data_dir: &std::path::Path,
    models: &ModelArgs,
    args: EvalArgs,
) -> Result<()> {
    use dartmouth_eval::{
        EvalOptions, Report, RunConfig, Sweep, evaluate_dataset, load_collection, prepare_domain,
        queries_file, regressions,
    };
    let modes: Vec<Mode> = args
        .modes
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()?;
    let sweeps: Vec<Sweep> = args
        .sweep
        .iter()
        .map(|s| s.parse::<Sweep>().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    if !sweeps.is_empty() && args.tune_on.is_none() {
        bail!("--sweep needs --tune-on SPLIT (tuning on the reported split would overfit it)");
    }
    let options = EvalOptions {
        modes,
        config: RunConfig {
            depth: 100,
            candidates: args.fusion.candidates,
            fusion: args.fusion.fusion()?,
            title_boost: args.title_boost,
        },
        split: args.split.clone(),
        tune_on: args.tune_on.clone(),
        sweeps,
    };
    // Check every dataset's layout before spending minutes on indexing.
    let mut collections = Vec::new();
    for root in &args.datasets {
        collections.push(load_collection(
            root,
            &queries_file(root, &args.split),
            &args.split,
        )?);
    }
    let spec = spec_for(EmbedderKind::Minilm, None, None)?;
    let embedder = models.embedder_for(&spec)?;
    let mut report = Report {
        git_revision: git_revision(),
        model_id: spec.id.clone(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        datasets: Vec::new(),
    };
    for (root, collection) in args.datasets.iter().zip(&collections) {
        let progress = Progress::new(None, std::io::stderr().is_terminal());
        let shard = prepare_domain(
            catalog,
            data_dir,
            collection,
            embedder.as_ref(),
            models.sizer_for(&spec)?,
            &progress,
        )?;
        report
            .datasets
            .push(evaluate_dataset(&shard, root, embedder.as_ref(), &options)?);
    }
    write!(out(), "{}", report.markdown())?;
    if let Some(dir) = &args.out {
        report.write(dir).map_err(anyhow::Error::msg)?;
        eprintln!("wrote {}/report.json, report.md, chart.svg", dir.display());
    }
    if let Some(path) = &args.baseline {
        let baseline =
            std::fs::read(path).with_context(|| format!("baseline {}", path.display()))?;
        let dropped = regressions(&report, &baseline, args.max_drop).map_err(anyhow::Error::msg)?;
        if !dropped.is_empty() {
            for d in &dropped {
                eprintln!("regression: {d}");
            }
            bail!(
                "{} metric(s) dropped more than {} below {}",
                dropped.len(),
                args.max_drop,
                path.display()
            );
        }
        eprintln!(
            "no metric dropped more than {} below {}",
            args.max_drop,
            path.display()
        );
    }
    Ok(())
}

/// `2026-11-24T19:40:45Z` from milliseconds since the epoch (UTC, no time-zone database).
fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
