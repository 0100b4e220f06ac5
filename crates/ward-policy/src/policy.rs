//! A compiled bundle and its one operation: evaluate `data.ward.broker` for
//! an input document and turn the four contract rules into a
//! [`PolicyDecision`], failing closed on anything unexpected.

use std::collections::BTreeSet;

use regorus::{Engine, Value};
use serde::Deserialize as _;

use crate::error::{PolicyError, engine_error};

/// The rules of `data.ward.broker` that a decision reads, in output order.
pub(crate) const RULES: [&str; 4] = ["deny", "require_approval", "remove_scopes", "max_duration"];
/// The wrapper rule evaluated for each decision, in `INTERNAL_PACKAGE`.
pub(crate) const DECISION_RULE: &str = "data.ward_policy_internal.decision";

/// Why a decision came out as it did: the policy rule and its message.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Reason {
    /// The `rule` field of the element, e.g. `exec-work-hours`.
    pub rule: String,
    /// The `message` field of the element.
    pub message: String,
}

/// What the policy adds to the matrix decision. It can only take away:
/// deny, require approval, drop requested scopes, shorten the lifetime.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyDecision {
    /// Every `deny` element, sorted; any element denies the request.
    pub deny: Vec<Reason>,
    /// Every `require_approval` element, sorted.
    pub require_approval: Vec<Reason>,
    /// Requested scopes to drop, each with its reason, sorted. Elements
    /// naming a scope that was not requested are left out.
    pub remove_scopes: Vec<(String, Reason)>,
    /// The smallest `max_duration` in seconds and its reason, if any.
    pub max_duration: Option<(u64, Reason)>,
    /// Every rule name that contributed to the fields above, sorted, deduped.
    pub rules: Vec<String>,
}

impl PolicyDecision {
    /// True when at least one `deny` element was produced.
    pub fn is_denied(&self) -> bool {
        !self.deny.is_empty()
    }
}

/// A compiled bundle, ready to evaluate from many threads at once.
///
/// Each evaluation runs on its own clone of the prepared engine: the
/// compiled modules and analysis are shared (reference counted), only the
/// evaluation state is per call, so evaluations never recompile and never
/// share state. (Measured: cloning is as fast as a pool of engines behind a
/// mutex, and has no lock; see `BENCH.md`.)
#[derive(Debug)]
pub struct Policy {
    template: Engine,
    hash: String,
}

impl Policy {
    pub(crate) fn new(template: Engine, hash: String) -> Self {
        Self { template, hash }
    }

    /// The hash of the bundle this policy was compiled from
    /// ([`Bundle::hash`](crate::Bundle::hash)); record it with every decision.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Evaluates `data.ward.broker` with `input` (see the crate docs for its
    /// shape) and reads `deny`, `require_approval`, `remove_scopes` and
    /// `max_duration`.
    ///
    /// Any Rego runtime error, the time limit, or an element of the wrong
    /// shape gives [`PolicyError::Evaluation`]; the caller must then deny.
    pub fn evaluate(&self, input: &serde_json::Value) -> Result<PolicyDecision, PolicyError> {
        let input_value = Value::deserialize(input)
            .map_err(|e| PolicyError::Evaluation(format!("input is not a valid document: {e}")))?;
        let mut engine = self.template.clone();
        engine.set_input(input_value);
        let value = engine
            .eval_rule(DECISION_RULE.to_owned())
            .map_err(|e| PolicyError::Evaluation(engine_error(e.downcast_ref(), &e.to_string())))?;
        decision_from(&value, input)
    }
}

fn evaluation(message: String) -> PolicyError {
    PolicyError::Evaluation(message)
}

fn show(value: &Value) -> String {
    value
        .to_json_str()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| format!("{value:?}"))
}

/// The elements of one contract rule: a set (partial rule) or an array.
fn elements<'a>(decision: &'a Value, rule: &str) -> Result<Vec<&'a Value>, PolicyError> {
    match &decision[rule] {
        Value::Set(set) => Ok(set.iter().collect()),
        Value::Array(array) => Ok(array.iter().collect()),
        Value::Undefined => Ok(Vec::new()),
        other => Err(evaluation(format!(
            "`data.ward.broker.{rule}` is `{}`; it must be a set of objects (write `{rule} contains {{...}} if ...`)",
            show(other)
        ))),
    }
}

/// Reads an element's fields: every `required` one must be present, only
/// `required` and `optional` ones may be.
fn fields<'a>(
    element: &'a Value,
    rule: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<Vec<Option<&'a Value>>, PolicyError> {
    let shape = || {
        let mut keys: Vec<String> = required.iter().map(|k| format!("`{k}`")).collect();
        keys.extend(optional.iter().map(|k| format!("optional `{k}`")));
        keys.join(", ")
    };
    let Value::Object(object) = element else {
        return Err(evaluation(format!(
            "`{rule}` element `{}` is not an object; it needs {}",
            show(element),
            shape()
        )));
    };
    for key in object.keys() {
        let known = match key {
            Value::String(k) => required.contains(&k.as_ref()) || optional.contains(&k.as_ref()),
            _ => false,
        };
        if !known {
            return Err(evaluation(format!(
                "`{rule}` element `{}` has the unknown key `{}`; it may have only {}",
                show(element),
                show(key),
                shape()
            )));
        }
    }
    let mut out = Vec::with_capacity(required.len() + optional.len());
    for key in required {
        match object.get(&Value::from(*key)) {
            Some(v) => out.push(Some(v)),
            None => {
                return Err(evaluation(format!(
                    "`{rule}` element `{}` lacks `{key}`; it needs {}",
                    show(element),
                    shape()
                )));
            }
        }
    }
    for key in optional {
        out.push(object.get(&Value::from(*key)));
    }
    Ok(out)
}

fn string(
    value: Option<&Value>,
    rule: &str,
    key: &str,
    element: &Value,
) -> Result<String, PolicyError> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.to_string()),
        _ => Err(evaluation(format!(
            "`{rule}` element `{}`: `{key}` must be a non-empty string",
            show(element)
        ))),
    }
}

fn reasons(decision: &Value, rule: &str) -> Result<Vec<Reason>, PolicyError> {
    let mut out = BTreeSet::new();
    for element in elements(decision, rule)? {
        let f = fields(element, rule, &["rule", "message"], &[])?;
        out.insert(Reason {
            rule: string(f.first().copied().flatten(), rule, "rule", element)?,
            message: string(f.get(1).copied().flatten(), rule, "message", element)?,
        });
    }
    Ok(out.into_iter().collect())
}

fn requested_scopes(input: &serde_json::Value) -> BTreeSet<&str> {
    input["request"]["scopes"]
        .as_array()
        .map(|scopes| {
            scopes
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect()
        })
        .unwrap_or_default()
}

fn decision_from(value: &Value, input: &serde_json::Value) -> Result<PolicyDecision, PolicyError> {
    if !matches!(value, Value::Object(_)) {
        return Err(evaluation(format!(
            "the policy produced no decision (`{}`)",
            show(value)
        )));
    }
    let deny = reasons(value, "deny")?;
    let require_approval = reasons(value, "require_approval")?;

    let requested = requested_scopes(input);
    let mut remove_scopes = BTreeSet::new();
    for element in elements(value, "remove_scopes")? {
        let f = fields(element, "remove_scopes", &["rule", "scope", "message"], &[])?;
        let rule = string(
            f.first().copied().flatten(),
            "remove_scopes",
            "rule",
            element,
        )?;
        let scope = string(
            f.get(1).copied().flatten(),
            "remove_scopes",
            "scope",
            element,
        )?;
        let message = string(
            f.get(2).copied().flatten(),
            "remove_scopes",
            "message",
            element,
        )?;
        if requested.contains(scope.as_str()) {
            remove_scopes.insert((scope, Reason { rule, message }));
        }
    }

    let mut max_duration: Option<(u64, Reason)> = None;
    for element in elements(value, "max_duration")? {
        let f = fields(element, "max_duration", &["rule", "seconds"], &["message"])?;
        let rule = string(
            f.first().copied().flatten(),
            "max_duration",
            "rule",
            element,
        )?;
        let seconds = match f.get(1).copied().flatten() {
            Some(Value::Number(n)) => n.as_u64().filter(|s| *s > 0),
            _ => None,
        }
        .ok_or_else(|| {
            evaluation(format!(
                "`max_duration` element `{}`: `seconds` must be a positive whole number",
                show(element)
            ))
        })?;
        let message = match f.get(2).copied().flatten() {
            None => format!("lifetime capped at {seconds} s"),
            Some(_) => string(
                f.get(2).copied().flatten(),
                "max_duration",
                "message",
                element,
            )?,
        };
        let candidate = (seconds, Reason { rule, message });
        if max_duration
            .as_ref()
            .is_none_or(|current| candidate < *current)
        {
            max_duration = Some(candidate);
        }
    }

    let mut rules = BTreeSet::new();
    rules.extend(deny.iter().map(|r| r.rule.clone()));
    rules.extend(require_approval.iter().map(|r| r.rule.clone()));
    rules.extend(remove_scopes.iter().map(|(_, r)| r.rule.clone()));
    rules.extend(max_duration.iter().map(|(_, r)| r.rule.clone()));
    Ok(PolicyDecision {
        deny,
        require_approval,
        remove_scopes: remove_scopes.into_iter().collect(),
        max_duration,
        rules: rules.into_iter().collect(),
    })
}
