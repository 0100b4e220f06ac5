//! Behaviour baselines: how many events of a signal a subject (an agent,
//! a user, a tenant) usually produces in a window, from its history of
//! 15-minute slot counts, with hour-of-week seasonality and robust
//! statistics, and said in words a person can judge.
//!
//! For the slot that contains `now`:
//! 1. Same hour of the week: the slots of this hour-of-week (UTC) in each
//!    of the previous [`WEEKS`] weeks since the subject was first seen (4
//!    slots an hour, so up to 16 samples). Used when there are at least
//!    [`MIN_SEASONAL_SAMPLES`] (two weeks of history), so a Monday-morning
//!    peak is compared with Monday mornings.
//! 2. Otherwise the last [`RECENT_SLOTS`] slots (a day) since first seen,
//!    when there are at least [`MIN_RECENT_SAMPLES`] (6 hours).
//! 3. Otherwise none: rules use their floor.
//!
//! Slots without events count as zero. The baseline is the median of the
//! samples (one burst in history does not raise it), scaled to the rule's
//! window; the median absolute deviation says how much it usually varies.

use std::collections::BTreeMap;

/// The length of one history slot, seconds.
pub const SLOT_SECS: i64 = 900;
/// Slots in a week.
pub const WEEK_SLOTS: i64 = 7 * 24 * 3600 / SLOT_SECS;
/// Weeks of same-hour history used.
pub const WEEKS: i64 = 4;
/// Slots of recent history used when the seasonal baseline has too little.
pub const RECENT_SLOTS: i64 = 96;
/// The fewest same-hour samples for a seasonal baseline.
pub const MIN_SEASONAL_SAMPLES: usize = 8;
/// The fewest recent samples for a recent baseline.
pub const MIN_RECENT_SAMPLES: usize = 24;
/// How much history is kept and read, slots (four weeks and an hour).
pub const HISTORY_SLOTS: i64 = WEEKS * WEEK_SLOTS + 4;

/// The slot containing the time `ms`.
pub fn slot_of(ms: i64) -> i64 {
    ms.div_euclid(SLOT_SECS * 1000)
}

/// Which history a baseline was taken from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Basis {
    /// This hour of the week in previous weeks.
    HourOfWeek {
        /// How many weeks contributed.
        weeks: usize,
    },
    /// The last day's slots.
    Recent,
}

/// A subject's usual count for a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    /// The usual count in a window of the rule's length.
    pub per_window: f64,
    /// The median count per 15-minute slot.
    pub median: f64,
    /// The median absolute deviation per slot.
    pub mad: f64,
    /// How many slots were sampled.
    pub samples: usize,
    /// Which history.
    pub basis: Basis,
}

impl Baseline {
    /// The history it was taken from, in words, e.g. `median of 16
    /// same-hour-of-week 15m slots over 4 weeks, MAD 2`.
    pub fn describe(&self) -> String {
        match self.basis {
            Basis::HourOfWeek { weeks } => format!(
                "median of {} same-hour-of-week 15m slots over {weeks} weeks: {} per slot, MAD {}",
                self.samples,
                round(self.median),
                round(self.mad)
            ),
            Basis::Recent => format!(
                "median of the last {} 15m slots (less than two weeks of history): {} per slot, MAD {}",
                self.samples,
                round(self.median),
                round(self.mad)
            ),
        }
    }
}

/// Rounds to two decimals for people.
pub fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The slots of this hour of the week in each of the previous [`WEEKS`]
/// weeks, as `[start, end)` ranges.
pub fn seasonal_ranges(now_slot: i64) -> Vec<(i64, i64)> {
    let hour_start = now_slot - now_slot.rem_euclid(4);
    (1..=WEEKS)
        .map(|week| {
            let start = hour_start - week * WEEK_SLOTS;
            (start, start + 4)
        })
        .collect()
}

/// The last day's slots before `now_slot`, `[start, end)`.
pub fn recent_range(now_slot: i64) -> (i64, i64) {
    (now_slot - RECENT_SLOTS, now_slot)
}

/// Every slot a baseline at `now_slot` may read: the only history a
/// caller needs to load.
pub fn slots_used(now_slot: i64) -> Vec<(i64, i64)> {
    let mut ranges = seasonal_ranges(now_slot);
    ranges.push(recent_range(now_slot));
    ranges
}

/// The baseline at slot `now_slot` from `counts` (events per slot; slots
/// missing are zero) for a subject first seen in slot `first_seen`,
/// scaled to `window_secs`; `None` with too little history.
pub fn baseline(
    counts: &BTreeMap<i64, u64>,
    first_seen: i64,
    now_slot: i64,
    window_secs: u32,
) -> Option<Baseline> {
    let count = |slot: i64| counts.get(&slot).copied().unwrap_or(0) as f64;
    let mut seasonal = Vec::new();
    let mut weeks = 0;
    for (start, end) in seasonal_ranges(now_slot) {
        let slots: Vec<i64> = (start..end).filter(|s| *s >= first_seen).collect();
        if !slots.is_empty() {
            weeks += 1;
        }
        seasonal.extend(slots.into_iter().map(count));
    }
    let (samples, basis) = if seasonal.len() >= MIN_SEASONAL_SAMPLES {
        (seasonal, Basis::HourOfWeek { weeks })
    } else {
        let (start, end) = recent_range(now_slot);
        let recent: Vec<f64> = (start..end)
            .filter(|s| *s >= first_seen)
            .map(count)
            .collect();
        if recent.len() < MIN_RECENT_SAMPLES {
            return None;
        }
        (recent, Basis::Recent)
    };
    let median = median(samples.clone());
    let mad = self::median(samples.iter().map(|x| (x - median).abs()).collect());
    Some(Baseline {
        per_window: median * f64::from(window_secs) / SLOT_SECS as f64,
        median,
        mad,
        samples: samples.len(),
        basis,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_hour_of_previous_weeks_is_the_basis_when_there_is_enough() {
        let now = 10 * WEEK_SLOTS + 40; // slot 40 of a week: hour 10
        let mut counts = BTreeMap::new();
        for week in 1..=4 {
            for slot in 40..44 {
                counts.insert(now - week * WEEK_SLOTS + slot - 40, 10);
            }
            // a one-off burst in one slot does not move the median
        }
        counts.insert(now - WEEK_SLOTS, 500);
        // other hours are busier, and do not count
        counts.insert(now - 8, 1000);
        let b = baseline(&counts, 0, now, 900).unwrap();
        assert_eq!(b.basis, Basis::HourOfWeek { weeks: 4 });
        assert_eq!(b.samples, 16);
        assert_eq!(b.median, 10.0);
        assert_eq!(b.mad, 0.0);
        assert_eq!(b.per_window, 10.0);
        assert_eq!(
            baseline(&counts, 0, now, 300).unwrap().per_window,
            10.0 / 3.0
        );
        assert!(b.describe().contains("16 same-hour-of-week"));
    }

    #[test]
    fn a_new_subject_uses_the_last_day_then_nothing() {
        let now = 1000;
        let mut counts = BTreeMap::new();
        for slot in now - 30..now {
            counts.insert(slot, if slot % 2 == 0 { 4 } else { 2 });
        }
        let b = baseline(&counts, now - 30, now, 900).unwrap();
        assert_eq!(b.basis, Basis::Recent);
        assert_eq!(b.samples, 30);
        assert_eq!(b.median, 3.0);
        assert_eq!(b.mad, 1.0);
        assert_eq!(baseline(&counts, now - 10, now, 900), None);
    }

    #[test]
    fn quiet_slots_count_as_zero() {
        let now = 5 * WEEK_SLOTS;
        let mut counts = BTreeMap::new();
        counts.insert(now - WEEK_SLOTS, 100);
        let b = baseline(&counts, 0, now, 900).unwrap();
        assert_eq!(b.median, 0.0);
        assert_eq!(slot_of(-1), -1);
        assert_eq!(slot_of(899_999), 0);
    }
}
