//! Domains, principals, grants, keys, reindex and audit: each one service call, then output.

use std::io::Write;

use anyhow::Result;
use dartmouth_domains::{PrincipalKind, Role};
use serde_json::json;

use dartmouth_server::service::{
    AuditInput, DomainInput, DomainUpdate, GrantInput, KeyInput, PrincipalInput, RerankInput,
    format_millis,
};

use super::{
    Ctx, DomainCommand, KeyCommand, PrincipalCommand, ShopifyCommand, SnapshotCommand, now_millis,
    out, parse_duration,
};

/// `--option-name OPTION=FIELD` flags as the map domain settings hold.
fn parse_option_names<'a>(
    pairs: impl Iterator<Item = &'a String>,
) -> Result<std::collections::BTreeMap<String, String>> {
    pairs
        .map(|pair| match pair.split_once('=') {
            Some((from, to)) => Ok((from.trim().to_string(), to.trim().to_string())),
            None => anyhow::bail!("--option-name `{pair}`: expected OPTION=FIELD"),
        })
        .collect()
}

pub(super) fn models(ctx: &Ctx, json: bool) -> Result<()> {
    let models = ctx.svc.list_models(&ctx.caller);
    if json {
        writeln!(out(), "{}", json!({ "models": models }))?;
        return Ok(());
    }
    let mut o = out();
    writeln!(
        o,
        "{:<26} {:<9} {:>4} {:<5} {:>6} {:>8} {:<9} {:<22} prefixes (query | passage)",
        "id", "kind", "dim", "pool", "tokens", "MB", "installed", "measured"
    )?;
    for m in models {
        let c = &m.card;
        let measured: Vec<String> = c.measured.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(
            o,
            "{:<26} {:<9} {:>4} {:<5} {:>6} {:>8} {:<9} {:<22} {:?} | {:?}",
            c.id,
            dartmouth_server::service::snake(&c.kind),
            c.dim.map_or("-".into(), |d| d.to_string()),
            c.pooling
                .as_ref()
                .map_or("-".into(), dartmouth_server::service::snake),
            c.max_tokens,
            m.size_bytes
                .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6)),
            m.installed,
            measured.join(" "),
            c.query_prefix,
            c.passage_prefix
        )?;
    }
    Ok(())
}

pub(super) fn domain(ctx: &Ctx, command: DomainCommand) -> Result<()> {
    match command {
        DomainCommand::Create {
            name,
            description,
            model,
            embedder,
            openai_model,
            dim,
            chunk_tokens,
            chunk_overlap,
            option_names,
            rerank,
        } => {
            let option_names = parse_option_names(option_names.iter())?;
            let input = DomainInput {
                name: name.clone(),
                description,
                model,
                embedder: Some(embedder.as_str().to_string()),
                openai_model,
                dim,
                chunk_tokens: Some(chunk_tokens),
                chunk_overlap: Some(chunk_overlap),
                option_names,
                rerank: rerank.map(|n| RerankInput {
                    top_n: Some(n),
                    ..RerankInput::default()
                }),
            };
            ctx.call(ctx.svc.create_domain(&ctx.caller, input))?;
            writeln!(out(), "created domain {name}")?;
        }
        DomainCommand::List { json } => {
            let domains = ctx.call(ctx.svc.list_domains(&ctx.caller))?;
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
            let s = ctx.call(ctx.svc.domain_stats(&ctx.caller, &name))?;
            if json {
                writeln!(out(), "{}", serde_json::to_string(&s)?)?;
            } else {
                writeln!(
                    out(),
                    "{}: {} documents, {} chunks, {} variants, model {} ({} dims), applied sequence {} of {}, last sync {}",
                    s.shard.domain,
                    s.shard.documents,
                    s.shard.chunks,
                    s.variants,
                    s.shard.model.id,
                    s.shard.model.dim,
                    s.shard.applied_seq,
                    s.last_seq,
                    s.last_sync.as_deref().unwrap_or("never")
                )?;
                for q in &s.quarantined {
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
        DomainCommand::Update {
            name,
            description,
            option_names,
            rerank,
        } => {
            // `--option-name ''` clears them.
            let option_names = option_names
                .map(|pairs| parse_option_names(pairs.iter().filter(|p| !p.is_empty())))
                .transpose()?;
            let update = DomainUpdate {
                model: None,
                rerank: rerank.map(|n| RerankInput {
                    top_n: Some(n),
                    ..RerankInput::default()
                }),
                description,
                option_names,
            };
            ctx.call(ctx.svc.update_domain(&ctx.caller, &name, update))?;
            writeln!(out(), "updated domain {name}")?;
        }
        DomainCommand::Delete { name } => {
            ctx.call(ctx.svc.delete_domain(&ctx.caller, &name))?;
            writeln!(out(), "deleted domain {name}")?;
        }
        DomainCommand::SetModel {
            name,
            model,
            no_wait,
        } => {
            let started = ctx.call(ctx.svc.set_model(&ctx.caller, &name, &model))?;
            writeln!(
                out(),
                "switching domain {name} to {model}: task {}",
                started.task.id
            )?;
            if !no_wait {
                wait_for_switch(ctx, &started.task.id)?;
            }
        }
        DomainCommand::RollbackModel { name, no_wait } => {
            let started = ctx.call(ctx.svc.rollback_model(&ctx.caller, &name))?;
            writeln!(
                out(),
                "rolling domain {name} back: task {}",
                started.task.id
            )?;
            if !no_wait {
                wait_for_switch(ctx, &started.task.id)?;
            }
        }
        DomainCommand::DropOldGeneration { name } => {
            ctx.call(ctx.svc.drop_old_generation(&ctx.caller, &name))?;
            writeln!(out(), "dropped the other generation of domain {name}")?;
        }
    }
    Ok(())
}

/// Follows a switch task to its end, printing its progress now and then.
pub(super) fn shopify(ctx: &Ctx, command: ShopifyCommand) -> Result<()> {
    use dartmouth_server::service::{ConnectInput, SyncInput, TaskStatus};
    match command {
        ShopifyCommand::Connect {
            domain,
            shop,
            token_env,
            api_version,
            every,
            metafields,
            register_webhooks,
        } => {
            let input = ConnectInput {
                shop,
                token_env,
                api_version,
                every,
                metafields,
                register_webhooks,
            };
            let c = ctx.call(ctx.svc.connect_shop(&ctx.caller, &domain, input))?;
            writeln!(
                out(),
                "connected {} (Admin API {}) to domain {domain}{}",
                c.shop,
                c.api_version,
                c.every_ms
                    .map(|e| format!(", synced every {} s by a running server", e / 1000))
                    .unwrap_or_default()
            )?;
            for (topic, outcome) in &c.webhooks {
                writeln!(out(), "webhook {topic}: {outcome}")?;
            }
        }
        ShopifyCommand::Sync { domain, full } => {
            let task = ctx.call(ctx.svc.sync_shop(&ctx.caller, &domain, SyncInput { full }))?;
            eprintln!("syncing {domain}: task {}", task.id);
            loop {
                let t = ctx.call(ctx.svc.task(&ctx.caller, &task.id))?;
                match t.status {
                    TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled => break,
                    _ => std::thread::sleep(std::time::Duration::from_millis(200)),
                }
            }
            let t = ctx.call(ctx.svc.task(&ctx.caller, &task.id))?;
            if let Some(e) = t.error {
                anyhow::bail!("the sync failed: {e}");
            }
            let s = t.summary.unwrap_or_default();
            writeln!(
                out(),
                "synced {domain}: {} added, {} updated, {} unchanged, {} deleted, {} failed in {:.1} s",
                s.added,
                s.updated,
                s.unchanged,
                s.deleted,
                s.failed_count,
                s.seconds
            )?;
            for f in s.failed.iter().take(20) {
                writeln!(out(), "  failed: {f}")?;
            }
        }
        ShopifyCommand::Status { domain, json } => {
            let c = ctx.call(ctx.svc.shop_status(&ctx.caller, &domain))?;
            if json {
                writeln!(out(), "{}", serde_json::to_string_pretty(&c)?)?;
                return Ok(());
            }
            writeln!(
                out(),
                "{} → {domain} (Admin API {}, token from {})",
                c.shop,
                c.api_version,
                c.token_env
            )?;
            let last = &c.state["last"];
            if last.is_object() {
                writeln!(
                    out(),
                    "last run: {} at {}, {} ms: {} added, {} updated, {} unchanged, {} deleted, {} failed",
                    last["kind"].as_str().unwrap_or(""),
                    format_millis(last["started"].as_i64().unwrap_or(0)),
                    last["duration_ms"],
                    last["added"],
                    last["updated"],
                    last["unchanged"],
                    last["deleted"],
                    last["failed"]
                )?;
            } else {
                writeln!(out(), "never synced")?;
            }
            if let Some(e) = c.state["error"].as_str() {
                writeln!(out(), "last error: {e}")?;
            }
            match (c.every_ms, c.next_run) {
                (Some(e), Some(n)) => {
                    writeln!(out(), "every {} s; next run {}", e / 1000, format_millis(n))?
                }
                _ => writeln!(out(), "no schedule")?,
            }
        }
        ShopifyCommand::Disconnect { domain } => {
            ctx.call(ctx.svc.disconnect_shop(&ctx.caller, &domain))?;
            writeln!(
                out(),
                "disconnected the shop of domain {domain}; its documents stay"
            )?;
        }
    }
    Ok(())
}

fn wait_for_switch(ctx: &Ctx, id: &str) -> Result<()> {
    let mut shown = std::time::Instant::now();
    loop {
        let task = ctx.call(ctx.svc.task(&ctx.caller, id))?;
        if let Some(p) = &task.progress
            && shown.elapsed() >= std::time::Duration::from_secs(5)
        {
            eprintln!("{} of {} chunks embedded", p.embedded, p.chunks);
            shown = std::time::Instant::now();
        }
        match task.status {
            dartmouth_server::service::TaskStatus::Succeeded => {
                writeln!(out(), "the new generation serves")?;
                return Ok(());
            }
            dartmouth_server::service::TaskStatus::Failed => {
                anyhow::bail!("the switch failed: {}", task.error.unwrap_or_default())
            }
            dartmouth_server::service::TaskStatus::Canceled => {
                anyhow::bail!("the switch was cancelled")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}

pub(super) fn principal(ctx: &Ctx, command: PrincipalCommand) -> Result<()> {
    match command {
        PrincipalCommand::Create { name, kind } => {
            let input = PrincipalInput {
                name,
                kind: PrincipalKind::parse(&kind)?,
            };
            let p = ctx.call(ctx.svc.create_principal(&ctx.caller, input))?;
            writeln!(out(), "created {} {}", p.kind.as_str(), p.name)?;
        }
        PrincipalCommand::List { json } => {
            let ps = ctx.call(ctx.svc.list_principals(&ctx.caller))?;
            let grants = ctx.call(ctx.svc.list_grants(&ctx.caller))?;
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
            ctx.call(ctx.svc.add_member(&ctx.caller, &group, &member))?;
            writeln!(out(), "added {member} to {group}")?;
        }
        PrincipalCommand::RemoveMember { group, member } => {
            ctx.call(ctx.svc.remove_member(&ctx.caller, &group, &member))?;
            writeln!(out(), "removed {member} from {group}")?;
        }
        PrincipalCommand::Members { group, json } => {
            let members = ctx.call(ctx.svc.members(&ctx.caller, &group))?;
            if json {
                writeln!(out(), "{}", json!({ "group": group, "members": members }))?;
            } else {
                for m in members {
                    writeln!(out(), "{m}")?;
                }
            }
        }
        PrincipalCommand::Delete { name } => {
            ctx.call(ctx.svc.delete_principal(&ctx.caller, &name))?;
            writeln!(out(), "deleted principal {name}")?;
        }
    }
    Ok(())
}

pub(super) fn grant(ctx: &Ctx, principal: String, domain: String, role: &str) -> Result<()> {
    let input = GrantInput {
        principal,
        domain,
        role: Role::parse(role)?,
    };
    let g = ctx.call(ctx.svc.grant(&ctx.caller, input))?;
    writeln!(
        out(),
        "granted {} {} on {}",
        g.principal,
        g.role.as_str(),
        g.domain
    )?;
    Ok(())
}

pub(super) fn revoke(ctx: &Ctx, principal: &str, domain: &str) -> Result<()> {
    ctx.call(ctx.svc.revoke_grant(&ctx.caller, principal, domain))?;
    writeln!(out(), "revoked {principal}'s grant on {domain}")?;
    Ok(())
}

pub(super) fn key(ctx: &Ctx, command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Create {
            principal,
            domains,
            expires_in,
            role,
        } => {
            let input = KeyInput {
                principal,
                domains: (!domains.is_empty()).then_some(domains),
                expires_in: expires_in
                    .as_deref()
                    .map(parse_duration)
                    .transpose()?
                    .map(|ms| (ms / 1000).max(1) as u64),
                role: role.as_deref().map(Role::parse).transpose()?,
            };
            let made = ctx.call(ctx.svc.create_key(&ctx.caller, input))?;
            eprintln!(
                "created key {} for {}; the secret below is shown once, store it now",
                made.key.id, made.key.principal
            );
            writeln!(out(), "{}", made.secret)?;
        }
        KeyCommand::List { json } => {
            let keys = ctx.call(ctx.svc.list_keys(&ctx.caller))?;
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
            ctx.call(ctx.svc.revoke_key(&ctx.caller, &id))?;
            writeln!(out(), "revoked key {id}")?;
        }
    }
    Ok(())
}

pub(super) fn reindex(ctx: &Ctx, domain: &str) -> Result<()> {
    let r = ctx.call(ctx.svc.reindex(&ctx.caller, domain))?;
    writeln!(
        out(),
        "rebuilt {} from the store: {} documents, {} chunks, sequence {}, {:.1} s",
        r.domain,
        r.documents,
        r.chunks,
        r.seq,
        r.seconds
    )?;
    Ok(())
}

pub(super) fn snapshot(ctx: &Ctx, command: SnapshotCommand) -> Result<()> {
    use dartmouth_server::service::{SnapshotOut, SnapshotSource};
    let show = |s: &SnapshotOut, json: bool| -> Result<()> {
        let mut o = out();
        if json {
            writeln!(o, "{}", serde_json::to_string(s)?)?;
            return Ok(());
        }
        let mib = s.bytes as f64 / (1 << 20) as f64;
        writeln!(
            o,
            "{}  {}  {} store, schema {}  {mib:.1} MiB{}",
            s.name,
            s.created_at,
            s.backend,
            s.schema_version,
            if s.encrypted { "  encrypted" } else { "" }
        )?;
        for d in &s.domains {
            match d.shard_seq {
                Some(seq) => writeln!(o, "  {}: store at {}, shard at {seq}", d.name, d.store_seq)?,
                None => writeln!(
                    o,
                    "  {}: store at {}, no shard (rebuilt from the store)",
                    d.name, d.store_seq
                )?,
            }
        }
        Ok(())
    };
    match command {
        SnapshotCommand::Create {
            name,
            encrypt_key_env,
            json,
        } => show(
            &ctx.call(
                ctx.svc
                    .create_snapshot(&ctx.caller, name, encrypt_key_env.is_some()),
            )?,
            json,
        ),
        SnapshotCommand::List { json } => {
            for s in ctx.call(ctx.svc.list_snapshots(&ctx.caller))? {
                show(&s, json)?;
            }
            Ok(())
        }
        SnapshotCommand::Restore { snapshot, json } => {
            // A name (a snapshot of that name in the snapshot directory comes first), or a
            // path: anything with a separator.
            let source = if snapshot.contains('/') {
                SnapshotSource::Dir(std::path::PathBuf::from(&snapshot))
            } else {
                SnapshotSource::Named(snapshot)
            };
            let s = ctx.call(ctx.svc.restore_snapshot(&ctx.caller, source))?;
            if !json {
                writeln!(out(), "restored; every shard has caught up with the store:")?;
            }
            show(&s, json)
        }
    }
}

pub(super) fn audit(ctx: &Ctx, query: AuditInput, json: bool) -> Result<()> {
    // Pages of at most 1 000, newest first, each ending before the oldest of the last (the
    // boundary's millisecond again, its entries told apart by id).
    let wanted = query.limit.unwrap_or(usize::MAX);
    let mut entries: Vec<dartmouth_domains::AuditEntry> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut until = query.until;
    loop {
        let page = ctx.call(ctx.svc.audit_query(
            &ctx.caller,
            AuditInput {
                until,
                limit: Some(1000),
                ..query.clone()
            },
        ))?;
        let full = page.len() == 1000;
        let oldest = page.last().map(|e| e.at);
        let before = entries.len();
        entries.extend(page.into_iter().filter(|e| seen.insert(e.id)));
        if !full || entries.len() == before || entries.len() >= wanted {
            break;
        }
        until = oldest.map(|at| at + 1);
    }
    entries.truncate(wanted);
    entries.reverse();
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
