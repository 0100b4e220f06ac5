//! The spool against real files in temp directories: round trips, crash
//! recovery at any cut, damaged bytes, the size bound, concurrency and
//! bad files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use super::*;
use proptest::prelude::*;
use std::time::Instant;

fn config(max_bytes: u64, segment_bytes: u64, full_wait_ms: u64) -> SpoolConfig {
    SpoolConfig {
        max_bytes,
        segment_bytes,
        full_wait: Duration::from_millis(full_wait_ms),
    }
}

fn small_segments() -> SpoolConfig {
    config(1 << 20, 256, 1000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn audit(payload: &[u8]) -> (Class, Vec<u8>) {
    (Class::Audit, payload.to_vec())
}

fn event(n: u64) -> Vec<u8> {
    format!(
        "{{\"event\":{n},\"pad\":\"{}\"}}",
        "x".repeat((n % 40) as usize)
    )
    .into_bytes()
}

fn all(spool: &Spool) -> Vec<Record> {
    spool.pending(usize::MAX, usize::MAX).unwrap()
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// The segment files, by name.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wsp"))
        .collect();
    files.sort();
    files
}

fn corrupt_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("corrupt")).map_or(0, |d| d.count())
}

/// Appends `events` one call each, checking each got the next number.
async fn append_each(spool: &Spool, events: impl IntoIterator<Item = u64>) {
    for n in events {
        let appended = spool.append(vec![audit(&event(n))]).await.unwrap();
        assert_eq!(appended.seqs, [Some(n)]);
        assert_eq!(appended.dropped, 0);
    }
}

#[tokio::test]
async fn records_round_trip_across_segments_and_a_reopen_resumes_numbers_and_cursor() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("spool");
    let spool = Spool::open(&dir, small_segments()).unwrap();
    append_each(&spool, 1..=30).await;
    let files = segment_files(&dir);
    assert!(files.len() >= 5, "{files:?}");

    let first = spool.pending(10, usize::MAX).unwrap();
    assert_eq!(seqs(&first), (1..=10).collect::<Vec<_>>());
    assert_eq!(first[3].payload, event(4));
    assert_eq!(first[3].class, Class::Audit);
    spool.shipped(10).unwrap();
    let status = spool.status();
    assert_eq!((status.depth, status.shipped_seq), (20, 10));
    for gone in files.iter().filter(|f| !segment_files(&dir).contains(f)) {
        assert!(!gone.exists());
    }
    assert!(segment_files(&dir).len() < files.len());
    // Every remaining segment holds an unshipped record.
    assert_eq!(seqs(&all(&spool)), (11..=30).collect::<Vec<_>>());
    // Bytes count the records and headers of the segments left, not the
    // zeroed room of the active one.
    let records: u64 = (11..=30).map(|n| format::encoded_len(event(n).len())).sum();
    let headers = SEGMENT_HEADER_LEN as u64 * segment_files(&dir).len() as u64;
    assert!(
        spool.status().bytes >= records + headers,
        "{:?}",
        spool.status()
    );
    let on_disk: u64 = segment_files(&dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(spool.status().bytes <= on_disk);
    drop(spool);

    let spool = Spool::open(&dir, small_segments()).unwrap();
    let status = spool.status();
    assert_eq!(
        (status.depth, status.shipped_seq, status.corrupt),
        (20, 10, 0)
    );
    assert_eq!(
        seqs(&spool.pending(5, usize::MAX).unwrap()),
        [11, 12, 13, 14, 15]
    );
    append_each(&spool, 31..=32).await;
    spool.shipped(32).unwrap();
    assert_eq!(spool.status().depth, 0);
    assert!(all(&spool).is_empty());
    // The active segment rolls once the writer sees the cursor: only an
    // empty segment named after the next number stays.
    let deadline = Instant::now() + Duration::from_secs(5);
    while spool.status().bytes != SEGMENT_HEADER_LEN as u64 {
        assert!(Instant::now() < deadline, "{:?}", spool.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = segment_files(&dir);
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with(recover::segment_name(33)), "{left:?}");
    append_each(&spool, 33..=33).await;
}

#[tokio::test]
async fn pending_honours_its_limits_and_one_large_record_still_ships() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(root.path(), small_segments()).unwrap();
    append_each(&spool, 1..=6).await;
    assert!(spool.pending(0, usize::MAX).unwrap().is_empty());
    let size = event(1).len() + event(2).len();
    assert_eq!(seqs(&spool.pending(100, size).unwrap()), [1, 2]);
    assert_eq!(seqs(&spool.pending(100, 1).unwrap()), [1]);
    spool.shipped(1).unwrap();
    assert_eq!(seqs(&spool.pending(2, usize::MAX).unwrap()), [2, 3]);
    spool.shipped(3).unwrap();
    spool.shipped(2).unwrap();
    assert_eq!(seqs(&spool.pending(2, usize::MAX).unwrap()), [4, 5]);
    let error = spool.shipped(7).unwrap_err().to_string();
    assert!(error.contains("cannot mark event `7` shipped"), "{error}");
    assert!(error.contains("up to 6 only"), "{error}");
    assert_eq!(spool.status().shipped_seq, 3);
}

#[tokio::test]
async fn a_shipper_that_keeps_up_resumes_where_it_stopped_in_and_across_segments() {
    let root = tempfile::tempdir().unwrap();
    // Large segments: everything stays in one; then small ones: rolls.
    for config in [config(1 << 20, 1 << 20, 1000), small_segments()] {
        let dir = tempfile::tempdir_in(root.path()).unwrap();
        let spool = Spool::open(dir.path(), config).unwrap();
        let mut shipped = 0;
        for round in 0..20u64 {
            let first = round * 7 + 1;
            append_each(&spool, first..first + 7).await;
            let batch = all(&spool);
            assert_eq!(seqs(&batch), (shipped + 1..first + 7).collect::<Vec<_>>());
            assert!(batch.iter().all(|r| r.payload == event(r.seq)));
            // Ship all of it in even rounds, part of it in odd ones (the
            // next read then starts before where the last one stopped).
            shipped = if round % 2 == 0 { first + 6 } else { first + 2 };
            spool.shipped(shipped).unwrap();
        }
    }
}

/// Writes `payloads` (one append, so several segments' worth share
/// groups), cuts the last segment at `cut` (a fraction of its length),
/// reopens and checks what survived.
fn check_cut(payloads: &[Vec<u8>], mut cut_at: impl FnMut(u64) -> u64) {
    let rt = runtime();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let spool = Spool::open(dir, small_segments()).unwrap();
    let batch = payloads.iter().map(|p| audit(p)).collect();
    let appended = rt.block_on(spool.append(batch)).unwrap();
    let n = payloads.len() as u64;
    assert_eq!(appended.seqs, (1..=n).map(Some).collect::<Vec<_>>());
    drop(spool);

    let last = segment_files(dir).pop().unwrap();
    let first_in_last: u64 = last.file_name().unwrap().to_str().unwrap()[4..24]
        .parse()
        .unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let cut = cut_at(len);
    let mut ends = vec![SEGMENT_HEADER_LEN as u64];
    for p in &payloads[first_in_last as usize - 1..] {
        ends.push(ends.last().unwrap() + format::encoded_len(p.len()));
    }
    let records_end = *ends.last().unwrap();
    assert!(records_end <= len);
    assert!(
        std::fs::read(&last).unwrap()[records_end as usize..]
            .iter()
            .all(|&b| b == 0)
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let kept_in_last = ends.iter().skip(1).filter(|&&end| end <= cut).count() as u64;
    let kept = first_in_last - 1 + kept_in_last;
    let torn = cut != 0 && cut < records_end && !ends.contains(&cut);
    let spool = Spool::open(dir, small_segments()).unwrap();
    let records = all(&spool);
    assert_eq!(seqs(&records), (1..=kept).collect::<Vec<_>>(), "cut {cut}");
    for r in &records {
        assert_eq!(r.payload, payloads[r.seq as usize - 1]);
    }
    assert_eq!(spool.status().corrupt, u64::from(torn), "cut {cut}");
    assert_eq!(corrupt_files(dir), usize::from(torn), "cut {cut}");
    let next = rt.block_on(spool.append(vec![audit(b"after")])).unwrap();
    assert_eq!(next.seqs, [Some(kept + 1)], "cut {cut}");
    drop(spool);
    // The repair holds: a second open finds nothing more to set aside.
    let spool = Spool::open(dir, small_segments()).unwrap();
    assert_eq!(spool.status().corrupt, u64::from(torn));
    assert_eq!(all(&spool).len() as u64, kept + 1);
}

#[test]
fn a_cut_at_every_offset_of_the_last_segment_keeps_every_record_before_it() {
    let payloads: Vec<Vec<u8>> = (1..=9).map(event).collect();
    let len = {
        // The last segment's length, from a dry run.
        let mut probe = 0;
        check_cut(&payloads, |len| {
            probe = len;
            len
        });
        probe
    };
    for cut in 0..len {
        check_cut(&payloads, |_| cut);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_crash_at_any_point_loses_only_the_torn_tail(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..40),
        fraction in 0.0f64..=1.0,
    ) {
        check_cut(&payloads, |len| (len as f64 * fraction) as u64);
    }
}

/// The offset of record `seq` in a single-segment spool of `payloads`.
fn offset_of(payloads: &[Vec<u8>], seq: usize) -> usize {
    SEGMENT_HEADER_LEN
        + payloads[..seq - 1]
            .iter()
            .map(|p| RECORD_HEADER_LEN + p.len())
            .sum::<usize>()
}

#[tokio::test]
async fn damaged_records_are_set_aside_and_the_records_after_them_still_read() {
    let payloads: Vec<Vec<u8>> = (1..=10).map(event).collect();
    // In the payload, in the magic, in the sequence number.
    for (damaged, within) in [(5usize, 30usize), (5, 0), (7, 9), (1, 20), (10, 25)] {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
        append_each(&spool, 1..=10).await;
        drop(spool);
        let segment = segment_files(dir).pop().unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[offset_of(&payloads, damaged) + within] ^= 0x10;
        std::fs::write(&segment, &bytes).unwrap();

        let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
        let expected: Vec<u64> = (1..=10).filter(|&s| s != damaged as u64).collect();
        let records = all(&spool);
        assert_eq!(seqs(&records), expected, "record {damaged} byte {within}");
        assert!(records.iter().all(|r| r.payload == event(r.seq)));
        assert_eq!(spool.status().corrupt, 1);
        let aside = dir.join("corrupt").join(format!(
            "{}.at-{}",
            recover::segment_name(1),
            offset_of(&payloads, damaged)
        ));
        assert_eq!(
            std::fs::read(aside).unwrap().len(),
            RECORD_HEADER_LEN + payloads[damaged - 1].len()
        );
        // A damaged last record was never lost silently: numbers go on
        // above the highest good one.
        let next = if damaged == 10 { 10 } else { 11 };
        assert_eq!(
            spool.append(vec![audit(b"x")]).await.unwrap().seqs,
            [Some(next)]
        );
    }
}

#[tokio::test]
async fn two_damaged_stretches_are_counted_apart_and_survive_a_restart() {
    let payloads: Vec<Vec<u8>> = (1..=10).map(event).collect();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    append_each(&spool, 1..=10).await;
    drop(spool);
    let segment = segment_files(dir).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offset_of(&payloads, 3) + 26] ^= 0xFF;
    bytes[offset_of(&payloads, 8) + 2] = 0;
    std::fs::write(&segment, &bytes).unwrap();
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    assert_eq!(seqs(&all(&spool)), [1, 2, 4, 5, 6, 7, 9, 10]);
    assert_eq!(spool.status().corrupt, 2);
    drop(spool);
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    assert_eq!(spool.status().corrupt, 2);
    assert_eq!(seqs(&all(&spool)), [1, 2, 4, 5, 6, 7, 9, 10]);
}

#[tokio::test]
async fn when_full_telemetry_is_dropped_and_audit_waits_then_fails() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let record = format::encoded_len(100);
    let max = SEGMENT_HEADER_LEN as u64 + 3 * record;
    let spool = Spool::open(dir, config(max, 1 << 20, 300)).unwrap();
    let payload = vec![b'a'; 100];
    let three = vec![audit(&payload); 3];
    assert_eq!(
        spool.append(three).await.unwrap().seqs,
        [Some(1), Some(2), Some(3)]
    );

    let mixed = vec![
        (Class::Telemetry, payload.clone()),
        (Class::Telemetry, vec![b'b'; 10]),
    ];
    let appended = spool.append(mixed).await.unwrap();
    assert_eq!(appended.seqs, [None, None]);
    assert_eq!(appended.dropped, 2);
    assert_eq!(spool.status().dropped, 2);

    let started = Instant::now();
    let error = spool.append(vec![audit(&payload)]).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(error, AgentError::SpoolFull { .. }), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("the event spool is full"), "{message}");
    assert!(message.contains("within 300 ms"), "{message}");
    // Nothing of the failed append was written.
    assert_eq!(seqs(&all(&spool)), [1, 2, 3]);

    let too_big = spool
        .append(vec![audit(&vec![b'z'; 500])])
        .await
        .unwrap_err();
    assert!(
        too_big.to_string().contains("more than its whole size"),
        "{too_big}"
    );

    // The counter survives a restart.
    drop(spool);
    let spool = Spool::open(dir, config(max, 1 << 20, 2000)).unwrap();
    assert_eq!(spool.status().dropped, 2);

    let waiting = tokio::spawn({
        let spool = spool.clone();
        async move {
            spool
                .append(vec![audit(b"after"), (Class::Telemetry, b"t".to_vec())])
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While the audit append waits, telemetry is dropped.
    let meanwhile = spool
        .append(vec![(Class::Telemetry, b"tiny".to_vec())])
        .await
        .unwrap();
    assert_eq!(meanwhile.seqs, [None]);
    assert!(!waiting.is_finished());
    spool.shipped(3).unwrap();
    let appended = waiting.await.unwrap().unwrap();
    assert_eq!(appended.seqs, [Some(4), Some(5)]);
    assert_eq!(spool.status().dropped, 3);
    assert_eq!(seqs(&all(&spool)), [4, 5]);
}

#[test]
fn concurrent_appends_get_distinct_contiguous_numbers_and_all_are_durable() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_owned();
    let spool = Spool::open(&dir, config(64 << 20, 4096, 1000)).unwrap();
    let written = rt.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..16u64 {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..40u64 {
                    let batch: Vec<(Class, Vec<u8>)> = (0..1 + i % 3)
                        .map(|k| audit(format!("task {task} call {i} part {k}").as_bytes()))
                        .collect();
                    let appended = spool.append(batch.clone()).await.unwrap();
                    let got: Vec<u64> = appended.seqs.iter().map(|s| s.unwrap()).collect();
                    // One call's records are consecutive.
                    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
                    written.extend(got.into_iter().zip(batch.into_iter().map(|(_, p)| p)));
                }
                written
            }));
        }
        let mut written = Vec::new();
        for task in tasks {
            written.extend(task.await.unwrap());
        }
        written
    });
    drop(spool);
    let mut written = written;
    written.sort();
    let total = written.len() as u64;
    assert_eq!(
        written.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let spool = Spool::open(&dir, config(64 << 20, 4096, 1000)).unwrap();
    let read: Vec<(u64, Vec<u8>)> = all(&spool)
        .into_iter()
        .map(|r| (r.seq, r.payload))
        .collect();
    assert_eq!(read, written);
    assert!(segment_files(&dir).len() > 1);
}

#[tokio::test]
async fn unknown_files_are_left_alone_and_a_garbage_segment_is_set_aside() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    append_each(&spool, 1..=3).await;
    drop(spool);
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.join("seg-abc.wsp"), b"not a segment").unwrap();
    std::fs::create_dir(dir.join("seg-00000000000000000002.wsp.d")).unwrap();
    let garbage = dir.join(recover::segment_name(50));
    std::fs::write(&garbage, vec![0x42; 100]).unwrap();
    std::fs::write(dir.join(recover::segment_name(60)), b"").unwrap();

    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    assert_eq!(seqs(&all(&spool)), [1, 2, 3]);
    assert_eq!(spool.status().corrupt, 1);
    assert!(!garbage.exists());
    assert!(dir.join("corrupt").join(recover::segment_name(50)).exists());
    assert!(dir.join("notes.txt").exists());
    // Numbers go on above anything the set-aside segment could have held.
    let next = spool.append(vec![audit(b"x")]).await.unwrap().seqs[0].unwrap();
    assert!(next >= 50 + 100 / RECORD_HEADER_LEN as u64, "{next}");
}

#[tokio::test]
async fn a_segment_of_another_format_version_is_refused_with_the_fix() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    append_each(&spool, 1..=2).await;
    drop(spool);
    let segment = segment_files(dir).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    let crc = format::crc32c(&bytes[..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, &bytes).unwrap();
    let error = Spool::open(dir, SpoolConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("spool format version 9"), "{error}");
    assert!(error.contains("this ward reads version 1"), "{error}");
    assert!(
        error.contains("move the file out of the spool directory"),
        "{error}"
    );
    // Nothing was moved or changed.
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
}

#[tokio::test]
async fn a_corrupt_cursor_counts_and_ships_everything_again_without_reusing_numbers() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let spool = Spool::open(dir, small_segments()).unwrap();
    append_each(&spool, 1..=12).await;
    spool.shipped(5).unwrap();
    drop(spool);
    std::fs::write(dir.join("cursor"), b"ward-spool-cursor 1\nshipped=9\n").unwrap();
    let spool = Spool::open(dir, small_segments()).unwrap();
    let status = spool.status();
    assert_eq!((status.shipped_seq, status.corrupt), (0, 1));
    // Records of segments already deleted are gone; every one still on
    // disk is pending again, none is skipped.
    let pending = seqs(&all(&spool));
    assert_eq!(pending.last(), Some(&12));
    assert!(pending.contains(&6), "{pending:?}");
    assert_eq!(corrupt_files(dir), 1);
    append_each(&spool, 13..=13).await;

    // Everything shipped and the cursor lost: numbers still go on.
    spool.shipped(13).unwrap();
    drop(spool);
    std::fs::write(dir.join("cursor"), b"garbage").unwrap();
    let spool = Spool::open(dir, small_segments()).unwrap();
    assert_eq!(spool.status().corrupt, 1);
    append_each(&spool, 14..=14).await;
}

#[tokio::test]
async fn files_are_private_and_an_open_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("spool");
    let spool = Spool::open(&dir, SpoolConfig::default()).unwrap();
    append_each(&spool, 1..=2).await;
    spool.shipped(1).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("cursor")), 0o600);
    for segment in segment_files(&dir) {
        assert_eq!(mode(&segment), 0o600);
    }
    drop(spool);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    Spool::open(&dir, SpoolConfig::default()).unwrap();
    assert_eq!(mode(&dir), 0o700);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = Spool::open(&dir, SpoolConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("is writable by others"), "{error}");
    let zero = Spool::open(&root.path().join("z"), config(0, 1, 1))
        .err()
        .unwrap()
        .to_string();
    assert!(zero.contains("must be above 0"), "{zero}");
}

#[tokio::test]
async fn wipe_removes_every_file_and_clones_stop_taking_events() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("spool");
    let spool = Spool::open(&dir, small_segments()).unwrap();
    append_each(&spool, 1..=20).await;
    let clone = spool.clone();
    spool.wipe().unwrap();
    assert!(!dir.exists());
    let error = clone
        .append(vec![audit(b"late")])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not taking events"), "{error}");
    assert!(clone.pending(10, 10).is_err());
    assert_eq!(clone.status().depth, 0);
}

#[tokio::test]
async fn an_oversized_event_is_refused_before_anything_is_written() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(root.path(), SpoolConfig::default()).unwrap();
    let big = vec![b'x'; MAX_RECORD_PAYLOAD + 1];
    let error = spool
        .append(vec![audit(b"ok"), audit(&big)])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("event 1 is 1048577 bytes"), "{error}");
    assert!(all(&spool).is_empty());
    assert_eq!(spool.append(vec![]).await.unwrap().seqs, []);
}

#[tokio::test]
async fn a_changed_byte_in_the_zeroed_room_is_set_aside_and_the_records_stay() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    append_each(&spool, 1..=4).await;
    drop(spool);
    let segment = segment_files(dir).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    assert!(bytes.len() >= 1 << 20, "{}", bytes.len());
    bytes[5000] = 0x99;
    std::fs::write(&segment, &bytes).unwrap();
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    assert_eq!(seqs(&all(&spool)), [1, 2, 3, 4]);
    assert_eq!(spool.status().corrupt, 1);
    assert_eq!(std::fs::read(&segment).unwrap()[5000], 0);
    append_each(&spool, 5..=5).await;
    drop(spool);
    let spool = Spool::open(dir, SpoolConfig::default()).unwrap();
    assert_eq!(seqs(&all(&spool)), [1, 2, 3, 4, 5]);
    assert_eq!(spool.status().corrupt, 1);
}

#[test]
fn a_spool_can_be_shared_between_threads_and_tasks() {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<Spool>();
}
