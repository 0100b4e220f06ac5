//! Roles people and API tokens hold in a tenant, and what each may do.

use std::fmt;
use std::str::FromStr;

/// A role in one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything in the tenant.
    Admin,
    /// Decides approval requests.
    Approver,
    /// Reads the audit log, agents and telemetry; changes nothing.
    Auditor,
    /// Contains incidents: quarantine, revoke, kill switch, rollback.
    Operator,
}

/// Something a caller may be allowed to do in a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Create enrolment tokens.
    Enrol,
    /// List and show agents.
    ReadAgents,
    /// Activate a pending or quarantined agent.
    ActivateAgent,
    /// Quarantine, revoke or uninstall an agent.
    ContainAgent,
    /// Introspect tokens.
    IntrospectTokens,
    /// Revoke tokens.
    RevokeTokens,
    /// Read the audit log.
    ReadAudit,
    /// List and decide approval requests.
    Approve,
    /// Record and read consent.
    ManageConsent,
    /// Push and read policy bundles.
    ManagePolicy,
    /// Engage and release kill switches, turn feature flags on and off.
    KillSwitch,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Approver, Role::Auditor, Role::Operator];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }

    /// Whether this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::Approver => matches!(permission, P::Approve | P::ReadAgents),
            Role::Auditor => matches!(
                permission,
                P::ReadAudit | P::ReadAgents | P::IntrospectTokens
            ),
            Role::Operator => matches!(
                permission,
                P::ReadAgents
                    | P::ContainAgent
                    | P::RevokeTokens
                    | P::IntrospectTokens
                    | P::KillSwitch
            ),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}`; expected one of: {}",
                    Role::ALL.map(Role::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Permission::Enrol => "create enrolment tokens",
            Permission::ReadAgents => "read agents",
            Permission::ActivateAgent => "activate agents",
            Permission::ContainAgent => "quarantine, revoke or uninstall agents",
            Permission::IntrospectTokens => "introspect tokens",
            Permission::RevokeTokens => "revoke tokens",
            Permission::ReadAudit => "read the audit log",
            Permission::Approve => "decide approvals",
            Permission::ManageConsent => "manage consent records",
            Permission::ManagePolicy => "manage policy bundles",
            Permission::KillSwitch => "flip kill switches and feature flags",
        };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_do_everything_and_auditors_change_nothing() {
        use Permission as P;
        let all = [
            P::Enrol,
            P::ReadAgents,
            P::ActivateAgent,
            P::ContainAgent,
            P::IntrospectTokens,
            P::RevokeTokens,
            P::ReadAudit,
            P::Approve,
            P::ManageConsent,
            P::ManagePolicy,
        ];
        assert!(all.iter().all(|p| Role::Admin.allows(*p)));
        let changes = [
            P::Enrol,
            P::ActivateAgent,
            P::ContainAgent,
            P::RevokeTokens,
            P::Approve,
            P::ManageConsent,
            P::ManagePolicy,
        ];
        assert!(changes.iter().all(|p| !Role::Auditor.allows(*p)));
        assert!(Role::Operator.allows(P::ContainAgent) && !Role::Operator.allows(P::ActivateAgent));
        assert!(Role::Approver.allows(P::Approve) && !Role::Approver.allows(P::RevokeTokens));
    }

    #[test]
    fn roles_parse_by_name() {
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert_eq!(
            "root".parse::<Role>(),
            Err("unknown role `root`; expected one of: admin, approver, auditor, operator".into())
        );
    }
}
