//! Limits on requests and on long-lived responses.
//!
//! - [`request_limits`]: a middleware answering JSON 414 for a URI longer than
//!   [`MAX_URI_BYTES`] and JSON 431 for more than [`MAX_HEADERS`] headers or more than
//!   [`MAX_HEADER_BYTES`] of them (hyper is configured to let such requests through to
//!   us, see [`super::serve`]).
//! - [`StreamLimits`]: a cap on the streams (SSE) and long-polls open at once, per API key
//!   and in all; over the cap a request gets 429 `too_many_streams` with `Retry-After`.
//!   The slot is held by a [`StreamPermit`] for as long as the response lives.
//! - [`RateLimits`]: a token bucket per API key (governor's GCRA): a key that spends its
//!   burst faster than its sustained rate refills it gets 429 `rate_limited` with
//!   `Retry-After` (the seconds until its next request would be accepted), counted in
//!   `sessiond_rate_limited_total`. Checked once per request, right after the key is
//!   authenticated, so unauthenticated requests never create buckets (the bucket map
//!   holds at most one small entry per issued key).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::{ApiError, ErrorCode};

/// The rate each API key may sustain and the burst it may spend at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    /// Requests per second, sustained.
    pub per_second: std::num::NonZeroU32,
    /// Requests accepted at once from a full bucket.
    pub burst: std::num::NonZeroU32,
}

type KeyedLimiter<C> = governor::RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    C,
    governor::middleware::NoOpMiddleware<<C as governor::clock::Clock>::Instant>,
>;

/// A token bucket per API key; `None` inside: no limit (the operator turned it off).
/// The clock is an input: production uses governor's monotonic clock, tests a
/// [`governor::clock::FakeRelativeClock`] they move by hand.
#[derive(Clone)]
pub struct RateLimits<C: governor::clock::Clock + Clone = governor::clock::DefaultClock> {
    limiter: Option<Arc<KeyedLimiter<C>>>,
    clock: C,
}

impl<C: governor::clock::Clock + Clone> std::fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.limiter.is_some())
            .finish()
    }
}

impl RateLimits {
    /// Limits of `quota` on the monotonic clock (`None`: unlimited).
    pub fn new(quota: Option<RateQuota>) -> Self {
        Self::with_clock(quota, governor::clock::DefaultClock::default())
    }
}

impl<C: governor::clock::Clock + Clone> RateLimits<C> {
    /// Limits of `quota` on `clock` (`None`: unlimited).
    pub fn with_clock(quota: Option<RateQuota>, clock: C) -> Self {
        let limiter = quota.map(|q| {
            let quota = governor::Quota::per_second(q.per_second).allow_burst(q.burst);
            Arc::new(governor::RateLimiter::dashmap_with_clock(
                quota,
                clock.clone(),
            ))
        });
        Self { limiter, clock }
    }

    /// Spends one request of `key_id`'s bucket, or 429 `rate_limited` with the seconds
    /// until it may ask again (at least 1).
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.check_key(&key_id.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("sessiond_rate_limited_total").increment(1);
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                let seconds = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX);
                let seconds = if wait.subsec_nanos() > 0 {
                    seconds.saturating_add(1)
                } else {
                    seconds
                }
                .max(1);
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!("this key sent requests faster than its limit; retry in {seconds} s"),
                )
                .retry_after(seconds))
            }
        }
    }
}

/// Longest accepted request target (path and query).
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Most request headers.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of request headers (names and values).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Middleware: 414 / 431 with the JSON error body.
pub async fn request_limits(req: Request, next: Next) -> Response {
    let uri_len = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if uri_len > MAX_URI_BYTES {
        return ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let headers = req.headers();
    let bytes = headers.iter().fold(0usize, |n, (k, v)| {
        n.saturating_add(k.as_str().len())
            .saturating_add(v.as_bytes().len())
    });
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!("the request headers exceed {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_key: HashMap<String, usize>,
}

/// Caps on open streams and long-polls.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    per_key: usize,
    total: usize,
    counts: Arc<Mutex<Counts>>,
}

impl StreamLimits {
    /// At most `per_key` open per API key and `total` in all.
    pub fn new(per_key: usize, total: usize) -> Self {
        Self {
            per_key,
            total,
            counts: Arc::default(),
        }
    }

    /// Takes a slot for `key_id`, or 429 `too_many_streams`.
    pub fn acquire(&self, key_id: &str) -> Result<StreamPermit, ApiError> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.total {
            metrics::counter!("sessiond_streams_refused_total", "limit" => "total").increment(1);
            return Err(ApiError::new(
                ErrorCode::TooManyStreams,
                format!("the server has {} streams open; retry later", self.total),
            )
            .retry_after(5));
        }
        let mine = c.per_key.get(key_id).copied().unwrap_or(0);
        if mine >= self.per_key {
            metrics::counter!("sessiond_streams_refused_total", "limit" => "per_key").increment(1);
            return Err(ApiError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "this key has {} streams and long-polls open (the most allowed); close one or retry later",
                    self.per_key
                ),
            )
            .retry_after(1));
        }
        c.total = c.total.saturating_add(1);
        c.per_key.insert(key_id.to_string(), mine.saturating_add(1));
        metrics::gauge!("sessiond_streams_open").set(c.total as f64);
        Ok(StreamPermit {
            limits: self.clone(),
            key_id: key_id.to_string(),
        })
    }

    fn release(&self, key_id: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_key.get_mut(key_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_key.remove(key_id);
            }
        }
        metrics::gauge!("sessiond_streams_open").set(c.total as f64);
    }

    /// Streams open now (all keys).
    pub fn open(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }
}

/// One open stream's slot; freed when dropped (the response ended).
#[derive(Debug)]
pub struct StreamPermit {
    limits: StreamLimits,
    key_id: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limits.release(&self.key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(per_second: u32, burst: u32) -> Option<RateQuota> {
        Some(RateQuota {
            per_second: std::num::NonZeroU32::new(per_second).unwrap(),
            burst: std::num::NonZeroU32::new(burst).unwrap(),
        })
    }

    #[test]
    fn a_key_that_spends_its_burst_is_refused_with_the_wait_until_a_token_returns() {
        // Given a limit of 2 requests per second with a burst of 3, on a stopped clock
        let clock = governor::clock::FakeRelativeClock::default();
        let limits = RateLimits::with_clock(quota(2, 3), clock.clone());
        // When the key sends its burst, then one more
        for _ in 0..3 {
            limits.check("k1").unwrap();
        }
        let refused = limits.check("k1").unwrap_err();
        // Then the extra one is refused with Retry-After 1 (a token returns in 0.5 s)
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.retry_after, Some(1));
        // And another key still has its whole burst
        for _ in 0..3 {
            limits.check("k2").unwrap();
        }
        // And half a second later the first key has exactly one request again
        clock.advance(std::time::Duration::from_millis(500));
        limits.check("k1").unwrap();
        assert!(limits.check("k1").is_err());
    }

    #[test]
    fn a_slow_limit_says_how_many_whole_seconds_to_wait() {
        // Given one request per second with no burst beyond it
        let clock = governor::clock::FakeRelativeClock::default();
        let limits = RateLimits::with_clock(quota(1, 1), clock.clone());
        limits.check("k").unwrap();
        // When the key asks again 0.2 s later, then it waits the remaining 0.8 s, rounded up
        clock.advance(std::time::Duration::from_millis(200));
        assert_eq!(limits.check("k").unwrap_err().retry_after, Some(1));
        // And once the second has passed it is accepted
        clock.advance(std::time::Duration::from_millis(800));
        limits.check("k").unwrap();
    }

    #[test]
    fn no_quota_means_no_limit() {
        let limits = RateLimits::new(None);
        for _ in 0..10_000 {
            limits.check("k").unwrap();
        }
    }

    #[test]
    fn a_key_gets_at_most_its_share_and_slots_come_back_when_streams_end() {
        let limits = StreamLimits::new(2, 3);
        let a1 = limits.acquire("a").unwrap();
        let _a2 = limits.acquire("a").unwrap();
        assert_eq!(
            limits.acquire("a").map(|_| ()).map_err(|e| e.code),
            Err(ErrorCode::TooManyStreams)
        );
        let _b1 = limits.acquire("b").unwrap();
        assert!(limits.acquire("c").is_err(), "the total cap");
        drop(a1);
        let _a3 = limits.acquire("a").unwrap();
        assert_eq!(limits.open(), 3);
    }
}
