//! Time as the caller sees it: the core never reads a clock, every call that
//! needs "now" is handed a [`Timestamp`].

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Serialize};

/// A point in time in milliseconds since an epoch the caller chooses (the Unix
/// epoch for `phalanx run`, the start of the simulation for `phalanx simulate`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);
    /// A time later than any the scheduler will see.
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// A timestamp `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// A timestamp `secs` seconds after the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch, with fractions.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// A short human form: `HH:MM` UTC for wall-clock times (after 2001),
    /// else seconds since the start, e.g. `t=742s`.
    pub fn short(self) -> String {
        if self.0 > 1_000_000_000_000 {
            let secs = self.0 / 1000;
            format!("{:02}:{:02} UTC", (secs / 3600) % 24, (secs / 60) % 60)
        } else {
            format!("t={}s", self.0 / 1000)
        }
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub fn plus(self, d: Millis) -> Self {
        Timestamp(self.0.saturating_add(d.0))
    }

    /// Time elapsed from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Millis {
        Millis(self.0.saturating_sub(earlier.0).max(0))
    }
}

impl fmt::Display for Timestamp {
    /// Seconds since the epoch, e.g. `t=742.5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}s", self.as_secs_f64())
    }
}

/// A span of time in milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Millis(pub i64);

impl Millis {
    /// No time at all.
    pub const ZERO: Millis = Millis(0);

    /// `secs` seconds.
    pub const fn from_secs(secs: i64) -> Self {
        Millis(secs.saturating_mul(1000))
    }

    /// The span in seconds, with fractions.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl Add<Millis> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Millis) -> Timestamp {
        self.plus(rhs)
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Millis;
    fn sub(self, rhs: Timestamp) -> Millis {
        self.since(rhs)
    }
}
