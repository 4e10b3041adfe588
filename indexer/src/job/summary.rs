//! What a job reports: its progress bar, and its summary.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Reports progress on stderr (hidden when stderr is not a terminal or when disabled).
pub struct Progress {
    pub(super) bar: ProgressBar,
}

impl Progress {
    pub fn new(total_docs: Option<u64>, visible: bool) -> Progress {
        let bar = match total_docs {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        bar.set_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} docs  {per_sec}  ETA {eta}  {msg}",
        ) {
            bar.set_style(style);
        }
        Progress { bar }
    }

    pub fn hidden() -> Progress {
        Progress::new(None, false)
    }
}

/// What a job did. `failed` lists each record that could not be indexed, with its place and
/// reason (the first [`MAX_REPORTED_FAILURES`]; `failed_count` counts them all).
#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
pub struct IndexSummary {
    /// The domain written.
    pub domain: String,
    /// Documents written (added + updated).
    pub documents: usize,
    /// Documents new to the domain.
    pub added: usize,
    /// Documents whose content, attributes or source changed.
    pub updated: usize,
    /// Documents whose content, attributes and source were already stored: not written.
    pub unchanged: usize,
    /// Documents deleted (a delete record, or a full sync's documents no longer mentioned).
    pub deleted: usize,
    /// Updates older than what the domain holds (a late or replayed Shopify delivery, by its
    /// `updated_at`): not applied.
    pub stale: usize,
    /// Records that could not be indexed.
    pub failed_count: usize,
    /// Each failed record's place and reason (`file:line: reason`), the first 1000.
    pub failed: Vec<String>,
    /// Chunks written.
    pub chunks: usize,
    /// Chunks embedded by the model; the rest of the written chunks reused stored vectors.
    pub embedded_chunks: usize,
    /// Wall time of the job.
    pub seconds: f64,
    /// Of which spent embedding.
    pub embed_seconds: f64,
    /// Chunks written per second.
    pub chunks_per_second: f64,
    /// The last acknowledged sequence: pass it as `min_seq` to read what was written.
    pub applied_seq: u64,
    /// The job was stopped before its end (`run_until`): what it wrote stays, no full-sync
    /// deletion ran.
    pub cancelled: bool,
    /// Documents with nothing to index (no title and no text), with where they are.
    pub skipped: Vec<String>,
    /// A full sync that deleted nothing because records failed says so here.
    pub notes: Vec<String>,
}

pub const MAX_REPORTED_FAILURES: usize = 1000;
