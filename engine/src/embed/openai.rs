//! A provider for OpenAI-compatible `/v1/embeddings` endpoints (OpenAI, vLLM, TEI, Ollama, …).

use std::time::Duration;

use serde::Deserialize;

use super::{Embedder, ModelSpec, check_and_normalise};
use crate::{Error, Result};

pub struct OpenAiEmbedder {
    spec: ModelSpec,
    /// The remote model name sent in requests.
    model: String,
    endpoint: String,
    api_key: Option<String>,
    batch_size: usize,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    /// `base_url` is the API root, e.g. `http://127.0.0.1:8000` or `https://api.openai.com`;
    /// `/v1/embeddings` is appended. `dim` is the dimension the model returns.
    pub fn new(base_url: &str, model: &str, dim: usize, api_key: Option<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        let endpoint = if base.ends_with("/v1") {
            format!("{base}/embeddings")
        } else {
            format!("{base}/v1/embeddings")
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build();
        OpenAiEmbedder {
            spec: ModelSpec {
                id: format!("openai-compatible:{model}"),
                dim,
            },
            model: model.to_string(),
            endpoint,
            api_key,
            batch_size: 64,
            agent: config.into(),
        }
    }

    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let body = serde_json::json!({ "model": self.model, "input": texts });
        let mut request = self.agent.post(&self.endpoint);
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request
            .send_json(&body)
            .map_err(|e| Error::Embedding(format!("{}: {e}", self.endpoint)))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let excerpt: String = text.chars().take(300).collect();
            return Err(Error::Embedding(format!(
                "{} answered {status}: {excerpt}",
                self.endpoint
            )));
        }
        let parsed: EmbeddingsResponse = response.body_mut().read_json().map_err(|e| {
            Error::Embedding(format!("{}: unreadable response: {e}", self.endpoint))
        })?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in parsed.data {
            let slot = out.get_mut(item.index).ok_or_else(|| {
                Error::Embedding(format!(
                    "{}: answer index {} out of range",
                    self.endpoint, item.index
                ))
            })?;
            *slot = Some(item.embedding);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| {
                let mut v = v.ok_or_else(|| {
                    Error::Embedding(format!("{}: no vector for input {i}", self.endpoint))
                })?;
                check_and_normalise(&mut v, self.spec.dim, &self.endpoint)?;
                Ok(v)
            })
            .collect()
    }
}

impl Embedder for OpenAiEmbedder {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            out.extend(self.request(batch)?);
        }
        Ok(out)
    }
}
