//! OpenAPI 3.0/3.1 documents as request contracts: one operation's JSON
//! request body turned into a self-contained JSON Schema (draft 2020-12).
//!
//! Component schemas the body reaches are copied under `$defs` and their
//! references rewritten; OpenAPI 3.0 Schema Objects are converted
//! (`nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum`); read-only
//! properties become `false` schemas and leave `required`, so a request
//! that sends one is refused whether or not its object is closed.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Keywords whose value is a map of schemas.
const SCHEMA_MAPS: &str = "properties patternProperties $defs definitions dependentSchemas";
/// Keywords whose value is a schema or an array of schemas.
const SCHEMA_KEYS: &str = "items prefixItems allOf anyOf oneOf not if then else contains \
    additionalProperties propertyNames additionalItems unevaluatedItems unevaluatedProperties \
    contentSchema";
/// OpenAPI keywords that say nothing about validity (with `x-*`).
const DROPPED: &str = "discriminator xml externalDocs example deprecated $schema";

/// An OpenAPI 3.0 or 3.1 document, parsed and checked.
#[derive(Debug, Clone)]
pub struct OpenApi {
    doc: Value,
    /// 3.0 Schema Objects need converting; 3.1 ones are JSON Schema 2020-12.
    v30: bool,
}

/// The JSON request body an operation accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody {
    /// A self-contained JSON Schema (draft 2020-12) for the body.
    pub schema: Value,
    /// The body is `required: true` (OpenAPI's default is optional).
    pub required: bool,
    /// The JSON media type the schema is for (lower case, no parameters).
    pub media_type: String,
}

/// The query string an operation accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryContract {
    /// The declared parameters and how their values are read.
    pub params: Vec<QueryParam>,
    /// A self-contained JSON Schema for the object the query is read into.
    pub schema: Value,
}

/// One declared query parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParam {
    /// Its name.
    pub name: String,
    /// How its values are read.
    pub kind: QueryKind,
}

/// The JSON type a query parameter's text is read as before validation.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryKind {
    /// Kept as text.
    String,
    /// An integer, if the text is one.
    Integer,
    /// A number, if the text is one.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Every occurrence of the name (`?tag=a&tag=b`), each read as the item kind.
    Array(Box<QueryKind>),
}

impl QueryKind {
    /// Reads one value; text that is not of the kind stays text, so the
    /// schema refuses it with the parameter's name.
    pub fn read(&self, text: &str) -> Value {
        match self {
            QueryKind::Integer => text
                .parse::<i64>()
                .map_or_else(|_| Value::String(text.into()), Value::from),
            QueryKind::Number => text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map_or_else(|| Value::String(text.into()), Value::from),
            QueryKind::Boolean => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(text.into()),
            },
            QueryKind::String | QueryKind::Array(_) => Value::String(text.into()),
        }
    }
}

impl OpenApi {
    /// Parses YAML or JSON text and checks it is OpenAPI 3.0.x or 3.1.x.
    pub fn parse(text: &str) -> Result<OpenApi, String> {
        let doc: Value = ward_model::yaml::parse_yaml(text).map_err(|e| e.to_string())?;
        let version = match doc.get("openapi") {
            Some(Value::String(v)) => v.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(format!(
                    "`openapi: {other}` is not a version such as `3.1.0`"
                ));
            }
            None if doc.get("swagger").is_some() => {
                return Err("Swagger 2.0 documents are not supported; convert the document to OpenAPI 3 (e.g. with swagger2openapi)".into());
            }
            None => return Err("not an OpenAPI document: it has no `openapi` field".into()),
        };
        let is = |minor: &str| {
            version == minor
                || version
                    .strip_prefix(minor)
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(|patch| {
                        !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit())
                    })
        };
        if !is("3.0") && !is("3.1") {
            return Err(format!(
                "OpenAPI `{version}` is not supported; use 3.0.x or 3.1.x"
            ));
        }
        Ok(OpenApi {
            v30: is("3.0"),
            doc,
        })
    }

    /// The JSON request body of the operation for `method` (upper case) on
    /// the route path template `path`, or of the one with `operation_id`,
    /// whose method and path must then match the route's. Path parameters
    /// match whatever their names. `Ok(None)`: the operation takes no body.
    pub fn request_body(
        &self,
        method: &str,
        path: &str,
        operation_id: Option<&str>,
    ) -> Result<Option<RequestBody>, String> {
        let operation = self.operation(method, path, operation_id)?;
        let Some(body) = operation.get("requestBody") else {
            return Ok(None);
        };
        let body = self.resolve(body)?;
        let content = body.get("content").and_then(Value::as_object);
        let json = content
            .into_iter()
            .flatten()
            .filter(|(media, _)| is_json(media))
            .min_by_key(|(media, _)| essence(media) != "application/json");
        let Some((media_type, media)) = json else {
            let types: Vec<&str> = content
                .iter()
                .flat_map(|c| c.keys())
                .map(String::as_str)
                .collect();
            return Err(format!(
                "the request body of `{method} {path}` is not JSON (media types: {}); only `application/json` and `application/*+json` can be checked",
                types.join(", ")
            ));
        };
        let schema = media.get("schema").cloned().unwrap_or_else(|| json!({}));
        Ok(Some(RequestBody {
            schema: self.self_contained(schema)?,
            required: body.get("required") == Some(&Value::Bool(true)),
            media_type: essence(media_type),
        }))
    }

    /// The query parameters of the same operation (its own and its path
    /// item's, the operation's winning by name), as a schema for the object
    /// a query string is read into: declared names only, required ones
    /// required, values typed by their schemas.
    pub fn query(
        &self,
        method: &str,
        path: &str,
        operation_id: Option<&str>,
    ) -> Result<QueryContract, String> {
        let (item, operation) = self.operation_in(method, path, operation_id)?;
        let mut declared: Vec<(String, Value, bool)> = Vec::new();
        for list in [item.get("parameters"), operation.get("parameters")] {
            for parameter in list.and_then(Value::as_array).into_iter().flatten() {
                let parameter = self.resolve(parameter)?;
                if parameter.get("in").and_then(Value::as_str) != Some("query") {
                    continue;
                }
                let name = parameter
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("a query parameter has no `name`")?
                    .to_owned();
                let style = parameter.get("style").and_then(Value::as_str);
                let explode = parameter.get("explode").and_then(Value::as_bool);
                if style.is_some_and(|s| s != "form") || explode == Some(false) {
                    return Err(format!(
                        "query parameter `{name}` uses `style: {}`/`explode: {}`; only the default (`form`, exploded: `?a=1&a=2`) is checked, so describe it that way",
                        style.unwrap_or("form"),
                        explode.unwrap_or(true)
                    ));
                }
                if parameter.get("content").is_some() {
                    return Err(format!(
                        "query parameter `{name}` is described by `content`; give it a `schema`"
                    ));
                }
                let schema = parameter
                    .get("schema")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let required = parameter.get("required") == Some(&Value::Bool(true));
                declared.retain(|(known, _, _)| *known != name);
                declared.push((name, schema, required));
            }
        }
        let mut params = Vec::new();
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, schema, needed) in declared {
            params.push(QueryParam {
                kind: self.kind_of(&schema),
                name: name.clone(),
            });
            if needed {
                required.push(Value::String(name.clone()));
            }
            properties.insert(name, schema);
        }
        let schema = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        Ok(QueryContract {
            params,
            schema: self.self_contained(schema)?,
        })
    }

    /// The JSON type a query value is read as, from its schema: its
    /// `type` (a list's non-null member), else that of what it references
    /// or of an `allOf` member, to a bounded depth.
    fn kind_of(&self, schema: &Value) -> QueryKind {
        match self.type_of(schema, 8) {
            Some("array") => {
                let items = self
                    .items_of(schema, 8)
                    .map_or(QueryKind::String, |items| scalar(self.type_of(items, 8)));
                QueryKind::Array(Box::new(items))
            }
            other => scalar(other),
        }
    }

    fn type_of<'a>(&'a self, schema: &'a Value, depth: u8) -> Option<&'a str> {
        if depth == 0 {
            return None;
        }
        let own = match schema.get("type") {
            Some(Value::String(kind)) => Some(kind.as_str()),
            Some(Value::Array(kinds)) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|k| *k != "null"),
            _ => None,
        };
        own.or_else(|| {
            self.related(schema)
                .find_map(|related| self.type_of(related, depth - 1))
        })
    }

    fn items_of<'a>(&'a self, schema: &'a Value, depth: u8) -> Option<&'a Value> {
        if depth == 0 {
            return None;
        }
        schema.get("items").or_else(|| {
            self.related(schema)
                .find_map(|related| self.items_of(related, depth - 1))
        })
    }

    /// What `$ref` points to and the `allOf` members.
    fn related<'a>(&'a self, schema: &'a Value) -> impl Iterator<Item = &'a Value> {
        let referenced = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| self.doc.pointer(pointer));
        let members = schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        referenced.into_iter().chain(members)
    }

    /// `schema` converted, with every component schema it reaches copied
    /// under `$defs` and the 2020-12 dialect declared.
    fn self_contained(&self, mut schema: Value) -> Result<Value, String> {
        let mut converter = Converter {
            api: self,
            seen: BTreeSet::new(),
            pending: Vec::new(),
        };
        converter.convert(&mut schema)?;
        let mut defs = Map::new();
        while let Some(name) = converter.pending.pop() {
            let mut def = self.doc["components"]["schemas"][&name].clone();
            converter.convert(&mut def)?;
            defs.insert(name, def);
        }
        let mut root = match schema {
            Value::Object(map) => map,
            Value::Bool(true) => Map::new(),
            other => Map::from_iter([("allOf".to_owned(), json!([other]))]),
        };
        root.insert("$schema".into(), DIALECT.into());
        if !defs.is_empty() {
            // A schema's own `$defs` cannot be referenced from the document
            // (`#/$defs/...` is refused), so replacing it loses nothing.
            root.insert("$defs".into(), Value::Object(defs));
        }
        Ok(Value::Object(root))
    }

    /// Finds the operation by `operation_id`, or by method and path.
    fn operation(
        &self,
        method: &str,
        path: &str,
        operation_id: Option<&str>,
    ) -> Result<&Value, String> {
        self.operation_in(method, path, operation_id)
            .map(|(_, operation)| operation)
    }

    /// The path item and the operation in it.
    fn operation_in(
        &self,
        method: &str,
        path: &str,
        operation_id: Option<&str>,
    ) -> Result<(&Value, &Value), String> {
        let paths = self.doc["paths"].as_object().into_iter().flatten();
        let key = method.to_ascii_lowercase();
        let Some(id) = operation_id else {
            let (doc_path, item) = paths
                .into_iter()
                .find(|(template, _)| same_template(template, path))
                .ok_or_else(|| format!("path `{path}` is not in the OpenAPI document"))?;
            let item = self.resolve(item)?;
            let operation = item.get(&key).ok_or_else(|| {
                format!("the OpenAPI document has no `{method}` operation on `{doc_path}`")
            })?;
            return Ok((item, operation));
        };
        for (doc_path, item) in paths {
            let item = self.resolve(item)?;
            for candidate in METHODS {
                let Some(op) = item.get(candidate) else {
                    continue;
                };
                if op.get("operationId").and_then(Value::as_str) != Some(id) {
                    continue;
                }
                if candidate != key || !same_template(doc_path, path) {
                    return Err(format!(
                        "operationId `{id}` is `{} {doc_path}` in the OpenAPI document, but the route is `{method} {path}`",
                        candidate.to_ascii_uppercase()
                    ));
                }
                return Ok((item, op));
            }
        }
        Err(format!("operationId `{id}` is not in the OpenAPI document"))
    }

    /// Follows local `$ref`s (request bodies, path items) to their target.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..16 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return Ok(value);
            };
            let pointer = reference
                .strip_prefix('#')
                .ok_or_else(|| external(reference))?;
            value = self
                .doc
                .pointer(pointer)
                .ok_or_else(|| format!("reference `{reference}` does not resolve"))?;
        }
        Err("a `$ref` chain is circular or longer than 16".into())
    }
}

/// Converts schemas in place and collects the component schemas they use.
struct Converter<'a> {
    api: &'a OpenApi,
    seen: BTreeSet<String>,
    pending: Vec<String>,
}

impl Converter<'_> {
    fn convert(&mut self, schema: &mut Value) -> Result<(), String> {
        let Value::Object(map) = schema else {
            return Ok(());
        };
        if let Some(reference) = map.get("$ref") {
            let reference = reference.as_str().ok_or("a `$ref` is not a string")?;
            let rewritten = self.reference(reference)?;
            if self.api.v30 {
                // OpenAPI 3.0: siblings of `$ref` are ignored.
                map.clear();
            }
            map.insert("$ref".into(), rewritten.into());
        }
        map.retain(|key, _| !key.starts_with("x-") && !listed(DROPPED, key));
        if self.api.v30 {
            if map.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(kind)) = map.get("type")
            {
                let kind = json!([kind, "null"]);
                map.insert("type".into(), kind);
                if let Some(Value::Array(values)) = map.get_mut("enum")
                    && !values.contains(&Value::Null)
                {
                    values.push(Value::Null);
                }
            }
            for (flag, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                if let Some(Value::Bool(on)) = map.get(flag) {
                    let bound = if *on { map.remove(bound) } else { None };
                    map.remove(flag);
                    if let Some(bound) = bound {
                        map.insert(flag.into(), bound);
                    }
                }
            }
        }
        if let Some(Value::Object(properties)) = map.get_mut("properties") {
            let hidden: Vec<String> = properties
                .iter()
                .filter(|(_, property)| self.read_only(property))
                .map(|(name, _)| name.clone())
                .collect();
            // `false`, not removed: refused even where the object stays open.
            for name in &hidden {
                properties.insert(name.clone(), Value::Bool(false));
            }
            if let Some(Value::Array(required)) = map.get_mut("required") {
                required
                    .retain(|name| name.as_str().is_none_or(|n| !hidden.iter().any(|h| h == n)));
            }
        }
        for (key, child) in map.iter_mut() {
            match child {
                Value::Object(group) if listed(SCHEMA_MAPS, key) => {
                    group.values_mut().try_for_each(|s| self.convert(s))?;
                }
                _ if !listed(SCHEMA_KEYS, key) => {}
                Value::Array(list) => list.iter_mut().try_for_each(|s| self.convert(s))?,
                _ => self.convert(child)?,
            }
        }
        Ok(())
    }

    /// Rewrites `#/components/schemas/Name...` to `#/$defs/Name...` and
    /// queues `Name` for copying.
    fn reference(&mut self, reference: &str) -> Result<String, String> {
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| external(reference))?;
        let Some(rest) = pointer.strip_prefix("/components/schemas/") else {
            return Err(format!(
                "reference `{reference}` in a schema must point into `#/components/schemas`"
            ));
        };
        if self.api.doc.pointer(pointer).is_none() {
            return Err(format!("reference `{reference}` does not resolve"));
        }
        let name = rest.split_once('/').map_or(rest, |(name, _)| name);
        let name = name.replace("~1", "/").replace("~0", "~");
        if self.seen.insert(name.clone()) {
            self.pending.push(name);
        }
        Ok(format!("#/$defs/{rest}"))
    }

    /// `readOnly: true` on the property, or on what it takes on through
    /// `$ref` or `allOf` (an `allOf` member's annotations apply to the
    /// whole), followed to a bounded depth.
    fn read_only(&self, property: &Value) -> bool {
        self.read_only_within(property, 32)
    }

    fn read_only_within(&self, schema: &Value, depth: u8) -> bool {
        if depth == 0 {
            return false;
        }
        if schema.get("readOnly") == Some(&Value::Bool(true)) {
            return true;
        }
        self.api
            .related(schema)
            .any(|s| self.read_only_within(s, depth - 1))
    }
}

fn scalar(kind: Option<&str>) -> QueryKind {
    match kind {
        Some("integer") => QueryKind::Integer,
        Some("number") => QueryKind::Number,
        Some("boolean") => QueryKind::Boolean,
        _ => QueryKind::String,
    }
}

/// Whether `key` is one of the space-separated keywords in `list`.
fn listed(list: &str, key: &str) -> bool {
    list.split_whitespace().any(|k| k == key)
}

fn external(reference: &str) -> String {
    format!(
        "external reference `{reference}` is not supported; bundle the OpenAPI document into one file"
    )
}

/// A media type without parameters, lower case.
fn essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media: &str) -> bool {
    let essence = essence(media);
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"))
}

/// Same segments, literal to literal and any `{x}` to any `{y}`.
fn same_template(a: &str, b: &str) -> bool {
    let param = |s: &str| s.starts_with('{') && s.ends_with('}');
    a.split('/').count() == b.split('/').count()
        && a.split('/')
            .zip(b.split('/'))
            .all(|(x, y)| x == y || (param(x) && param(y)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;
    use crate::config::schema::close_objects;

    const V30: &str = r##"
openapi: 3.0.3
info: {title: rows, version: "1"}
paths:
  /teams/{id}/rows:
    post:
      operationId: addRow
      requestBody: {$ref: '#/components/requestBodies/NewRow'}
    put:
      requestBody:
        content: {text/csv: {schema: {type: string}}}
    get:
      responses: {}
  /t/{id}/bad:
    post:
      requestBody:
        content: {application/json: {schema: {$ref: 'common.yaml#/Row'}}}
    put:
      requestBody:
        content: {application/json: {schema: {$ref: '#/components/schemas/Missing'}}}
components:
  requestBodies:
    NewRow:
      required: true
      content:
        application/json; charset=utf-8:
          schema: {$ref: '#/components/schemas/Row'}
  schemas:
    Row:
      type: object
      required: [id, cells]
      discriminator: {propertyName: kind}
      properties:
        id: {type: string, readOnly: true}
        note: {type: string, nullable: true, x-internal: true, example: hi}
        size: {type: integer, minimum: 0, exclusiveMinimum: true}
        cells: {type: array, items: {$ref: '#/components/schemas/Cell'}}
        tree: {$ref: '#/components/schemas/Node'}
    Cell: {$ref: '#/components/schemas/Value'}
    Value: {type: string, enum: [a, b], nullable: true}
    Node:
      type: object
      properties:
        children: {type: array, items: {$ref: '#/components/schemas/Node'}}
    Unused: {type: object}
"##;

    fn body(doc: &str, method: &str, path: &str, id: Option<&str>) -> RequestBody {
        OpenApi::parse(doc)
            .unwrap()
            .request_body(method, path, id)
            .unwrap()
            .unwrap()
    }

    fn validator(body: RequestBody) -> jsonschema::Validator {
        let mut schema = body.schema;
        close_objects(&mut schema);
        jsonschema::validator_for(&schema).unwrap()
    }

    /// `case`: `METHOD path [operationId] => expected part of the error`.
    fn refused(doc: &str, case: &str) {
        let (call, reason) = case.split_once(" => ").unwrap();
        let mut words = call.split(' ');
        let (method, path) = (words.next().unwrap(), words.next().unwrap());
        match OpenApi::parse(doc).and_then(|api| api.request_body(method, path, words.next())) {
            Err(error) => assert!(error.contains(reason), "{case}: {error}"),
            Ok(body) => panic!("{case}: expected an error, got {body:?}"),
        }
    }

    #[test]
    fn a_3_0_body_is_converted_closed_and_self_contained() {
        let body = body(V30, "POST", "/teams/{team}/rows", None);
        assert!(body.required);
        assert_eq!(body.schema["$schema"], DIALECT);
        let defs: Vec<_> = body.schema["$defs"].as_object().unwrap().keys().collect();
        assert_eq!(defs, ["Cell", "Node", "Row", "Value"]);
        assert!(!body.schema.to_string().contains("example"));
        let v = validator(body);
        let good = json!({"cells": ["a", null], "note": null, "size": 1,
                          "tree": {"children": [{"children": []}]}});
        assert!(v.is_valid(&good), "{:?}", v.validate(&good));
        for bad in [
            json!({"cells": ["a"], "size": 0}),
            json!({"cells": ["c"]}),
            json!({"cells": [], "note": 3}),
            json!({"note": "no cells"}),
            json!({"cells": [], "tree": {"children": [{"leaf": 1}]}}),
        ] {
            assert!(!v.is_valid(&bad), "{bad}");
        }
        let sent = json!({"cells": [], "id": "x"});
        let read_only = v.validate(&sent).unwrap_err();
        assert_eq!(read_only.instance_path().as_str(), "/id", "{read_only}");
    }

    #[test]
    fn operations_are_found_by_path_or_operation_id() {
        let route = "/teams/{team}/rows";
        assert!(body(V30, "POST", route, Some("addRow")).required);
        let api = OpenApi::parse(V30).unwrap();
        assert_eq!(api.request_body("GET", route, None), Ok(None));
        for case in [
            "PUT /teams/{team}/rows addRow => `addRow` is `POST /teams/{id}/rows` in the OpenAPI document, but the route is `PUT /teams/{team}/rows`",
            "POST /teams/{team}/rows nope => operationId `nope` is not in",
            "POST /teams/me/rows => `/teams/me/rows` is not in",
            "DELETE /teams/{team}/rows => no `DELETE` operation on `/teams/{id}/rows`",
            "PUT /teams/{team}/rows => not JSON (media types: text/csv)",
        ] {
            refused(V30, case);
        }
    }

    #[test]
    fn unsupported_documents_and_references_are_refused() {
        for (doc, reason) in [
            ("swagger: '2.0'\n", "Swagger 2.0"),
            ("openapi: 3.2.0\n", "`3.2.0` is not supported"),
            ("info: {}\n", "no `openapi`"),
            ("openapi: 3.0.1\n  bad: [\n", "line 2"),
        ] {
            refused(doc, &format!("POST /a => {reason}"));
        }
        refused(
            V30,
            "POST /t/{t}/bad => external reference `common.yaml#/Row`",
        );
        refused(
            V30,
            "PUT /t/{t}/bad => `#/components/schemas/Missing` does not resolve",
        );
    }

    #[test]
    fn a_3_1_json_document_is_json_schema_already() {
        let doc = r##"{
          "openapi": "3.1.0",
          "info": {"title": "t", "version": "1"},
          "paths": {"/items/{item}": {"patch": {"requestBody": {"content": {
            "text/plain": {},
            "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/Patch"}}}}}}},
          "components": {"schemas": {
            "Patch": {"type": "object", "properties": {
              "id": {"$ref": "#/components/schemas/Id"},
              "ref": {"allOf": [{"$ref": "#/components/schemas/Ref"}]},
              "example": {"type": ["string", "null"], "x-note": 1},
              "count": {"$ref": "#/components/schemas/Count", "maximum": 10}}},
            "Id": {"type": "string", "readOnly": true},
            "Ref": {"$ref": "#/components/schemas/Id"},
            "Count": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                      "type": "integer", "exclusiveMinimum": 0}}}
        }"##;
        let body = body(doc, "PATCH", "/items/{id}", None);
        assert!(!body.required);
        assert_eq!(body.media_type, "application/merge-patch+json");
        assert!(body.schema["$defs"]["Count"].get("$schema").is_none());
        let v = validator(body);
        assert!(v.is_valid(&json!({"example": null, "count": 10})));
        let bad = [
            json!({"count": 0}),
            json!({"count": 11}),
            json!({"id": 1}),
            json!({"ref": "x"}),
            json!({"x": 1}),
        ];
        for bad in bad {
            assert!(!v.is_valid(&bad), "{bad}");
        }
    }

    #[test]
    fn query_parameters_are_read_by_their_schemas_types() {
        let doc = r##"{
          "openapi": "3.1.0",
          "info": {"title": "t", "version": "1"},
          "paths": {"/items": {
            "parameters": [{"name": "page", "in": "query",
                            "schema": {"allOf": [{"$ref": "#/components/schemas/Page"}]}}],
            "get": {"parameters": [
              {"name": "limit", "in": "query", "schema": {"type": ["integer", "null"]}},
              {"name": "ids", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
              {"name": "page", "in": "query", "required": true, "schema": {"$ref": "#/components/schemas/Page"}}]},
            "post": {"parameters": [
              {"name": "ids", "in": "query", "style": "form", "explode": false,
               "schema": {"type": "array"}}]}}},
          "components": {"schemas": {"Page": {"type": "integer", "minimum": 1}}}
        }"##;
        let api = OpenApi::parse(doc).unwrap();
        let query = api.query("GET", "/items", None).unwrap();
        let kinds: Vec<(&str, &QueryKind)> = query
            .params
            .iter()
            .map(|p| (p.name.as_str(), &p.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("limit", &QueryKind::Integer),
                ("ids", &QueryKind::Array(Box::new(QueryKind::Integer))),
                ("page", &QueryKind::Integer),
            ]
        );
        let v = jsonschema::validator_for(&query.schema).unwrap();
        assert!(v.is_valid(&json!({"page": 2, "limit": 5, "ids": [1, 2]})));
        assert!(!v.is_valid(&json!({"limit": 5})), "page is required");
        assert!(!v.is_valid(&json!({"page": 0})));
        assert!(!v.is_valid(&json!({"page": 1, "other": 1})));
        let error = api.query("POST", "/items", None).unwrap_err();
        assert!(error.contains("explode"), "{error}");
    }
}
