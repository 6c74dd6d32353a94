//! Time, injected: what every time-dependent stage of alertbook (the rule
//! scheduler, triage re-runs, the routing flush loop, delivery retries, the
//! journal's reminders, the server's default query time) reads instead of
//! the system clock.
//!
//! A [`Clock`] answers two questions: what time it is ([`Clock::now_ms`],
//! Unix milliseconds) and how long to sleep on the runtime's timer for some
//! of its own time to pass ([`Clock::wall_delay`]). Loops compute their next
//! deadline in the clock's time and sleep `wall_delay(deadline - now)`, so
//! the same loop runs at the wall's pace with [`SystemClock`], in paused
//! tokio time with [`TokioClock`] (tests where hours pass in milliseconds),
//! and `speed` times faster than the wall with [`ScaledClock`] (`alertbook
//! demo`, which plays a simulated day in minutes).
//!
//! The crate only reads clocks: it sleeps nothing, spawns nothing and does
//! no I/O.

use std::time::Duration;

/// The current time, injected.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;

    /// How long to sleep on the runtime's timer until `virtual_ms` of this
    /// clock's milliseconds have passed (none when `virtual_ms` ≤ 0). The
    /// identity for clocks that run at the wall's pace.
    fn wall_delay(&self, virtual_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(virtual_ms).unwrap_or(0))
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that follows tokio's (pausable) time from a chosen start.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `epoch_ms` now.
    pub fn starting_at(epoch_ms: i64) -> Self {
        Self { epoch_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.epoch_ms + i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

const NANOS_PER_MS: i128 = 1_000_000;

/// A clock that runs `speed` times faster than the wall through a span of
/// virtual time that ends at the wall's time, then at the wall's pace.
///
/// Built with [`ScaledClock::catching_up`] at wall time `W` for a span `D`:
/// it starts at `W − D × (speed − 1) / speed`, reaches the wall's time after
/// `D / speed` of wall time (having covered `D`), and reads the wall's time
/// from then on. A simulated day played this way ends "now", so the times
/// the web UI shows afterwards are the reader's own. Its pace follows
/// tokio's timer, so paused tokio time drives it in tests.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    virtual_start_ms: i64,
    span_ms: i64,
    speed: u32,
    started: tokio::time::Instant,
}

impl ScaledClock {
    /// A clock that covers `span_ms` of virtual time at `speed` (1 or more;
    /// 0 counts as 1) and meets the wall at `wall_now_ms + span_ms / speed`.
    pub fn catching_up(wall_now_ms: i64, span_ms: i64, speed: u32) -> Self {
        let speed = speed.max(1);
        let span_ms = span_ms.max(0);
        let virtual_start_ms = wall_now_ms - span_ms + span_ms / i64::from(speed);
        Self { virtual_start_ms, span_ms, speed, started: tokio::time::Instant::now() }
    }

    /// The virtual time it read when it was built.
    pub fn virtual_start_ms(&self) -> i64 {
        self.virtual_start_ms
    }

    /// The virtual time from which it runs at the wall's pace.
    pub fn catch_up_ms(&self) -> i64 {
        self.virtual_start_ms + self.span_ms
    }

    pub fn speed(&self) -> u32 {
        self.speed
    }

    /// Wall nanoseconds of the fast stretch.
    fn fast_wall_ns(&self) -> i128 {
        i128::from(self.span_ms) * NANOS_PER_MS / i128::from(self.speed)
    }

    /// The virtual time `elapsed_ns` of wall time after the start.
    fn virtual_at(&self, elapsed_ns: i128) -> i64 {
        let fast_ns = self.fast_wall_ns();
        let virtual_ns = if elapsed_ns <= fast_ns {
            elapsed_ns * i128::from(self.speed)
        } else {
            i128::from(self.span_ms) * NANOS_PER_MS + (elapsed_ns - fast_ns)
        };
        self.virtual_start_ms + i64::try_from(virtual_ns / NANOS_PER_MS).unwrap_or(i64::MAX)
    }

    /// The wall time after the start at which the clock reads `virtual_ms`
    /// (the earliest, rounded up to a whole nanosecond).
    fn wall_at(&self, virtual_ms: i64) -> i128 {
        let into_ns = i128::from(virtual_ms - self.virtual_start_ms) * NANOS_PER_MS;
        let span_ns = i128::from(self.span_ms) * NANOS_PER_MS;
        if into_ns <= span_ns {
            let speed = i128::from(self.speed);
            (into_ns + speed - 1).div_euclid(speed)
        } else {
            self.fast_wall_ns() + (into_ns - span_ns)
        }
    }

    /// The pure core of [`Clock::wall_delay`]: from `elapsed_ns` after the start.
    fn wall_delay_at(&self, elapsed_ns: i128, virtual_ms: i64) -> Duration {
        if virtual_ms <= 0 {
            return Duration::ZERO;
        }
        let target = self.virtual_at(elapsed_ns).saturating_add(virtual_ms);
        let wait_ns = (self.wall_at(target) - elapsed_ns).max(0);
        Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX))
    }

    fn elapsed_ns(&self) -> i128 {
        i128::try_from(self.started.elapsed().as_nanos()).unwrap_or(i128::MAX)
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> i64 {
        self.virtual_at(self.elapsed_ns())
    }

    fn wall_delay(&self, virtual_ms: i64) -> Duration {
        self.wall_delay_at(self.elapsed_ns(), virtual_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;
    const WALL_MS: i64 = 1_800_000_000_000;

    fn ms(value: i64) -> i128 {
        i128::from(value) * NANOS_PER_MS
    }

    #[test]
    fn a_scaled_day_ends_at_the_wall_and_then_keeps_the_walls_pace() {
        let clock = ScaledClock::catching_up(WALL_MS, 12 * HOUR_MS, 48);
        assert_eq!(clock.virtual_start_ms(), WALL_MS - 12 * HOUR_MS + 15 * 60_000);
        assert_eq!(clock.virtual_at(0), clock.virtual_start_ms());
        // One wall minute is 48 virtual minutes.
        assert_eq!(clock.virtual_at(ms(60_000)), clock.virtual_start_ms() + 48 * 60_000);
        // Fifteen wall minutes cover the day and meet the wall.
        assert_eq!(clock.virtual_at(ms(15 * 60_000)), WALL_MS + 15 * 60_000);
        assert_eq!(clock.catch_up_ms(), WALL_MS + 15 * 60_000);
        // Then a wall second is a second.
        assert_eq!(clock.virtual_at(ms(15 * 60_000 + 1000)), WALL_MS + 15 * 60_000 + 1000);
    }

    #[test]
    fn wall_delays_divide_by_the_speed_and_span_the_catch_up() {
        let clock = ScaledClock::catching_up(WALL_MS, 12 * HOUR_MS, 48);
        assert_eq!(clock.wall_delay_at(0, 48_000), Duration::from_secs(1));
        assert_eq!(clock.wall_delay_at(0, 0), Duration::ZERO);
        assert_eq!(clock.wall_delay_at(0, -5), Duration::ZERO);
        // 30 virtual minutes before the catch-up, waiting an hour: 30 min / 48 fast, then 30 min at 1×.
        let before = clock.wall_at(clock.catch_up_ms() - 30 * 60_000);
        assert_eq!(clock.wall_delay_at(before, HOUR_MS), Duration::from_millis(30 * 60_000 / 48 + 30 * 60_000));
        // After the catch-up, the identity.
        assert_eq!(clock.wall_delay_at(ms(20 * 60_000), 1234), Duration::from_millis(1234));
    }

    #[test]
    fn sleeping_the_wall_delay_reaches_the_virtual_deadline() {
        for speed in [1, 7, 48, 300, 400] {
            let clock = ScaledClock::catching_up(WALL_MS, 12 * HOUR_MS, speed);
            let mut elapsed = 0i128;
            for wait in [1, 15_000, 29_999, 60_000, 3 * HOUR_MS, 13 * HOUR_MS] {
                let deadline = clock.virtual_at(elapsed) + wait;
                elapsed += clock.wall_delay_at(elapsed, wait).as_nanos() as i128;
                assert!(clock.virtual_at(elapsed) >= deadline, "speed {speed}, wait {wait}");
                // Not later than one wall nanosecond's worth of virtual time.
                assert!(clock.virtual_at(elapsed) <= deadline + 1, "speed {speed}, wait {wait}");
            }
        }
    }

    #[test]
    fn speed_one_is_the_wall() {
        let clock = ScaledClock::catching_up(WALL_MS, 12 * HOUR_MS, 1);
        assert_eq!(clock.virtual_start_ms(), WALL_MS);
        assert_eq!(clock.virtual_at(ms(5000)), WALL_MS + 5000);
        assert_eq!(clock.wall_delay_at(ms(5000), 5000), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn it_follows_tokio_time() {
        let clock = ScaledClock::catching_up(WALL_MS, HOUR_MS, 100);
        let start = clock.now_ms();
        tokio::time::sleep(clock.wall_delay(60_000)).await;
        assert_eq!(clock.now_ms(), start + 60_000);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(clock.now_ms(), start + 160_000);
        assert_eq!(SystemClock.wall_delay(2500), Duration::from_millis(2500));
    }
}
