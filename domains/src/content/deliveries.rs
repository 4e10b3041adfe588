//! Webhook deliveries already processed, by the sender's delivery id.

use super::writable;
use crate::Result;
use crate::access::Pass;
use crate::model::now_millis;
use crate::store::Store;

impl Store {
    /// Whether a webhook delivery (the sender's delivery id) was already processed for the
    /// domain `pass` opens for writing.
    pub async fn delivered(&self, pass: &Pass, domain: &str, delivery_id: &str) -> Result<bool> {
        let d = writable(pass, domain)?;
        let row = sqlx::query(
            "SELECT 1 AS one FROM webhook_deliveries WHERE domain_id = $1 AND delivery_id = $2",
        )
        .bind(d.id)
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records a processed webhook delivery; forgets those older than three days (Shopify
    /// retries a delivery for 48 hours).
    pub async fn record_delivery(
        &self,
        pass: &Pass,
        domain: &str,
        delivery_id: &str,
    ) -> Result<()> {
        const KEEP_MS: i64 = 3 * 24 * 3600 * 1000;
        let d = writable(pass, domain)?;
        let now = now_millis();
        sqlx::query(
            "INSERT INTO webhook_deliveries (domain_id, delivery_id, at) VALUES ($1, $2, $3) \
             ON CONFLICT (domain_id, delivery_id) DO NOTHING",
        )
        .bind(d.id)
        .bind(delivery_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE at < $1")
            .bind(now - KEEP_MS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
