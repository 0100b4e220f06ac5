//! The durability check: every token received has its `token.issue`
//! audit entry.

use ward_bench::{BResult, s};
use ward_client::Client;

use crate::server::Server;

pub(crate) async fn count_issued(server: &Server) -> BResult<(u64, u64)> {
    let admin = Client::new(&server.base, Some(server.bootstrap.clone())).map_err(s)?;
    let mut cursor: Option<String> = None;
    let (mut success, mut other) = (0u64, 0u64);
    loop {
        let mut query = vec![("action", "token.issue"), ("limit", "1000")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let page = admin.audit(&query).await.map_err(s)?;
        for entry in &page.entries {
            if entry.result == "success" {
                success += 1;
            } else {
                other += 1;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok((success, other))
}
