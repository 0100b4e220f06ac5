//! A sliding window that counts events by the second.
//!
//! The window at `now` covers the seconds `(now - span, now]`: an event
//! stamped in second `s` counts until second `s + span` begins. Counts are
//! kept per second that had events, so memory is bounded by the span in
//! seconds however many events arrive, and events may arrive out of order
//! (a device's spool ships late) as long as they are still inside the
//! window.

use std::collections::VecDeque;

/// Events counted per second over the last `span` seconds.
#[derive(Clone, Debug)]
pub struct Window {
    span: i64,
    /// (second, events in it), increasing by second.
    seconds: VecDeque<(i64, u64)>,
    total: u64,
}

impl Window {
    /// An empty window `span_secs` long (at least 1).
    pub fn new(span_secs: u32) -> Window {
        Window {
            span: i64::from(span_secs.max(1)),
            seconds: VecDeque::new(),
            total: 0,
        }
    }

    /// Counts `n` events at second `at`, seen at second `now`. An event
    /// from the future counts at `now` (a device clock running ahead);
    /// one already outside the window is ignored. Returns whether it was
    /// counted.
    pub fn add(&mut self, at: i64, n: u64, now: i64) -> bool {
        let at = at.min(now);
        if at <= now - self.span {
            return false;
        }
        match self
            .seconds
            .binary_search_by_key(&at, |(second, _)| *second)
        {
            Ok(index) => {
                if let Some((_, count)) = self.seconds.get_mut(index) {
                    *count += n;
                }
            }
            Err(index) => self.seconds.insert(index, (at, n)),
        }
        self.total += n;
        true
    }

    /// The events in the window at second `now`, dropping older seconds.
    pub fn count(&mut self, now: i64) -> u64 {
        while let Some(&(second, count)) = self.seconds.front() {
            if second > now - self.span {
                break;
            }
            self.seconds.pop_front();
            self.total -= count;
        }
        self.total
    }

    /// Reports whether nothing is held (after [`Window::count`] dropped the
    /// old seconds).
    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty()
    }

    /// The second at which the oldest event held leaves the window.
    pub fn next_expiry(&self) -> Option<i64> {
        self.seconds.front().map(|(second, _)| second + self.span)
    }

    /// Bytes held, for sizing.
    pub fn heap_bytes(&self) -> usize {
        self.seconds.capacity() * std::mem::size_of::<(i64, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_event_counts_for_exactly_span_seconds() {
        let mut window = Window::new(300);
        assert!(window.add(1000, 1, 1000));
        assert_eq!(window.count(1000), 1);
        assert_eq!(window.count(1299), 1);
        assert_eq!(window.count(1300), 0);
        assert!(window.is_empty());
    }

    #[test]
    fn late_and_future_events() {
        let mut window = Window::new(10);
        assert!(!window.add(90, 1, 100), "outside the window");
        assert!(window.add(91, 1, 100));
        assert!(window.add(500, 1, 100), "a clock ahead counts now");
        assert_eq!(window.count(100), 2);
        assert_eq!(window.next_expiry(), Some(101));
        assert_eq!(window.count(101), 1);
        assert_eq!(window.count(110), 0);
    }

    proptest! {
        /// The count is the number of events stamped in (now - span, now],
        /// whatever order they arrived in.
        #[test]
        fn the_count_is_the_events_inside(
            events in proptest::collection::vec((0i64..200, 1u64..4), 0..60),
            span in 1u32..50,
            checks in proptest::collection::vec(0i64..260, 1..8),
        ) {
            let now = 200;
            let mut window = Window::new(span);
            let mut kept = Vec::new();
            for (at, n) in &events {
                if window.add(*at, *n, now) {
                    kept.push((*at, *n));
                }
            }
            let mut checks = checks;
            checks.sort_unstable();
            for check in checks.into_iter().filter(|c| *c >= now) {
                let expected: u64 = kept
                    .iter()
                    .filter(|(at, _)| *at > check - i64::from(span) && *at <= check)
                    .map(|(_, n)| n)
                    .sum();
                prop_assert_eq!(window.count(check), expected);
            }
        }
    }
}
