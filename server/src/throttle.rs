//! Rate limits: one budget per client address, spent before anything else is done with a
//! request (no authentication, no audit write, no HMAC), and one per principal, spent once it is
//! authenticated, shared by HTTP, gRPC and webhooks. Either can exempt configured callers
//! (internal agents: by principal; an internal network: by address).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{ApiError, ApiResult, Code};

/// Requests per minute and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

/// An address block: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock {
    addr: IpAddr,
    prefix: u8,
}

impl AddressBlock {
    pub fn parse(text: &str) -> Result<AddressBlock, String> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address or address/prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0 to {max}"))?,
        };
        Ok(AddressBlock { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key an address's budget is kept under: the address for IPv4, its /64 for IPv6 (one
/// host holds a whole /64, so keying by address would let it mint budgets, and memory).
fn address_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        v4 => v4,
    }
}

#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    /// Per principal, once authenticated.
    pub principal: Option<RateLimit>,
    /// Per client address, before anything else.
    pub address: Option<RateLimit>,
    /// Principals without a budget (internal agents).
    pub exempt_principals: Vec<String>,
    /// Addresses without a budget (an internal network, a trusted proxy).
    pub exempt_addresses: Vec<AddressBlock>,
}

/// Keyed limiters hold one small state per key; past this many keys the idle ones are
/// dropped, so a flood of addresses cannot grow memory without bound.
const MAX_TRACKED: usize = 100_000;

pub struct Throttle {
    principal: Option<DefaultKeyedRateLimiter<String>>,
    address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    exempt_principals: Vec<String>,
    exempt_addresses: Vec<AddressBlock>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    limit: Option<RateLimit>,
    what: &str,
) -> ApiResult<Option<DefaultKeyedRateLimiter<K>>> {
    let Some(l) = limit else {
        return Ok(None);
    };
    let per_minute = NonZeroU32::new(l.per_minute)
        .ok_or_else(|| ApiError::invalid(format!("{what} rate limit must be at least 1/min")))?;
    let burst = NonZeroU32::new(l.burst.max(1)).unwrap_or(per_minute);
    Ok(Some(RateLimiter::keyed(
        Quota::per_minute(per_minute).allow_burst(burst),
    )))
}

fn refused(wait: Duration, message: String) -> ApiError {
    ApiError::new(Code::RateLimited, message).retry_after(wait)
}

impl Throttle {
    pub fn new(limits: RateLimits) -> ApiResult<Throttle> {
        Ok(Throttle {
            principal: limiter(limits.principal, "principal")?,
            address: limiter(limits.address, "address")?,
            exempt_principals: limits.exempt_principals,
            exempt_addresses: limits.exempt_addresses,
        })
    }

    /// Spends one request of the client address's budget.
    pub fn address(&self, ip: Option<IpAddr>) -> ApiResult<()> {
        let (Some(limiter), Some(ip)) = (&self.address, ip) else {
            return Ok(());
        };
        if self.exempt_addresses.iter().any(|b| b.contains(ip)) {
            return Ok(());
        }
        if limiter.len() > MAX_TRACKED {
            limiter.retain_recent();
        }
        limiter.check_key(&address_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            refused(
                wait,
                format!(
                    "rate limit of this client address exceeded; retry after {} ms",
                    wait.as_millis()
                ),
            )
        })
    }

    /// Spends one request of the principal's budget.
    pub fn principal(&self, name: &str) -> ApiResult<()> {
        let Some(limiter) = &self.principal else {
            return Ok(());
        };
        if self.exempt_principals.iter().any(|p| p == name) {
            return Ok(());
        }
        limiter.check_key(&name.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            refused(
                wait,
                format!(
                    "rate limit of principal `{name}` exceeded; retry after {} ms",
                    wait.as_millis()
                ),
            )
        })
    }

    /// Forgets budgets that are full again (called now and then).
    pub fn tidy(&self) {
        if let Some(l) = &self.address {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.principal {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_blocks_match_by_prefix() {
        let net = AddressBlock::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let one = AddressBlock::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = AddressBlock::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(
            AddressBlock::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        for bad in ["", "10.0.0.0/33", "x/8", "::/129"] {
            assert!(AddressBlock::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn budgets_are_per_address_and_per_principal_with_exemptions() {
        let t = Throttle::new(RateLimits {
            principal: Some(RateLimit {
                per_minute: 2,
                burst: 2,
            }),
            address: Some(RateLimit {
                per_minute: 3,
                burst: 3,
            }),
            exempt_principals: vec!["llm".into()],
            exempt_addresses: vec![AddressBlock::parse("10.0.0.0/8").unwrap()],
        })
        .unwrap();
        for _ in 0..3 {
            t.address(Some(ip("192.0.2.1"))).unwrap();
        }
        let e = t.address(Some(ip("192.0.2.1"))).unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        assert!(e.retry_after.is_some());
        t.address(Some(ip("192.0.2.2"))).unwrap();
        for _ in 0..10 {
            t.address(Some(ip("10.9.9.9"))).unwrap();
            t.principal("llm").unwrap();
        }
        // One IPv6 host's /64 is one budget.
        for i in 0..3 {
            t.address(Some(ip(&format!("2001:db8::{i}")))).unwrap();
        }
        assert!(t.address(Some(ip("2001:db8::ff"))).is_err());
        t.principal("agent").unwrap();
        t.principal("agent").unwrap();
        assert!(t.principal("agent").is_err());
    }
}
