use super::{Embedder, ModelSpec, check_and_normalise};
use crate::Result;

/// A deterministic embedder for unit tests: hashed bag of lowercase words, signed, normalised.
/// Texts that share words get similar vectors, which is enough to test ranking plumbing.
pub struct FakeEmbedder {
    spec: ModelSpec,
}

impl FakeEmbedder {
    pub fn new(dim: usize) -> Self {
        FakeEmbedder {
            spec: ModelSpec {
                id: format!("fake-hash-{dim}"),
                dim,
            },
        }
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        let dim = self.spec.dim;
        let mut v = vec![0.0f32; dim];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let h = fnv1a(word.to_lowercase().as_bytes());
            let sign = if h & 1 == 0 { 1.0 } else { -1.0 };
            v[(h >> 1) as usize % dim] += sign;
        }
        // An empty text still gets a valid (constant) direction.
        if v.iter().all(|x| *x == 0.0) {
            v[0] = 1.0;
        }
        v
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Embedder for FakeEmbedder {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        texts
            .iter()
            .map(|t| {
                let mut v = self.embed_one(t);
                check_and_normalise(&mut v, self.spec.dim, "fake embedder")?;
                Ok(v)
            })
            .collect()
    }
}
