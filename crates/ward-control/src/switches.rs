//! Engaged kill switches and feature flags, held in memory for the hot
//! path and loaded at start.
//!
//! INVARIANT: a switch is added here only after it is durable.

use std::sync::RwLock;
use ward_store::{FlagRow, KillSwitchRow};

/// How far a kill switch restricts an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Nothing restricted.
    Normal,
    /// Only read-style scopes (and safe methods at the gateway) pass.
    ReadOnly,
    /// Nothing passes.
    Offline,
}

impl Mode {
    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "normal" => Some(Mode::Normal),
            "read-only" => Some(Mode::ReadOnly),
            "offline" => Some(Mode::Offline),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::ReadOnly => "read-only",
            Mode::Offline => "offline",
        }
    }
}

/// The runtime switches.
#[derive(Default)]
pub struct Switches {
    kills: RwLock<Vec<KillSwitchRow>>,
    flags: RwLock<Vec<FlagRow>>,
}

impl Switches {
    /// Starts from the stored switches.
    pub fn new(kills: Vec<KillSwitchRow>, flags: Vec<FlagRow>) -> Switches {
        Switches {
            kills: RwLock::new(kills),
            flags: RwLock::new(flags),
        }
    }

    /// Records an engaged switch (replacing one with the same key), or
    /// removes it for `normal`.
    pub fn set_kill(&self, row: KillSwitchRow) {
        let Ok(mut kills) = self.kills.write() else {
            return;
        };
        kills.retain(|k| {
            !(k.scope == row.scope && k.tenant_id == row.tenant_id && k.target == row.target)
        });
        if row.mode != Mode::Normal.as_str() {
            kills.push(row);
        }
    }

    /// Every engaged switch visible to `tenant` (instance-wide ones too).
    pub fn kills_for(&self, tenant: Option<&str>) -> Vec<KillSwitchRow> {
        self.kills
            .read()
            .map(|kills| {
                kills
                    .iter()
                    .filter(|k| k.tenant_id.is_empty() || Some(k.tenant_id.as_str()) == tenant)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The strictest switch that applies to an agent, and the switch. Fails
    /// closed: unreadable state counts as offline.
    pub fn mode_for(
        &self,
        tenant: &str,
        agent: &str,
        agent_version: &str,
    ) -> (Mode, Option<KillSwitchRow>) {
        let Ok(kills) = self.kills.read() else {
            return (Mode::Offline, None);
        };
        kills
            .iter()
            .filter(|k| k.tenant_id.is_empty() || k.tenant_id == tenant)
            .filter(|k| match k.scope.as_str() {
                "global" => true,
                "tenant" => k.target == tenant,
                "agent" => k.target == agent,
                "agent_version" => k.target == agent_version,
                _ => true,
            })
            .map(|k| {
                (
                    Mode::parse(&k.mode).unwrap_or(Mode::Offline),
                    Some(k.clone()),
                )
            })
            .max_by_key(|(mode, _)| *mode)
            .unwrap_or((Mode::Normal, None))
    }

    /// Records a flag value.
    pub fn set_flag(&self, row: FlagRow) {
        let Ok(mut flags) = self.flags.write() else {
            return;
        };
        flags.retain(|f| !(f.key == row.key && f.tenant_id == row.tenant_id));
        flags.push(row);
    }

    /// Flag values visible to `tenant` (the values for everyone too).
    pub fn flags_for(&self, tenant: Option<&str>) -> Vec<FlagRow> {
        self.flags
            .read()
            .map(|flags| {
                flags
                    .iter()
                    .filter(|f| f.tenant_id.is_empty() || Some(f.tenant_id.as_str()) == tenant)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(scope: &str, tenant: &str, target: &str, mode: &str) -> KillSwitchRow {
        KillSwitchRow {
            scope: scope.into(),
            tenant_id: tenant.into(),
            target: target.into(),
            mode: mode.into(),
            reason: "drill".into(),
            set_by: "x".into(),
            set_at: "t".into(),
        }
    }

    #[test]
    fn the_strictest_applicable_switch_wins() {
        let switches = Switches::default();
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::Normal);
        switches.set_kill(kill("agent_version", "t1", "1.0", "read-only"));
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::ReadOnly);
        assert_eq!(
            switches.mode_for("t2", "a9", "1.0").0,
            Mode::Normal,
            "another tenant's switch"
        );
        assert_eq!(switches.mode_for("t1", "a1", "1.1").0, Mode::Normal);
        switches.set_kill(kill("agent", "t1", "a1", "offline"));
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::Offline);
        switches.set_kill(kill("agent", "t1", "a1", "normal"));
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::ReadOnly);
        switches.set_kill(kill("global", "", "", "offline"));
        assert_eq!(switches.mode_for("t2", "a9", "2.0").0, Mode::Offline);
        switches.set_kill(kill("tenant", "t2", "t2", "read-only"));
        assert_eq!(
            switches.kills_for(Some("t1")).len(),
            2,
            "t1 sees its own and the global one"
        );
    }
}
