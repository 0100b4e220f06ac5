//! Engaged kill switches and feature flags (the shared
//! `ward_model::enforcement` logic), held in memory for the hot path and
//! loaded at start.
//!
//! INVARIANT: a switch or flag is recorded here only after it is durable.

use ward_model::enforcement::{Flag, Flags, KillSwitch, KillSwitches};

pub use ward_model::enforcement::Mode;

/// The runtime switches.
#[derive(Default)]
pub struct Switches {
    kills: KillSwitches,
    flags: Flags,
}

impl Switches {
    /// Starts from the stored switches.
    pub fn new(kills: Vec<KillSwitch>, flags: Vec<Flag>) -> Switches {
        Switches {
            kills: KillSwitches::new(kills),
            flags: Flags::new(flags),
        }
    }

    /// Records a switch (replacing one with the same key); `normal` releases.
    pub fn set_kill(&self, switch: KillSwitch) {
        self.kills.set(switch);
    }

    /// Every engaged switch visible to `tenant` (instance-wide ones too;
    /// all of them for `None`).
    pub fn kills_for(&self, tenant: Option<&str>) -> Vec<KillSwitch> {
        self.kills.visible(tenant)
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
    pub fn set_flag(&self, flag: Flag) {
        self.flags.set(flag);
    }

    /// Flag values visible to `tenant` (the values for everyone too; all of
    /// them for `None`).
    pub fn flags_for(&self, tenant: Option<&str>) -> Vec<Flag> {
        self.flags.visible(tenant)
    }
}
