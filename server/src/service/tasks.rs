//! Asynchronous tasks: a large upload answers at once with a task id; the task runs its
//! indexing job in the background (one at a time per node, the rest queued), reports each
//! acknowledged batch, and can be cancelled between batches. What a task acknowledged stays
//! written; a cancelled or failed task never runs a full sync's deletions. A model switch
//! (`switch.rs`) runs as a task of its own kind beside them, with its progress in chunks.
//!
//! Tasks live in this node's memory: a restart forgets them (the batches they acknowledged
//! are in the store). Only their creator and superusers see them; anyone else gets the same
//! 404 as for a task that does not exist.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dartmouth_domains::{Caller, Domain, Role, now_millis};
use dartmouth_indexer::{IndexSummary, Item};
use serde::Serialize;

use super::{Service, format_millis};
use crate::error::{ApiError, ApiResult, Code};

/// Finished tasks kept for their status (the oldest are forgotten first).
const KEEP_FINISHED: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Canceled => "canceled",
        }
    }

    fn finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled
        )
    }
}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskKind {
    /// An indexing job (uploads): one at a time per node.
    Index,
    /// Building a domain's new embedding generation (`switch.rs`).
    Switch,
}

/// A model switch's progress: the domain's chunks, and how many have the new model's vectors.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct SwitchProgress {
    /// Those with the new model's vectors so far.
    pub embedded: u64,
    /// The domain's chunks.
    pub chunks: u64,
}

/// A task as callers see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Task)]
pub struct TaskOut {
    /// Its id (`GET /v1/tasks/{id}`).
    pub id: String,
    /// `index` or `switch-model`.
    pub kind: String,
    /// The domain it writes.
    pub domain: String,
    /// Where it is: queued, running, succeeded, failed or canceled.
    pub status: TaskStatus,
    /// The files it indexes.
    pub files: Vec<String>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it started running (RFC 3339, UTC); `null` while queued.
    pub started_at: Option<String>,
    /// When it ended (RFC 3339, UTC); `null` until then.
    pub finished_at: Option<String>,
    /// Batches the store acknowledged so far.
    pub batches: u64,
    /// The last acknowledged batch's sequence: pass it as `min_seq` to read what the task wrote (0
    /// before the first, and for a model switch).
    pub seq: u64,
    /// What the job did, once it finished (also when cancelled: what was written before).
    pub summary: Option<IndexSummary>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// A model switch: how far it has come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<SwitchProgress>,
    /// What the task is waiting for, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub(super) struct Task {
    id: String,
    kind: TaskKind,
    /// Its creator's principal (empty: started by the node itself, seen by superusers only).
    owner: String,
    /// Who created it: authorized again, for writing, when an indexing task leaves the queue.
    caller: Option<Caller>,
    domain: String,
    files: Vec<String>,
    created_at: i64,
    cancel: AtomicBool,
    batches: AtomicU64,
    seq: AtomicU64,
    embedded: AtomicU64,
    chunks: AtomicU64,
    state: Mutex<TaskState>,
}

struct TaskState {
    status: TaskStatus,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    summary: Option<IndexSummary>,
    error: Option<String>,
    note: Option<String>,
}

impl Task {
    pub(super) fn new(
        kind: TaskKind,
        owner: &str,
        caller: Option<Caller>,
        domain: &str,
        files: Vec<String>,
    ) -> Arc<Task> {
        Arc::new(Task {
            id: task_id(),
            kind,
            owner: owner.to_string(),
            caller,
            domain: domain.to_string(),
            files,
            created_at: now_millis(),
            cancel: AtomicBool::new(false),
            batches: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            embedded: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            state: Mutex::new(TaskState {
                status: TaskStatus::Queued,
                started_at: None,
                finished_at: None,
                summary: None,
                error: None,
                note: None,
            }),
        })
    }

    pub(super) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    pub(super) fn note(&self, note: &str) {
        self.set(|s| s.note = Some(note.to_string()));
    }

    /// A switch's progress, as counted in the store.
    pub(super) fn progress(&self, embedded: u64, chunks: u64) {
        self.embedded.store(embedded, Ordering::Release);
        self.chunks.store(chunks, Ordering::Release);
    }

    /// A switch batch stored `chunks` more vectors.
    pub(super) fn advance(&self, chunks: u64) {
        self.batches.fetch_add(1, Ordering::AcqRel);
        let done = self.embedded.fetch_add(chunks, Ordering::AcqRel) + chunks;
        self.chunks.fetch_max(done, Ordering::AcqRel);
    }

    /// How a switch task ended.
    pub(super) fn finish(&self, outcome: Result<super::switch::SwitchEnd, ApiError>) {
        use super::switch::SwitchEnd;
        self.set(|s| {
            s.finished_at = Some(now_millis());
            s.note = None;
            match outcome {
                Ok(SwitchEnd::Serving) => s.status = TaskStatus::Succeeded,
                Ok(SwitchEnd::Cancelled) => s.status = TaskStatus::Canceled,
                Ok(SwitchEnd::Abandoned) => {
                    s.status = TaskStatus::Failed;
                    s.error = Some(
                        "the generation was dropped or replaced by another switch meanwhile".into(),
                    );
                }
                Err(e) => {
                    s.status = TaskStatus::Failed;
                    s.error = Some(e.message);
                }
            }
        });
    }

    pub(super) fn out(&self) -> TaskOut {
        let state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        TaskOut {
            id: self.id.clone(),
            kind: match self.kind {
                TaskKind::Index => "index",
                TaskKind::Switch => "switch-model",
            }
            .into(),
            domain: self.domain.clone(),
            status: state.status,
            files: self.files.clone(),
            created_at: format_millis(self.created_at),
            started_at: state.started_at.map(format_millis),
            finished_at: state.finished_at.map(format_millis),
            batches: self.batches.load(Ordering::Acquire),
            seq: self.seq.load(Ordering::Acquire),
            summary: state.summary.clone(),
            error: state.error.clone(),
            progress: (self.kind == TaskKind::Switch).then(|| SwitchProgress {
                embedded: self.embedded.load(Ordering::Acquire),
                chunks: self.chunks.load(Ordering::Acquire),
            }),
            note: state.note.clone(),
        }
    }

    /// Its creator's principal (through a credential not restricted away from its domain),
    /// or a superuser.
    fn visible_to(&self, caller: &Caller) -> bool {
        caller.is_superuser()
            || (!self.owner.is_empty()
                && self.owner == caller.name()
                && caller.only().is_none_or(|only| only.contains(&self.domain)))
    }

    fn set(&self, f: impl FnOnce(&mut TaskState)) {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        f(&mut state);
    }

    /// Queued → running, unless it was cancelled while queued (one lock: a cancel cannot slip
    /// in between).
    pub(super) fn start(&self) -> bool {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if state.status != TaskStatus::Queued {
            return false;
        }
        state.status = TaskStatus::Running;
        state.started_at = Some(now_millis());
        true
    }

    fn status(&self) -> TaskStatus {
        match self.state.lock() {
            Ok(s) => s.status,
            Err(p) => p.into_inner().status,
        }
    }
}

/// Tasks by id, and their ids oldest first.
type Table = (HashMap<String, Arc<Task>>, VecDeque<String>);

/// What a queued task will index.
pub(super) type Items = Box<dyn Iterator<Item = dartmouth_indexer::Result<Item>> + Send>;

/// A task waiting for its turn, with what it will index.
struct Pending {
    task: Arc<Task>,
    domain: Domain,
    items: Items,
    full_sync: bool,
    then: Option<Then>,
}

/// What runs after a task's job, with its outcome, which it may turn into another (a shop sync
/// records its state, and fails when the shop failed).
pub(super) type Then =
    Box<dyn FnOnce(&Service, ApiResult<IndexSummary>) -> ApiResult<IndexSummary> + Send>;

/// This node's tasks, newest last; one runs at a time, in the order they were created.
pub struct Tasks {
    table: Mutex<Table>,
    /// Tasks not yet started, oldest first. Each task created spawns one runner; a runner,
    /// once it holds `running`, takes the oldest pending task (not necessarily the one it was
    /// spawned for: runners are not polled in the order they were spawned, tasks must be run
    /// in the order they were created).
    pending: Mutex<VecDeque<Pending>>,
    running: Arc<tokio::sync::Semaphore>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            table: Mutex::new((HashMap::new(), VecDeque::new())),
            pending: Mutex::new(VecDeque::new()),
            running: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

impl Tasks {
    /// Adds a task that runs outside the indexing queue (a model switch).
    pub(super) fn register(&self, task: Arc<Task>) {
        self.insert(task);
    }

    fn insert(&self, task: Arc<Task>) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let (by_id, order) = &mut *table;
        order.push_back(task.id.clone());
        by_id.insert(task.id.clone(), task);
        // Forget the oldest finished tasks beyond the allowance.
        let finished = order
            .iter()
            .filter(|id| by_id.get(*id).is_some_and(|t| t.status().finished()))
            .count();
        let mut excess = finished.saturating_sub(KEEP_FINISHED);
        order.retain(|id| {
            if excess > 0 && by_id.get(id).is_some_and(|t| t.status().finished()) {
                excess -= 1;
                by_id.remove(id);
                false
            } else {
                true
            }
        });
    }

    /// The task if `caller` may see it (its creator, or a superuser).
    fn visible(&self, caller: &Caller, id: &str) -> ApiResult<Arc<Task>> {
        let table = self
            .table
            .lock()
            .map_err(|_| ApiError::internal("task table poisoned"))?;
        table
            .0
            .get(id)
            .filter(|t| t.visible_to(caller))
            .cloned()
            .ok_or_else(|| missing_task(id))
    }

    fn enqueue(&self, pending: Pending) {
        match self.pending.lock() {
            Ok(mut q) => q.push_back(pending),
            Err(p) => p.into_inner().push_back(pending),
        }
    }

    fn next_pending(&self) -> Option<Pending> {
        match self.pending.lock() {
            Ok(mut q) => q.pop_front(),
            Err(p) => p.into_inner().pop_front(),
        }
    }

    fn unfinished(&self) -> usize {
        self.table
            .lock()
            .map(|t| t.0.values().filter(|t| !t.status().finished()).count())
            .unwrap_or(0)
    }

    fn list(&self, caller: &Caller) -> Vec<TaskOut> {
        let Ok(table) = self.table.lock() else {
            return Vec::new();
        };
        let (by_id, order) = &*table;
        order
            .iter()
            .rev()
            .filter_map(|id| by_id.get(id))
            .filter(|t| t.visible_to(caller))
            .map(|t| t.out())
            .collect()
    }
}

/// Tasks queued or running at once on a node (each holds its upload in memory).
const MAX_UNFINISHED: usize = 16;

impl Service {
    /// A task the caller may see: its creator (or a superuser) that may still read its domain;
    /// anything else is the 404 of a missing task.
    async fn visible_task(&self, caller: &Caller, id: &str, role: Role) -> ApiResult<Arc<Task>> {
        let task = self.tasks.visible(caller, id)?;
        match self
            .authorize(caller, std::slice::from_ref(&task.domain), role)
            .await
        {
            Ok(_) => Ok(task),
            Err(_) => Err(missing_task(id)),
        }
    }

    pub async fn task(&self, caller: &Caller, id: &str) -> ApiResult<TaskOut> {
        Ok(self.visible_task(caller, id, Role::Read).await?.out())
    }

    /// The caller's tasks on domains it may still read, newest first.
    pub async fn list_tasks(&self, caller: &Caller) -> ApiResult<Vec<TaskOut>> {
        let readable: std::collections::HashSet<String> = self
            .store
            .accessible(caller, Role::Read)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let mut tasks = self.tasks.list(caller);
        tasks.retain(|t| readable.contains(&t.domain));
        Ok(tasks)
    }

    /// Asks a queued or running task to stop (between batches); a finished task is returned
    /// as it is. Needs write on its domain (a read-only or delegated credential cannot).
    pub async fn cancel_task(&self, caller: &Caller, id: &str) -> ApiResult<TaskOut> {
        let task = self.visible_task(caller, id, Role::Write).await?;
        task.cancel.store(true, Ordering::Release);
        task.set(|s| {
            if s.status == TaskStatus::Queued {
                s.status = TaskStatus::Canceled;
                s.finished_at = Some(now_millis());
            }
        });
        Ok(task.out())
    }

    /// Runs an indexing job over `items` into `domain` as a task of `caller`; returns it
    /// queued. When it leaves the queue the caller is authorized again (a grant revoked or a
    /// principal deleted meanwhile fails it).
    pub(super) fn spawn_index_task(
        self: &Arc<Self>,
        caller: &Caller,
        domain: Domain,
        files: Vec<String>,
        items: impl Iterator<Item = dartmouth_indexer::Result<Item>> + Send + 'static,
        full_sync: bool,
    ) -> ApiResult<TaskOut> {
        self.spawn_index_task_with(
            caller,
            domain,
            files,
            |_| Box::new(items) as Items,
            full_sync,
            None,
        )
    }

    /// `spawn_index_task` whose items are made knowing their task (to see it cancelled while
    /// they wait), with something to run after the job.
    pub(super) fn spawn_index_task_with(
        self: &Arc<Self>,
        caller: &Caller,
        domain: Domain,
        files: Vec<String>,
        items: impl FnOnce(Arc<Task>) -> Items,
        full_sync: bool,
        then: Option<Then>,
    ) -> ApiResult<TaskOut> {
        if self.tasks.unfinished() >= MAX_UNFINISHED {
            return Err(ApiError::new(
                Code::Unavailable,
                format!(
                    "async: {MAX_UNFINISHED} tasks are queued or running on this node; retry when one has finished"
                ),
            ));
        }
        let task = Task::new(
            TaskKind::Index,
            caller.name(),
            Some(caller.clone()),
            &domain.name,
            files,
        );
        self.tasks.insert(Arc::clone(&task));
        let queued = task.out();
        let items = items(Arc::clone(&task));
        self.tasks.enqueue(Pending {
            task,
            domain,
            items,
            full_sync,
            then,
        });
        let svc = Arc::clone(self);
        tokio::spawn(async move {
            let Ok(_permit) = Arc::clone(&svc.tasks.running).acquire_owned().await else {
                return;
            };
            // One runner per task created, each taking the oldest: every task runs once, in
            // the order created.
            if let Some(next) = svc.tasks.next_pending() {
                svc.run_task(next).await;
            }
        });
        Ok(queued)
    }

    /// Runs one task that has left the queue (unless it was cancelled while queued).
    /// Runs a task's `then` off the async workers.
    async fn then(self: &Arc<Self>, then: Option<Then>, outcome: ApiResult<IndexSummary>) {
        if let Some(then) = then {
            let _ = self.blocking(move |s| then(s, outcome)).await;
        }
    }

    async fn run_task(self: &Arc<Self>, next: Pending) {
        let Pending {
            task,
            domain,
            items,
            full_sync,
            then,
        } = next;
        if !task.start() {
            // Cancelled while queued: already marked.
            self.then(
                then,
                Err(ApiError::new(Code::Conflict, "cancelled while queued")),
            )
            .await;
            return;
        }
        let Some(caller) = task.caller.clone() else {
            return;
        };
        let pass = match self
            .authorize(&caller, std::slice::from_ref(&domain.name), Role::Write)
            .await
        {
            Ok(pass) => pass,
            Err(e) => {
                self.then(then, Err(e.clone())).await;
                task.set(|s| {
                    s.status = TaskStatus::Failed;
                    s.finished_at = Some(now_millis());
                    s.error = Some(e.message);
                });
                return;
            }
        };
        let running = Arc::clone(&task);
        let outcome = self
            .blocking(move |s| {
                let on_ack = |seq: u64| {
                    running.batches.fetch_add(1, Ordering::AcqRel);
                    running.seq.store(seq, Ordering::Release);
                };
                let outcome = super::opened(&pass, &domain.name).and_then(|target| {
                    s.run_job(
                        pass,
                        target,
                        items,
                        full_sync,
                        Some(&on_ack),
                        Some(&running.cancel),
                    )
                });
                // Before the task shows as finished.
                match then {
                    Some(then) => then(s, outcome),
                    None => outcome,
                }
            })
            .await;
        task.set(|s| {
            s.finished_at = Some(now_millis());
            match outcome {
                Ok(summary) => {
                    // Cancelled only if the job stopped for it (a cancel that came after
                    // the end changes nothing).
                    s.status = if summary.cancelled {
                        TaskStatus::Canceled
                    } else {
                        TaskStatus::Succeeded
                    };
                    s.summary = Some(summary);
                }
                Err(e) => {
                    s.status = TaskStatus::Failed;
                    s.error = Some(e.message);
                }
            }
        });
    }
}

fn missing_task(id: &str) -> ApiError {
    ApiError::new(
        Code::NotFound,
        format!(
            "task `{}` does not exist",
            dartmouth_domains::names::shown(id)
        ),
    )
}

/// A new task's id: `t` and 16 hex digits.
fn task_id() -> String {
    format!("t{:016x}", rand::random::<u64>())
}
