//! Silences: a tenant's alerts whose labels match every matcher of a
//! silence in force when they fire are recorded (`silenced_by`) but
//! notify nobody, and nobody hears of their resolution either.

use std::collections::BTreeMap;

use ward_store::{AlertRow, SilenceRow};

use super::labels;

/// The labels a silence may match on (the tenant is the silence's own).
pub const LABELS: [&str; 4] = ["alertname", "severity", "agent_id", "user_id"];

/// The silence in force at `now_ms` among `silences` that covers `alert`.
pub fn covering<'a>(
    silences: &'a [SilenceRow],
    alert: &AlertRow,
    now_ms: i64,
) -> Option<&'a SilenceRow> {
    let labels = labels(alert);
    silences.iter().find(|silence| {
        silence.tenant_id == alert.tenant_id
            && silence.starts_ms <= now_ms
            && now_ms < silence.ends_ms
            && serde_json::from_str::<BTreeMap<String, String>>(&silence.matchers).is_ok_and(
                |matchers| {
                    !matchers.is_empty()
                        && matchers
                            .iter()
                            .all(|(name, value)| labels.get(name) == Some(value))
                },
            )
    })
}

/// Why `matchers` cannot make a silence, if it cannot: at least one, each
/// on a known label, values of 1 to 256 bytes.
pub fn problem(matchers: &BTreeMap<String, String>) -> Option<String> {
    if matchers.is_empty() {
        return Some(format!(
            "give at least one matcher on {}",
            LABELS.map(|l| format!("`{l}`")).join(", ")
        ));
    }
    for (name, value) in matchers {
        if !LABELS.contains(&name.as_str()) {
            return Some(format!(
                "`{name}` is not a label a silence can match; use {}",
                LABELS.map(|l| format!("`{l}`")).join(", ")
            ));
        }
        if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
            return Some(format!(
                "the value for `{name}` must be 1 to 256 bytes without control characters"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> AlertRow {
        AlertRow {
            id: 1,
            tenant_id: "ten_a".into(),
            fingerprint: "f".into(),
            rule: "privileged-failures".into(),
            severity: "high".into(),
            subject_label: "agent_id".into(),
            subject: "agt_1".into(),
            summary: String::new(),
            explanation: String::new(),
            value: 6.0,
            threshold: 5.0,
            evidence: "[]".into(),
            started_ms: 0,
            resolved_ms: None,
            silenced_by: None,
        }
    }

    fn silence(tenant: &str, matchers: &str, starts_ms: i64, ends_ms: i64) -> SilenceRow {
        SilenceRow {
            id: "sil_1".into(),
            tenant_id: tenant.into(),
            matchers: matchers.into(),
            starts_ms,
            ends_ms,
            created_by: "tok".into(),
            comment: "maintenance".into(),
            created_ms: 0,
        }
    }

    #[test]
    fn a_silence_covers_matching_alerts_of_its_tenant_while_in_force() {
        let alert = alert();
        let on_agent = r#"{"agent_id":"agt_1"}"#;
        assert!(covering(&[silence("ten_a", on_agent, 0, 100)], &alert, 50).is_some());
        assert!(covering(&[silence("ten_a", on_agent, 0, 100)], &alert, 100).is_none());
        assert!(covering(&[silence("ten_a", on_agent, 60, 100)], &alert, 50).is_none());
        assert!(covering(&[silence("ten_b", on_agent, 0, 100)], &alert, 50).is_none());
        let both = r#"{"agent_id":"agt_1","severity":"low"}"#;
        assert!(covering(&[silence("ten_a", both, 0, 100)], &alert, 50).is_none());
        assert!(covering(&[silence("ten_a", "{}", 0, 100)], &alert, 50).is_none());
        assert!(covering(&[silence("ten_a", "not json", 0, 100)], &alert, 50).is_none());
    }

    #[test]
    fn matchers_are_checked() {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(problem(&BTreeMap::new()).is_some());
        assert!(problem(&one("tenant", "ten_b")).is_some());
        assert!(problem(&one("agent_id", "")).is_some());
        assert!(problem(&one("agent_id", "a\nb")).is_some());
        assert_eq!(problem(&one("alertname", "heartbeat-missed")), None);
    }
}
