//! Path templates (`/a/{b}/c`) and the scope templates filled from their
//! parameters. Knows nothing about requests or scopes' grammar.

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the text.
    Literal(String),
    /// Captures one segment under a name.
    Param(String),
}

/// Parses `/a/{b}/c` into segments.
pub fn parse_template(path: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must start with `/`".into());
    };
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for part in rest.split('/') {
        if part.is_empty() {
            return Err("has an empty segment (`//` or a trailing `/`)".into());
        }
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`{{{name}}}` is not a valid parameter name"));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            names.push(name.to_owned());
            out.push(Segment::Param(name.to_owned()));
        } else if part.contains(['{', '}', '%', '*']) || part == "." || part == ".." {
            return Err(format!(
                "segment `{part}` must be literal text or a whole `{{name}}`"
            ));
        } else {
            out.push(Segment::Literal(part.to_owned()));
        }
    }
    Ok(out)
}

/// Replaces each `{name}` in `template` with `value(name)`; unknown names
/// are an error.
pub fn substitute(
    template: &str,
    value: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "has an unclosed `{`".to_owned())?;
        let name = &after[..close];
        let replacement =
            value(name).ok_or_else(|| format!("`{{{name}}}` is not a parameter of the path"))?;
        out.push_str(&replacement);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("has a `}` without `{`".into());
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;

    #[test]
    fn templates_substitute_only_path_parameters() {
        assert_eq!(
            substitute("x:write:/team/{team}", |n| (n == "team")
                .then(|| "a".into()))
            .unwrap(),
            "x:write:/team/a"
        );
        assert!(substitute("x:write:/{other}", |_| None).is_err());
        assert!(parse_template("/a//b").is_err());
        assert!(parse_template("/a/{b}/{b}").is_err());
        assert!(parse_template("/a/x{b}").is_err());
    }
}
