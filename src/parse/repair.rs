//! Part of stage 1, parse: raw bytes → raw bytes mail-parser 0.11 reads faithfully, and
//! the charset detection for 8-bit text that declares none.
//!
//! - A `Date:`/`Received:` line ending in a one- or two-letter zone (`UT`, `Z`) or in
//!   `AM`/`PM`: mail-parser reads three letters for an obsolete zone and so eats the line
//!   break, and the next header (often `From`) is lost. A space before the line end
//!   keeps the zone inside its line; the value means the same.
//! - 8-bit bytes in the header block that are not UTF-8: transcoded to UTF-8 with the
//!   encoding [`guess`] detects (Mozilla's `chardetng`), before mail-parser would turn
//!   them into U+FFFD.
//! - Body parts with 8-bit bytes and no usable charset: [`redecode_part`].

use std::borrow::Cow;

use encoding_rs::Encoding;
use mail_parser::{Encoding as Transfer, MessagePart, MimeHeaders, PartType};

/// Headers whose value mail-parser reads as a date.
const DATE_HEADERS: &[&str] = &["date", "resent-date", "received", "delivery-date"];

/// The bytes to parse and the encoding guessed for the header block, if one was.
pub(super) fn prepare(raw: &[u8]) -> (Cow<'_, [u8]>, Option<&'static Encoding>) {
    let end = header_end(raw);
    let mut out: Option<Vec<u8>> = None;
    let mut in_date = false;
    let mut pos = 0usize;
    while pos < end {
        let line_end = raw[pos..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |i| pos + i);
        let line = &raw[pos..line_end];
        if !line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            in_date = line
                .iter()
                .position(|&b| b == b':')
                .and_then(|colon| std::str::from_utf8(&line[..colon]).ok())
                .is_some_and(|name| {
                    DATE_HEADERS
                        .iter()
                        .any(|d| name.trim().eq_ignore_ascii_case(d))
                });
        }
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        if in_date && content.last().is_some_and(u8::is_ascii_alphabetic) && line_end < end {
            let buf = out.get_or_insert_with(|| raw[..pos].to_vec());
            // Two spaces: mail-parser reads up to two bytes after a zone's first letter.
            buf.extend_from_slice(content);
            buf.extend_from_slice(b"  ");
            buf.extend_from_slice(&raw[pos + content.len()..=line_end]);
        } else if let Some(buf) = out.as_mut() {
            buf.extend_from_slice(&raw[pos..(line_end + 1).min(end)]);
        }
        pos = line_end + 1;
    }
    let bytes: Cow<'_, [u8]> = match out {
        Some(mut buf) => {
            buf.extend_from_slice(&raw[end.min(raw.len())..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(raw),
    };
    let end = header_end(&bytes);
    let head = &bytes[..end];
    if head.is_ascii() || std::str::from_utf8(head).is_ok() {
        return (bytes, None);
    }
    let encoding = guess(&bytes);
    let (text, _) = encoding.decode_without_bom_handling(head);
    let mut buf = text.into_owned().into_bytes();
    buf.extend_from_slice(&bytes[end..]);
    (Cow::Owned(buf), Some(encoding))
}

/// Offset just past the header block (after its last line break), or the length.
fn header_end(raw: &[u8]) -> usize {
    let mut pos = 0;
    while pos < raw.len() {
        let line_end = raw[pos..].iter().position(|&b| b == b'\n').map(|i| pos + i);
        let Some(line_end) = line_end else {
            return raw.len();
        };
        let line = &raw[pos..line_end];
        if line.is_empty() || line == b"\r" {
            return pos;
        }
        pos = line_end + 1;
    }
    raw.len()
}

/// The encoding of 8-bit text that is not UTF-8, by Mozilla's detector.
pub(super) fn guess(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    detector.guess(None, false)
}

/// Whether a declared charset can be trusted for 8-bit bytes: absent, ASCII, UTF-8
/// (the bytes are then not UTF-8, or there would be no U+FFFD) and unknown labels
/// cannot.
fn declared_charset(part: &MessagePart<'_>) -> Option<&'static Encoding> {
    let label = part.content_type()?.attribute("charset")?;
    let encoding = Encoding::for_label(label.trim().as_bytes())?;
    let ascii = ["us-ascii", "ascii", "ansi_x3.4-1968"]
        .iter()
        .any(|a| label.trim().eq_ignore_ascii_case(a));
    (encoding != encoding_rs::UTF_8 && !ascii).then_some(encoding)
}

/// The text of a text part decoded again by detection when it has 8-bit bytes and no
/// usable charset (none, an ASCII label, UTF-8 with bytes that are not, an unknown
/// label): mail-parser would give U+FFFD or Latin-1 letters.
/// `raw` is the buffer the part's offsets point into. Returns the text and the encoding.
pub(super) fn redecode_part(
    part: &MessagePart<'_>,
    raw: &[u8],
) -> Option<(String, &'static Encoding)> {
    let text = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t,
        _ => return None,
    };
    if text.is_ascii() || declared_charset(part).is_some() {
        return None;
    }
    let body = raw.get(part.offset_body as usize..part.offset_end as usize)?;
    let bytes: Cow<'_, [u8]> = match part.encoding {
        Transfer::None => Cow::Borrowed(body),
        Transfer::QuotedPrintable => {
            Cow::Owned(mail_parser::decoders::quoted_printable::quoted_printable_decode(body)?)
        }
        Transfer::Base64 => {
            let compact: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            Cow::Owned(mail_parser::decoders::base64::base64_decode(&compact)?)
        }
    };
    if let Ok(utf8) = std::str::from_utf8(&bytes) {
        // UTF-8 under an ASCII label (or none): mail-parser may have read it as Latin-1.
        return (utf8 != &**text && !utf8.is_ascii())
            .then(|| (utf8.to_owned(), encoding_rs::UTF_8));
    }
    let encoding = guess(&bytes);
    let (decoded, _) = encoding.decode_without_bom_handling(&bytes);
    Some((decoded.into_owned(), encoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_zone_gets_a_space_before_the_line_end() {
        let (out, enc) = prepare(b"Date: Sat, 14 Sep 2002 06:00:48 UT\nFrom: a@b.c\n\nhi\n");
        assert_eq!(
            &*out,
            b"Date: Sat, 14 Sep 2002 06:00:48 UT  \nFrom: a@b.c\n\nhi\n"
        );
        assert!(enc.is_none());
        let (out, _) = prepare(b"Subject: PM\r\nDate: 1 Jan 2002 6:00 PM\r\n\r\nx");
        assert_eq!(&*out, b"Subject: PM\r\nDate: 1 Jan 2002 6:00 PM  \r\n\r\nx");
        let same = b"Date: Sat, 14 Sep 2002 06:00:48 +0000\nFrom: a@b.c\n\nUT\n";
        assert!(matches!(prepare(same).0, Cow::Borrowed(_)));
    }

    #[test]
    fn undeclared_8bit_header_block_is_transcoded() {
        // "Проблема с приставкой" in windows-1251.
        let mut raw = b"From: a@b.c\nSubject: ".to_vec();
        raw.extend_from_slice(&encoding_rs::WINDOWS_1251.encode("Проблема с приставкой").0);
        raw.extend_from_slice(b"\n\nbody\n");
        let (out, enc) = prepare(&raw);
        assert_eq!(enc, Some(encoding_rs::WINDOWS_1251));
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains("Проблема с приставкой"));
    }
}
