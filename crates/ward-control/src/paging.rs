//! Paging of list endpoints: the `limit` parameter and cutting a page with
//! the cursor of the next one.

use crate::error::ApiError;

/// Parses a `limit` query parameter.
pub fn parse_limit(limit: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("`limit` must be a number from 1 to {max}, got `{text}`"),
                )
            }),
    }
}

/// Cuts a page of `limit` items from `rows` (fetched with `limit + 1`) and
/// the cursor of the next page, if there is one.
pub fn page<R, T>(
    rows: Vec<R>,
    limit: u32,
    out: impl FnMut(R) -> T,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    let items: Vec<T> = rows.into_iter().take(limit as usize).map(out).collect();
    let next = if more { items.last().map(cursor) } else { None };
    (items, next)
}
