//! Checks of request fields shared by the handlers and the broker: free
//! text, ids, emails, names. Each refusal names the field.

use crate::error::ApiError;

/// Checks a free-text field: trimmed length within bounds, no control characters.
pub fn text_field(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let length = value.trim().chars().count();
    if length == 0 {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    if length > max {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must not contain control characters"),
        ));
    }
    Ok(())
}

/// Checks an id-shaped field (`agt_...` and the like) before it is used or
/// recorded: at most 64 characters of lowercase letters, digits and `_`, so
/// an anonymous caller cannot make the audit log store arbitrary text.
pub fn id_field(field: &str, value: &str) -> Result<(), ApiError> {
    if (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("`{field}` is not an id: use the id Ward returned, e.g. `agt_01...`"),
        ))
    }
}

/// Checks an email address (an agent's owner).
pub fn check_email(field: &str, value: &str) -> Result<(), ApiError> {
    let valid = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("`{value}` is not an email address"),
        ))
    }
}

/// Checks a tenant name: the same rule as feature and profile names.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if ward_model::matrix::is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "`{name}` is not a valid name: use 1 to 64 lowercase letters, digits, `-`, `_`, `.`, starting with a letter or digit"
            ),
        ))
    }
}
