//! Request contracts as JSON Schema validators, closed against unknown
//! members ([`close_objects`]) unless the route allows them. Knows nothing
//! about routes, files or OpenAPI.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Compiles a contract's schema; `strict`: closed by [`close_objects`]
/// first, and refused if closing needs a keyword its draft ignores.
pub fn compile_schema(mut schema: Value, strict: bool) -> Result<jsonschema::Validator, String> {
    if strict && close_objects(&mut schema) && declares_old_draft(&schema) {
        return Err(
            "it combines schemas (allOf/anyOf/oneOf/$ref), and unknown fields can then be refused only with `unevaluatedProperties` of draft 2019-09 or later; declare `\"$schema\": \"https://json-schema.org/draft/2020-12/schema\"`, or set `additionalProperties` where the objects are combined".into(),
        );
    }
    jsonschema::validator_for(&schema).map_err(|e| e.to_string())
}

/// Refuses unknown object members wherever the contract does not say what
/// to do with them, and returns whether it used `unevaluatedProperties`
/// (which only drafts 2019-09 and later understand):
///
/// - a plain object schema (`type: object`, `properties` or
///   `patternProperties`) gets `additionalProperties: false`;
/// - a schema that combines others (`allOf`, `anyOf`, `oneOf`, `$ref`,
///   `then`/`else`, `dependentSchemas`) gets `unevaluatedProperties:
///   false`, so members declared by any branch that applied are known and
///   all others refused;
/// - the branches themselves and `$defs` entries (reached through `$ref`,
///   also from branches) stay open at their top level, since closing one
///   would refuse what a sibling declares, but everything nested inside
///   them is closed by these rules;
/// - nothing under `not` or `if` is touched: closing a condition or a
///   negation would change which documents pass in either direction.
///
/// A schema that already has `additionalProperties` or
/// `unevaluatedProperties` is left as written.
pub fn close_objects(schema: &mut Value) -> bool {
    let mut facts = Shared::default();
    facts.collect(schema, schema);
    close(schema, false, &BTreeSet::new(), &facts)
}

/// Keywords whose subschemas apply to the same instance as their parent.
const COMBINING: [&str; 9] = [
    "allOf",
    "anyOf",
    "oneOf",
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
    "then",
    "else",
    "dependentSchemas",
];

/// What closing must know about the whole schema before changing it: the
/// property names of each `$defs` entry, and for each entry the names it
/// shares with a sibling branch somewhere (left open inside it).
#[derive(Default)]
struct Shared {
    def_properties: BTreeMap<String, BTreeSet<String>>,
    open_in_def: BTreeMap<String, BTreeSet<String>>,
}

impl Shared {
    fn collect(&mut self, schema: &Value, root: &Value) {
        if std::ptr::eq(schema, root) {
            for key in ["$defs", "definitions"] {
                for (name, def) in root
                    .get(key)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    self.def_properties
                        .insert(name.clone(), property_names(def).collect());
                }
            }
        }
        match schema {
            Value::Object(map) => {
                let shared = self.shared_names(map);
                if !shared.is_empty() {
                    for branch in branches(map) {
                        if let Some(name) = def_name(branch) {
                            self.open_in_def
                                .entry(name.to_owned())
                                .or_default()
                                .extend(shared.iter().cloned());
                        }
                    }
                }
                map.values().for_each(|child| self.collect(child, root));
            }
            Value::Array(items) => items.iter().for_each(|child| self.collect(child, root)),
            _ => {}
        }
    }

    /// Property names declared by more than one of: the node itself and
    /// each of its branches (a `$ref` branch declares its target's).
    fn shared_names(&self, map: &serde_json::Map<String, Value>) -> BTreeSet<String> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let own = map
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default();
        let branch_names = branches(map).map(|branch| {
            let mut names: BTreeSet<String> = property_names(branch).collect();
            if let Some(target) = def_name(branch).and_then(|d| self.def_properties.get(d)) {
                names.extend(target.iter().cloned());
            }
            names
        });
        for names in std::iter::once(own).chain(branch_names) {
            for name in names {
                *seen.entry(name).or_default() += 1;
            }
        }
        seen.into_iter()
            .filter(|(_, count)| *count > 1)
            .map(|(name, _)| name)
            .collect()
    }
}

/// The subschemas of `allOf`, `anyOf`, `oneOf`, `then` and `else`.
fn branches(map: &serde_json::Map<String, Value>) -> impl Iterator<Item = &Value> {
    ["allOf", "anyOf", "oneOf", "then", "else"]
        .into_iter()
        .filter_map(|key| map.get(key))
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            single => vec![single],
        })
}

fn property_names(schema: &Value) -> impl Iterator<Item = String> + '_ {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.keys().cloned())
}

/// `X` of a `{"$ref": "#/$defs/X"}` (or `#/definitions/X`).
fn def_name(schema: &Value) -> Option<&str> {
    let reference = schema.get("$ref")?.as_str()?;
    let name = reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))?;
    (!name.contains('/')).then_some(name)
}

/// Closes `schema`; `branch`: it applies beside siblings, so its own top
/// stays open; `keep_open`: property names a sibling also declares, whose
/// schemas are left as written (closing one side would refuse the other's
/// members).
fn close(schema: &mut Value, branch: bool, keep_open: &BTreeSet<String>, facts: &Shared) -> bool {
    let Value::Object(map) = schema else {
        return false;
    };
    let decided =
        map.contains_key("additionalProperties") || map.contains_key("unevaluatedProperties");
    let combining = COMBINING.iter().any(|k| map.contains_key(*k));
    let object = map.get("type").is_some_and(|t| {
        t == "object"
            || t.as_array()
                .is_some_and(|a| a.iter().any(|v| v == "object"))
    }) || map.contains_key("properties")
        || map.contains_key("patternProperties");
    let mut unevaluated = false;
    if !branch && !decided {
        if combining {
            map.insert("unevaluatedProperties".into(), Value::Bool(false));
            unevaluated = true;
        } else if object {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    let shared = facts.shared_names(map);
    let none = BTreeSet::new();
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            ("properties", Value::Object(properties)) => {
                for (name, property) in properties.iter_mut() {
                    if !keep_open.contains(name) && !shared.contains(name) {
                        unevaluated |= close(property, false, &none, facts);
                    }
                }
            }
            ("$defs" | "definitions", Value::Object(defs)) => {
                for (name, def) in defs.iter_mut() {
                    let open = facts.open_in_def.get(name).unwrap_or(&none);
                    unevaluated |= close(def, true, open, facts);
                }
            }
            ("patternProperties" | "dependentSchemas", Value::Object(children)) => {
                let branch = key == "dependentSchemas";
                for child in children.values_mut() {
                    unevaluated |= close(child, branch, &none, facts);
                }
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                for item in items {
                    unevaluated |= close(item, true, &shared, facts);
                }
            }
            ("then" | "else", child) => unevaluated |= close(child, true, &shared, facts),
            ("prefixItems" | "items", Value::Array(items)) => {
                for item in items {
                    unevaluated |= close(item, false, &none, facts);
                }
            }
            (
                "items"
                | "additionalItems"
                | "unevaluatedItems"
                | "contains"
                | "additionalProperties"
                | "unevaluatedProperties",
                child,
            ) => unevaluated |= close(child, false, &none, facts),
            _ => {}
        }
    }
    unevaluated
}

/// Whether a schema declares a draft older than 2019-09, which ignores
/// `unevaluatedProperties`.
fn declares_old_draft(schema: &Value) -> bool {
    schema
        .get("$schema")
        .and_then(Value::as_str)
        .is_some_and(|s| {
            ["draft-03", "draft-04", "draft-06", "draft-07"]
                .iter()
                .any(|d| s.contains(d))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_without_a_say_on_unknown_members_are_closed() {
        let mut schema = json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"b": {}}},
                           "c": {"type": "object", "additionalProperties": true}},
            "items": {"properties": {}}
        });
        close_objects(&mut schema);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["a"]["additionalProperties"], false);
        assert_eq!(schema["properties"]["c"]["additionalProperties"], true);
        assert_eq!(schema["items"]["additionalProperties"], false);
    }

    /// The schema closed, then each document checked: `(document, passes)`.
    fn closed_accepts(schema: Value, cases: &[(Value, bool)]) {
        let validator = compile_schema(schema.clone(), true).unwrap();
        for (document, passes) in cases {
            assert_eq!(
                validator.is_valid(document),
                *passes,
                "{document} against {schema}"
            );
        }
    }

    #[test]
    fn combined_schemas_refuse_members_no_applying_branch_declares() {
        let object = |name: &str| json!({"type": "object", "properties": {name: {}}});
        let required =
            |name: &str| json!({"type": "object", "properties": {name: {}}, "required": [name]});
        closed_accepts(
            json!({"oneOf": [required("path"), required("url")]}),
            &[
                (json!({"path": "a"}), true),
                (json!({"path": "a", "isAdmin": true}), false),
            ],
        );
        closed_accepts(
            json!({"type": "object", "properties": {"q": {}}, "patternProperties": {"^x-": {}}}),
            &[
                (json!({"q": "a", "x-trace": 1}), true),
                (json!({"q": "a", "isAdmin": true}), false),
            ],
        );
        closed_accepts(
            json!({"type": "object", "properties": {
                "filter": {"anyOf": [object("ext"), {"type": "null"}]}}}),
            &[
                (json!({"filter": null}), true),
                (json!({"filter": {"ext": "md"}}), true),
                (json!({"filter": {"ext": "md", "isAdmin": true}}), false),
            ],
        );
        // Inheritance: a base in `$defs` extended by a sibling branch.
        closed_accepts(
            json!({"$defs": {"Base": object("a")},
                   "allOf": [{"$ref": "#/$defs/Base"}, object("b")]}),
            &[
                (json!({"a": 1, "b": 2}), true),
                (json!({"a": 1, "c": 3}), false),
            ],
        );
        // A reference in a property position, and a recursive one.
        closed_accepts(
            json!({"$defs": {"Node": {"type": "object", "properties": {
                       "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
                   "type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}}),
            &[
                (json!({"root": {"children": [{"children": []}]}}), true),
                (json!({"root": {"children": [{"leaf": 1}]}}), false),
            ],
        );
        // A property two branches refine stays as written in both: closing
        // one side would refuse what the other declares.
        let meta = |name: &str| json!({"type": "object", "properties": {"meta": {"type": "object", "properties": {name: {}}}}});
        closed_accepts(
            json!({"allOf": [meta("x"), meta("y")]}),
            &[
                (json!({"meta": {"x": 1, "y": 2}}), true),
                (json!({"meta": {"x": 1}, "other": 1}), false),
            ],
        );
        closed_accepts(
            json!({"$defs": {"Base": meta("x")},
                   "allOf": [{"$ref": "#/$defs/Base"}, meta("y")]}),
            &[
                (json!({"meta": {"x": 1, "y": 2}}), true),
                (json!({"other": 1}), false),
            ],
        );
        // A property only one branch declares is closed inside it.
        closed_accepts(
            json!({"allOf": [meta("x"), object("b")]}),
            &[
                (json!({"meta": {"x": 1}, "b": 2}), true),
                (json!({"meta": {"x": 1, "evil": 1}}), false),
            ],
        );
        // Dynamic references combine like `$ref`.
        closed_accepts(
            json!({"$defs": {"Node": {"$dynamicAnchor": "node", "type": "object",
                       "properties": {"a": {}}}},
                   "type": "object", "properties": {"p": {"$dynamicRef": "#node"}}}),
            &[
                (json!({"p": {"a": 1}}), true),
                (json!({"p": {"a": 1, "evil": 1}}), false),
            ],
        );
        // `not` and `if` are left as written: closing them would widen
        // or shift what passes.
        closed_accepts(
            json!({"type": "object", "properties": {"a": {}},
                   "not": {"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]}}),
            &[(json!({"a": 2}), true), (json!({"a": 1}), false)],
        );
    }

    #[test]
    fn an_old_draft_that_cannot_refuse_unknown_members_of_combined_schemas_is_refused() {
        let schema = json!({"$schema": "http://json-schema.org/draft-07/schema#",
                            "allOf": [{"type": "object", "properties": {"a": {}}}]});
        let error = compile_schema(schema.clone(), true).unwrap_err();
        assert!(error.contains("2020-12"), "{error}");
        assert!(compile_schema(schema, false).is_ok());
        let plain = json!({"$schema": "http://json-schema.org/draft-07/schema#",
                           "type": "object", "properties": {"a": {}}});
        assert!(
            !compile_schema(plain, true)
                .unwrap()
                .is_valid(&json!({"b": 1}))
        );
    }
}
