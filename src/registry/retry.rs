//! The retry budget: which answers are worth another attempt and how long to
//! wait before it.

use std::time::Duration;

use http::StatusCode;

/// Attempts (first try included) when the environment does not say.
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// The first backoff; it doubles per attempt up to [`MAX_DELAY`].
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(250);
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this is cut, so one answer cannot stall a push.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Overrides the attempts (`OXPORT_REGISTRY_ATTEMPTS`) and the first delay in
/// milliseconds (`OXPORT_REGISTRY_RETRY_DELAY_MS`), e.g. to keep tests short.
pub const ENV_ATTEMPTS: &str = "OXPORT_REGISTRY_ATTEMPTS";
pub const ENV_DELAY_MS: &str = "OXPORT_REGISTRY_RETRY_DELAY_MS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
        }
    }
}

impl RetryPolicy {
    /// The defaults, overridden by the environment where it says so.
    pub fn from_env() -> Self {
        let mut p = RetryPolicy::default();
        if let Some(n) = std::env::var(ENV_ATTEMPTS)
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        {
            p.attempts = n.max(1);
        }
        if let Some(ms) = std::env::var(ENV_DELAY_MS)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            p.base_delay = Duration::from_millis(ms);
        }
        p
    }

    /// The wait before attempt `attempt + 1` (0-based `attempt` just failed).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(MAX_RETRY_AFTER);
        }
        let factor = 1u32 << attempt.min(16);
        self.base_delay.saturating_mul(factor).min(MAX_DELAY)
    }
}

/// Answers that a later attempt may turn into a success.
pub fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS
        || s == StatusCode::REQUEST_TIMEOUT
        || (s.is_server_error()
            && s != StatusCode::NOT_IMPLEMENTED
            && s != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_honours_retry_after() {
        let p = RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(100),
        };
        assert_eq!(p.delay(0, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, None), Duration::from_millis(400));
        assert_eq!(p.delay(30, None), MAX_DELAY);
        assert_eq!(p.delay(0, parse_retry_after("3")), Duration::from_secs(3));
        assert_eq!(p.delay(0, parse_retry_after("100000")), MAX_RETRY_AFTER);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable_status(StatusCode::BAD_GATEWAY));
        assert!(!retryable_status(StatusCode::NOT_IMPLEMENTED));
        assert!(!retryable_status(StatusCode::NOT_FOUND));
    }
}
