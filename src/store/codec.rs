//! Store internals, value encoding shared by the engines: typed records ↔ tagged,
//! compressed bytes, and raw messages ↔ their packed form ([`PackedRaw`]).
//!
//! sled's own compression is off for new stores (it built a fresh zstd context for
//! every page it wrote, on the single committer thread); values are compressed here
//! instead, with one reused zstd context per thread. Every value starts with a tag
//! byte, so stores written by earlier versions (plain JSON, which always starts with
//! `{` or `[`) stay readable next to the new encodings:
//!
//! | first byte | value |
//! |---|---|
//! | `{` or `[` | JSON (earlier versions) |
//! | `0x00` | JSON follows |
//! | `0x01` | `u32` BE length of the JSON, then a zstd frame of it |
//! | `0x02` | a message: `u32` BE length of the record value (itself tagged), the record, then the raw section |
//!
//! The raw section of a message is `0x00` + the raw bytes, or `0x01` + `u32` BE raw
//! length + a zstd frame (both written by earlier versions), or `0x02` + a
//! `RawRef`: `u32` BE segment, `u64` BE offset, `u32` BE length of the entry in
//! the sled engine's raw-message log (`sled/rawlog.rs`; the message value itself is
//! built in `sled/value.rs`), where the same `0x00`/`0x01` forms are kept. The
//! raw message is compressed by the request's own thread before it reaches the
//! committer ([`PackedRaw`]).

use std::cell::RefCell;

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

const TAG_JSON: u8 = 0x00;
const TAG_ZSTD_JSON: u8 = 0x01;
pub(in crate::store) const TAG_MESSAGE: u8 = 0x02;
const RAW_PLAIN: u8 = 0x00;
const RAW_ZSTD: u8 = 0x01;
/// Raw-section tag of a message whose bytes are in the sled engine's raw-message log.
pub(in crate::store) const RAW_LOGGED: u8 = 0x02;

/// Fast level: the values are small and written on the committer's serial path.
const LEVEL: i32 = 1;
/// JSON shorter than this is stored as it is (a frame header is not worth it).
const COMPRESS_FROM: usize = 96;

thread_local! {
    static COMPRESSOR: RefCell<zstd::block::Compressor> = RefCell::new(zstd::block::Compressor::new());
    static DECOMPRESSOR: RefCell<zstd::block::Decompressor> = RefCell::new(zstd::block::Decompressor::new());
}

/// zstd with this thread's context; `None` when compression does not shrink `data`
/// (or fails, which only an allocation failure inside zstd could cause).
fn compress(data: &[u8]) -> Option<Vec<u8>> {
    let out = COMPRESSOR
        .with(|c| c.borrow_mut().compress(data, LEVEL))
        .ok()?;
    (out.len() + 5 < data.len()).then_some(out)
}

fn decompress(tree: &'static str, frame: &[u8], len: usize) -> Result<Vec<u8>, StoreError> {
    let out = DECOMPRESSOR
        .with(|d| d.borrow_mut().decompress(frame, len))
        .map_err(|e| corrupt(tree, format!("zstd: {e}")))?;
    if out.len() != len {
        return Err(corrupt(
            tree,
            format!("zstd: {} bytes, expected {len}", out.len()),
        ));
    }
    Ok(out)
}

pub(in crate::store) fn corrupt(tree: &'static str, message: String) -> StoreError {
    StoreError::Corrupt { tree, message }
}

pub(in crate::store) fn split_len<'a>(
    tree: &'static str,
    b: &'a [u8],
) -> Result<(usize, &'a [u8]), StoreError> {
    let (len, rest) = b
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(tree, "truncated length".into()))?;
    Ok((u32::from_be_bytes(*len) as usize, rest))
}

pub(in crate::store) fn push_len(out: &mut Vec<u8>, len: usize) {
    // Values are bounded by the hook's body limit (megabytes), far below 4 GiB.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

/// Encodes a record: JSON, compressed when that pays.
pub(in crate::store) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs to JSON cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(v).unwrap_or_default();
    if json.len() >= COMPRESS_FROM {
        if let Some(z) = compress(&json) {
            let mut out = Vec::with_capacity(5 + z.len());
            out.push(TAG_ZSTD_JSON);
            push_len(&mut out, json.len());
            out.extend_from_slice(&z);
            return out;
        }
    }
    let mut out = Vec::with_capacity(1 + json.len());
    out.push(TAG_JSON);
    out.extend_from_slice(&json);
    out
}

/// Decodes a record written by [`enc`] or by an earlier version (plain JSON).
pub(in crate::store) fn dec<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let json_err = |e: serde_json::Error| corrupt(tree, e.to_string());
    match bytes.first() {
        Some(b'{' | b'[') => serde_json::from_slice(bytes).map_err(json_err),
        Some(&TAG_JSON) => serde_json::from_slice(&bytes[1..]).map_err(json_err),
        Some(&TAG_ZSTD_JSON) => {
            let (len, frame) = split_len(tree, &bytes[1..])?;
            serde_json::from_slice(&decompress(tree, frame, len)?).map_err(json_err)
        }
        Some(&TAG_MESSAGE) => {
            let (len, rest) = split_len(tree, &bytes[1..])?;
            let record = rest
                .get(..len)
                .ok_or_else(|| corrupt(tree, "truncated record".into()))?;
            dec(tree, record)
        }
        Some(t) => Err(corrupt(tree, format!("unknown value tag {t:#04x}"))),
        None => Err(corrupt(tree, "empty value".into())),
    }
}

/// A raw message's stored form, made on the request's thread before the commit.
#[derive(Debug, Clone)]
pub struct PackedRaw(Vec<u8>);

impl PackedRaw {
    /// Compresses `raw` (kept as it is when that does not shrink it).
    pub fn pack(raw: &[u8]) -> PackedRaw {
        match compress(raw) {
            Some(z) => {
                let mut out = Vec::with_capacity(5 + z.len());
                out.push(RAW_ZSTD);
                push_len(&mut out, raw.len());
                out.extend_from_slice(&z);
                PackedRaw(out)
            }
            None => {
                let mut out = Vec::with_capacity(1 + raw.len());
                out.push(RAW_PLAIN);
                out.extend_from_slice(raw);
                PackedRaw(out)
            }
        }
    }
}

impl PackedRaw {
    /// The stored form (tag, then plain bytes or a zstd frame).
    pub(in crate::store) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw bytes of a stored form made by [`PackedRaw::pack`].
    ///
    /// # Errors
    /// Unknown tag, truncated or undecodable frame.
    pub(in crate::store) fn unpack(
        tree: &'static str,
        section: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        match section.split_first() {
            Some((&RAW_PLAIN, raw)) => Ok(raw.to_vec()),
            Some((&RAW_ZSTD, rest)) => {
                let (len, frame) = split_len(tree, rest)?;
                decompress(tree, frame, len)
            }
            Some((t, _)) => Err(corrupt(tree, format!("unknown raw tag {t:#04x}"))),
            None => Err(corrupt(tree, "missing raw section".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_every_encoding() {
        let small = vec![1u64, 2];
        let big: Vec<String> = (0..50).map(|i| format!("value number {i}")).collect();
        assert_eq!(enc(&small)[0], TAG_JSON);
        assert_eq!(enc(&big)[0], TAG_ZSTD_JSON);
        assert!(enc(&big).len() < serde_json::to_vec(&big).unwrap().len() / 2);
        assert_eq!(dec::<Vec<u64>>("t", &enc(&small)).unwrap(), small);
        assert_eq!(dec::<Vec<String>>("t", &enc(&big)).unwrap(), big);
        // Earlier versions wrote bare JSON.
        let legacy = serde_json::to_vec(&big).unwrap();
        assert_eq!(dec::<Vec<String>>("t", &legacy).unwrap(), big);
    }
}
