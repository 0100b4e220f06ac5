//! The store's own guarantees: group commit isolates failing writes, the
//! chain stays contiguous under concurrency and across reopen, and a newer
//! schema is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use ward_model::audit::{AuditRecord, AuditResult};
use ward_store::{Store, StoreError, TenantRow, verify_audit};

fn draft(action: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        ts: "2026-11-26T00:00:00.000Z".into(),
        tenant: None,
        actor: "test".into(),
        action: action.into(),
        target: "t".into(),
        result: AuditResult::Success,
        reason: String::new(),
        correlation_id: "c".into(),
        details: "{}".into(),
    }
}

fn tenant(name: &str) -> TenantRow {
    TenantRow {
        id: format!("ten_{name}"),
        name: name.into(),
        created_at: "2026-11-26T00:00:00.000Z".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_write_in_a_batch_leaves_the_others_and_the_chain_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write_audited(move |ctx| {
                    // Every tenth write inserts a duplicate name and fails after auditing.
                    let name = if i % 10 == 0 {
                        "dup".to_owned()
                    } else {
                        format!("t{i}")
                    };
                    ctx.audit(draft(&format!("write.{i}")));
                    if i % 10 == 0 {
                        let _ = ward_store::insert_tenant(ctx.conn(), &tenant(&format!("dup{i}")));
                    }
                    ward_store::insert_tenant(
                        ctx.conn(),
                        &TenantRow {
                            id: format!("ten_{i}"),
                            ..tenant(&name)
                        },
                    )?;
                    Ok(i)
                })
                .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    let mut seqs = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok((_, s)) => {
                ok += 1;
                seqs.extend(s);
            }
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok + conflicts, 200);
    assert_eq!(conflicts, 19, "only the first `dup` insert wins");
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=ok as i64).collect::<Vec<_>>(),
        "audit sequence has no gaps"
    );
    let tenants = store.read(ward_store::list_tenants).await.unwrap();
    assert_eq!(
        tenants.len(),
        181 + 1,
        "failed writes rolled back their partial inserts"
    );
    let report = verify_audit(dir.path()).unwrap();
    assert_eq!((report.verified, report.first_break), (ok as i64, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_continues_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|ctx| {
                ctx.audit(draft("one"));
                Ok(())
            })
            .await
            .unwrap();
        store.close();
    }
    let store = Store::open(dir.path()).unwrap();
    let (_, seqs) = store
        .write_audited(|ctx| {
            ctx.audit(draft("two"));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(seqs, vec![2]);
    let report = verify_audit(dir.path()).unwrap();
    assert_eq!((report.verified, report.first_break), (2, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_a_newer_ward_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join(ward_store::DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = Store::open(dir.path()).err().expect("refused");
    assert!(error.to_string().contains("schema version 99"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_after_close_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.close();
    let result = store.write(|_| Ok(())).await;
    assert!(matches!(result, Err(StoreError::WriterGone)));
}
