//! sled engine, raw-message log: packed raw messages ([`PackedRaw`]) → an
//! append-only file under the data directory → a [`RawRef`] that the message record
//! in sled keeps instead of the bytes.
//!
//! Why: sled rewrites its pages and keeps about 2.7× its live bytes on disk, so raw
//! messages kept inside sled's values cost that much again. Here they are written
//! once, and sled holds only records and indexes.
//!
//! Layout: `raw/NNNNNN.log` segment files, a new one started once the current one
//! passes [`SEGMENT_BYTES`]. Each entry:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `IRL1` |
//! | 4 | `u32` BE payload length |
//! | 8 | the first 8 bytes of blake3(length ‖ payload) |
//! | n | payload: the [`PackedRaw`] bytes (tag, then plain or zstd) |
//!
//! Ordering, the durability promise: the committer's applier appends the raw
//! messages of a batch and fdatasyncs the segment *before* it applies the batch's
//! transactions, so no record can reach sled — not even through sled's own
//! background flush — pointing at bytes that are not on disk.
//!
//! Recovery: after a crash the log may end in entries no record points to (appended
//! for filings that were never applied, or torn by the crash). They are harmless
//! garbage: appends always go at the current end of the file (its length is read
//! back before every batch, so a writer of an older generation of the store can
//! never overwrite entries of a newer one), and records address entries by
//! (segment, offset). A read checks magic, length and checksum; a mismatch is
//! [`StoreError::Corrupt`], never garbage bytes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::store::codec::PackedRaw;
use crate::store::StoreError;

const MAGIC: &[u8; 4] = b"IRL1";
const HEADER: usize = 16;
/// A new segment starts once the current one is at least this long.
pub(super) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const TREE: &str = "raw log";

/// Where one raw message lies in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawRef {
    pub segment: u32,
    pub offset: u64,
    /// Payload length (without the header).
    pub len: u32,
}

impl RawRef {
    pub(super) const ENCODED: usize = 16;

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.segment.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
    }

    pub(super) fn decode(b: &[u8]) -> Option<RawRef> {
        let (segment, rest) = b.split_first_chunk::<4>()?;
        let (offset, rest) = rest.split_first_chunk::<8>()?;
        let (len, _) = rest.split_first_chunk::<4>()?;
        Some(RawRef {
            segment: u32::from_be_bytes(*segment),
            offset: u64::from_be_bytes(*offset),
            len: u32::from_be_bytes(*len),
        })
    }
}

/// The raw-message log of one open store (reopened with it by `Store::heal`).
pub(super) struct RawLog {
    dir: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<HashMap<u32, Arc<File>>>,
}

struct Writer {
    segment: u32,
    file: File,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::RawLog {
        op,
        path: path.to_owned(),
        source,
    }
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(&(payload.len() as u32).to_be_bytes());
    h.update(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

fn segment_name(segment: u32) -> String {
    format!("{segment:06}.log")
}

impl RawLog {
    /// Opens (creating) the log under `data_dir/raw`; appends continue at the end
    /// of the last segment.
    ///
    /// # Errors
    /// The directory or segment cannot be created or opened.
    pub(super) fn open(data_dir: &Path) -> Result<RawLog, StoreError> {
        let dir = data_dir.join("raw");
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            sync_dir(data_dir)?;
        }
        let mut last = None;
        for entry in std::fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name();
            let n = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(n) = n {
                last = last.max(Some(n));
            }
        }
        let segment = last.unwrap_or(1);
        let file = open_segment(&dir, segment)?;
        Ok(RawLog {
            dir,
            writer: Mutex::new(Writer { segment, file }),
            readers: Mutex::default(),
        })
    }

    /// Appends the packed messages and makes them durable (fdatasync) before
    /// returning where each one lies: one write per segment touched.
    ///
    /// # Errors
    /// The write or the sync failed (full or read-only disk): none of the returned
    /// places may then be used.
    pub(super) fn append(&self, raws: &[&PackedRaw]) -> Result<Vec<RawRef>, StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut refs = Vec::with_capacity(raws.len());
        let mut buf = Vec::new();
        let path = self.dir.join(segment_name(w.segment));
        let mut start = w.file.metadata().map_err(io_err("stat", &path))?.len();
        for raw in raws {
            let payload = raw.bytes();
            let end = start + buf.len() as u64;
            if end >= SEGMENT_BYTES {
                self.write_out(&mut w, start, &buf)?;
                buf.clear();
                self.roll(&mut w)?;
                let path = self.dir.join(segment_name(w.segment));
                start = w.file.metadata().map_err(io_err("stat", &path))?.len();
            }
            let offset = start + buf.len() as u64;
            let len = u32::try_from(payload.len()).map_err(|_| StoreError::Corrupt {
                tree: TREE,
                message: format!("message of {} bytes is too large", payload.len()),
            })?;
            buf.extend_from_slice(MAGIC);
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&checksum(payload));
            buf.extend_from_slice(payload);
            refs.push(RawRef {
                segment: w.segment,
                offset,
                len,
            });
        }
        self.write_out(&mut w, start, &buf)?;
        Ok(refs)
    }

    /// Writes `buf` at `at` in the current segment and fdatasyncs it.
    fn write_out(&self, w: &mut Writer, at: u64, buf: &[u8]) -> Result<(), StoreError> {
        if buf.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(segment_name(w.segment));
        w.file
            .write_all_at(buf, at)
            .map_err(io_err("append", &path))?;
        w.file.sync_data().map_err(io_err("fdatasync", &path))
    }

    /// Starts the next segment (or continues it, if a writer of another generation
    /// already started it) and makes its directory entry durable.
    fn roll(&self, w: &mut Writer) -> Result<(), StoreError> {
        let next = w.segment + 1;
        w.file = open_segment(&self.dir, next)?;
        w.segment = next;
        sync_dir(&self.dir)
    }

    /// The raw bytes at `at`, checked.
    ///
    /// # Errors
    /// The segment cannot be read; the entry's magic, length or checksum do not
    /// match ([`StoreError::Corrupt`]).
    pub(super) fn read(&self, at: RawRef) -> Result<Vec<u8>, StoreError> {
        let file = self.reader(at.segment)?;
        let path = self.dir.join(segment_name(at.segment));
        let mut buf = vec![0u8; HEADER + at.len as usize];
        file.read_exact_at(&mut buf, at.offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt(&path, at, "entry past the end of the segment")
            } else {
                StoreError::RawLog {
                    op: "read",
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        let (header, payload) = buf.split_at(HEADER);
        if &header[..4] != MAGIC {
            return Err(corrupt(&path, at, "no entry starts here"));
        }
        if header[4..8] != at.len.to_be_bytes() {
            return Err(corrupt(&path, at, "length differs from the record's"));
        }
        if header[8..16] != checksum(payload) {
            return Err(corrupt(&path, at, "checksum mismatch"));
        }
        PackedRaw::unpack(TREE, payload)
    }

    /// The segments and their bytes on disk (entries are not counted: `entries` is
    /// the number of segments).
    pub(super) fn usage(&self) -> Result<crate::store::Usage, StoreError> {
        let (mut entries, mut bytes) = (0, 0);
        for entry in std::fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            if entry.file_name().to_string_lossy().ends_with(".log") {
                entries += 1;
                bytes += entry.metadata().map_err(io_err("stat", &self.dir))?.len();
            }
        }
        Ok(crate::store::Usage {
            name: "raw log segments".into(),
            entries,
            bytes,
        })
    }

    fn reader(&self, segment: u32) -> Result<Arc<File>, StoreError> {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = readers.get(&segment) {
            return Ok(f.clone());
        }
        let path = self.dir.join(segment_name(segment));
        let f = Arc::new(File::open(&path).map_err(io_err("open", &path))?);
        readers.insert(segment, f.clone());
        Ok(f)
    }
}

fn corrupt(path: &Path, at: RawRef, what: &str) -> StoreError {
    StoreError::Corrupt {
        tree: TREE,
        message: format!(
            "{}: {what} at offset {} ({} bytes)",
            path.display(),
            at.offset,
            at.len
        ),
    }
}

fn open_segment(dir: &Path, segment: u32) -> Result<File, StoreError> {
    let path = dir.join(segment_name(segment));
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("open", &path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(i: usize) -> PackedRaw {
        PackedRaw::pack(format!("Subject: message {i}\r\n\r\n{}", "body ".repeat(i)).as_bytes())
    }

    fn raw(i: usize) -> Vec<u8> {
        format!("Subject: message {i}\r\n\r\n{}", "body ".repeat(i)).into_bytes()
    }

    #[test]
    fn entries_round_trip_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = RawLog::open(dir.path()).unwrap();
        let p: Vec<_> = (0..50).map(packed).collect();
        let refs = log.append(&p.iter().collect::<Vec<_>>()).unwrap();
        let more = log.append(&[&packed(99)]).unwrap();
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(log.read(*r).unwrap(), raw(i));
        }
        drop(log);
        let log = RawLog::open(dir.path()).unwrap();
        assert_eq!(log.read(refs[7]).unwrap(), raw(7));
        assert_eq!(log.read(more[0]).unwrap(), raw(99));
        let after = log.append(&[&packed(3)]).unwrap()[0];
        assert!(after.offset > more[0].offset);
        assert_eq!(log.read(after).unwrap(), raw(3));
        let mut encoded = Vec::new();
        after.encode(&mut encoded);
        assert_eq!(encoded.len(), RawRef::ENCODED);
        assert_eq!(RawRef::decode(&encoded), Some(after));
    }

    #[test]
    fn torn_tail_entry_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let log = RawLog::open(dir.path()).unwrap();
        let refs = log.append(&[&packed(1), &packed(200)]).unwrap();
        drop(log);
        // A crash tore the last entry: only part of it reached the disk.
        let seg = dir.path().join("raw").join(segment_name(refs[1].segment));
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(refs[1].offset + HEADER as u64 + 10).unwrap();
        drop(f);
        let log = RawLog::open(dir.path()).unwrap();
        assert_eq!(log.read(refs[0]).unwrap(), raw(1));
        assert!(matches!(log.read(refs[1]), Err(StoreError::Corrupt { .. })));
        let new = log.append(&[&packed(5)]).unwrap()[0];
        assert!(new.offset >= refs[1].offset + HEADER as u64 + 10);
        assert_eq!(log.read(new).unwrap(), raw(5));
        assert_eq!(log.read(refs[0]).unwrap(), raw(1));
    }

    #[test]
    fn checksum_mismatch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = RawLog::open(dir.path()).unwrap();
        let r = log.append(&[&packed(30)]).unwrap()[0];
        let seg = dir.path().join("raw").join(segment_name(r.segment));
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        // Flip a byte in the payload.
        let at = r.offset + HEADER as u64 + u64::from(r.len) / 2;
        let mut b = [0u8; 1];
        File::open(&seg).unwrap().read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
        let err = log.read(r).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(format!("{err:?}").contains("checksum mismatch"), "{err:?}");
        // A pointer that does not land on an entry.
        let off = RawRef { offset: 3, ..r };
        assert!(matches!(log.read(off), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn segments_roll_over() {
        let dir = tempfile::tempdir().unwrap();
        let log = RawLog::open(dir.path()).unwrap();
        let first = log.append(&[&packed(1)]).unwrap()[0];
        // Pretend the segment is full.
        let seg = dir.path().join("raw").join(segment_name(1));
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(SEGMENT_BYTES)
            .unwrap();
        let refs = log.append(&[&packed(2), &packed(3)]).unwrap();
        assert_eq!(refs[0].segment, 2);
        assert_eq!(refs[0].offset, 0);
        assert_eq!(log.read(refs[1]).unwrap(), raw(3));
        assert_eq!(log.read(first).unwrap(), raw(1));
        drop(log);
        let log = RawLog::open(dir.path()).unwrap();
        assert_eq!(log.append(&[&packed(4)]).unwrap()[0].segment, 2);
    }
}
