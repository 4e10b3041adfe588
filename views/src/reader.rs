//! The read gate: what a [`Pass`] opens, and the only way to search it.

use std::sync::Arc;

use dartmouth_domains::Pass;
use dartmouth_engine::{ModelSpec, SearchRequest, SearchResponse, Shard};

use crate::applier::Applier;
use crate::{Error, Result};

impl Applier<'_> {
    /// The shards `pass` opens, each caught up to the store: the one way to search a domain.
    pub fn reader(&self, pass: &Pass) -> Result<Reader> {
        let shards = pass
            .domains()
            .iter()
            .map(|d| {
                self.catch_up(d)?;
                self.shard(d)
            })
            .collect::<Result<_>>()?;
        Ok(Reader { shards })
    }

    /// The shards `pass` opens as they are, for a server whose applier tails the changelog.
    /// A read never creates a shard: a domain this node has no shard of yet (just created, or
    /// created again) is searched as empty until the applier makes it.
    pub fn reader_as_is(&self, pass: &Pass) -> Result<Reader> {
        let mut shards = Vec::with_capacity(pass.domains().len());
        for d in pass.domains() {
            shards.extend(self.existing_shard(d)?);
        }
        Ok(Reader { shards })
    }
}

/// What a [`Pass`] lets its holder search. Built only by [`Applier::reader`], so a search
/// cannot reach a shard the pass does not open (`clippy.toml` forbids calling
/// `dartmouth_engine::search` anywhere else outside tests, evaluation and benchmarks).
pub struct Reader {
    shards: Vec<Arc<Shard>>,
}

impl Reader {
    /// The embedding model every opened domain shares (`None` when the pass opens none); an
    /// error when they differ, for what one given vector must serve (`vector`, `similar_to`).
    pub fn model(&self) -> Result<Option<&ModelSpec>> {
        let Some(first) = self.shards.first() else {
            return Ok(None);
        };
        let spec = &first.settings().model;
        if let Some(other) = self.shards.iter().find(|s| &s.settings().model != spec) {
            return Err(Error::Input(format!(
                "domains {} and {} use different embedding models; a given vector serves one model",
                first.name(),
                other.name()
            )));
        }
        Ok(Some(spec))
    }

    /// The embedding models of the opened domains, each once, in the domains' order.
    pub fn models(&self) -> Vec<&ModelSpec> {
        let mut out: Vec<&ModelSpec> = Vec::new();
        for shard in &self.shards {
            let spec = &shard.settings().model;
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
        out
    }

    /// The model of an opened domain.
    pub fn model_of(&self, domain: &str) -> Option<&ModelSpec> {
        self.shards
            .iter()
            .find(|s| s.name() == domain)
            .map(|s| &s.settings().model)
    }

    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().map(|s| s.name())
    }

    /// Each opened domain's identity (never reused, unlike its name) with the changelog
    /// sequence its shard has applied: what a cached result or embedding is keyed by.
    pub fn applied(&self) -> impl Iterator<Item = (&str, u64)> {
        self.shards
            .iter()
            .map(|s| (s.identity().unwrap_or(""), s.applied_seq()))
    }

    /// The sizes and colours the domains hold (what query understanding recognises).
    pub fn vocabulary(&self) -> dartmouth_catalog::understand::Vocabulary {
        let mut v = dartmouth_catalog::understand::Vocabulary::default();
        for shard in &self.shards {
            v.add(|field| shard.keyword_values(field));
        }
        v
    }

    /// Searches the opened domains. A pass that opens none finds nothing (there is no model to
    /// embed the query with, so no vector is required).
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        if self.shards.is_empty() {
            req.validate_parameters()?;
            return Ok(SearchResponse::default());
        }
        let refs: Vec<&Shard> = self.shards.iter().map(Arc::as_ref).collect();
        #[allow(clippy::disallowed_methods, reason = "the pass scoped these shards")]
        Ok(dartmouth_engine::search(&refs, req)?)
    }

    /// [`Reader::search`] for a request whose query vector `embed` computes; in hybrid mode the
    /// BM25 branch runs meanwhile (`dartmouth_engine::search_embedding`).
    pub fn search_embedding(
        &self,
        req: &SearchRequest,
        embed: dartmouth_engine::EmbedQuery<'_>,
    ) -> Result<SearchResponse> {
        if self.shards.is_empty() {
            req.validate_parameters()?;
            return Ok(SearchResponse::default());
        }
        let refs: Vec<&Shard> = self.shards.iter().map(Arc::as_ref).collect();
        #[allow(clippy::disallowed_methods, reason = "the pass scoped these shards")]
        Ok(dartmouth_engine::search_embedding(&refs, req, embed)?)
    }
}
