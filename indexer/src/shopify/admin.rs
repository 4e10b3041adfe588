//! The Shopify Admin GraphQL API as a pull sync uses it: one endpoint per shop and API version
//! (`https://{shop}/admin/api/{version}/graphql.json`), the access token in
//! `X-Shopify-Access-Token`, and Shopify's rate limits obeyed:
//!
//! - the cost budget: every answer's `extensions.cost.throttleStatus` says how many points are
//!   left and how fast they come back; before a query whose last cost is more than what is left,
//!   the client waits for the restore rate to refill it;
//! - a `THROTTLED` error (`errors[].extensions.code`) and HTTP 429 (with `Retry-After`) are
//!   waited out and retried; 5xx answers and network errors are retried with exponential
//!   backoff; a refused token (401/403) and a version the shop does not serve (404) are not.
//!
//! References (Admin GraphQL API, the versions this targets): rate limits
//! <https://shopify.dev/docs/api/usage/rate-limits>, authentication
//! <https://shopify.dev/docs/api/admin-graphql#authentication>, versioning
//! <https://shopify.dev/docs/api/usage/versioning>.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{Error, ErrorKind, Result};

/// How often and how long the client retries what may pass.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles each time, up to `max_wait`.
    pub backoff: Duration,
    /// The longest single wait (a `Retry-After` or a cost refill longer than this is cut).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// What the client went through: requests, waits, retries (status and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    pub requests: u64,
    /// `THROTTLED` answers and 429s.
    pub throttled: u64,
    /// Requests sent again after a 5xx or a network error.
    pub retried: u64,
    /// Seconds spent waiting for the cost budget, `Retry-After` and backoff.
    pub waited_secs: f64,
    /// The sum of `actualQueryCost`.
    pub cost: f64,
}

/// The last `throttleStatus` seen.
#[derive(Debug, Clone, Copy)]
struct Budget {
    available: f64,
    restore_rate: f64,
    /// The cost the last query asked for: what the next one likely needs.
    last_requested: f64,
}

/// One shop's Admin GraphQL endpoint with its token.
pub struct AdminApi {
    shop: String,
    endpoint: String,
    token: String,
    agent: ureq::Agent,
    policy: RetryPolicy,
    budget: Option<Budget>,
    pub stats: CallStats,
}

impl std::fmt::Debug for AdminApi {
    // The token is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn shop_error(kind: ErrorKind, shop: &str, message: impl std::fmt::Display) -> Error {
    Error::Shop {
        kind,
        message: format!("shop {shop}: {message}"),
    }
}

impl AdminApi {
    /// `base` is `https://{shop}` (a test server's `http://127.0.0.1:port` in tests).
    pub fn new(base: &str, shop: &str, version: &str, token: &str, policy: RetryPolicy) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        AdminApi {
            shop: shop.to_string(),
            endpoint: format!(
                "{}/admin/api/{version}/graphql.json",
                base.trim_end_matches('/')
            ),
            token: token.to_string(),
            agent,
            policy,
            budget: None,
            stats: CallStats::default(),
        }
    }

    pub fn shop(&self) -> &str {
        &self.shop
    }

    fn wait(&mut self, d: Duration) {
        let d = d.min(self.policy.max_wait);
        self.stats.waited_secs += d.as_secs_f64();
        std::thread::sleep(d);
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.policy
            .backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.policy.max_wait)
    }

    /// Waits until the budget holds what the last query cost, if it does not now.
    fn pace(&mut self) {
        let Some(b) = self.budget else { return };
        if b.available >= b.last_requested || b.restore_rate <= 0.0 {
            return;
        }
        let secs = (b.last_requested - b.available) / b.restore_rate;
        self.wait(Duration::from_secs_f64(secs));
        // What came back meanwhile: the next answer says exactly.
        self.budget = Some(Budget {
            available: b.last_requested,
            ..b
        });
    }

    /// Runs `query` with `variables`; its `data`. GraphQL errors other than throttling fail it,
    /// their messages quoted.
    pub fn query(&mut self, query: &str, variables: Value) -> Result<Value> {
        let body = json!({"query": query, "variables": variables}).to_string();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last = attempt >= self.policy.attempts;
            self.pace();
            self.stats.requests += 1;
            let sent = self
                .agent
                .post(&self.endpoint)
                .header("X-Shopify-Access-Token", &self.token)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send(body.as_bytes());
            let mut response = match sent {
                Ok(r) => r,
                Err(e) => {
                    if last {
                        return Err(shop_error(
                            ErrorKind::Unavailable,
                            &self.shop,
                            format!("cannot reach the Admin API after {attempt} attempts: {e}"),
                        ));
                    }
                    self.stats.retried += 1;
                    self.wait(self.backoff(attempt));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0);
            let text = response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .unwrap_or_default();
            match status {
                200 => {}
                401 | 403 => {
                    return Err(shop_error(
                        ErrorKind::BadRequest,
                        &self.shop,
                        format!(
                            "the shop refused the access token ({status}: {})",
                            error_text(&text)
                        ),
                    ));
                }
                404 => {
                    return Err(shop_error(
                        ErrorKind::BadRequest,
                        &self.shop,
                        format!(
                            "no Admin API at {} (404): is the API version one the shop serves?",
                            self.endpoint
                        ),
                    ));
                }
                429 => {
                    self.stats.throttled += 1;
                    if last {
                        return Err(shop_error(
                            ErrorKind::Unavailable,
                            &self.shop,
                            format!("still throttled (429) after {attempt} attempts"),
                        ));
                    }
                    let d = retry_after
                        .map(Duration::from_secs_f64)
                        .unwrap_or_else(|| self.backoff(attempt));
                    self.wait(d);
                    continue;
                }
                s if s >= 500 => {
                    if last {
                        return Err(shop_error(
                            ErrorKind::Unavailable,
                            &self.shop,
                            format!(
                                "the Admin API failed ({s}) {attempt} times: {}",
                                error_text(&text)
                            ),
                        ));
                    }
                    self.stats.retried += 1;
                    self.wait(self.backoff(attempt));
                    continue;
                }
                s => {
                    return Err(shop_error(
                        ErrorKind::BadRequest,
                        &self.shop,
                        format!("the Admin API answered {s}: {}", error_text(&text)),
                    ));
                }
            }
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                shop_error(
                    ErrorKind::Unavailable,
                    &self.shop,
                    format!("the Admin API's answer is not JSON: {e}"),
                )
            })?;
            let cost = &v["extensions"]["cost"];
            if let Some(available) = cost["throttleStatus"]["currentlyAvailable"].as_f64() {
                self.budget = Some(Budget {
                    available,
                    restore_rate: cost["throttleStatus"]["restoreRate"]
                        .as_f64()
                        .unwrap_or(50.0),
                    last_requested: cost["requestedQueryCost"].as_f64().unwrap_or(0.0),
                });
            }
            self.stats.cost += cost["actualQueryCost"].as_f64().unwrap_or(0.0);
            let errors = v["errors"].as_array().cloned().unwrap_or_default();
            if errors
                .iter()
                .any(|e| e["extensions"]["code"] == "THROTTLED")
            {
                self.stats.throttled += 1;
                if last {
                    return Err(shop_error(
                        ErrorKind::Unavailable,
                        &self.shop,
                        format!("still THROTTLED after {attempt} attempts"),
                    ));
                }
                // The pace before the next attempt waits for the refill; with no budget said,
                // back off.
                if self.budget.is_none() {
                    self.wait(self.backoff(attempt));
                }
                continue;
            }
            if !errors.is_empty() {
                let messages: Vec<String> = errors
                    .iter()
                    .map(|e| e["message"].as_str().unwrap_or("(no message)").to_string())
                    .collect();
                return Err(shop_error(
                    ErrorKind::BadRequest,
                    &self.shop,
                    format!("the Admin API refused the query: {}", messages.join("; ")),
                ));
            }
            return Ok(v["data"].clone());
        }
    }
}

/// The words of an error answer: its `errors` (a string or a list of objects with messages),
/// else its first 200 characters.
fn error_text(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => match &v["errors"] {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|e| {
                    e["message"]
                        .as_str()
                        .map_or_else(|| e.to_string(), str::to_string)
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => text.chars().take(200).collect(),
        },
        Err(_) => text.chars().take(200).collect(),
    }
}
