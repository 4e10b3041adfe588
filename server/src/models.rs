//! Which embedder serves a domain (from the model its settings record) and which reranker
//! serves a request: the catalogue's local models from the models directory, loaded on first
//! use (a node loads only what its domains and requests use), or a remote embedder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use dartmouth_engine::embed::{
    CrossEncoder, FakeEmbedder, FilesState, ModelCard, ModelKind, OnnxEmbedder, OnnxOptions,
    OpenAiEmbedder, Reranker, model_card, model_cards,
};
use dartmouth_engine::{Embedder, ModelSpec};
use dartmouth_indexer::Sizer;
use serde::Serialize;

/// Where the local models and runtime live, and how to reach a remote embedder.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Directory holding one directory per catalogue model (made by scripts/setup-model.sh).
    #[arg(long, env = "DARTMOUTH_MODELS_DIR", global = true)]
    pub models_dir: Option<PathBuf>,
    /// Path of libonnxruntime.so.
    #[arg(long = "ort-lib", env = "ORT_DYLIB_PATH", global = true)]
    pub ort_library: Option<PathBuf>,
    /// Base URL of an OpenAI-compatible embeddings API (for domains created with --embedder openai).
    #[arg(long, env = "DARTMOUTH_OPENAI_URL", global = true)]
    pub openai_url: Option<String>,
    /// API key for that endpoint.
    #[arg(
        long,
        env = "DARTMOUTH_OPENAI_KEY",
        global = true,
        hide_env_values = true
    )]
    pub openai_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbedderKind {
    /// A model of the catalogue on ONNX Runtime, local (`--model`, default all-minilm-l6-v2).
    Local,
    /// The same as `local` with all-minilm-l6-v2 (the name before the catalogue).
    Minilm,
    /// An OpenAI-compatible /v1/embeddings endpoint.
    Openai,
    /// A deterministic hashing embedder, for tests and demos without the model.
    Fake,
}

impl EmbedderKind {
    /// The name a domain's `embedder` takes (`DomainInput::embedder`).
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedderKind::Local => "local",
            EmbedderKind::Minilm => "minilm",
            EmbedderKind::Openai => "openai",
            EmbedderKind::Fake => "fake",
        }
    }

    pub fn parse(name: &str) -> Option<EmbedderKind> {
        [
            EmbedderKind::Local,
            EmbedderKind::Minilm,
            EmbedderKind::Openai,
            EmbedderKind::Fake,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// The embedding model new domains get.
pub const DEFAULT_MODEL: &str = "all-minilm-l6-v2";
/// The reranker a request gets when it names none.
pub const DEFAULT_RERANKER: &str = "ms-marco-minilm-l-12-v2";
pub const MINILM_DIM: usize = 384;
const FAKE_PREFIX: &str = "fake-hash-";
const OPENAI_PREFIX: &str = "openai-compatible:";

/// Why a model cannot be used: the caller's fault (an id not in the catalogue, a reranker
/// where an embedder belongs) or the node's (files missing or damaged).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    NotInstalled(String),
}

/// Tokens a (query, passage) pair is cut to before the cross-encoder reads it: chunks are at
/// most 256 tokens, and a pair's cost grows with its length (`bench rerank`).
pub const RERANK_PAIR_TOKENS: usize = 320;

/// Why a reranker cannot serve: the id (the caller's or the node's, see [`ModelError`]), or
/// loading it failed.
#[derive(Debug, thiserror::Error)]
pub enum RerankerError {
    #[error(transparent)]
    Model(ModelError),
    #[error("{0}")]
    Load(anyhow::Error),
}

/// A catalogue model as `models list` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Model)]
pub struct ModelInfo {
    #[serde(flatten)]
    pub card: ModelCard,
    /// `ok`, `missing` or `damaged` (files against their sha256), on this node.
    #[schema(value_type = String)]
    pub installed: &'static str,
    /// Bytes of its files on this node.
    pub size_bytes: Option<u64>,
    /// Whether this node has it loaded now.
    pub loaded: bool,
}

/// The local models a process has loaded, by catalogue id (one set of sessions per model).
#[derive(Default)]
pub struct Loaded {
    embedders: Mutex<HashMap<String, Arc<dyn Embedder>>>,
    rerankers: Mutex<HashMap<String, Arc<dyn Reranker>>>,
}

impl Loaded {
    /// With `reranker` already loaded under `id` (a seam for tests: they keep the other `Arc`
    /// and look at what it was given).
    pub fn with_reranker(self, id: &str, reranker: Arc<dyn Reranker>) -> Self {
        if let Ok(mut map) = self.rerankers.lock() {
            map.insert(id.to_string(), reranker);
        }
        self
    }
}

impl ModelArgs {
    pub fn models_dir(&self) -> PathBuf {
        locate(self.models_dir.as_deref(), "models")
    }

    pub fn model_dir(&self, card: &ModelCard) -> PathBuf {
        self.models_dir().join(&card.id)
    }

    pub fn ort_library(&self) -> PathBuf {
        locate(
            self.ort_library.as_deref(),
            "models/onnxruntime/libonnxruntime.so",
        )
    }

    /// The catalogue entry for `id` if it is a local model of `kind` installed on this node
    /// (files present, each with its sha256).
    pub fn installed(&self, id: &str, kind: ModelKind) -> Result<&'static ModelCard, ModelError> {
        let card = model_card(id).filter(|c| c.kind == kind).ok_or_else(|| {
            let known: Vec<&str> = model_cards()
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| c.id.as_str())
                .collect();
            ModelError::Unknown(format!(
                "`{id}` is not a {} model of the catalogue (one of {}; `dartmouth models list`)",
                match kind {
                    ModelKind::Embedding => "embedding",
                    ModelKind::Reranker => "reranking",
                },
                known.join(", ")
            ))
        })?;
        match card.check_files(&self.model_dir(card)) {
            FilesState::Ok => Ok(card),
            FilesState::Missing(why) => Err(ModelError::NotInstalled(format!(
                "`{}` is not installed on this node: missing {why}",
                card.id
            ))),
            FilesState::Damaged(why) => Err(ModelError::NotInstalled(format!(
                "`{}` fails its file check on this node: {why}",
                card.id
            ))),
        }
    }

    /// The catalogue with what this node has of each model.
    pub fn list(&self, loaded: &Loaded) -> Vec<ModelInfo> {
        let embedders = loaded
            .embedders
            .lock()
            .map(|m| m.keys().cloned().collect::<Vec<_>>());
        let rerankers = loaded
            .rerankers
            .lock()
            .map(|m| m.keys().cloned().collect::<Vec<_>>());
        let held: Vec<String> = embedders
            .unwrap_or_default()
            .into_iter()
            .chain(rerankers.unwrap_or_default())
            .collect();
        model_cards()
            .iter()
            .map(|card| {
                let dir = self.model_dir(card);
                ModelInfo {
                    installed: match card.check_files(&dir) {
                        FilesState::Ok => "ok",
                        FilesState::Missing(_) => "missing",
                        FilesState::Damaged(_) => "damaged",
                    },
                    size_bytes: card.size_on_disk(&dir),
                    loaded: held.iter().any(|id| card.answers_to(id)),
                    card: card.clone(),
                }
            })
            .collect()
    }

    /// The model spec a new domain records.
    pub fn spec_for(
        &self,
        kind: EmbedderKind,
        model: Option<&str>,
        openai_model: Option<&str>,
        dim: Option<usize>,
    ) -> Result<ModelSpec, ModelError> {
        let unknown = |m: &str| ModelError::Unknown(m.to_string());
        Ok(match kind {
            EmbedderKind::Local | EmbedderKind::Minilm => {
                let id = model.unwrap_or(DEFAULT_MODEL);
                if kind == EmbedderKind::Minilm && model.is_some_and(|m| m != DEFAULT_MODEL) {
                    return Err(unknown(
                        "embedder minilm is all-minilm-l6-v2; for another model leave out the embedder",
                    ));
                }
                let card = self.installed(id, ModelKind::Embedding)?;
                ModelSpec {
                    id: card.id.clone(),
                    dim: card.dim.unwrap_or(MINILM_DIM),
                }
            }
            EmbedderKind::Fake => FakeEmbedder::new(dim.unwrap_or(MINILM_DIM)).spec().clone(),
            EmbedderKind::Openai => {
                let model = openai_model
                    .or(model)
                    .ok_or_else(|| unknown("embedder openai needs openai_model"))?;
                let dim = dim.ok_or_else(|| {
                    unknown("embedder openai needs dim (the vector size the model returns)")
                })?;
                ModelSpec {
                    id: format!("{OPENAI_PREFIX}{model}"),
                    dim,
                }
            }
        })
    }

    /// The embedder that produced `spec`'s vectors, loaded once per process.
    pub fn embedder_for(&self, loaded: &Loaded, spec: &ModelSpec) -> Result<Arc<dyn Embedder>> {
        let mut map = loaded
            .embedders
            .lock()
            .map_err(|_| anyhow::anyhow!("embedder registry poisoned"))?;
        if let Some(e) = map.get(&spec.id) {
            return Ok(Arc::clone(e));
        }
        let e = self.load_embedder(spec)?;
        map.insert(spec.id.clone(), Arc::clone(&e));
        Ok(e)
    }

    fn load_embedder(&self, spec: &ModelSpec) -> Result<Arc<dyn Embedder>> {
        if let Some(card) = model_card(&spec.id) {
            let options = OnnxOptions::new(card, self.model_dir(card), self.ort_library());
            let embedder = OnnxEmbedder::load(&options)?.recorded_as(&spec.id)?;
            if embedder.spec() != spec {
                bail!(
                    "the model in {} has dimension {}, the domain expects {}",
                    options.model_dir.display(),
                    embedder.spec().dim,
                    spec.dim
                );
            }
            return Ok(Arc::new(embedder));
        }
        if let Some(dim) = spec.id.strip_prefix(FAKE_PREFIX) {
            let dim: usize = dim
                .parse()
                .with_context(|| format!("bad model id `{}`", spec.id))?;
            return Ok(Arc::new(FakeEmbedder::new(dim)));
        }
        if let Some(model) = spec.id.strip_prefix(OPENAI_PREFIX) {
            let url = self
                .openai_url
                .as_deref()
                .context("this domain embeds with an OpenAI-compatible API: pass --openai-url")?;
            return Ok(Arc::new(OpenAiEmbedder::new(
                url,
                model,
                spec.dim,
                self.openai_key.clone(),
            )));
        }
        bail!("no embedder known for model `{}`", spec.id)
    }

    /// The reranker `id`: one loaded already, else a catalogue reranker installed here (a
    /// caller's error otherwise), loaded once with pairs cut to [`RERANK_PAIR_TOKENS`].
    pub fn reranker(&self, loaded: &Loaded, id: &str) -> Result<Arc<dyn Reranker>, RerankerError> {
        let mut map = loaded
            .rerankers
            .lock()
            .map_err(|_| RerankerError::Load(anyhow::anyhow!("reranker registry poisoned")))?;
        if let Some(r) = map.get(id) {
            return Ok(Arc::clone(r));
        }
        let mut card = self
            .installed(id, ModelKind::Reranker)
            .map_err(RerankerError::Model)?
            .clone();
        card.max_tokens = card.max_tokens.min(RERANK_PAIR_TOKENS);
        let options = OnnxOptions::new(&card, self.model_dir(&card), self.ort_library());
        let r: Arc<dyn Reranker> =
            Arc::new(CrossEncoder::load(&options).map_err(|e| RerankerError::Load(e.into()))?);
        map.insert(id.to_string(), Arc::clone(&r));
        Ok(r)
    }

    /// How chunks are measured for `spec`: the model's own tokenizer when it is local, loaded
    /// once per process (a webhook's job would otherwise spend most of its time reading it).
    pub fn sizer_for(&self, spec: &ModelSpec) -> Result<Sizer> {
        static LOADED: Mutex<Vec<(PathBuf, Sizer)>> = Mutex::new(Vec::new());
        let Some(card) = model_card(&spec.id) else {
            return Ok(Sizer::ApproxChars);
        };
        let dir = self.model_dir(card);
        let mut loaded = LOADED
            .lock()
            .map_err(|_| anyhow::anyhow!("tokenizer cache poisoned"))?;
        if let Some((_, sizer)) = loaded.iter().find(|(d, _)| *d == dir) {
            return Ok(sizer.clone());
        }
        let sizer = Sizer::from_model_dir(&dir)?;
        loaded.push((dir, sizer.clone()));
        Ok(sizer)
    }
}

fn locate(explicit: Option<&Path>, relative: &str) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let cwd = PathBuf::from(relative);
    if cwd.exists() {
        return cwd;
    }
    // Next to the checkout the binary was built in: <repo>/target/<profile>/dartmouth.
    if let Some(repo) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(Path::to_path_buf))
    {
        let candidate = repo.join(relative);
        if candidate.exists() {
            return candidate;
        }
    }
    cwd
}
