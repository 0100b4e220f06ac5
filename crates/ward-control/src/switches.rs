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
    /// Engaged kill switches.
    pub kills: KillSwitches,
    /// Feature flag values.
    pub flags: Flags,
}

impl Switches {
    /// Starts from the stored switches.
    pub fn new(kills: Vec<KillSwitch>, flags: Vec<Flag>) -> Switches {
        Switches {
            kills: KillSwitches::new(kills),
            flags: Flags::new(flags),
        }
    }
}
