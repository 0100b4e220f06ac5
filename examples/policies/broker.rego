# Example broker policy: the four rules of the policy checklist.
#
# The broker evaluates this package after the capability matrix has granted a
# request. It reads only `deny`, `require_approval`, `remove_scopes` and
# `max_duration`; everything else here is a helper. See README.md.
package ward.broker

import rego.v1

# Missing fields fall back to values that fail the checks below, so a
# malformed input is refused rather than let through.
default device_os := "(none)"

device_os := input.device.os

default os_version := "(none)"

os_version := input.device.os_version

default agent_version := "(none)"

agent_version := input.device.agent_version

requested_scopes contains scope if some scope in input.request.scopes

# --- 1. `exec:` scopes only in work hours: 08:00-17:59 UTC, Monday to Friday.

work_days := {"monday", "tuesday", "wednesday", "thursday", "friday"}

work_hours if {
	input.time.weekday in work_days
	input.time.hour >= 8
	input.time.hour < 18
}

deny contains {
	"rule": "exec-work-hours",
	"message": sprintf("`%s` is granted only 08:00-18:00 UTC, Monday to Friday", [scope]),
} if {
	some scope in requested_scopes
	startswith(scope, "exec:")
	not work_hours
}

# --- 2. `secrets:` scopes only from devices at or above an OS version floor.

os_version_floor := {"macos": "14.0", "windows": "10.0.22631"}

os_without_floor := {"linux"}

secrets_requested if {
	some scope in requested_scopes
	startswith(scope, "secrets:")
}

deny contains {
	"rule": "secrets-os-floor",
	"message": sprintf("`secrets:` scopes need %s %s or later; the device runs `%s`", [device_os, floor, os_version]),
} if {
	secrets_requested
	floor := os_version_floor[device_os]
	version_below(os_version, floor)
}

deny contains {
	"rule": "secrets-os-floor",
	"message": sprintf("`secrets:` scopes are not granted to devices running `%s`", [device_os]),
} if {
	secrets_requested
	not os_version_floor[device_os]
	not device_os in os_without_floor
}

# A version is one to four dot-separated whole numbers ("15.2",
# "10.0.22631"), compared component by component as numbers, missing
# components being 0 ("14" == "14.0"). Anything else is below every floor.
version_parts(v) := parts if {
	texts := split(v, ".")
	count(texts) <= 4
	parts := [to_number(t) |
		some t in texts
		t != ""
		count(t) <= 9
		trim(t, "0123456789") == ""
	]
	count(parts) == count(texts)
}

padded(parts) := [component(parts, i) | some i in [0, 1, 2, 3]]

component(parts, i) := parts[i] if i < count(parts)

component(parts, i) := 0 if i >= count(parts)

version_below(v, _) if not version_parts(v)

# Arrays compare element by element, so padded versions compare as versions.
version_below(v, floor) if padded(version_parts(v)) < padded(version_parts(floor))

# --- 3. High-risk grants live at most 5 minutes.

high_risk_features := {grant.feature | some grant in input.matrix.grants; grant.risk == "high"}

max_duration contains {
	"rule": "high-risk-lifetime",
	"seconds": 300,
	"message": sprintf("high-risk grants (%s) live at most 300 s", [concat(", ", sort(high_risk_features))]),
} if {
	count(high_risk_features) > 0
}

# --- 4. Only approved agent releases.

approved_releases := {"1.4.0", "1.4.1", "1.5.0"}

deny contains {
	"rule": "approved-agent-release",
	"message": sprintf("agent version `%v` is not an approved release (%s)", [agent_version, concat(", ", sort(approved_releases))]),
} if {
	not agent_version in approved_releases
}
