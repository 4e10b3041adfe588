//! Which embedder serves a domain: chosen from the model id in the domain's manifest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use dartmouth_engine::embed::{
    FakeEmbedder, MINILM_MODEL_ID, OnnxEmbedder, OnnxOptions, OpenAiEmbedder,
};
use dartmouth_engine::{Embedder, ModelSpec};
use dartmouth_indexer::Sizer;

/// Where the local model and runtime live, and how to reach a remote embedder.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Directory holding model.onnx and tokenizer files (made by scripts/setup-model.sh).
    #[arg(long, env = "DARTMOUTH_MODEL_DIR", global = true)]
    pub model_dir: Option<PathBuf>,
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
    /// all-MiniLM-L6-v2 on ONNX Runtime, local.
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
            EmbedderKind::Minilm => "minilm",
            EmbedderKind::Openai => "openai",
            EmbedderKind::Fake => "fake",
        }
    }
}

pub const MINILM_DIM: usize = 384;
const FAKE_PREFIX: &str = "fake-hash-";
const OPENAI_PREFIX: &str = "openai-compatible:";

/// The model spec a new domain records.
pub fn spec_for(
    kind: EmbedderKind,
    openai_model: Option<&str>,
    dim: Option<usize>,
) -> Result<ModelSpec> {
    Ok(match kind {
        EmbedderKind::Minilm => ModelSpec {
            id: MINILM_MODEL_ID.into(),
            dim: MINILM_DIM,
        },
        EmbedderKind::Fake => FakeEmbedder::new(dim.unwrap_or(MINILM_DIM)).spec().clone(),
        EmbedderKind::Openai => {
            let model = openai_model.context("--embedder openai needs --openai-model")?;
            let dim =
                dim.context("--embedder openai needs --dim (the vector size the model returns)")?;
            ModelSpec {
                id: format!("{OPENAI_PREFIX}{model}"),
                dim,
            }
        }
    })
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

impl ModelArgs {
    pub fn model_dir(&self) -> PathBuf {
        locate(self.model_dir.as_deref(), "models/all-minilm-l6-v2")
    }

    pub fn ort_library(&self) -> PathBuf {
        locate(
            self.ort_library.as_deref(),
            "models/onnxruntime/libonnxruntime.so",
        )
    }

    /// Loads the embedder that produced `spec`'s vectors.
    pub fn embedder_for(&self, spec: &ModelSpec) -> Result<Box<dyn Embedder>> {
        if spec.id == MINILM_MODEL_ID {
            let options = OnnxOptions::new(self.model_dir(), self.ort_library());
            let embedder = OnnxEmbedder::load(&options)?;
            if embedder.spec() != spec {
                bail!(
                    "the model in {} has dimension {}, the domain expects {}",
                    options.model_dir.display(),
                    embedder.spec().dim,
                    spec.dim
                );
            }
            return Ok(Box::new(embedder));
        }
        if let Some(dim) = spec.id.strip_prefix(FAKE_PREFIX) {
            let dim: usize = dim
                .parse()
                .with_context(|| format!("bad model id `{}`", spec.id))?;
            return Ok(Box::new(FakeEmbedder::new(dim)));
        }
        if let Some(model) = spec.id.strip_prefix(OPENAI_PREFIX) {
            let url = self
                .openai_url
                .as_deref()
                .context("this domain embeds with an OpenAI-compatible API: pass --openai-url")?;
            return Ok(Box::new(OpenAiEmbedder::new(
                url,
                model,
                spec.dim,
                self.openai_key.clone(),
            )));
        }
        bail!("no embedder known for model `{}`", spec.id)
    }

    /// How chunks are measured for `spec`: the local tokenizer when there is one, loaded once
    /// per process (a webhook's job would otherwise spend most of its time reading it).
    pub fn sizer_for(&self, spec: &ModelSpec) -> Result<Sizer> {
        static LOADED: Mutex<Vec<(PathBuf, Sizer)>> = Mutex::new(Vec::new());
        if spec.id != MINILM_MODEL_ID {
            return Ok(Sizer::ApproxChars);
        }
        let dir = self.model_dir();
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
