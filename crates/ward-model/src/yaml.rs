//! YAML documents read strictly and with positions: the event stream is
//! turned into a JSON value plus a map from each node's path
//! (`features.run-git.scopes[0]`) to where it starts in the source, so
//! serde's error path and every later check can name a line and column.
//! Anchors, aliases, tags, duplicate keys, non-text keys, multiple
//! documents and nesting deeper than 32 levels are rejected. Used by the
//! capability matrix and Ward's configuration files; knows nothing about
//! what a document means.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted in a document.
const MAX_DEPTH: usize = 32;

/// One problem found in a YAML document, where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// The 1-based line of the offending node.
    pub line: usize,
    /// The 1-based column of the offending node.
    pub column: usize,
    /// The node's path, e.g. `features.run-git.scopes[0]`; empty for the root.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Parses any YAML document into `T` strictly (no anchors, aliases, tags
/// or duplicate keys); an error names the line, column and path of the
/// offending node. Used for Ward's own configuration files.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    load(text)?.deserialize()
}

/// Where a node starts in the source, 1-based.
#[derive(Clone, Copy, Debug, Default)]
struct Position {
    line: usize,
    column: usize,
}

impl From<Marker> for Position {
    fn from(mark: Marker) -> Self {
        Position {
            line: mark.line(),
            // The scanner counts columns from 0.
            column: mark.col() + 1,
        }
    }
}

/// A parsed document: its value and where each node and key starts, so
/// checks after the shape's can place their errors too.
pub struct Tree {
    value: Value,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Tree {
    /// Reads the document into `T`; a shape error (unknown key, wrong
    /// type, missing key) is placed at its node.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, YamlError> {
        serde_path_to_error::deserialize(&self.value).map_err(|error| {
            let path = error.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let message = error.into_inner().to_string();
            self.shape_error(path, message)
        })
    }

    fn position(&self, path: &str) -> Position {
        self.values
            .get(path)
            .or_else(|| self.values.get(""))
            .copied()
            .unwrap_or(Position { line: 1, column: 1 })
    }

    fn key_position(&self, path: &str) -> Position {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.position(path))
    }

    /// An error placed at the node at `path` (the root when unknown).
    pub fn error_at(&self, path: &str, message: String) -> YamlError {
        make_error(self.position(path), path, message)
    }

    pub(crate) fn key_error_at(&self, path: &str, message: String) -> YamlError {
        make_error(self.key_position(path), path, message)
    }

    /// Places a serde error: unknown fields at the key, the rest at the value.
    fn shape_error(&self, path: String, message: String) -> YamlError {
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            let message = format!("unknown key `{rest}");
            // The error path may or may not already end at the unknown key.
            let key_path = join_key(&path, field);
            for candidate in [key_path.as_str(), path.as_str()] {
                if let Some(position) = self.keys.get(candidate) {
                    return make_error(*position, candidate, message);
                }
            }
            return self.error_at(&path, message);
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            return self.error_at(&path, format!("missing key `{rest}; add it"));
        }
        self.error_at(&path, message)
    }
}

fn make_error(position: Position, path: &str, message: String) -> YamlError {
    YamlError {
        line: position.line,
        column: position.column,
        path: path.to_owned(),
        message,
    }
}

/// Joins a mapping key onto a path the way `serde_path_to_error` prints it.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A container being filled while events arrive.
enum Frame {
    Mapping {
        path: String,
        map: Map<String, Value>,
        /// The key whose value comes next, with its path.
        key: Option<(String, String)>,
    },
    Sequence {
        path: String,
        items: Vec<Value>,
    },
}

/// Builds a [`Tree`] from parser events, stopping at the first problem.
#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
    error: Option<YamlError>,
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        if let Err(error) = self.handle(event, mark) {
            self.error = Some(error);
        }
    }
}

impl TreeBuilder {
    fn handle(&mut self, event: Event, mark: Marker) -> Result<(), YamlError> {
        let position = Position::from(mark);
        let fail = |path: &str, message: &str| Err(make_error(position, path, message.to_owned()));
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return fail(
                        "",
                        "only one yaml document is allowed; remove the extra `---` and what follows",
                    );
                }
                Ok(())
            }
            Event::Alias(_) => fail(
                &self.current_path(),
                "aliases (`*name`) are not supported; repeat the value instead",
            ),
            Event::Scalar(text, style, anchor, tag) => {
                check_node(anchor, tag.is_some(), &self.current_path(), position)?;
                if let Some(Frame::Mapping {
                    path,
                    map,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    let key_path = join_key(path, &text);
                    if map.contains_key(&text) {
                        return fail(
                            &key_path,
                            &format!("duplicate key `{text}`; remove one of them"),
                        );
                    }
                    if map.is_empty() {
                        // A block mapping's start event is marked after its
                        // first key; the mapping starts at that key.
                        let start = self.values.entry(path.clone()).or_insert(position);
                        if (position.line, position.column) < (start.line, start.column) {
                            *start = position;
                        }
                    }
                    self.keys.insert(key_path.clone(), position);
                    *key = Some((text, key_path));
                    return Ok(());
                }
                let value = scalar_value(text, style);
                let path = self.current_path();
                self.values.insert(path, position);
                self.finish(value);
                Ok(())
            }
            Event::SequenceStart(anchor, tag) => {
                let path = self.start_container(anchor, tag.is_some(), position)?;
                self.stack.push(Frame::Sequence {
                    path,
                    items: Vec::new(),
                });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                let path = self.start_container(anchor, tag.is_some(), position)?;
                self.stack.push(Frame::Mapping {
                    path,
                    map: Map::new(),
                    key: None,
                });
                Ok(())
            }
            Event::SequenceEnd => {
                if let Some(Frame::Sequence { items, .. }) = self.stack.pop() {
                    self.finish(Value::Array(items));
                }
                Ok(())
            }
            Event::MappingEnd => {
                if let Some(Frame::Mapping { map, .. }) = self.stack.pop() {
                    self.finish(Value::Object(map));
                }
                Ok(())
            }
        }
    }

    /// Checks a container start and returns its path.
    fn start_container(
        &mut self,
        anchor: usize,
        tagged: bool,
        position: Position,
    ) -> Result<String, YamlError> {
        let path = self.current_path();
        check_node(anchor, tagged, &path, position)?;
        if let Some(Frame::Mapping { key: None, .. }) = self.stack.last() {
            return Err(make_error(
                position,
                &path,
                "mapping keys must be plain text; quote the key or restructure it".to_owned(),
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(make_error(
                position,
                &path,
                format!("nesting is deeper than {MAX_DEPTH} levels; flatten the document"),
            ));
        }
        self.values.insert(path.clone(), position);
        Ok(path)
    }

    /// The path of the node that the next value event will produce.
    fn current_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Mapping {
                key: Some((_, path)),
                ..
            }) => path.clone(),
            Some(Frame::Mapping {
                path, key: None, ..
            }) => path.clone(),
            Some(Frame::Sequence { path, items }) => format!("{path}[{}]", items.len()),
        }
    }

    /// Attaches a completed value to its parent, or makes it the root.
    fn finish(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence { items, .. }) => items.push(value),
            Some(Frame::Mapping { map, key, .. }) => {
                if let Some((name, _)) = key.take() {
                    map.insert(name, value);
                }
            }
        }
    }
}

fn check_node(
    anchor: usize,
    tagged: bool,
    path: &str,
    position: Position,
) -> Result<(), YamlError> {
    if anchor != 0 {
        return Err(make_error(
            position,
            path,
            "anchors (`&name`) are not supported; repeat the value instead".to_owned(),
        ));
    }
    if tagged {
        return Err(make_error(
            position,
            path,
            "tags (`!tag`) are not supported; remove the tag".to_owned(),
        ));
    }
    Ok(())
}

/// Types a scalar the way YAML 1.2's core schema does, for the cases a
/// matrix uses: quoted and block scalars are always strings.
fn scalar_value(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let numeric = text
        .strip_prefix(['-', '+'])
        .unwrap_or(&text)
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if numeric {
        if let Ok(integer) = text.parse::<i64>() {
            return Value::Number(integer.into());
        }
        if let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(number);
        }
    }
    Value::String(text)
}

/// Parses YAML text into a [`Tree`], rejecting what Ward's documents never need.
pub fn load(text: &str) -> Result<Tree, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = TreeBuilder::default();
    // Events are pulled one at a time rather than through `Parser::load`,
    // which recurses once per nesting level.
    loop {
        let (event, mark) = parser.next_token().map_err(|error| {
            make_error(
                Position::from(*error.marker()),
                "",
                format!("invalid yaml: {}; fix the syntax", error.info()),
            )
        })?;
        let end = event == Event::StreamEnd;
        builder.on_event(event, mark);
        if let Some(error) = builder.error.take() {
            return Err(error);
        }
        if end {
            break;
        }
    }
    Ok(Tree {
        value: builder.root.unwrap_or(Value::Null),
        values: builder.values,
        keys: builder.keys,
    })
}
