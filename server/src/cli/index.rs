//! `dartmouth index`: files into a domain through the service (the store first, then the
//! shard), with a progress bar and a summary.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Result, bail};
use dartmouth_indexer::{Format, Progress, RecordFields, SourceOptions, SourceReader};

use dartmouth_server::service::FileIndex;

use super::{Ctx, IndexArgs, out};

pub(super) fn index(ctx: &Ctx, args: &IndexArgs) -> Result<()> {
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
    let total = count_documents(&paths, format);
    let on_ack: Option<Box<dyn Fn(u64) + Send + Sync>> = if args.print_acks {
        Some(Box::new(|seq| {
            let mut out = out();
            // A closed stdout must not fail an index job whose writes are already durable.
            let _ = writeln!(out, "ack {seq}").and_then(|()| out.flush());
        }))
    } else {
        None
    };
    let files = FileIndex {
        paths,
        options,
        batch_docs: args.batch_docs,
        full_sync: args.full_sync,
        strict: args.strict,
        progress: Progress::new(total, std::io::stderr().is_terminal()),
        on_ack,
    };
    let summary = ctx.call(ctx.svc.index_files(&ctx.caller, &args.domain, files))?;
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

/// `dartmouth delete --domain D IDS… | --filter F`.
pub(super) fn delete(
    ctx: &Ctx,
    domain: &str,
    ids: Vec<String>,
    filter: Option<String>,
) -> Result<()> {
    let input = dartmouth_server::service::DeleteInput { ids, filter };
    let done = ctx.call(ctx.svc.delete_documents(&ctx.caller, domain, input))?;
    writeln!(
        out(),
        "deleted {} documents from {} (sequence {})",
        done.deleted,
        done.domain,
        done.seq
    )?;
    Ok(())
}
