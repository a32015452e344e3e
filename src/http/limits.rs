//! Limits on requests and on long-lived responses.
//!
//! - [`request_limits`]: a middleware answering JSON 414 for a URI longer than
//!   [`MAX_URI_BYTES`] and JSON 431 for more than [`MAX_HEADERS`] headers or more than
//!   [`MAX_HEADER_BYTES`] of them (hyper is configured to let such requests through to
//!   us, see [`super::serve`]).
//! - [`StreamLimits`]: a cap on the streams (SSE) and long-polls open at once, per API key
//!   and in all; over the cap a request gets 429 `too_many_streams` with `Retry-After`.
//!   The slot is held by a [`StreamPermit`] for as long as the response lives.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::{ApiError, ErrorCode};

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
