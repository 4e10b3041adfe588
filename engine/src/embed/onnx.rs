//! The local default embedder: sentence-transformers all-MiniLM-L6-v2 run by ONNX Runtime.
//!
//! The runtime is loaded from a shared library given by path (the PyPI `onnxruntime` wheel's
//! `libonnxruntime.so`), and the model from a directory prepared by `scripts/setup-model.sh`
//! (model.onnx, tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json).
//! Nothing is downloaded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use super::{Embedder, ModelSpec, check_and_normalise};
use crate::{Error, Result};

pub const MINILM_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// How to load and run the ONNX model.
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    /// Directory with model.onnx and the tokenizer files.
    pub model_dir: PathBuf,
    /// Path of `libonnxruntime.so`.
    pub ort_library: PathBuf,
    /// The id recorded in shard manifests.
    pub model_id: String,
    /// Word pieces kept per text, special tokens included (sentence-transformers uses 256).
    pub max_tokens: usize,
    /// Independent sessions; batches are spread over them in parallel.
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Intra-op threads of an extra session kept for single texts (queries), so one query uses
    /// every core; 0 disables it.
    pub query_threads: usize,
}

impl OnnxOptions {
    pub fn new(model_dir: impl Into<PathBuf>, ort_library: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        OnnxOptions {
            model_dir: model_dir.into(),
            ort_library: ort_library.into(),
            model_id: MINILM_MODEL_ID.to_string(),
            max_tokens: 256,
            // Measured on 2 cores (bench embed): one single-threaded session per core with small
            // length-sorted batches embeds ~25 % more chunks/s than one two-threaded session
            // with batches of 32; larger batches are slower still.
            sessions: cores,
            intra_threads: 1,
            batch_size: 8,
            query_threads: cores,
        }
    }
}

/// A batch number and its vectors.
type BatchOutput = (usize, Vec<Vec<f32>>);

pub struct OnnxEmbedder {
    spec: ModelSpec,
    sessions: Vec<Mutex<TextEmbedding>>,
    /// Multi-threaded session for single texts; when busy, a pool session serves instead.
    query_session: Option<Mutex<TextEmbedding>>,
    batch_size: usize,
    round_robin: AtomicUsize,
}

static ORT_ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

fn environment(library: &Path) -> Result<ort::environment::Environment> {
    // ort panics deep inside when the library is missing, so check the path first.
    if !library.is_file() {
        return Err(Error::ModelUnavailable(format!(
            "ONNX Runtime library not found at {} (run scripts/setup-model.sh, or set ORT_DYLIB_PATH)",
            library.display()
        )));
    }
    ORT_ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(library)
                .map_err(|e| format!("cannot load {}: {e}", library.display()))?
                .with_name("dartmouth")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .clone()
        .map_err(Error::ModelUnavailable)
}

fn read_model_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| {
        Error::ModelUnavailable(format!(
            "cannot read {} ({e}); run scripts/setup-model.sh or pass the model directory",
            path.display()
        ))
    })
}

impl OnnxEmbedder {
    pub fn load(options: &OnnxOptions) -> Result<Self> {
        let environment = environment(&options.ort_library)?;
        let dir = &options.model_dir;
        let config: serde_json::Value =
            serde_json::from_slice(&read_model_file(dir, "config.json")?).map_err(|e| {
                Error::ModelUnavailable(format!("{}: {e}", dir.join("config.json").display()))
            })?;
        let dim = config["hidden_size"].as_u64().ok_or_else(|| {
            Error::ModelUnavailable(format!(
                "{}: no numeric `hidden_size`",
                dir.join("config.json").display()
            ))
        })? as usize;
        let onnx = read_model_file(dir, "model.onnx")?;
        let tokenizer_files = || -> Result<TokenizerFiles> {
            Ok(TokenizerFiles {
                tokenizer_file: read_model_file(dir, "tokenizer.json")?,
                config_file: read_model_file(dir, "config.json")?,
                special_tokens_map_file: read_model_file(dir, "special_tokens_map.json")?,
                tokenizer_config_file: read_model_file(dir, "tokenizer_config.json")?,
            })
        };
        let new_session = |threads: usize| -> Result<Mutex<TextEmbedding>> {
            let model = UserDefinedEmbeddingModel::new(onnx.clone(), tokenizer_files()?)
                .with_pooling(Pooling::Mean);
            let mut init = InitOptionsUserDefined::new()
                .with_environment(environment.clone())
                .with_max_length(options.max_tokens)
                .with_intra_threads(threads.max(1));
            if threads > 1 {
                // Idle intra-op workers otherwise spin after each run, taking the cores the
                // search that follows a query's embedding needs.
                init = init.with_session_config("session.intra_op.allow_spinning", "0");
            }
            let session = TextEmbedding::try_new_from_user_defined(model, init).map_err(|e| {
                Error::ModelUnavailable(format!("cannot load {}: {e}", dir.display()))
            })?;
            Ok(Mutex::new(session))
        };
        let sessions = (0..options.sessions.max(1))
            .map(|_| new_session(options.intra_threads))
            .collect::<Result<Vec<_>>>()?;
        let query_session = match options.query_threads {
            0 => None,
            threads => Some(new_session(threads)?),
        };
        let embedder = OnnxEmbedder {
            spec: ModelSpec {
                id: options.model_id.clone(),
                dim,
            },
            sessions,
            query_session,
            batch_size: options.batch_size.max(1),
            round_robin: AtomicUsize::new(0),
        };
        // Fail at start-up, not on the first request, if the graph does not produce `dim` floats.
        embedder.embed_batch(&["dimension probe"])?;
        Ok(embedder)
    }

    fn run(&self, session: usize, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let guard = self.sessions[session]
            .lock()
            .map_err(|_| Error::Embedding("an embedding session panicked earlier".into()))?;
        self.run_on(guard, texts)
    }

    fn run_on(
        &self,
        mut guard: std::sync::MutexGuard<'_, TextEmbedding>,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>> {
        let mut vectors = guard
            .embed(texts, Some(texts.len()))
            .map_err(|e| Error::Embedding(e.to_string()))?;
        drop(guard);
        for v in &mut vectors {
            check_and_normalise(v, self.spec.dim, "model output")?;
        }
        Ok(vectors)
    }
}

impl Embedder for OnnxEmbedder {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if texts.len() == 1
            && let Some(Ok(guard)) = self.query_session.as_ref().map(Mutex::try_lock)
        {
            return self.run_on(guard, texts);
        }
        if texts.len() <= self.batch_size {
            let session = self.round_robin.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
            return self.run(session, texts);
        }
        // Sort by length so each forward pass pads to similar lengths, then restore the order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let sorted: Vec<&str> = order.iter().map(|&i| texts[i]).collect();
        let batches: Vec<&[&str]> = sorted.chunks(self.batch_size).collect();
        let next = AtomicUsize::new(0);
        let results: Vec<Result<Vec<BatchOutput>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..self.sessions.len())
                .map(|session| {
                    let next = &next;
                    let batches = &batches;
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        loop {
                            let b = next.fetch_add(1, Ordering::Relaxed);
                            let Some(batch) = batches.get(b) else {
                                return Ok(done);
                            };
                            done.push((b, self.run(session, batch)?));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(Error::Embedding("embedding worker panicked".into()))
                    })
                })
                .collect()
        });
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for worker in results {
            for (b, vectors) in worker? {
                for (j, v) in vectors.into_iter().enumerate() {
                    out[order[b * self.batch_size + j]] = v;
                }
            }
        }
        Ok(out)
    }
}
