//! Engaged kill switches (the shared `ward_model::enforcement` logic) and
//! feature flags, held in memory for the hot path and loaded at start.
//!
//! INVARIANT: a switch is added here only after it is durable.

use std::sync::RwLock;
use ward_model::enforcement::{KillSwitch, KillSwitches};
use ward_store::{FlagRow, KillSwitchRow};

pub use ward_model::enforcement::Mode;

/// The runtime switches.
#[derive(Default)]
pub struct Switches {
    kills: KillSwitches,
    flags: RwLock<Vec<FlagRow>>,
}

/// The in-memory form of a stored kill switch.
pub fn switch_of(row: KillSwitchRow) -> KillSwitch {
    KillSwitch {
        scope: row.scope,
        tenant: row.tenant_id,
        target: row.target,
        mode: row.mode,
        reason: row.reason,
        set_by: row.set_by,
        set_at: row.set_at,
    }
}

/// The stored form of an in-memory kill switch.
pub fn row_of(switch: KillSwitch) -> KillSwitchRow {
    KillSwitchRow {
        scope: switch.scope,
        tenant_id: switch.tenant,
        target: switch.target,
        mode: switch.mode,
        reason: switch.reason,
        set_by: switch.set_by,
        set_at: switch.set_at,
    }
}

impl Switches {
    /// Starts from the stored switches.
    pub fn new(kills: Vec<KillSwitchRow>, flags: Vec<FlagRow>) -> Switches {
        let switches = Switches {
            kills: KillSwitches::default(),
            flags: RwLock::new(flags),
        };
        for row in kills {
            switches.kills.set(switch_of(row));
        }
        switches
    }

    /// Records a switch (replacing one with the same key); `normal` releases.
    pub fn set_kill(&self, row: KillSwitchRow) {
        self.kills.set(switch_of(row));
    }

    /// Every engaged switch visible to `tenant` (instance-wide ones too;
    /// all of them for `None`).
    pub fn kills_for(&self, tenant: Option<&str>) -> Vec<KillSwitchRow> {
        self.kills.visible(tenant).into_iter().map(row_of).collect()
    }

    /// The strictest switch that applies to an agent, and the switch.
    pub fn mode_for(
        &self,
        tenant: &str,
        agent: &str,
        agent_version: &str,
    ) -> (Mode, Option<KillSwitch>) {
        self.kills.mode_for(tenant, agent, agent_version)
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
