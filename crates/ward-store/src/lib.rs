//! Ward's storage: one SQLite database in WAL mode. All writes go through a
//! single writer thread that groups concurrent transactions into one commit
//! (one fsync) and appends their audit entries to the hash chain; reads use
//! a small pool of read-only connections.
//!
//! INVARIANT: a write's result is delivered only after the transaction that
//! holds it, and its audit entries, is durable on disk.
//! INVARIANT: only the writer thread appends to `audit`, so the chain head it
//! keeps in memory is the head on disk.

mod agent_events;
mod alerts;
mod approvals;
mod events;
mod files;
mod heartbeats;
mod policy;
mod rows;
mod schema;
mod signal_slots;
mod switches;

pub use agent_events::*;
pub use alerts::*;
pub use approvals::*;
pub use events::*;
pub use files::{LOCK_FILE, ensure_unlocked};
pub use heartbeats::*;
pub use policy::*;
pub use rows::*;
pub use signal_slots::*;
pub use switches::*;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use ward_model::audit::{AuditRecord, ChainBreak, ChainVerifier, ChainedRecord, GENESIS_HASH};

use crate::files::DirLock;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "ward.db";

/// The most transactions grouped into one commit.
const MAX_BATCH: usize = 1024;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A uniqueness constraint refused the write.
    #[error("{0} already exists")]
    Conflict(String),
    /// The writer thread is gone (the server is shutting down).
    #[error("the storage writer has stopped")]
    WriterGone,
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The operation was refused by a rule of the caller.
    #[error("{0}")]
    Rejected(String),
    /// Another process holds the data directory.
    #[error(
        "data directory `{dir}` is in use by another ward process ({holder}); stop it or choose another --data-dir"
    )]
    Locked {
        /// The directory.
        dir: String,
        /// Who holds it, e.g. `pid 1234`.
        holder: String,
    },
}

/// What a write transaction sees: the connection, and a place to record
/// audit entries that commit with it.
pub struct WriteCtx<'a> {
    conn: &'a Connection,
    audit: Vec<AuditRecord>,
}

impl<'a> WriteCtx<'a> {
    /// The connection, inside the open transaction.
    pub fn conn(&self) -> &'a Connection {
        self.conn
    }

    /// Records an audit entry that commits atomically with this write; the
    /// writer gives it its `seq`.
    pub fn audit(&mut self, draft: AuditRecord) {
        self.audit.push(draft);
    }
}

type Completion = Box<dyn FnOnce(Result<Vec<i64>, StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> (bool, Completion) + Send>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    readers: Mutex<Vec<Connection>>,
    /// Held while the store lives; dropped (and so released) with it.
    _lock: DirLock,
}

impl Store {
    /// Locks `dir` for this process (refused while another holds it),
    /// opens (creating if needed, mode 0600) the database in it, applies
    /// migrations and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let lock = DirLock::acquire(dir)?;
        let path = files::make_private(dir)?;
        let conn = Connection::open(&path)?;
        configure(&conn)?;
        migrate(&conn)?;
        let head = chain_head(&conn)?;
        let (sender, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ward-store-writer".into())
            .spawn(move || writer_loop(conn, head, receiver))
            .map_err(|e| StoreError::Rejected(format!("cannot start the writer thread: {e}")))?;
        let inner = Arc::new(Inner {
            path,
            writer: Mutex::new(Some(sender)),
            readers: Mutex::new(Vec::new()),
            _lock: lock,
        });
        let weak = Arc::downgrade(&inner);
        let checkpoint_conn = Connection::open(&inner.path)?;
        checkpoint_conn.busy_timeout(Duration::from_secs(5))?;
        std::thread::Builder::new()
            .name("ward-store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, weak))
            .map_err(|e| {
                StoreError::Rejected(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Store { inner })
    }

    /// Runs `f` in a write transaction, grouped with concurrent writes into
    /// one durable commit. Audit entries recorded through the context are
    /// chained and committed with it. Returns `f`'s value once durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        Ok(self.write_audited(f).await?.0)
    }

    /// Like [`Store::write`], and also returns the sequence numbers of the
    /// audit entries the write appended.
    pub async fn write_audited<T, F>(&self, f: F) -> Result<(T, Vec<i64>), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |ctx| match f(ctx) {
            Ok(value) => (
                true,
                Box::new(move |committed: Result<Vec<i64>, StoreError>| {
                    let _ = tx.send(committed.map(|seqs| (value, seqs)));
                }),
            ),
            Err(error) => (
                false,
                Box::new(move |_| {
                    let _ = tx.send(Err(error));
                }),
            ),
        });
        let sender = self
            .inner
            .writer
            .lock()
            .map_err(|_| StoreError::WriterGone)?
            .clone()
            .ok_or(StoreError::WriterGone)?;
        sender.send(job).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().map(|mut pool| pool.pop()) {
                Ok(Some(conn)) => conn,
                _ => open_reader(&inner.path)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Rejected(format!("read task failed: {e}")))?
    }

    /// Stops accepting writes; queued writes still commit.
    pub fn close(&self) {
        if let Ok(mut writer) = self.inner.writer.lock() {
            writer.take();
        }
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // Small pages: a commit writes one WAL frame per page it dirtied, and the
    // audit indexes dirty one page each per entry (the actor index a page
    // per distinct agent). 1 KiB pages halved the bytes written per token
    // in the token benchmark. Takes effect only when the file is created.
    conn.pragma_update(None, "page_size", 1024)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // INVARIANT: FULL makes every commit fsync the WAL before it returns.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints run on their own thread (`checkpoint_loop`), not inside
    // the writer's commits; the WAL file is cut back after each reset.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    Ok(())
}

/// Copies committed WAL frames into the database every quarter second,
/// without blocking the writer (PASSIVE), until the store is dropped.
fn checkpoint_loop(conn: Connection, store: std::sync::Weak<Inner>) {
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Some(inner) = store.upgrade() else { return };
        let open = inner.writer.lock().map(|w| w.is_some()).unwrap_or(false);
        drop(inner);
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "checkpoint failed; will retry");
        }
        if !open {
            return;
        }
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = schema::MIGRATIONS.len() as i64;
    if applied > known {
        return Err(StoreError::Rejected(format!(
            "the database has schema version {applied} but this ward knows only {known}; upgrade ward"
        )));
    }
    for (index, sql) in schema::MIGRATIONS.iter().enumerate().skip(applied as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            index + 1
        ))?;
    }
    Ok(())
}

/// The last entry's sequence number and hash.
fn chain_head(conn: &Connection) -> Result<(i64, String), StoreError> {
    let head = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(head.unwrap_or_else(|| (0, GENESIS_HASH.to_owned())))
}

fn writer_loop(conn: Connection, mut head: (i64, String), receiver: mpsc::Receiver<Job>) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        head = run_batch(&conn, head, jobs);
    }
}

/// Runs a batch of jobs in one transaction, each in its own savepoint, and
/// completes them after the commit. Returns the chain head after the batch.
fn run_batch(conn: &Connection, head: (i64, String), jobs: Vec<Job>) -> (i64, String) {
    let mut completions: Vec<(Completion, Result<Vec<i64>, ()>)> = Vec::with_capacity(jobs.len());
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Dropping the jobs unrun makes each caller see the write fail.
        tracing::error!(%error, jobs = jobs.len(), "cannot begin a write transaction");
        return head;
    }
    let mut tentative = head.clone();
    for job in jobs {
        let before = tentative.clone();
        let savepoint = exec_cached(conn, "SAVEPOINT job");
        let mut ctx = WriteCtx {
            conn,
            audit: Vec::new(),
        };
        let (ok, completion) = job(&mut ctx);
        let appended = if ok && savepoint.is_ok() {
            append_audit(conn, &mut tentative, std::mem::take(&mut ctx.audit))
        } else {
            Err(())
        };
        match appended {
            Ok(seqs) => {
                let _ = exec_cached(conn, "RELEASE job");
                completions.push((completion, Ok(seqs)));
            }
            Err(()) => {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                tentative = before;
                // A job that failed by itself reports its own error.
                completions.push((completion, Err(())));
            }
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for (completion, outcome) in completions {
                completion(outcome.map_err(|()| StoreError::Rejected("write failed".into())));
            }
            tentative
        }
        Err(error) => {
            tracing::error!(%error, "commit failed; the batch was rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            let message = error.to_string();
            for (completion, _) in completions {
                completion(Err(StoreError::Rejected(format!(
                    "commit failed: {message}"
                ))));
            }
            head
        }
    }
}

fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn append_audit(
    conn: &Connection,
    head: &mut (i64, String),
    drafts: Vec<AuditRecord>,
) -> Result<Vec<i64>, ()> {
    let mut seqs = Vec::with_capacity(drafts.len());
    let mut statement = conn
        .prepare_cached(
            "INSERT INTO audit (seq, ts, tenant_id, actor, action, target, result, reason, \
             correlation_id, details, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(|error| tracing::error!(%error, "cannot prepare the audit insert"))?;
    for mut record in drafts {
        record.seq = head.0 + 1;
        let chained = record.chain(head.1.clone());
        let r = &chained.record;
        statement
            .execute(rusqlite::params![
                r.seq,
                r.ts,
                r.tenant,
                r.actor,
                r.action,
                r.target,
                r.result.as_str(),
                r.reason,
                r.correlation_id,
                r.details,
                chained.prev_hash,
                chained.hash
            ])
            .map_err(|error| tracing::error!(%error, "cannot append to the audit log"))?;
        seqs.push(r.seq);
        *head = (r.seq, chained.hash);
    }
    Ok(seqs)
}

/// The outcome of verifying a data directory's audit chain.
#[derive(Debug)]
pub struct VerifyReport {
    /// Entries verified before the first break (all of them if intact).
    pub verified: i64,
    /// Hash of the last verified entry.
    pub head: String,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
}

/// Verifies the audit hash chain of the database in `dir`, read-only; safe
/// while a server is running.
pub fn verify_audit(dir: &Path) -> Result<VerifyReport, StoreError> {
    let path = dir.join(DB_FILE);
    if !path.exists() {
        return Err(StoreError::Rejected(format!(
            "no ward database at `{}`; check --data-dir",
            path.display()
        )));
    }
    let conn = open_reader(&path)?;
    let mut statement = conn.prepare(&format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = statement.query([])?;
    let mut verifier = ChainVerifier::default();
    while let Some(row) = rows.next()? {
        let entry = match chained_from_row(row) {
            Ok(entry) => entry,
            // No writer stores a result it cannot name: the entry was altered.
            Err(rusqlite::Error::FromSqlConversionFailure(..)) => {
                return Ok(VerifyReport {
                    verified: verifier.verified(),
                    head: verifier.head().to_owned(),
                    first_break: Some(ChainBreak::Altered { seq: row.get(0)? }),
                });
            }
            Err(error) => return Err(error.into()),
        };
        if let Err(broken) = verifier.push(&entry) {
            return Ok(VerifyReport {
                verified: verifier.verified(),
                head: verifier.head().to_owned(),
                first_break: Some(broken),
            });
        }
    }
    Ok(VerifyReport {
        verified: verifier.verified(),
        head: verifier.head().to_owned(),
        first_break: None,
    })
}

pub(crate) const AUDIT_COLUMNS: &str = "seq, ts, tenant_id, actor, action, target, result, reason, correlation_id, details, prev_hash, hash";

pub(crate) fn chained_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChainedRecord> {
    Ok(ChainedRecord {
        record: AuditRecord {
            seq: row.get(0)?,
            ts: row.get(1)?,
            tenant: row.get(2)?,
            actor: row.get(3)?,
            action: row.get(4)?,
            target: row.get(5)?,
            result: row.get::<_, String>(6)?.parse().map_err(|e: String| {
                rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, e.into())
            })?,
            reason: row.get(7)?,
            correlation_id: row.get(8)?,
            details: row.get(9)?,
        },
        prev_hash: row.get(10)?,
        hash: row.get(11)?,
    })
}
