//! Stage 1, parse: raw RFC 5322 bytes → [`ParsedMail`] (owned, decoded).
//!
//! mail-parser does the MIME and charset work (UTF-8, KOI8-R, windows-125x,
//! ISO-8859-x, RFC 2047, quoted-printable, base64, HTML-only bodies); its types stay
//! private to this module. Malformed mail parses best-effort and is never an error:
//! when nothing can be made of the bytes, [`ParsedMail::parsed`] is false and the
//! text is the bytes decoded lossily, so the message is still stored and judged.

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

/// Text beyond this many bytes is cut before it reaches the policy.
pub const MAX_TEXT: usize = 512 * 1024;

/// An attachment as scripts see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub mime: String,
    pub size: u64,
}

/// A mailbox: lower-cased address and decoded display name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    pub address: String,
    pub name: String,
}

/// Everything later stages need from a message, decoded and owned.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParsedMail {
    /// False when mail-parser could not make a message of the bytes at all.
    pub parsed: bool,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    /// Without angle brackets, as mail-parser gives it.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// (lower-case name, decoded value), in message order.
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// Unix seconds of the Date header, when present and valid.
    pub date: Option<i64>,
}

impl ParsedMail {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The first value of header `name` (any case) in a decoded header list.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Parses raw bytes; never fails and never panics.
pub fn parse(raw: &[u8]) -> ParsedMail {
    std::panic::catch_unwind(|| parse_inner(raw)).unwrap_or_else(|_| {
        tracing::error!(
            size = raw.len(),
            "mail parser panicked; filing the message as unparsed"
        );
        unparsed(raw)
    })
}

fn unparsed(raw: &[u8]) -> ParsedMail {
    let mut text = String::from_utf8_lossy(&raw[..raw.len().min(MAX_TEXT)]).into_owned();
    text.retain(|c| c != '\0');
    ParsedMail {
        parsed: false,
        text,
        ..ParsedMail::default()
    }
}

fn parse_inner(raw: &[u8]) -> ParsedMail {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return unparsed(raw);
    };
    if msg.headers().is_empty() {
        return unparsed(raw);
    }
    let headers = msg
        .headers()
        .iter()
        .map(|h| {
            let value = match h.value() {
                HeaderValue::Empty | HeaderValue::Received(_) => {
                    raw_value(raw, h.offset_start(), h.offset_end())
                }
                v => header_text(v),
            };
            (h.name().to_ascii_lowercase(), value)
        })
        .collect();
    let mut text = String::new();
    for (i, part) in msg.text_bodies().enumerate() {
        let converted = match &part.body {
            PartType::Html(html) => Some(std::borrow::Cow::Owned(html_to_text(html))),
            _ => None,
        };
        if let Some(t) = converted.or_else(|| msg.body_text(i)) {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&t);
        }
        if text.len() > MAX_TEXT {
            break;
        }
    }
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text.retain(|c| c != '\0');
    let attachments = msg
        .attachments()
        .map(|part| {
            let mime = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| match part.body {
                    PartType::Message(_) => "message/rfc822".to_owned(),
                    _ => "application/octet-stream".to_owned(),
                })
                .to_ascii_lowercase();
            Attachment {
                name: part.attachment_name().unwrap_or("").to_owned(),
                mime,
                size: part.len() as u64,
            }
        })
        .collect();
    ParsedMail {
        parsed: true,
        from: msg.from().and_then(first_mailbox),
        reply_to: msg.reply_to().and_then(first_mailbox),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        subject: msg.subject().unwrap_or("").trim().to_owned(),
        message_id: msg
            .message_id()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        in_reply_to: id_list(msg.in_reply_to()),
        references: id_list(msg.references()),
        headers,
        text,
        attachments,
        date: msg
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp()),
    }
}

/// HTML → plain text that keeps the structure rules look at: line breaks of
/// block elements and `<pre>`, numbered `<ol>` items ("1. …"), bulleted `<ul>`
/// items ("- …") and `<blockquote>` quotes as `> ` lines. mail-parser's converter
/// does the entity decoding and drops head, style and script.
pub fn html_to_text(html: &str) -> String {
    mail_parser::decoders::html::html_to_text(&structure_html(html))
}

fn structure_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 8);
    let mut lists: Vec<Option<u32>> = Vec::new(); // Some(counter) for <ol>, None for <ul>
    let mut quote_depth = 0usize;
    let mut in_pre = false;
    let mut rest = html;
    let newline = |out: &mut String, depth: usize| {
        out.push_str("<br>");
        for _ in 0..depth {
            out.push_str("&gt; ");
        }
    };
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if in_pre || quote_depth > 0 {
            for (i, line) in text.split('\n').enumerate() {
                if i > 0 {
                    if in_pre {
                        newline(&mut out, quote_depth);
                    } else {
                        out.push('\n');
                    }
                }
                out.push_str(line);
            }
        } else {
            out.push_str(text);
        }
        rest = &rest[lt..];
        let Some(gt) = rest.find('>') else {
            out.push_str(rest);
            return out;
        };
        let tag = &rest[..=gt];
        rest = &rest[gt + 1..];
        let inner = tag[1..tag.len() - 1].trim();
        let closing = inner.starts_with('/');
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match (name.as_str(), closing) {
            ("pre", false) => {
                in_pre = true;
                newline(&mut out, quote_depth);
            }
            ("pre", true) => {
                in_pre = false;
                newline(&mut out, quote_depth);
            }
            ("blockquote", false) => {
                quote_depth += 1;
                newline(&mut out, quote_depth);
            }
            ("blockquote", true) => {
                quote_depth = quote_depth.saturating_sub(1);
                newline(&mut out, quote_depth);
            }
            ("ol", false) => lists.push(Some(0)),
            ("ul", false) => lists.push(None),
            ("ol" | "ul", true) => {
                lists.pop();
                newline(&mut out, quote_depth);
            }
            ("li", false) => {
                newline(&mut out, quote_depth);
                match lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        out.push_str(&format!("{n}. "));
                    }
                    _ => out.push_str("- "),
                }
            }
            ("div" | "tr" | "table" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "hr", _)
            | ("p", false) => {
                newline(&mut out, quote_depth);
            }
            ("br", _) | ("p", true) => {
                newline(&mut out, quote_depth);
                continue;
            }
            _ => {}
        }
        if !matches!(name.as_str(), "br") {
            // Keep the tag: mail-parser tracks head/style/script by it.
            out.push_str(tag);
        }
    }
    out.push_str(rest);
    out
}

fn raw_value(raw: &[u8], start: u32, end: u32) -> String {
    let (s, e) = (start as usize, (end as usize).min(raw.len()));
    raw.get(s..e)
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .unwrap_or_default()
}

fn header_text(v: &HeaderValue<'_>) -> String {
    match v {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(" "),
        HeaderValue::Address(a) => a
            .iter()
            .map(|addr| match (addr.name(), addr.address()) {
                (Some(n), Some(a)) => format!("{n} <{a}>"),
                (None, Some(a)) => a.to_owned(),
                (Some(n), None) => n.to_owned(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        HeaderValue::ContentType(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        },
        HeaderValue::Received(_) | HeaderValue::Empty => String::new(),
    }
}

fn first_mailbox(a: &Address<'_>) -> Option<Mailbox> {
    let addr = a.first()?;
    Some(Mailbox {
        address: addr.address().unwrap_or("").trim().to_lowercase(),
        name: addr.name().unwrap_or("").trim().to_owned(),
    })
}

fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .map(|x| x.trim().to_lowercase())
            .collect()
    })
    .unwrap_or_default()
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.trim().to_owned()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn koi8_subject_and_body_are_decoded() {
        // "Привет" in KOI8-R is F0 D2 C9 D7 C5 D4
        let mut raw = b"From: =?koi8-r?B?8NLJ18XU?= <Ivan@Example.RU>\r\nSubject: =?koi8-r?B?8NLJ18XU?=\r\nMessage-ID: <a@b>\r\nContent-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
        raw.extend_from_slice(&[0xF0, 0xD2, 0xC9, 0xD7, 0xC5, 0xD4, b'\r', b'\n']);
        let p = parse(&raw);
        assert!(p.parsed);
        assert_eq!(p.subject, "Привет");
        assert_eq!(p.from.as_ref().unwrap().address, "ivan@example.ru");
        assert_eq!(p.from.as_ref().unwrap().name, "Привет");
        assert_eq!(p.text.trim(), "Привет");
        assert_eq!(p.message_id.as_deref(), Some("a@b"));
    }

    #[test]
    fn html_only_body_becomes_text() {
        let raw = b"From: a@b.c\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hello <b>world</b></p></body></html>\r\n";
        let p = parse(raw);
        assert!(p.text.contains("Hello"));
        assert!(!p.text.contains("<b>"));
    }

    #[test]
    fn html_structure_survives_conversion() {
        let t = html_to_text("<html><head><style>p{margin:0}</style></head><body><p>Steps:</p><ol><li>Boot</li><li>Open EPG</li></ol><pre>10:00:01 ERROR a\n10:00:02 ERROR b</pre><blockquote>old text</blockquote><div>Bye</div></body></html>");
        let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert!(lines.contains(&"1. Boot"), "{lines:?}");
        assert!(lines.contains(&"2. Open EPG"), "{lines:?}");
        assert!(lines.contains(&"10:00:01 ERROR a"), "{lines:?}");
        assert!(lines.contains(&"10:00:02 ERROR b"), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with('>') && l.contains("old text")),
            "{lines:?}"
        );
        assert!(!t.contains("margin"), "{t}");
    }

    #[test]
    fn garbage_is_unparsed_not_an_error() {
        let p = parse(b"\x00\x01\x02 not a message at all");
        assert!(!p.parsed || p.from.is_none());
        let p = parse(b"");
        assert!(!p.parsed);
    }

    #[test]
    fn threading_headers_are_lists() {
        let raw = b"From: a@b.c\r\nIn-Reply-To: <x@y>\r\nReferences: <r1@y> <r2@y>\r\n\r\nbody\r\n";
        let p = parse(raw);
        assert_eq!(p.in_reply_to, vec!["x@y"]);
        assert_eq!(p.references, vec!["r1@y", "r2@y"]);
    }

    #[test]
    fn attachments_are_listed() {
        let raw = b"From: a@b.c\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsee log\r\n--XX\r\nContent-Type: text/plain; name=\"app.log\"\r\nContent-Disposition: attachment; filename=\"app.log\"\r\n\r\nERROR x\r\n--XX--\r\n";
        let p = parse(raw);
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(p.attachments[0].name, "app.log");
        assert_eq!(p.attachments[0].mime, "text/plain");
        assert!(p.text.contains("see log"));
    }
}
