//! The model catalogue (`engine/models.toml`): which local models exist, how each is run, and
//! the sha256 of every file it uses. The same file drives `scripts/setup-model.sh`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// What a model does with text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Text → one normalised vector.
    Embedding,
    /// (query, passage) → one relevance score (a cross-encoder).
    Reranker,
}

/// How an embedding model's token vectors become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean of the (unmasked) token vectors.
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// The catalogue id (`bge-small-en-v1.5`).
    pub id: String,
    /// Older ids the same model was recorded under (domains made before the catalogue).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What it does: embedding or reranker.
    pub kind: ModelKind,
    /// What it is, in a sentence.
    pub description: String,
    /// The vector size (embedding models only).
    #[serde(default)]
    pub dim: Option<usize>,
    /// How token vectors become one (embedding models only).
    #[serde(default)]
    pub pooling: Option<Pooling>,
    /// Put before each query (`query: `), or empty.
    #[serde(default)]
    pub query_prefix: String,
    /// Put before each passage (`passage: `), or empty.
    #[serde(default)]
    pub passage_prefix: String,
    /// Tokens one input is cut to, special tokens and prefix included.
    pub max_tokens: usize,
    /// ONNX Runtime dynamic int8 quantization: run one text per forward pass.
    pub quantized: bool,
    /// Where `scripts/setup-model.sh` takes the files from.
    pub source: String,
    /// File name → sha256 (hex).
    pub files: BTreeMap<String, String>,
    /// This project's own speed figures on the development machine (`bench embed` /
    /// `bench rerank`), e.g. `chunks_per_s`, `query_p50_ms`, `top10_p50_ms`.
    #[serde(default)]
    pub measured: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    model: Vec<ModelCard>,
}

const CATALOGUE: &str = include_str!("../../models.toml");

/// Every model in the catalogue, in its order.
pub fn model_cards() -> &'static [ModelCard] {
    static CARDS: OnceLock<Vec<ModelCard>> = OnceLock::new();
    CARDS.get_or_init(|| {
        // The file is part of the binary and checked by a unit test; a broken one is a build bug.
        let file: CatalogueFile = toml::from_str(CATALOGUE).expect("engine/models.toml parses");
        file.model
    })
}

/// The catalogue entry for `id` or one of its aliases.
pub fn model_card(id: &str) -> Option<&'static ModelCard> {
    model_cards()
        .iter()
        .find(|c| c.id == id || c.aliases.iter().any(|a| a == id))
}

/// What is wrong with a model's files on disk, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesState {
    Ok,
    /// The directory or a file in it is missing.
    Missing(String),
    /// A file's sha256 is not the catalogue's.
    Damaged(String),
}

impl ModelCard {
    /// Whether `id` names this model (its id or an alias).
    pub fn answers_to(&self, id: &str) -> bool {
        self.id == id || self.aliases.iter().any(|a| a == id)
    }

    /// The total size of its files in bytes, when they are there.
    pub fn size_on_disk(&self, dir: &Path) -> Option<u64> {
        self.files
            .keys()
            .map(|f| std::fs::metadata(dir.join(f)).ok().map(|m| m.len()))
            .sum()
    }

    /// Checks every file in `dir` against its sha256 (reads them all: about 0.1 s for 90 MB).
    pub fn check_files(&self, dir: &Path) -> FilesState {
        for (name, expected) in &self.files {
            let path = dir.join(name);
            match sha256_file(&path) {
                Err(e) => {
                    return FilesState::Missing(format!(
                        "{} ({e}); run scripts/setup-model.sh",
                        path.display()
                    ));
                }
                Ok(got) if !got.eq_ignore_ascii_case(expected) => {
                    return FilesState::Damaged(format!(
                        "{} has sha256 {got}, the catalogue says {expected}; run \
                         scripts/setup-model.sh --force",
                        path.display()
                    ));
                }
                Ok(_) => {}
            }
        }
        FilesState::Ok
    }

    /// [`ModelCard::check_files`] as a `Result` (`ModelUnavailable` naming the file).
    pub fn verify(&self, dir: &Path) -> Result<()> {
        match self.check_files(dir) {
            FilesState::Ok => Ok(()),
            FilesState::Missing(why) => Err(Error::ModelUnavailable(format!(
                "model `{}`: missing {why}",
                self.id
            ))),
            FilesState::Damaged(why) => Err(Error::ModelUnavailable(format!(
                "model `{}`: {why}",
                self.id
            ))),
        }
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_whole() {
        let cards = model_cards();
        assert!(cards.len() >= 5);
        let mut ids = std::collections::BTreeSet::new();
        for c in cards {
            for id in std::iter::once(&c.id).chain(&c.aliases) {
                assert!(ids.insert(id.clone()), "{id} named twice");
            }
            assert!(c.files.contains_key("model.onnx"), "{}", c.id);
            assert!(c.files.contains_key("tokenizer.json"), "{}", c.id);
            assert!(
                c.files
                    .values()
                    .all(|h| h.len() == 64 && h.chars().all(|x| x.is_ascii_hexdigit())),
                "{}",
                c.id
            );
            assert!(c.max_tokens >= 16 && c.max_tokens <= 512, "{}", c.id);
            match c.kind {
                ModelKind::Embedding => {
                    assert!(
                        c.dim.is_some_and(|d| d > 0) && c.pooling.is_some(),
                        "{}",
                        c.id
                    )
                }
                ModelKind::Reranker => assert!(c.dim.is_none() && c.pooling.is_none()),
            }
        }
        assert_eq!(
            model_card("sentence-transformers/all-MiniLM-L6-v2").map(|c| c.id.as_str()),
            Some("all-minilm-l6-v2")
        );
        assert!(model_card("no-such-model").is_none());
    }

    #[test]
    fn files_are_checked_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut card = model_cards()[0].clone();
        card.files = BTreeMap::from([(
            "model.onnx".to_string(),
            // sha256("abc")
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
        )]);
        assert!(matches!(
            card.check_files(dir.path()),
            FilesState::Missing(_)
        ));
        std::fs::write(dir.path().join("model.onnx"), b"abd").unwrap();
        let FilesState::Damaged(why) = card.check_files(dir.path()) else {
            panic!("a wrong file passed")
        };
        assert!(why.contains("model.onnx"), "{why}");
        std::fs::write(dir.path().join("model.onnx"), b"abc").unwrap();
        assert_eq!(card.check_files(dir.path()), FilesState::Ok);
        assert_eq!(card.size_on_disk(dir.path()), Some(3));
    }
}
