//! Kill switches and feature flags, and their conversions from and to the
//! domain's (`ward_model::enforcement`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use ward_model::enforcement::{self, Mode, SwitchScope};

/// `PUT /v1/killswitch`: engage (or release, with mode `normal`) a kill switch.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetKillSwitch {
    /// `global` (bootstrap token only), `tenant`, `agent` or `agent_version`.
    pub scope: String,
    /// The agent id (`agent`) or the agent version (`agent_version`);
    /// absent for `global` and `tenant` (the caller's tenant).
    #[serde(default)]
    pub target: Option<String>,
    /// `normal` (release), `read-only` (only `:read`-style scopes and safe
    /// methods pass) or `offline` (nothing passes).
    pub mode: String,
    /// Why; required, recorded in the audit log.
    pub reason: String,
}

/// An engaged kill switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KillSwitch {
    /// `global`, `tenant`, `agent` or `agent_version`.
    pub scope: String,
    /// Tenant id; absent for instance-wide switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What it applies to (see `SetKillSwitch.target`).
    pub target: String,
    /// `read-only` or `offline`; `normal` when just released.
    pub mode: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub set_by: String,
    /// When, RFC 3339.
    pub set_at: String,
}

/// Engaged kill switches.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchList {
    /// Instance-wide ones and the caller's tenant's.
    pub switches: Vec<KillSwitch>,
}

/// `PUT /v1/flags/{key}`: turn a feature flag on or off.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFlag {
    /// On or off.
    pub enabled: bool,
    /// `tenant` (the caller's) or `global` (everyone; bootstrap token only).
    pub scope: String,
    /// Why; required.
    pub reason: String,
}

/// A feature flag value.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Flag {
    /// Flag key.
    pub key: String,
    /// Tenant id; absent for the value for everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// On or off.
    pub enabled: bool,
    /// Why.
    pub reason: String,
    /// Who.
    pub set_by: String,
    /// When, RFC 3339.
    pub set_at: String,
}

/// Feature flag values.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FlagList {
    /// Values for everyone and for the caller's tenant.
    pub flags: Vec<Flag>,
}

impl From<enforcement::KillSwitch> for KillSwitch {
    fn from(switch: enforcement::KillSwitch) -> KillSwitch {
        KillSwitch {
            scope: switch.scope.as_str().to_owned(),
            tenant: (!switch.tenant.is_empty()).then_some(switch.tenant),
            target: switch.target,
            mode: switch.mode.as_str().to_owned(),
            reason: switch.reason,
            set_by: switch.set_by,
            set_at: switch.set_at,
        }
    }
}

/// Reads a switch as enforcement points do: an unknown scope or mode
/// applies as widely and strictly as it could.
impl From<&KillSwitch> for enforcement::KillSwitch {
    fn from(switch: &KillSwitch) -> enforcement::KillSwitch {
        enforcement::KillSwitch {
            scope: SwitchScope::parse_or_global(&switch.scope),
            tenant: switch.tenant.clone().unwrap_or_default(),
            target: switch.target.clone(),
            mode: Mode::parse_or_offline(&switch.mode),
            reason: switch.reason.clone(),
            set_by: switch.set_by.clone(),
            set_at: switch.set_at.clone(),
        }
    }
}

impl From<enforcement::Flag> for Flag {
    fn from(flag: enforcement::Flag) -> Flag {
        Flag {
            key: flag.key,
            tenant: (!flag.tenant.is_empty()).then_some(flag.tenant),
            enabled: flag.enabled,
            reason: flag.reason,
            set_by: flag.set_by,
            set_at: flag.set_at,
        }
    }
}

impl From<&Flag> for enforcement::Flag {
    fn from(flag: &Flag) -> enforcement::Flag {
        enforcement::Flag {
            key: flag.key.clone(),
            tenant: flag.tenant.clone().unwrap_or_default(),
            enabled: flag.enabled,
            reason: flag.reason.clone(),
            set_by: flag.set_by.clone(),
            set_at: flag.set_at.clone(),
        }
    }
}
