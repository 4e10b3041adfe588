//! Administration: the store checks the role (a superuser, or the domain's admin).

use std::sync::Arc;

use dartmouth_domains::{
    AuditEntry, Caller, Delegation, Domain, Grant, KeyInfo, KeyScope, Principal, Role,
};
use dartmouth_engine::DomainSettings;

use super::{
    AuditInput, DelegateInput, DomainInput, DomainLag, DomainOut, DomainStatsOut, DomainUpdate,
    GrantInput, KeyInput, LiveStats, NewKey, PrincipalInput, ReindexOut, Service, opened,
};
use crate::error::{ApiError, ApiResult, Code};

/// A model a request names: not in the catalogue is the caller's error (400, naming the field),
/// not installed or damaged on this node a conflict with its state (409).
pub(super) fn model_error(field: &str, e: crate::models::ModelError) -> ApiError {
    match e {
        crate::models::ModelError::Unknown(m) => ApiError::invalid(format!("{field}: {m}")),
        crate::models::ModelError::NotInstalled(m) => {
            ApiError::new(Code::Conflict, format!("{field}: {m}"))
        }
    }
}

impl Service {
    pub async fn list_domains(&self, caller: &Caller) -> ApiResult<Vec<Domain>> {
        Ok(self.store.list_domains(caller).await?)
    }

    pub async fn create_domain(
        self: &Arc<Self>,
        caller: &Caller,
        input: DomainInput,
    ) -> ApiResult<Domain> {
        let given = input.embedder.as_deref().unwrap_or("local");
        let kind = crate::models::EmbedderKind::parse(given).ok_or_else(|| {
            ApiError::invalid(format!(
                "embedder: `{given}` is not one of local, minilm, openai, fake"
            ))
        })?;
        let spec = self
            .models
            .spec_for(
                kind,
                input.model.as_deref(),
                input.openai_model.as_deref(),
                input.dim,
            )
            .map_err(|e| model_error("model", e))?;
        let mut settings = DomainSettings::new(spec);
        if let Some(t) = input.chunk_tokens {
            settings.chunk_tokens = t;
        }
        if let Some(o) = input.chunk_overlap {
            settings.chunk_overlap = o;
        }
        let catalog = dartmouth_catalog::CatalogSettings {
            option_names: input.option_names,
        };
        if let Some(r) = &input.rerank {
            settings.rerank = super::search::rerank_default(self, r)?;
        }
        let settings = dartmouth_views::new_domain_settings(&input.name, &settings, &catalog)?;
        let domain = self
            .store
            .create_domain(caller, &input.name, &input.description, &settings)
            .await?;
        if self.holds(&domain.name) {
            let made = domain.clone();
            self.blocking(move |s| Ok(s.applier().shard(&made).map(drop)?))
                .await?;
        }
        Ok(domain)
    }

    pub async fn delete_domain(self: &Arc<Self>, caller: &Caller, name: &str) -> ApiResult<Domain> {
        let domain = self.store.delete_domain(caller, name).await?;
        let gone = domain.clone();
        self.blocking(move |s| Ok(s.applier().remove_shard(&gone)?))
            .await?;
        Ok(domain)
    }

    pub async fn list_principals(&self, caller: &Caller) -> ApiResult<Vec<Principal>> {
        Ok(self.store.list_principals(caller).await?)
    }

    pub async fn create_principal(
        &self,
        caller: &Caller,
        input: PrincipalInput,
    ) -> ApiResult<Principal> {
        Ok(self
            .store
            .create_principal(caller, &input.name, input.kind)
            .await?)
    }

    pub async fn list_grants(&self, caller: &Caller) -> ApiResult<Vec<Grant>> {
        Ok(self.store.list_grants(caller).await?)
    }

    pub async fn grant(&self, caller: &Caller, input: GrantInput) -> ApiResult<Grant> {
        match self
            .store
            .grant(caller, &input.principal, &input.domain, input.role)
            .await
        {
            Ok(g) => Ok(g),
            Err(e) => Err(self
                .refine_denial(caller, std::slice::from_ref(&input.domain), Role::Admin, e)
                .await),
        }
    }

    pub async fn revoke_grant(
        &self,
        caller: &Caller,
        principal: &str,
        domain: &str,
    ) -> ApiResult<()> {
        match self.store.revoke_grant(caller, principal, domain).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .refine_denial(caller, &[domain.to_string()], Role::Admin, e)
                .await),
        }
    }

    pub async fn list_keys(&self, caller: &Caller) -> ApiResult<Vec<KeyInfo>> {
        Ok(self.store.list_keys(caller).await?)
    }

    pub async fn create_key(&self, caller: &Caller, input: KeyInput) -> ApiResult<NewKey> {
        let expires_at = input
            .expires_in
            .map(|s| dartmouth_domains::now_millis() + (s.min(10 * 365 * 86_400) as i64) * 1000);
        let scope = KeyScope {
            domains: input.domains,
            role: input.role,
            expires_at,
        };
        let (key, secret) = self
            .store
            .create_key(caller, &input.principal, scope)
            .await?;
        Ok(NewKey { key, secret })
    }

    /// A delegated token for `caller` acting for an end user: read-only, at most 15 minutes,
    /// the domains both may read.
    pub async fn delegate(&self, caller: &Caller, input: DelegateInput) -> ApiResult<Delegation> {
        let config = self.jwt.as_ref().ok_or_else(|| {
            ApiError::new(
                Code::Unavailable,
                "delegation is not configured (serve with --jwt-hs256-secret)",
            )
        })?;
        if input.domains.len() > self.limits.max_domains {
            return Err(ApiError::invalid(format!(
                "domains: at most {} per request",
                self.limits.max_domains
            )));
        }
        Ok(self
            .store
            .mint_delegated(
                config,
                caller,
                &input.end_user,
                &input.domains,
                input.ttl_seconds.unwrap_or(300),
            )
            .await?)
    }

    pub async fn revoke_key(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        Ok(self.store.revoke_key(caller, id).await?)
    }

    /// The caller a one-shot command acts as: the local operator (whoever can open the data
    /// directory is the bootstrap admin), or the principal it names (`--as`).
    pub async fn local_caller(&self, as_principal: Option<&str>) -> ApiResult<Caller> {
        let operator = self.store.local_admin().await?;
        Ok(match as_principal {
            Some(name) => self.store.act_as(&operator, name).await?,
            None => operator,
        })
    }

    pub async fn add_member(&self, caller: &Caller, group: &str, member: &str) -> ApiResult<()> {
        Ok(self.store.add_member(caller, group, member).await?)
    }

    /// Audit entries since `since` (milliseconds since the epoch); admins only.
    pub async fn audit(&self, caller: &Caller, since: i64) -> ApiResult<Vec<AuditEntry>> {
        Ok(self.store.audit_since(caller, since).await?)
    }

    /// Changes a domain's description or catalog option names (its admins).
    pub async fn update_domain(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
        update: DomainUpdate,
    ) -> ApiResult<DomainOut> {
        let switch_to = update.model.clone();
        let domain = self.update_domain_fields(caller, name, update).await?;
        match switch_to {
            None => Ok(DomainOut { domain, task: None }),
            Some(model) => {
                let started = self.set_model(caller, name, &model).await?;
                Ok(DomainOut {
                    domain: started.domain,
                    task: Some(started.task),
                })
            }
        }
    }

    async fn update_domain_fields(
        &self,
        caller: &Caller,
        name: &str,
        update: DomainUpdate,
    ) -> ApiResult<Domain> {
        if update.description.is_none()
            && update.option_names.is_none()
            && update.rerank.is_none()
            && update.model.is_some()
        {
            // Only a switch: the store row is read as the admin sees it (a missing domain is
            // refused by the switch itself, audited).
            let pass = self
                .authorize(caller, &[name.to_string()], Role::Admin)
                .await;
            return match pass {
                Ok(pass) => Ok(opened(&pass, name)?),
                Err(e) => Err(e),
            };
        }
        let settings = match (update.option_names, update.rerank) {
            (None, None) => None,
            (option_names, rerank) => {
                // The stored settings, read as the domain's admin sees them.
                let current = self
                    .store
                    .list_domains(caller)
                    .await?
                    .into_iter()
                    .find(|d| d.name == name);
                match current {
                    Some(d) => {
                        let mut settings = dartmouth_views::domain_settings(&d)?;
                        let mut catalog = dartmouth_views::catalog_settings(&d)?;
                        if let Some(option_names) = option_names {
                            catalog.option_names = option_names;
                        }
                        if let Some(r) = &rerank {
                            settings.rerank = super::search::rerank_default(self, r)?;
                        }
                        Some(dartmouth_views::new_domain_settings(
                            name, &settings, &catalog,
                        )?)
                    }
                    // Not readable: the store refuses (and audits) it as a missing domain.
                    None => None,
                }
            }
        };
        match self
            .store
            .update_domain(
                caller,
                name,
                update.description.as_deref(),
                settings.as_ref(),
            )
            .await
        {
            Ok(d) => Ok(d),
            Err(e) => Err(self
                .refine_denial(caller, &[name.to_string()], Role::Admin, e)
                .await),
        }
    }

    pub async fn delete_principal(&self, caller: &Caller, name: &str) -> ApiResult<()> {
        Ok(self.store.delete_principal(caller, name).await?)
    }

    pub async fn remove_member(&self, caller: &Caller, group: &str, member: &str) -> ApiResult<()> {
        Ok(self.store.remove_member(caller, group, member).await?)
    }

    pub async fn members(&self, caller: &Caller, group: &str) -> ApiResult<Vec<String>> {
        Ok(self.store.members(caller, group).await?)
    }

    /// Audit entries matching `input`, newest first; admins only.
    pub async fn audit_query(
        &self,
        caller: &Caller,
        input: AuditInput,
    ) -> ApiResult<Vec<AuditEntry>> {
        let limit = input.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid(format!("limit: 1 to 1000, got {limit}")));
        }
        if let Some(o) = &input.outcome
            && !matches!(o.as_str(), "ok" | "denied" | "failed")
        {
            return Err(ApiError::invalid(format!(
                "outcome: `{}` is not ok, denied or failed",
                dartmouth_domains::names::shown(o)
            )));
        }
        Ok(self
            .store
            .audit_query(
                caller,
                &dartmouth_domains::AuditQuery {
                    since: input.since,
                    until: input.until,
                    actor: input.actor,
                    action: input.action,
                    target: input.target,
                    outcome: input.outcome,
                    limit,
                },
            )
            .await?)
    }

    /// This node's last minute of requests and the applier's lag on the domains the caller
    /// administers.
    pub async fn live_stats(self: &Arc<Self>, caller: &Caller) -> ApiResult<LiveStats> {
        let mut domains = self.store.accessible(caller, Role::Admin).await?;
        domains.retain(|d| self.holds(&d.name));
        let mut lags = Vec::with_capacity(domains.len());
        let system = self.store.system();
        for d in domains {
            let last_seq = self.store.last_seq(&system, d.id).await?;
            let domain = d.clone();
            let applied_seq = self
                .blocking(move |s| Ok(s.applier().shard(&domain)?.applied_seq()))
                .await?;
            lags.push(DomainLag {
                domain: d.name,
                applied_seq,
                last_seq,
                lag: last_seq.saturating_sub(applied_seq),
            });
        }
        Ok(LiveStats {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            requests: self.metrics.recent(),
            domains: lags,
        })
    }

    /// A domain's state for its readers, its shard caught up first.
    pub async fn domain_stats(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> ApiResult<DomainStatsOut> {
        let pass = self
            .authorize(caller, &[name.to_string()], Role::Read)
            .await?;
        let domain = opened(&pass, name)?;
        let generations = domain.generations.clone();
        let other_generation = match &generations.other {
            Some(o) => Some(
                self.store
                    .slot_progress(&self.store.system(), domain.id, o.slot)
                    .await?,
            ),
            None => None,
        };
        let shard = self
            .blocking(move |s| {
                let applier = s.applier();
                applier.catch_up(&domain)?;
                Ok(applier.shard(&domain)?.stats())
            })
            .await?;
        let stored = self
            .store
            .domain_stats(&pass, name, dartmouth_indexer::shopify::VARIANT_KEY_PREFIX)
            .await?;
        let shop = self
            .store
            .shop_connection(&pass, name)
            .await?
            .map(super::ConnectionOut::from);
        let quarantined = if stored.quarantined > 0 {
            self.store.quarantined(&pass, name).await?
        } else {
            Vec::new()
        };
        Ok(DomainStatsOut {
            shard,
            variants: stored.keyed,
            stored_documents: stored.documents,
            stored_chunks: stored.chunks,
            last_seq: stored.last_seq,
            last_sync: stored.last_write_at.map(format_millis),
            quarantined,
            generations,
            other_generation,
            shop,
        })
    }

    /// Rebuilds a domain's shard from the store, without re-embedding (its admins only).
    pub async fn reindex(self: &Arc<Self>, caller: &Caller, name: &str) -> ApiResult<ReindexOut> {
        let pass = self
            .authorize(caller, &[name.to_string()], Role::Admin)
            .await?;
        let domain = opened(&pass, name)?;
        self.blocking(move |s| {
            let started = std::time::Instant::now();
            let applier = s.applier();
            let seq = applier.rebuild(&domain)?;
            let stats = applier.shard(&domain)?.stats();
            Ok(ReindexOut {
                domain: domain.name.clone(),
                documents: stats.documents,
                chunks: stats.chunks,
                seq,
                seconds: started.elapsed().as_secs_f64(),
            })
        })
        .await
    }
}

/// RFC 3339 (`2026-11-29T05:00:00Z`) of milliseconds since the epoch.
pub fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
