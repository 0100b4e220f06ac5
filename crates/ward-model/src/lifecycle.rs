//! The agent lifecycle: states an agent instance moves through and the only
//! transitions allowed between them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The state of one enrolled agent instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Enrolled into a profile holding a high-risk feature; waits for an admin.
    PendingApproval,
    /// May obtain tokens.
    Active,
    /// Isolated pending investigation; may be released back to `active`.
    Quarantined,
    /// Permanently disabled; its tokens are revoked.
    Revoked,
    /// Told to remove itself from the device; terminal.
    Uninstalled,
}

/// An operator action on an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAction {
    /// Move a pending or quarantined agent to `active`.
    Activate,
    /// Isolate an active agent.
    Quarantine,
    /// Disable an agent for good.
    Revoke,
    /// Ask the device to uninstall the agent.
    Uninstall,
}

/// A transition the state machine does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an agent that is {from}")]
pub struct IllegalTransition {
    /// The state the agent is in.
    pub from: AgentState,
    /// The action that was refused.
    pub action: AgentAction,
}

impl AgentState {
    /// The state reached by applying `action`, or why it is not allowed.
    pub fn apply(self, action: AgentAction) -> Result<AgentState, IllegalTransition> {
        use AgentAction as A;
        use AgentState as S;
        let next = match (self, action) {
            (S::PendingApproval | S::Quarantined, A::Activate) => S::Active,
            (S::Active, A::Quarantine) => S::Quarantined,
            (S::PendingApproval | S::Active | S::Quarantined, A::Revoke) => S::Revoked,
            (S::PendingApproval | S::Active | S::Quarantined | S::Revoked, A::Uninstall) => {
                S::Uninstalled
            }
            _ => return Err(IllegalTransition { from: self, action }),
        };
        Ok(next)
    }

    /// Whether an agent in this state may be issued tokens.
    pub fn may_obtain_tokens(self) -> bool {
        self == AgentState::Active
    }

    /// The wire and storage name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::PendingApproval => "pending_approval",
            AgentState::Active => "active",
            AgentState::Quarantined => "quarantined",
            AgentState::Revoked => "revoked",
            AgentState::Uninstalled => "uninstalled",
        }
    }

    /// Every state, in lifecycle order.
    pub const ALL: [AgentState; 5] = [
        AgentState::PendingApproval,
        AgentState::Active,
        AgentState::Quarantined,
        AgentState::Revoked,
        AgentState::Uninstalled,
    ];
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown agent state `{s}`"))
    }
}

impl AgentAction {
    /// The wire name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentAction::Activate => "activate",
            AgentAction::Quarantine => "quarantine",
            AgentAction::Revoke => "revoke",
            AgentAction::Uninstall => "uninstall",
        }
    }
}

impl fmt::Display for AgentAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_transitions_are_allowed() {
        use AgentAction as A;
        use AgentState as S;
        let allowed = [
            (S::PendingApproval, A::Activate, S::Active),
            (S::Quarantined, A::Activate, S::Active),
            (S::Active, A::Quarantine, S::Quarantined),
            (S::PendingApproval, A::Revoke, S::Revoked),
            (S::Active, A::Revoke, S::Revoked),
            (S::Quarantined, A::Revoke, S::Revoked),
            (S::PendingApproval, A::Uninstall, S::Uninstalled),
            (S::Active, A::Uninstall, S::Uninstalled),
            (S::Quarantined, A::Uninstall, S::Uninstalled),
            (S::Revoked, A::Uninstall, S::Uninstalled),
        ];
        for from in S::ALL {
            for action in [A::Activate, A::Quarantine, A::Revoke, A::Uninstall] {
                let expected = allowed
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                assert_eq!(from.apply(action).ok(), expected, "{from} --{action}-->");
            }
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in AgentState::ALL {
            assert_eq!(state.as_str().parse::<AgentState>(), Ok(state));
        }
        assert!("deleted".parse::<AgentState>().is_err());
    }
}
