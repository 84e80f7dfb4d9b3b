//! sled engine, message values: a message record and where its raw bytes are (the
//! raw-message log, or inline for stores of earlier versions) in one sled value.
//! The tags are those of the shared value encoding (`store/codec.rs`).

use serde::Serialize;

use super::rawlog::RawRef;
use crate::store::codec::{corrupt, enc, push_len, split_len, PackedRaw, RAW_LOGGED, TAG_MESSAGE};
use crate::store::StoreError;

/// Where a message value says its raw bytes are.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RawSection {
    /// Inside the value (versions before the raw-message log).
    Inline(Vec<u8>),
    /// In the raw-message log.
    Logged(RawRef),
}

/// One value holding a message's record and where its raw bytes are in the
/// raw-message log (one tree write).
pub(super) fn enc_message<T: Serialize>(record: &T, raw: RawRef) -> Vec<u8> {
    let rec = enc(record);
    let mut out = Vec::with_capacity(6 + rec.len() + RawRef::ENCODED);
    out.push(TAG_MESSAGE);
    push_len(&mut out, rec.len());
    out.extend_from_slice(&rec);
    out.push(RAW_LOGGED);
    raw.encode(&mut out);
    out
}

/// One value holding a message's record and its raw bytes, as versions before the
/// raw-message log wrote it (kept to test that such stores stay readable).
#[cfg(test)]
pub(super) fn enc_message_inline<T: Serialize>(record: &T, raw: &PackedRaw) -> Vec<u8> {
    let rec = enc(record);
    let mut out = Vec::with_capacity(5 + rec.len() + raw.bytes().len());
    out.push(TAG_MESSAGE);
    push_len(&mut out, rec.len());
    out.extend_from_slice(&rec);
    out.extend_from_slice(raw.bytes());
    out
}

/// The raw section of a message value; `None` for values of earlier versions,
/// which kept the raw bytes in the `raw` tree.
pub(super) fn message_raw(
    tree: &'static str,
    bytes: &[u8],
) -> Result<Option<RawSection>, StoreError> {
    if bytes.first() != Some(&TAG_MESSAGE) {
        return Ok(None);
    }
    let (len, rest) = split_len(tree, &bytes[1..])?;
    let section = rest
        .get(len..)
        .ok_or_else(|| corrupt(tree, "truncated record".into()))?;
    match section.split_first() {
        Some((&RAW_LOGGED, at)) => RawRef::decode(at)
            .map(|r| Some(RawSection::Logged(r)))
            .ok_or_else(|| corrupt(tree, "truncated raw-log reference".into())),
        _ => PackedRaw::unpack(tree, section).map(|r| Some(RawSection::Inline(r))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::dec;

    #[test]
    fn message_values_hold_record_and_raw() {
        let record: Vec<String> = (0..20).map(|i| format!("field {i}")).collect();
        for raw in [b"tiny".to_vec(), b"Subject: hello\r\n\r\n".repeat(100)] {
            let v = enc_message_inline(&record, &PackedRaw::pack(&raw));
            assert_eq!(dec::<Vec<String>>("m", &v).unwrap(), record);
            assert_eq!(message_raw("m", &v).unwrap(), Some(RawSection::Inline(raw)));
        }
        let at = RawRef {
            segment: 3,
            offset: 1 << 33,
            len: 1234,
        };
        let v = enc_message(&record, at);
        assert_eq!(dec::<Vec<String>>("m", &v).unwrap(), record);
        assert_eq!(message_raw("m", &v).unwrap(), Some(RawSection::Logged(at)));
        assert!(message_raw("m", &v[..v.len() - 1]).is_err());
        let legacy = serde_json::to_vec(&record).unwrap();
        assert_eq!(message_raw("m", &legacy).unwrap(), None);
        assert!(dec::<Vec<String>>("m", &[0x07, 1]).is_err());
        assert!(message_raw("m", &[TAG_MESSAGE, 0, 0, 9]).is_err());
    }
}
