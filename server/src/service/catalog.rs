//! Shopify: catalog uploads (writers) and signed webhooks, one job per domain at a time.

use std::sync::Arc;

use dartmouth_domains::{Caller, Domain, Pass, Role};
use dartmouth_indexer::{IndexSummary, Item};
use tokio::runtime::Handle;

use super::{CatalogUpload, Service, ShopifyDelivery, opened};
use crate::error::{ApiError, ApiResult, Code};
use crate::shopify::{CatalogFormat, ShopifyOutput, ShopifyWebhook};

impl Service {
    /// Indexes a Shopify catalog (Admin REST or storefront JSON, product CSV export, GraphQL
    /// bulk JSONL), each product one document. Records that cannot be read are listed in
    /// `failed` and the rest is written; a body none of whose records can be read is refused.
    pub async fn upload_catalog<B>(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        upload: CatalogUpload,
        body: B,
    ) -> ApiResult<ShopifyOutput>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        let format = upload
            .format
            .as_deref()
            .map(CatalogFormat::parse)
            .transpose()?;
        if let Some(b) = &upload.base_url
            && !(b.starts_with("https://") || b.starts_with("http://"))
        {
            return Err(ApiError::invalid(format!(
                "base_url: must start with https:// or http://, got `{}`",
                dartmouth_domains::names::shown(b)
            )));
        }
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let name = domain.to_string();
        let explicit = format.is_some();
        self.blocking(move |s| {
            let text = crate::shopify::utf8_body(body.as_ref())?;
            let format = format
                .unwrap_or_else(|| CatalogFormat::sniff(text, upload.content_type.as_deref()));
            let items = crate::shopify::read_catalog(
                text,
                format,
                upload.base_url.as_deref(),
                upload.full_sync,
            )
            .map_err(|refusal| match refusal {
                // `garbage` fails as a CSV header: say the format was a guess.
                crate::shopify::Refusal::Body(mut e) if !explicit => {
                    e.message.push_str(&format!(
                        " (read as {}, detected from the request; choose with ?format=json, csv or bulk)",
                        format.as_str()
                    ));
                    e
                }
                other => ApiError::from(other),
            })?;
            let mut out = ShopifyOutput::new(s.run_shopify(pass, &name, items, upload.full_sync)?);
            out.format = Some(format);
            Ok(out)
        })
        .await
    }

    /// The webhook settings of `domain`; a domain without them answers as a missing domain.
    fn webhook_config(&self, domain: &str) -> ApiResult<&ShopifyWebhook> {
        self.webhooks.get(domain).ok_or_else(|| {
            self.metrics.denied(Code::NotFound);
            ApiError::from(dartmouth_domains::Error::NotFound {
                what: dartmouth_domains::Missing::Domain,
                name: dartmouth_domains::names::shown(domain),
            })
        })
    }

    fn bad_signature(&self) -> ApiError {
        self.metrics.webhook("shopify", false);
        self.metrics.denied(Code::Unauthenticated);
        // No detail: a prober learns nothing about what was wrong.
        ApiError::new(
            Code::Unauthenticated,
            "webhook signature missing or invalid",
        )
    }

    /// What can be refused before the body is read: a domain without webhooks (the 404 of a
    /// missing domain) and an unsigned request (401).
    pub fn shopify_webhook_gate(&self, domain: &str, signature: Option<&str>) -> ApiResult<()> {
        self.webhook_config(domain)?;
        if signature.is_none_or(|s| s.trim().is_empty()) {
            return Err(self.bad_signature());
        }
        Ok(())
    }

    /// A Shopify webhook: authenticated by `X-Shopify-Hmac-Sha256` over the raw body (checked
    /// before the body is parsed), written as the domain's configured principal through the
    /// normal authorization (so its grants apply). Shopify retries deliveries: one whose
    /// `X-Shopify-Webhook-Id` was processed is acknowledged without processing, and an update
    /// older than the stored product or stock level (by `updated_at`) is not applied.
    pub async fn shopify_webhook<B>(
        self: &Arc<Self>,
        domain: &str,
        signature: Option<&str>,
        delivery: ShopifyDelivery,
        body: B,
    ) -> ApiResult<ShopifyOutput>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        self.shopify_webhook_gate(domain, signature)?;
        if body.as_ref().len() > self.limits.max_webhook_bytes {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!(
                    "body: {} bytes; a webhook is at most {}",
                    body.as_ref().len(),
                    self.limits.max_webhook_bytes
                ),
            ));
        }
        let hook = self.webhook_config(domain)?.clone();
        if !crate::shopify::verify_signature(&hook.secret, body.as_ref(), signature.unwrap_or("")) {
            tracing::info!("shopify webhook with a bad signature");
            return Err(self.bad_signature());
        }
        self.metrics.webhook("shopify", true);
        let caller = self.webhook_caller(&hook.principal).await?;
        self.rate_limit(&caller)?;
        let pass = self
            .authorize(&caller, &[domain.to_string()], Role::Write)
            .await
            .inspect_err(|e| {
                tracing::warn!(
                    principal = %hook.principal, error = %e,
                    "shopify webhook: the configured principal may not write to the domain"
                );
            })?;
        let value = crate::shopify::json_body(
            crate::shopify::utf8_body(body.as_ref())?,
            crate::shopify::BODY_LABEL,
        )?;
        let label = crate::shopify::WEBHOOK_LABEL;
        let topic = delivery.topic;
        let item = dartmouth_indexer::shopify_item(
            dartmouth_indexer::shopify::webhook(value, topic.as_deref(), label),
            label,
            hook.base_url.as_deref(),
        );
        // A payload we cannot use (an unsupported topic, a missing field) and an inventory
        // update for an item no product in the domain holds are answered 200 with the failure
        // listed (and logged by the job), not 4xx: Shopify retries any non-2xx delivery for
        // days and then drops the subscription, and a retry cannot fix either. Failures a
        // retry can fix (the store or the model unavailable) stay 5xx.
        let name = domain.to_string();
        // Ids longer than Shopify's (a UUID) are not kept: such a delivery is just processed.
        let id = delivery.id.filter(|id| !id.is_empty() && id.len() <= 256);
        let mut out = self
            .blocking(move |s| {
                let _one_at_a_time = s.shopify_lock(&name)?;
                if let Some(id) = &id
                    && Handle::current().block_on(s.store.delivered(&pass, &name, id))?
                {
                    let mut out = ShopifyOutput::new(IndexSummary {
                        domain: name.clone(),
                        applied_seq: s
                            .applier()
                            .existing_shard(
                                pass.domain(&name)
                                    .ok_or_else(|| ApiError::internal("pass"))?,
                            )?
                            .map_or(0, |shard| shard.applied_seq()),
                        ..IndexSummary::default()
                    });
                    out.duplicate = true;
                    return Ok(out);
                }
                let domain_row = opened(&pass, &name)?;
                let summary = s.index_items(pass.clone(), domain_row, vec![item], false, false)?;
                if let Some(id) = &id {
                    Handle::current().block_on(s.store.record_delivery(&pass, &name, id))?;
                }
                Ok(ShopifyOutput::new(summary))
            })
            .await?;
        out.topic = topic;
        Ok(out)
    }

    /// One Shopify job at a time per domain (see `shopify_locks`).
    /// Call from blocking code (the lock is waited for in place).
    fn shopify_lock(&self, domain: &str) -> ApiResult<tokio::sync::OwnedMutexGuard<()>> {
        let lock = {
            let mut locks = self.shopify_locks.lock().map_err(ApiError::internal)?;
            Arc::clone(locks.entry(domain.to_string()).or_default())
        };
        Ok(lock.blocking_lock_owned())
    }

    /// The principal a domain's webhooks write as (the local operator acts as it).
    async fn webhook_caller(&self, principal: &str) -> ApiResult<Caller> {
        let operator = match self.operator.get() {
            Some(a) => a,
            None => {
                let a = self.store.local_admin().await?;
                self.operator.get_or_init(|| a)
            }
        };
        self.store.act_as(operator, principal).await.map_err(|e| {
            tracing::warn!(principal, error = %e, "shopify webhook: principal unavailable");
            ApiError::new(
                Code::Unavailable,
                "the webhook's principal is unavailable (logged)",
            )
        })
    }

    /// Checks each webhook's principal once at start-up (a typo fails loudly, not per
    /// delivery).
    pub async fn check_webhooks(&self) -> ApiResult<()> {
        for hook in self.webhooks.values() {
            if !self.holds(&hook.domain) {
                return Err(ApiError::invalid(format!(
                    "shopify webhook for domain `{}`: this node does not hold it (add it to \
                     --domains)",
                    hook.domain
                )));
            }
            self.webhook_caller(&hook.principal).await.map_err(|_| {
                ApiError::invalid(format!(
                    "shopify webhook for domain `{}`: principal `{}` does not exist (create it, \
                     and grant it write on the domain)",
                    hook.domain, hook.principal
                ))
            })?;
        }
        Ok(())
    }

    /// Runs Shopify items through the indexer into `domain` (which `pass` opens for writing).
    fn run_shopify(
        &self,
        pass: Pass,
        domain: &str,
        items: Vec<dartmouth_indexer::Result<Item>>,
        full_sync: bool,
    ) -> ApiResult<IndexSummary> {
        let domain_row: Domain = opened(&pass, domain)?;
        let _one_at_a_time = self.shopify_lock(domain)?;
        self.index_items(pass, domain_row, items, false, full_sync)
    }
}
