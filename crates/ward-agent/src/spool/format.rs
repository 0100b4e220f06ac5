//! The bytes of a segment: its header, the record frame, CRC-32C, and the
//! scan that reads a segment back, resynchronising on the record magic
//! after a bad stretch. Pure: no files, no clocks.

use super::Class;

/// The first bytes of every segment.
pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"WARD-SPL";
/// The segment format this code writes and reads.
pub(super) const FORMAT_VERSION: u32 = 1;
/// Magic (8) + version (4) + CRC-32C of the first 12 bytes (4).
pub(super) const SEGMENT_HEADER_LEN: usize = 16;

/// The first bytes of every record. `0xFF` never occurs in UTF-8, so a
/// JSON payload cannot contain the magic and fool the resynchronisation.
pub(super) const RECORD_MAGIC: [u8; 4] = [0xFF, 0xA7, b'W', b'R'];
/// Magic (4) + payload length (4) + seq (8) + class (1) + reserved (3) +
/// CRC-32C (4).
pub(super) const RECORD_HEADER_LEN: usize = 24;
/// The largest payload one record may carry.
pub const MAX_RECORD_PAYLOAD: usize = 1 << 20;

const CLASS_AUDIT: u8 = 1;
const CLASS_TELEMETRY: u8 = 2;

/// The segment header for the current format.
pub(super) fn segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32c(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What a segment's first bytes say.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Header {
    /// A header of the current format.
    Current,
    /// A well-formed header of another format version.
    Version(u32),
    /// Too short, wrong magic or failing its checksum.
    Bad,
}

/// Reads a segment header.
pub(super) fn read_header(bytes: &[u8]) -> Header {
    let Some(header) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return Header::Bad;
    };
    if header[..8] != SEGMENT_MAGIC || le_u32(&header[12..16]) != crc32c(&header[..12]) {
        return Header::Bad;
    }
    match le_u32(&header[8..12]) {
        FORMAT_VERSION => Header::Current,
        other => Header::Version(other),
    }
}

/// The length of a record with `payload_len` bytes of payload on disk.
pub(super) fn encoded_len(payload_len: usize) -> u64 {
    (RECORD_HEADER_LEN + payload_len) as u64
}

/// Appends the frame of one record to `out`.
pub(super) fn encode_record(out: &mut Vec<u8>, seq: u64, class: Class, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    // The caller refuses payloads above MAX_RECORD_PAYLOAD, so this fits.
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(match class {
        Class::Audit => CLASS_AUDIT,
        Class::Telemetry => CLASS_TELEMETRY,
    });
    out.extend_from_slice(&[0, 0, 0]);
    let crc = crc32c_append(crc32c(&out[start + 4..start + 20]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One well-formed record found in a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Frame {
    /// Where its magic starts.
    pub offset: usize,
    /// Its whole length on disk.
    pub len: usize,
    /// Its sequence number.
    pub seq: u64,
    /// Its class.
    pub class: Class,
}

/// Why bytes at an offset are not a record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FrameError {
    /// The bytes end before the record does (a torn tail, or more to read).
    Short,
    /// Wrong magic, impossible length or class, failed checksum, or a
    /// sequence number not above the previous one.
    Bad(&'static str),
}

/// Parses the record header at the start of `header` (24 bytes): its
/// payload length, seq and class, without checking the checksum.
pub(super) fn parse_header(header: &[u8]) -> Result<(usize, u64, Class, u32), FrameError> {
    if header.len() < RECORD_HEADER_LEN {
        return Err(FrameError::Short);
    }
    if header[..4] != RECORD_MAGIC {
        return Err(FrameError::Bad("no record magic"));
    }
    let len = le_u32(&header[4..8]) as usize;
    if len > MAX_RECORD_PAYLOAD {
        return Err(FrameError::Bad("record length out of range"));
    }
    let seq = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    let class = match header[16] {
        CLASS_AUDIT => Class::Audit,
        CLASS_TELEMETRY => Class::Telemetry,
        _ => return Err(FrameError::Bad("unknown record class")),
    };
    if header[17..20] != [0, 0, 0] {
        return Err(FrameError::Bad("reserved bytes set"));
    }
    Ok((len, seq, class, le_u32(&header[20..24])))
}

/// Checks a record's checksum given its header and payload.
pub(super) fn checksum_ok(header: &[u8], payload: &[u8], crc: u32) -> bool {
    crc32c_append(crc32c(&header[4..20]), payload) == crc
}

/// The record at `offset` of `bytes`, whose seq must be at least `min_seq`.
pub(super) fn frame_at(bytes: &[u8], offset: usize, min_seq: u64) -> Result<Frame, FrameError> {
    let rest = bytes.get(offset..).unwrap_or_default();
    let (payload_len, seq, class, crc) = parse_header(rest)?;
    let len = RECORD_HEADER_LEN + payload_len;
    let Some(payload) = rest.get(RECORD_HEADER_LEN..len) else {
        return Err(FrameError::Short);
    };
    if !checksum_ok(rest, payload, crc) {
        return Err(FrameError::Bad("checksum mismatch"));
    }
    if seq < min_seq {
        return Err(FrameError::Bad("sequence number not increasing"));
    }
    Ok(Frame {
        offset,
        len,
        seq,
        class,
    })
}

/// What a scan of a segment's records found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// The good records, in order.
    pub frames: Vec<Frame>,
    /// The stretches that are not records, in order; the last may run to
    /// the end (a torn tail).
    pub bad: Vec<std::ops::Range<usize>>,
}

impl Scan {
    /// Where the good records end (the segment header's end if none).
    pub fn records_end(&self) -> usize {
        self.frames
            .last()
            .map_or(SEGMENT_HEADER_LEN, |f| f.offset + f.len)
    }
}

/// Reads the records of `bytes` from `start` on. A stretch that is not a
/// record ends at the next offset holding a good record (magic, sane
/// header, checksum, seq above the last good one), or at the last non-zero
/// byte; zeros to the end of the segment are its unused room, not damage.
pub(super) fn scan(bytes: &[u8], start: usize, mut min_seq: u64) -> Scan {
    let mut scan = Scan::default();
    let mut offset = start;
    while offset < bytes.len() {
        match frame_at(bytes, offset, min_seq) {
            Ok(frame) => {
                offset += frame.len;
                min_seq = frame.seq.saturating_add(1);
                scan.frames.push(frame);
            }
            Err(_) => {
                let rest = bytes.get(offset..).unwrap_or_default();
                if rest.iter().all(|&b| b == 0) {
                    // The zero-filled room the writer prepared: the end.
                    break;
                }
                let resume = next_good(bytes, offset + 1, min_seq).unwrap_or_else(|| {
                    // Up to the last non-zero byte; the zeros after it are room.
                    offset + rest.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1)
                });
                scan.bad.push(offset..resume);
                offset = resume;
            }
        }
    }
    scan
}

/// The first offset at or after `from` where a good record starts.
fn next_good(bytes: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    let mut probe = from;
    loop {
        let found = bytes
            .get(probe..)?
            .windows(RECORD_MAGIC.len())
            .position(|w| w == RECORD_MAGIC)?;
        let at = probe + found;
        if frame_at(bytes, at, min_seq).is_ok() {
            return Some(at);
        }
        probe = at + 1;
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().unwrap_or_default())
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32C of `bytes`.
pub(super) fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_append(0, bytes)
}

/// CRC-32C of the bytes `crc` covered followed by `bytes`.
pub(super) fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    let mut crc = !crc;
    for &byte in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a test fails by panicking"
    )]

    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_values() {
        // RFC 3720 B.4 and the usual "123456789" check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c_append(crc32c(b"1234"), b"56789"), 0xE306_9283);
    }

    #[test]
    fn a_header_of_another_version_is_told_apart_from_a_torn_one() {
        let header = segment_header();
        assert_eq!(read_header(&header), Header::Current);
        assert_eq!(read_header(&header[..10]), Header::Bad);
        let mut newer = header;
        newer[8..12].copy_from_slice(&7u32.to_le_bytes());
        let crc = crc32c(&newer[..12]);
        newer[12..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(read_header(&newer), Header::Version(7));
        newer[9] ^= 1;
        assert_eq!(read_header(&newer), Header::Bad);
    }

    #[test]
    fn a_scan_resynchronises_after_a_damaged_record() {
        let mut bytes = Vec::new();
        for seq in 1..=3 {
            encode_record(&mut bytes, seq, Class::Audit, b"{\"event\":1}");
        }
        let one = bytes.len() / 3;
        bytes[one + 30] ^= 0x40;
        let scan = scan(&bytes, 0, 1);
        let seqs: Vec<u64> = scan.frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(
            scan.bad,
            vec![std::ops::Range {
                start: one,
                end: 2 * one
            }]
        );
    }
}
