//! The replicator's wall clock, a seam tests can set: pass start and stats
//! times, reclaim ages, tmp-file reclaim and whole-DB ship deadlines all
//! read [`Clock::now`] (monotonic durations — rate limits, latencies —
//! keep using `Instant`).

use std::time::SystemTime;

/// Where the replicator reads the wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;

    /// [`Clock::now`] as seconds since the epoch.
    fn now_secs(&self) -> f64 {
        epoch_secs(self.now())
    }
}

/// The system's clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Seconds since the epoch (negative before it).
pub fn epoch_secs(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// The time `secs` seconds after the epoch; `None` for negative, NaN or
/// out-of-range values.
pub fn from_epoch_secs(secs: f64) -> Option<SystemTime> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let d = std::time::Duration::try_from_secs_f64(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        assert_eq!(epoch_secs(t), 1_700_000_000.25);
        assert_eq!(from_epoch_secs(1_700_000_000.25), Some(t));
        assert_eq!(
            epoch_secs(SystemTime::UNIX_EPOCH - Duration::from_secs(2)),
            -2.0
        );
        assert!(from_epoch_secs(-1.0).is_none());
        assert!(from_epoch_secs(f64::NAN).is_none());
        assert!(from_epoch_secs(f64::INFINITY).is_none());
        assert!(from_epoch_secs(1e300).is_none());
        assert!(SystemClock.now_secs() > 1_600_000_000.0);
    }
}
