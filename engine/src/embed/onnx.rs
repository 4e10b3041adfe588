//! The catalogue's local models on ONNX Runtime: embedders ([`OnnxEmbedder`]) and the
//! cross-encoder ([`CrossEncoder`], in `rerank.rs`), both over one [`Runner`].
//!
//! The runtime is loaded from a shared library given by path (the PyPI `onnxruntime` wheel's
//! `libonnxruntime.so`), each model from `models/<id>/` as `scripts/setup-model.sh` made it
//! (`model.onnx`, `tokenizer.json`), its files checked against the catalogue's sha256 first.
//! Nothing is downloaded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::card::{ModelCard, ModelKind, Pooling};
use super::{Embedder, ModelSpec, check_and_normalise};
use crate::{Error, Result};

/// The id domains made before the catalogue recorded for all-MiniLM-L6-v2 (an alias of
/// `all-minilm-l6-v2`).
pub const MINILM_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// How to load and run one catalogue model.
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    pub card: ModelCard,
    /// Directory with the card's files.
    pub model_dir: PathBuf,
    /// Path of `libonnxruntime.so`.
    pub ort_library: PathBuf,
    /// Independent single-input-stream sessions; batches are spread over them in parallel.
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// Inputs per forward pass (always 1 for a dynamically quantized model: see the catalogue).
    pub batch_size: usize,
    /// Intra-op threads of an extra session kept for single inputs (queries), so one query uses
    /// every core; 0 disables it.
    pub query_threads: usize,
    /// Check every file against the catalogue's sha256 before loading.
    pub check_files: bool,
}

impl OnnxOptions {
    /// The defaults for `card`, its files in `model_dir`.
    pub fn new(
        card: &ModelCard,
        model_dir: impl Into<PathBuf>,
        ort_library: impl Into<PathBuf>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        OnnxOptions {
            card: card.clone(),
            model_dir: model_dir.into(),
            ort_library: ort_library.into(),
            // Measured on 2 cores (`bench embed`): one single-threaded session per core embeds
            // more chunks/s than one session with every core, and one input per pass more
            // than batches (all-minilm-l6-v2 f32: 44.4 chunks/s at 1 or 2 per pass, 39.4 at 8,
            // even sorted by length: nothing is padded and activations stay in cache).
            sessions: cores,
            intra_threads: 1,
            batch_size: 1,
            query_threads: cores,
            check_files: true,
        }
    }
}

static ORT_ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// The process's one ONNX Runtime environment, the library loaded from `library` on first use.
pub fn ort_environment(library: &Path) -> Result<ort::environment::Environment> {
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
            "cannot read {} ({e}); run scripts/setup-model.sh or pass the models directory",
            path.display()
        ))
    })
}

/// A model's tokenizer, cut to its `max_tokens` and never padded (the runner pads each
/// forward pass to its longest input).
pub fn load_tokenizer(dir: &Path, max_tokens: usize) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&path)
        .map_err(|e| Error::ModelUnavailable(format!("{}: {e}", path.display())))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|e| Error::ModelUnavailable(format!("{}: {e}", path.display())))?;
    Ok(tokenizer)
}

/// One forward pass's output: the first output tensor named `output`, flattened, with its shape.
pub(crate) struct Forward {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn lock(m: &Mutex<Session>) -> Result<std::sync::MutexGuard<'_, Session>> {
    m.lock()
        .map_err(|_| Error::Embedding("a model session panicked earlier".into()))
}

/// What one forward pass gives back, one result per input: pooled vectors, or scores.
pub(crate) type Rows<'a, T> = dyn Fn(&[&Encoding], Forward) -> Result<Vec<T>> + Sync + 'a;

/// A batch's number and its results.
type Done<T> = (usize, Vec<T>);

/// Sessions of one model and the tokenizer that feeds them.
pub(crate) struct Runner {
    pub tokenizer: Tokenizer,
    sessions: Vec<Mutex<Session>>,
    /// Multi-threaded session for single inputs; when busy, a pool session serves instead.
    single: Option<Mutex<Session>>,
    token_types: bool,
    output: String,
    batch_size: usize,
    round_robin: AtomicUsize,
}

impl Runner {
    pub fn load(options: &OnnxOptions, output: &str) -> Result<Runner> {
        let environment = ort_environment(&options.ort_library)?;
        let dir = &options.model_dir;
        if options.check_files {
            options.card.verify(dir)?;
        }
        let onnx = read_model_file(dir, "model.onnx")?;
        let tokenizer = load_tokenizer(dir, options.card.max_tokens)?;
        let unusable = |e: &dyn std::fmt::Display| {
            Error::ModelUnavailable(format!("cannot load {}: {e}", dir.display()))
        };
        let new_session = |threads: usize| -> Result<Session> {
            let mut builder = Session::builder(&environment)
                .map_err(|e| unusable(&e))?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(|e| unusable(&e))?
                .with_intra_threads(threads.max(1))
                .map_err(|e| unusable(&e))?;
            if threads > 1 {
                // Idle intra-op workers otherwise spin after each run, taking the cores the
                // search that follows a query's embedding needs.
                builder = builder
                    .with_config_entry("session.intra_op.allow_spinning", "0")
                    .map_err(|e| unusable(&e))?;
            }
            builder.commit_from_memory(&onnx).map_err(|e| unusable(&e))
        };
        let sessions = (0..options.sessions.max(1))
            .map(|_| new_session(options.intra_threads).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let single = match options.query_threads {
            0 => None,
            threads => Some(Mutex::new(new_session(threads)?)),
        };
        let first = sessions[0]
            .lock()
            .map_err(|_| Error::Embedding("a session panicked while loading".into()))?;
        let token_types = first.inputs().iter().any(|i| i.name() == "token_type_ids");
        let output = first
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .find(|n| n == output)
            .or_else(|| first.outputs().first().map(|o| o.name().to_string()))
            .ok_or_else(|| unusable(&"the graph has no output"))?;
        drop(first);
        Ok(Runner {
            tokenizer,
            sessions,
            single,
            token_types,
            output,
            batch_size: if options.card.quantized {
                1
            } else {
                options.batch_size.max(1)
            },
            round_robin: AtomicUsize::new(0),
        })
    }

    /// One forward pass over `batch`, padded to its longest input.
    pub fn forward(&self, session: &mut Session, batch: &[&Encoding]) -> Result<Forward> {
        let rows = batch.len();
        let cols = batch.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; rows * cols];
        let mut mask = vec![0i64; rows * cols];
        let mut types = vec![0i64; rows * cols];
        for (r, e) in batch.iter().enumerate() {
            let at = r * cols;
            for (j, ((&id, &m), &t)) in e
                .get_ids()
                .iter()
                .zip(e.get_attention_mask())
                .zip(e.get_type_ids())
                .enumerate()
            {
                ids[at + j] = i64::from(id);
                mask[at + j] = i64::from(m);
                types[at + j] = i64::from(t);
            }
        }
        let failed = |e: ort::Error| Error::Embedding(e.to_string());
        let shape = [rows as i64, cols as i64];
        let mut inputs = ort::inputs![
            "input_ids" => Tensor::from_array((shape, ids)).map_err(failed)?,
            "attention_mask" => Tensor::from_array((shape, mask)).map_err(failed)?,
        ];
        if self.token_types {
            inputs.push((
                "token_type_ids".into(),
                Tensor::from_array((shape, types)).map_err(failed)?.into(),
            ));
        }
        let outputs = session.run(inputs).map_err(failed)?;
        let (shape, data) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(failed)?;
        Ok(Forward {
            shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
            data: data.to_vec(),
        })
    }

    /// Runs every encoding through the model, `rows` turning each forward pass into one result
    /// per input; the results come back in input order. Inputs are sorted by length so a pass
    /// pads little, and the passes are spread over the sessions in parallel. With a `deadline`,
    /// no pass starts after it and `None` is returned if any input is left.
    pub fn run<T: Send + Clone>(
        &self,
        encodings: &[Encoding],
        deadline: Option<Instant>,
        rows: &Rows<'_, T>,
    ) -> Result<Option<Vec<T>>> {
        if encodings.is_empty() {
            return Ok(Some(Vec::new()));
        }
        if encodings.len() == 1 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            let batch = [&encodings[0]];
            let out = match self.single.as_ref().map(Mutex::try_lock) {
                Some(Ok(mut session)) => self.forward(&mut session, &batch)?,
                _ => {
                    let at = self.round_robin.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
                    self.forward(&mut *lock(&self.sessions[at])?, &batch)?
                }
            };
            return rows(&batch, out).map(Some);
        }
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let batches: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        let next = AtomicUsize::new(0);
        let workers = self.sessions.len().min(batches.len());
        let results: Vec<Result<Vec<Done<T>>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (next, batches) = (&next, &batches);
                    scope.spawn(move || {
                        let mut session = lock(&self.sessions[w])?;
                        let mut done = Vec::new();
                        loop {
                            let b = next.fetch_add(1, Ordering::Relaxed);
                            let Some(members) = batches.get(b) else {
                                return Ok(done);
                            };
                            if deadline.is_some_and(|d| Instant::now() >= d) {
                                return Ok(done);
                            }
                            let batch: Vec<&Encoding> =
                                members.iter().map(|&i| &encodings[i]).collect();
                            let out = self.forward(&mut session, &batch)?;
                            done.push((b, rows(&batch, out)?));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Embedding("a model worker panicked".into())))
                })
                .collect()
        });
        let mut out: Vec<Option<T>> = vec![None; encodings.len()];
        for worker in results {
            for (b, values) in worker? {
                for (&i, v) in batches[b].iter().zip(values) {
                    out[i] = Some(v);
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// An embedding model of the catalogue on ONNX Runtime.
pub struct OnnxEmbedder {
    spec: ModelSpec,
    card: ModelCard,
    runner: Runner,
}

impl OnnxEmbedder {
    pub fn load(options: &OnnxOptions) -> Result<Self> {
        let card = &options.card;
        let (ModelKind::Embedding, Some(dim), Some(_)) = (card.kind, card.dim, card.pooling) else {
            return Err(Error::invalid(format!(
                "model `{}` is not an embedding model",
                card.id
            )));
        };
        let embedder = OnnxEmbedder {
            spec: ModelSpec {
                id: card.id.clone(),
                dim,
            },
            card: card.clone(),
            runner: Runner::load(options, "last_hidden_state")?,
        };
        // Fail at start-up, not on the first request, if the graph does not produce `dim` floats.
        embedder.embed_batch(&["dimension probe"])?;
        Ok(embedder)
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The same model under another id it answers to (an alias recorded by older domains), so
    /// its query vectors carry the id those shards expect.
    pub fn recorded_as(mut self, id: &str) -> Result<Self> {
        if !self.card.answers_to(id) {
            return Err(Error::ModelMismatch {
                expected: id.to_string(),
                got: self.card.id.clone(),
            });
        }
        self.spec.id = id.to_string();
        Ok(self)
    }

    /// Tokenizes `texts`, each after `prefix`.
    fn encode(&self, prefix: &str, texts: &[&str]) -> Result<Vec<Encoding>> {
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        self.runner
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| Error::Embedding(format!("tokenizer: {e}")))
    }

    fn embed(&self, encodings: &[Encoding]) -> Result<Vec<Vec<f32>>> {
        let dim = self.spec.dim;
        let pooling = self.card.pooling.unwrap_or(Pooling::Mean);
        let pool = |batch: &[&Encoding], out: Forward| -> Result<Vec<Vec<f32>>> {
            let (rows, cols) = match out.shape[..] {
                [r, c, h] if r == batch.len() && h == dim => (r, c),
                _ => {
                    return Err(Error::DimensionMismatch {
                        place: format!("model output of shape {:?}", out.shape),
                        expected: dim,
                        got: out.shape.last().copied().unwrap_or(0),
                    });
                }
            };
            (0..rows)
                .map(|r| {
                    let token =
                        |t: usize| &out.data[(r * cols + t) * dim..(r * cols + t + 1) * dim];
                    let mut v = match pooling {
                        Pooling::Cls => token(0).to_vec(),
                        Pooling::Mean => {
                            let mut sum = vec![0f32; dim];
                            let mask = batch[r].get_attention_mask();
                            for t in (0..mask.len()).filter(|&t| mask[t] != 0) {
                                sum.iter_mut().zip(token(t)).for_each(|(s, x)| *s += x);
                            }
                            sum
                        }
                    };
                    check_and_normalise(&mut v, dim, "model output")?;
                    Ok(v)
                })
                .collect()
        };
        self.runner
            .run(encodings, None, &pool)?
            .ok_or_else(|| Error::Embedding("embedding stopped before the end".into()))
    }

    /// Embeds already tokenized inputs (the benchmark's comparison with a bare session).
    pub fn embed_encoded(&self, encodings: &[Encoding]) -> Result<Vec<Vec<f32>>> {
        self.embed(encodings)
    }

    /// The passages' encodings as `embed_batch` makes them.
    pub fn encode_passages(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.encode(&self.card.passage_prefix, texts)
    }
}

impl Embedder for OnnxEmbedder {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self.encode(&self.card.passage_prefix, texts)?;
        self.embed(&encodings)
    }

    fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self.encode(&self.card.query_prefix, texts)?;
        self.embed(&encodings)
    }
}
