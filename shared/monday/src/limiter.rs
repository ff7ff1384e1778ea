//! Budgets taken before sending: mutations per board per window, requests per window, and the
//! complexity the server last reported.
//!
//! Windows are fixed, aligned on the epoch (`floor(now / window)`), read from the injectable
//! [`Clock`], and counted in the shared [`Budget`] port so every process and Lambda writing to
//! a board draws on one allowance. The window length is a constructor option (60 s in
//! production) so tests can scale cap and window together and still measure utilisation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rand::Rng;

use mlc_core::ports::Budget;
use mlc_core::{Clock, PortError};

/// Limiter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Length of one window (60 s for "per minute").
    pub window: Duration,
    /// Mutations per board per window.
    pub mutations_per_board: u32,
    /// Requests per window for the account.
    pub requests: u32,
    /// Don't start a write in the last part of a window (so it lands inside the window the
    /// budget was counted in): this fraction of the window, in per mille.
    pub tail_guard_permille: u32,
}

impl LimiterConfig {
    /// Per-minute limits.
    pub fn per_minute(mutations_per_board: u32, requests: u32) -> Self {
        LimiterConfig {
            window: Duration::from_secs(60),
            mutations_per_board,
            requests,
            tail_guard_permille: 20,
        }
    }
}

/// The complexity budget the server reported last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ComplexitySeen {
    after: u64,
    reset_at: DateTime<Utc>,
}

/// What a take returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// This many units may be spent now.
    Granted(u32),
    /// Nothing now: come back after this delay (window end plus jitter).
    Wait(Duration),
}

/// The limiter of one sink.
pub struct Limiter {
    budget: Arc<dyn Budget>,
    clock: Arc<dyn Clock>,
    cfg: LimiterConfig,
    complexity: Mutex<Option<ComplexitySeen>>,
    /// Recent request round trips (a decaying maximum, ms): a write must reach the server in
    /// the window its budget was taken from, so the tail guard grows with observed latency.
    latency_ms: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter over a shared budget and a clock.
    pub fn new(budget: Arc<dyn Budget>, clock: Arc<dyn Clock>, cfg: LimiterConfig) -> Self {
        Limiter {
            budget,
            clock,
            cfg,
            complexity: Mutex::new(None),
            latency_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Records one request's round trip.
    pub fn note_latency(&self, d: Duration) {
        use std::sync::atomic::Ordering;
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let old = self.latency_ms.load(Ordering::Relaxed);
        // Decays by an eighth per request, jumps up at once.
        self.latency_ms
            .store(ms.max(old - old / 8), Ordering::Relaxed);
    }

    /// The settings.
    pub fn config(&self) -> LimiterConfig {
        self.cfg
    }

    fn window_ms(&self) -> i64 {
        (self.cfg.window.as_millis() as i64).max(1)
    }

    /// Start of the window holding `now`.
    pub fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let w = self.window_ms();
        let ms = now.timestamp_millis().div_euclid(w) * w;
        Utc.timestamp_millis_opt(ms).single().unwrap_or(now)
    }

    /// Time until the next window, plus jitter of up to 2 % of a window.
    pub fn until_next_window(&self, now: DateTime<Utc>) -> Duration {
        let end = self.window_start(now) + chrono::Duration::milliseconds(self.window_ms());
        let left = (end - now).to_std().unwrap_or_default();
        let jitter = self.cfg.window.mul_f64(rand::rng().random_range(0.0..0.02));
        left + jitter
    }

    fn in_tail(&self, now: DateTime<Utc>) -> bool {
        let into = now.timestamp_millis() - self.window_start(now).timestamp_millis();
        let fixed = self.window_ms() * i64::from(self.cfg.tail_guard_permille) / 1000;
        let latency = 2 * self.latency_ms.load(std::sync::atomic::Ordering::Relaxed);
        // Never more than half a window, or a slow server would stop all writes.
        let guard = fixed.max(latency).min(self.window_ms() / 2);
        into >= self.window_ms() - guard
    }

    /// True in the last moments of a window, when mutations wait for the next one (tail guard).
    pub fn window_ending(&self) -> bool {
        self.in_tail(self.clock.now())
    }

    /// Takes up to `want` mutations of `board`'s budget.
    pub async fn take_mutations(&self, board: &str, want: u32) -> Result<Grant, PortError> {
        let now = self.clock.now();
        if self.in_tail(now) {
            return Ok(Grant::Wait(self.until_next_window(now)));
        }
        let scope = format!("monday:board:{board}");
        let got = self
            .budget
            .take(
                &scope,
                self.window_start(now),
                self.cfg.mutations_per_board,
                want,
            )
            .await?;
        Ok(if got == 0 {
            Grant::Wait(self.until_next_window(now))
        } else {
            Grant::Granted(got)
        })
    }

    /// Takes one request of the account's per-window allowance.
    pub async fn take_request(&self) -> Result<Grant, PortError> {
        let now = self.clock.now();
        let got = self
            .budget
            .take(
                "monday:requests",
                self.window_start(now),
                self.cfg.requests,
                1,
            )
            .await?;
        Ok(if got == 0 {
            Grant::Wait(self.until_next_window(now))
        } else {
            Grant::Granted(got)
        })
    }

    /// Records `complexity { after reset_in_x_seconds }` from a response.
    pub fn note_complexity(&self, after: u64, reset_in_seconds: u64) {
        // The server's number is untrusted: `Duration::seconds` and `+` panic out of range
        // (found by fuzz target monday_responses), so an unrepresentable reset is "never".
        let reset_at = i64::try_from(reset_in_seconds)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| self.clock.now().checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Ok(mut c) = self.complexity.lock() {
            *c = Some(ComplexitySeen { after, reset_at });
        }
    }

    /// `None` when `cost` fits the complexity last reported; otherwise how long until it resets.
    pub fn complexity_wait(&self, cost: u64) -> Option<Duration> {
        let now = self.clock.now();
        let seen = (*self.complexity.lock().ok()?)?;
        if seen.reset_at <= now || seen.after >= cost {
            return None;
        }
        Some((seen.reset_at - now).to_std().unwrap_or_default())
    }

    /// How many mutations of `cost_each` the last reported budget allows (all when unknown).
    pub fn complexity_allows(&self, cost_each: u64, want: u32) -> u32 {
        let now = self.clock.now();
        match self.complexity.lock().ok().and_then(|c| *c) {
            Some(seen) if seen.reset_at > now => {
                let n = seen.after / cost_each.max(1);
                want.min(n.min(u64::from(u32::MAX)) as u32)
            }
            _ => want,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use mlc_core::FixedClock;
    use std::collections::HashMap;

    #[derive(Default)]
    struct MemBudget(Mutex<HashMap<(String, DateTime<Utc>), u32>>);

    #[async_trait]
    impl Budget for MemBudget {
        async fn take(
            &self,
            scope: &str,
            ws: DateTime<Utc>,
            limit: u32,
            want: u32,
        ) -> Result<u32, PortError> {
            let mut m = self.0.lock().unwrap();
            let used = m.entry((scope.to_string(), ws)).or_default();
            let got = want.min(limit.saturating_sub(*used));
            *used += got;
            Ok(got)
        }
    }

    #[tokio::test]
    async fn scaled_window_grants_the_cap_then_waits() {
        let clock = Arc::new(FixedClock::at(Utc.timestamp_millis_opt(10_100).unwrap()));
        let cfg = LimiterConfig {
            window: Duration::from_secs(1),
            ..LimiterConfig::per_minute(40, 1000)
        };
        let l = Limiter::new(Arc::new(MemBudget::default()), clock, cfg);
        assert_eq!(
            l.window_start(Utc.timestamp_millis_opt(10_100).unwrap())
                .timestamp_millis(),
            10_000
        );
        assert_eq!(l.take_mutations("1", 25).await.unwrap(), Grant::Granted(25));
        assert_eq!(l.take_mutations("1", 25).await.unwrap(), Grant::Granted(15));
        match l.take_mutations("1", 1).await.unwrap() {
            Grant::Wait(d) => assert!(
                d >= Duration::from_millis(900) && d <= Duration::from_millis(921),
                "{d:?}"
            ),
            g => panic!("{g:?}"),
        }
        assert_eq!(l.take_mutations("2", 40).await.unwrap(), Grant::Granted(40));
    }

    #[tokio::test]
    async fn the_window_tail_waits_and_says_so() {
        let cfg = LimiterConfig {
            window: Duration::from_secs(1),
            ..LimiterConfig::per_minute(40, 1000)
        };
        let at = |ms| Arc::new(FixedClock::at(Utc.timestamp_millis_opt(ms).unwrap()));
        // The guard is 2 % of the window: the last 20 ms.
        let tail = Limiter::new(Arc::new(MemBudget::default()), at(10_990), cfg);
        assert!(tail.window_ending());
        assert!(matches!(
            tail.take_mutations("1", 1).await.unwrap(),
            Grant::Wait(_)
        ));
        let middle = Limiter::new(Arc::new(MemBudget::default()), at(10_500), cfg);
        assert!(!middle.window_ending());
        assert_eq!(
            middle.take_mutations("1", 1).await.unwrap(),
            Grant::Granted(1)
        );
    }

    #[test]
    fn complexity_budget_limits_the_pack() {
        let clock = Arc::new(FixedClock::at(Utc.timestamp_millis_opt(0).unwrap()));
        let l = Limiter::new(
            Arc::new(MemBudget::default()),
            clock,
            LimiterConfig::per_minute(40, 1000),
        );
        assert_eq!(l.complexity_allows(10_000, 40), 40);
        l.note_complexity(95_000, 30);
        assert_eq!(l.complexity_allows(10_000, 40), 9);
        assert_eq!(l.complexity_wait(100_000), Some(Duration::from_secs(30)));
        assert_eq!(l.complexity_wait(50_000), None);
    }
}
