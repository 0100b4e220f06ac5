//! Prometheus metrics in the text exposition format: request counts by
//! route, result and code, request durations, and the follower's health
//! (connected, staleness, last applied event).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::state::ControlState;

/// Upper bounds of the duration histogram, seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The counters of one route: requests by result, refusal code and
/// status, and the duration histogram.
#[derive(Default)]
struct RouteCounts {
    requests: HashMap<(&'static str, &'static str, u16), u64>,
    durations: Histogram,
}

/// Counters and histograms, keyed by label values. One lock, and no
/// allocation once a route and label combination has been seen.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<HashMap<String, RouteCounts>>,
}

impl Metrics {
    /// Counts one request.
    pub fn record(
        &self,
        route: &str,
        result: &'static str,
        code: &'static str,
        status: u16,
        seconds: f64,
    ) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), RouteCounts::default());
        }
        let Some(counts) = routes.get_mut(route) else {
            return;
        };
        *counts.requests.entry((result, code, status)).or_default() += 1;
        let histogram = &mut counts.durations;
        for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The exposition text.
    pub fn render(&self, state: &ControlState) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP ward_gateway_requests_total Requests by route, result and refusal code.\n",
        );
        out.push_str("# TYPE ward_gateway_requests_total counter\n");
        let routes = self.routes.lock().ok();
        let mut sorted: Vec<(&String, &RouteCounts)> =
            routes.iter().flat_map(|routes| routes.iter()).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (route, counts) in &sorted {
            let mut requests: Vec<_> = counts.requests.iter().collect();
            requests.sort_unstable();
            for ((result, code, status), count) in requests {
                let _ = writeln!(
                    out,
                    "ward_gateway_requests_total{{route=\"{}\",result=\"{result}\",code=\"{}\",status=\"{status}\"}} {count}",
                    escape(route),
                    escape(code)
                );
            }
        }
        out.push_str("# HELP ward_gateway_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE ward_gateway_request_duration_seconds histogram\n");
        for (route, counts) in &sorted {
            let h = &counts.durations;
            let route = escape(route);
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "ward_gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "ward_gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\nward_gateway_request_duration_seconds_sum{{route=\"{route}\"}} {}\nward_gateway_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        drop(routes);
        let (since, connected) = state.contact();
        let staleness = if connected { 0.0 } else { since };
        let stale = u8::from(state.stale_for().is_some());
        let _ = write!(
            out,
            "# HELP ward_gateway_stream_connected Whether the control plane's push stream is connected.\n\
             # TYPE ward_gateway_stream_connected gauge\n\
             ward_gateway_stream_connected {}\n\
             # HELP ward_gateway_state_staleness_seconds Seconds since the push stream went down (0 while connected).\n\
             # TYPE ward_gateway_state_staleness_seconds gauge\n\
             ward_gateway_state_staleness_seconds {staleness}\n\
             # HELP ward_gateway_state_stale Whether sensitive routes are failing closed for staleness.\n\
             # TYPE ward_gateway_state_stale gauge\n\
             ward_gateway_state_stale {stale}\n\
             # HELP ward_gateway_last_event_id The last applied event of the push stream.\n\
             # TYPE ward_gateway_last_event_id gauge\n\
             ward_gateway_last_event_id {}\n",
            u8::from(connected),
            state.seq()
        );
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
