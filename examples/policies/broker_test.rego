# Tests of broker.rego: each rule, both ways. Run with `ward policy test DIR`.
package ward.broker_test

import data.ward.broker
import rego.v1

# A request every rule lets through: low risk, Tuesday 10:00 UTC, a recent
# macOS and an approved agent release.
base := {
	"action": "token.issue",
	"request": {"scopes": ["fs:read:/home/alice/**"], "duration": 900},
	"agent": {"id": "agt_01", "profile": "developer", "state": "active", "owner": "alice@example.com"},
	"device": {"os": "macos", "os_version": "15.2", "agent_version": "1.4.0", "host_id": "host-77"},
	"tenant": {"id": "ten_01", "name": "acme"},
	"time": {"unix": 1764669600, "rfc3339": "2025-12-02T10:00:00Z", "hour": 10, "weekday": "tuesday"},
	"matrix": {"profile_high_risk": false, "grants": [{"scope": "fs:read:/home/alice/**", "feature": "read-home", "risk": "low"}]},
}

with_scopes(scopes) := object.union(base, {"request": {"scopes": scopes, "duration": 900}})

at(inp, weekday, hour) := object.union(inp, {"time": {"hour": hour, "weekday": weekday}})

on(inp, os, version) := object.union(inp, {"device": {"os": os, "os_version": version}})

denied_by(inp) := rules if {
	rules := {d.rule | some d in broker.deny} with input as inp
}

test_base_request_passes if {
	count(denied_by(base)) == 0
	count(broker.max_duration) == 0 with input as base
}

# exec-work-hours

test_exec_allowed_in_work_hours if {
	not "exec-work-hours" in denied_by(at(with_scopes(["exec:run:/usr/bin/git"]), "tuesday", 10))
	not "exec-work-hours" in denied_by(at(with_scopes(["exec:run:/usr/bin/git"]), "friday", 8))
	not "exec-work-hours" in denied_by(at(with_scopes(["exec:run:/usr/bin/git"]), "monday", 17))
}

test_exec_denied_outside_work_hours if {
	"exec-work-hours" in denied_by(at(with_scopes(["exec:run:/usr/bin/git"]), "tuesday", 2))
	"exec-work-hours" in denied_by(at(with_scopes(["exec:run:/usr/bin/git"]), "tuesday", 18))
	"exec-work-hours" in denied_by(at(with_scopes(["exec:run:/usr/bin/git"]), "tuesday", 7))
	"exec-work-hours" in denied_by(at(with_scopes(["exec:run:/usr/bin/git"]), "saturday", 10))
}

test_exec_denied_without_time if {
	"exec-work-hours" in denied_by(object.remove(with_scopes(["exec:run:/usr/bin/git"]), ["time"]))
}

test_non_exec_allowed_at_night if {
	not "exec-work-hours" in denied_by(at(base, "sunday", 3))
}

# secrets-os-floor

secrets := with_scopes(["secrets:read:ci/*"])

test_secrets_allowed_at_or_above_floor if {
	not "secrets-os-floor" in denied_by(on(secrets, "macos", "14.0"))
	not "secrets-os-floor" in denied_by(on(secrets, "macos", "14"))
	not "secrets-os-floor" in denied_by(on(secrets, "macos", "15.2"))
	not "secrets-os-floor" in denied_by(on(secrets, "windows", "10.0.22631"))
	not "secrets-os-floor" in denied_by(on(secrets, "windows", "10.0.26100"))
	not "secrets-os-floor" in denied_by(on(secrets, "linux", "6.8.0-45-generic"))
}

test_secrets_denied_below_floor if {
	"secrets-os-floor" in denied_by(on(secrets, "macos", "13.6.1"))
	"secrets-os-floor" in denied_by(on(secrets, "windows", "10.0.22621"))
	"secrets-os-floor" in denied_by(on(secrets, "windows", "6.3"))
}

test_secrets_versions_compare_as_numbers if {
	# As strings "9.9" > "14.0" and "14.10" < "14.9"; as versions it is the reverse.
	"secrets-os-floor" in denied_by(on(secrets, "macos", "9.9"))
	not "secrets-os-floor" in denied_by(on(secrets, "macos", "14.10"))
	broker.version_below("14.9", "14.10")
	not broker.version_below("14.10", "14.9")
}

test_secrets_denied_for_unparseable_or_unknown if {
	"secrets-os-floor" in denied_by(on(secrets, "macos", "15.x"))
	"secrets-os-floor" in denied_by(on(secrets, "macos", ""))
	"secrets-os-floor" in denied_by(on(secrets, "freebsd", "14.1"))
	# A device that reports no OS at all.
	"secrets-os-floor" in denied_by(object.union(object.remove(secrets, ["device"]), {"device": {"agent_version": "1.4.0"}}))
}

test_non_secrets_allowed_below_floor if {
	not "secrets-os-floor" in denied_by(on(base, "macos", "12.0"))
}

# high-risk-lifetime

high_risk := object.union(with_scopes(["exec:run:/usr/bin/git"]), {"matrix": {
	"profile_high_risk": true,
	"grants": [{"scope": "exec:run:/usr/bin/git", "feature": "run-git", "risk": "high"}],
}})

test_high_risk_lifetime_capped if {
	caps := broker.max_duration with input as high_risk
	count(caps) == 1
	some cap in caps
	cap.rule == "high-risk-lifetime"
	cap.seconds == 300
}

test_low_risk_lifetime_not_capped if {
	count(broker.max_duration) == 0 with input as with_scopes(["exec:run:/usr/bin/git"])
}

# approved-agent-release

test_approved_releases_allowed if {
	not "approved-agent-release" in denied_by(object.union(base, {"device": {"agent_version": "1.4.1"}}))
	not "approved-agent-release" in denied_by(object.union(base, {"device": {"agent_version": "1.5.0"}}))
}

test_unapproved_release_denied if {
	"approved-agent-release" in denied_by(object.union(base, {"device": {"agent_version": "1.3.9"}}))
	"approved-agent-release" in denied_by(object.union(base, {"device": {"agent_version": "1.4.0-rc1"}}))
	"approved-agent-release" in denied_by(object.remove(base, ["device"]))
}
