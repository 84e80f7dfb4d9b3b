//! Stage 1, parse: raw RFC 5322 bytes → [`ParsedMail`] (owned, decoded).
//!
//! mail-parser does the MIME and charset work (UTF-8, KOI8-R, windows-125x,
//! ISO-8859-x, RFC 2047, quoted-printable, base64, HTML-only bodies); its types stay
//! private to this module. Malformed mail parses best-effort and is never an error:
//! when nothing can be made of the bytes, [`ParsedMail::parsed`] is false and the
//! text is the bytes decoded lossily, so the message is still stored and judged.
//!
//! Where mail-parser 0.11 is not faithful to real mail, this stage repairs: the raw
//! bytes before parsing ([`repair`]: short date zones, undeclared 8-bit headers), the
//! choice of body text after it ([`body`]: empty alternatives, parts after a missing
//! final boundary, `Content-Type: text`, a body that is only a forwarded message,
//! undeclared 8-bit bodies), HTML conversion ([`html`]) and a broken `From`
//! (falls back to `Sender`, then `Reply-To`; [`ParsedMail::from_source`] says which).

mod body;
mod html;
mod repair;

pub use html::html_to_text;

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
    /// Which header `from` was taken from: `from`, `sender`, `reply_to` (the From
    /// header was broken: no address, only a name, several addresses, `<>`) or `none`.
    /// Anything but `from` means the sender is unverified.
    #[serde(default)]
    pub from_source: String,
    /// The encoding detected for 8-bit bytes that declared no usable charset
    /// (headers or body), when there were any.
    #[serde(default)]
    pub charset_guessed: Option<String>,
    /// The body was only an embedded `message/rfc822`: `text` is that message's text.
    #[serde(default)]
    pub forwarded: bool,
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
        from_source: "none".to_owned(),
        ..ParsedMail::default()
    }
}

fn parse_inner(original: &[u8]) -> ParsedMail {
    let (prepared, header_guess) = repair::prepare(original);
    let raw: &[u8] = &prepared;
    let Some(msg) = MessageParser::default().parse(raw) else {
        return unparsed(original);
    };
    if msg.headers().is_empty() {
        return unparsed(original);
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
    let body = body::extract(&msg, raw);
    let mut text = body.text;
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text.retain(|c| c != '\0');
    let attachments = msg
        .attachments
        .iter()
        .filter(|id| !body.text_parts.contains(id))
        .filter_map(|&id| msg.part(id))
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
    let (from, from_source) = sender_of(&msg);
    let charset_guessed = header_guess.or(body.guessed).map(|e| e.name().to_owned());
    ParsedMail {
        parsed: true,
        from,
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
        from_source: from_source.to_owned(),
        charset_guessed,
        forwarded: body.forwarded,
    }
}

/// The author: the single mailbox of `From` when it has a usable address, else that
/// of `Sender`, else `Reply-To` (the display name of a broken `From` is kept).
fn sender_of(msg: &mail_parser::Message<'_>) -> (Option<Mailbox>, &'static str) {
    let from = msg.from();
    if let Some(m) = from.and_then(single_mailbox) {
        return (Some(m), "from");
    }
    let broken_name = from
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let fallbacks = [(msg.sender(), "sender"), (msg.reply_to(), "reply_to")];
    for (header, source) in fallbacks {
        if let Some(mut m) = header.and_then(single_mailbox) {
            if m.name.is_empty() {
                m.name = broken_name;
            }
            return (Some(m), source);
        }
    }
    let from = (!broken_name.is_empty()).then(|| Mailbox {
        address: String::new(),
        name: broken_name,
    });
    (from, "none")
}

/// The mailbox of an address header holding exactly one, with a usable address.
fn single_mailbox(a: &Address<'_>) -> Option<Mailbox> {
    let mut all = a.iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let address = first.address().unwrap_or("").trim().to_lowercase();
    let usable = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    };
    usable.then(|| Mailbox {
        address,
        name: first.name().unwrap_or("").trim().to_owned(),
    })
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

    #[test]
    fn date_ending_in_ut_am_pm_keeps_the_next_header() {
        for date in [
            "Sat, 14 Sep 2002 06:00:48 UT",
            "14 Sep 2002 06:00:48 PM",
            "Sat, 14 Sep 2002 06:00:48 Z",
        ] {
            for eol in ["\n", "\r\n"] {
                let raw = format!(
                    "Date: {date}{eol}From: a@example.com{eol}Subject: t{eol}{eol}hello{eol}"
                );
                let p = parse(raw.as_bytes());
                assert_eq!(
                    p.from.as_ref().map(|m| m.address.as_str()),
                    Some("a@example.com"),
                    "{date:?}"
                );
                assert_eq!(p.subject, "t");
                assert!(p.date.is_some(), "{date:?}");
            }
        }
    }

    #[test]
    fn text_part_without_final_boundary_is_text() {
        let raw = b"From: a@b.c\nSubject: p\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XX\"\n\n--XX\nContent-Type: text/plain; charset=\"iso-8859-1\"\n\nHello, my box reboots.\n";
        let p = parse(raw);
        assert!(p.text.contains("Hello, my box reboots."), "{:?}", p.text);
        assert!(p.attachments.is_empty(), "{:?}", p.attachments);
    }

    #[test]
    fn broken_html_keeps_visible_text_and_drops_the_title() {
        let raw = b"From: a@b.c\nSubject: p\nContent-Type: text/html\n\n<html><body><head>My set-top box reboots when I open the EPG</body></html>\n";
        assert!(parse(raw)
            .text
            .contains("My set-top box reboots when I open the EPG"));
        let t = html_to_text("<html><head><title>Newsletter 12</title></head><body><p>The EPG is empty</p></body></html>");
        assert!(
            t.contains("The EPG is empty") && !t.contains("Newsletter"),
            "{t:?}"
        );
        let t = html_to_text("<p>Before</p><!-- never closed <p>After the comment</p>");
        assert!(t.contains("After the comment"), "{t:?}");
        let t = html_to_text("<style>p{margin:0}<p>Text after an unclosed style</p>");
        assert!(t.contains("Text after an unclosed style"), "{t:?}");
    }

    #[test]
    fn empty_plain_alternative_falls_back_to_html() {
        let raw = b"From: a@b.c\nSubject: p\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"B\"\n\n--B\nContent-Type: text/plain; charset=utf-8\n\n\n--B\nContent-Type: text/html; charset=utf-8\n\n<p>My set-top box reboots when I open the EPG</p>\n--B--\n";
        let p = parse(raw);
        assert!(p.text.contains("My set-top box reboots"), "{:?}", p.text);
        assert!(!p.forwarded);
    }

    #[test]
    fn body_that_is_only_an_embedded_message_gives_its_text() {
        let raw = b"From: a@b.c\nSubject: Fwd: EPG\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\nFrom: c@d.e\nSubject: EPG\n\nThe EPG stays empty since Monday.\n";
        let p = parse(raw);
        assert!(
            p.text.contains("The EPG stays empty since Monday."),
            "{:?}",
            p.text
        );
        assert!(p.forwarded);
        assert_eq!(p.from.unwrap().address, "a@b.c");
    }

    #[test]
    fn content_type_text_without_subtype_is_text() {
        let raw = b"From: a@b.c\nSubject: p\nMIME-Version: 1.0\nContent-Type: text\n\nThe stream stops after ten minutes.\n";
        let p = parse(raw);
        assert!(
            p.text.contains("The stream stops after ten minutes."),
            "{:?}",
            p.text
        );
        assert!(p.attachments.is_empty(), "{:?}", p.attachments);
    }

    #[test]
    fn undeclared_8bit_is_decoded_by_detection() {
        let cp1251 = |s: &str| encoding_rs::WINDOWS_1251.encode(s).0.into_owned();
        let mut raw = b"From: a@b.c\nSubject: ".to_vec();
        raw.extend(cp1251("Не обновляется телепрограмма"));
        raw.extend_from_slice(
            b"\nMIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\n",
        );
        raw.extend(cp1251(
            "Добрый день! После обновления приставка не показывает телепрограмму на неделю.",
        ));
        raw.push(b'\n');
        let p = parse(&raw);
        assert_eq!(p.subject, "Не обновляется телепрограмма");
        assert!(
            p.text.contains("приставка не показывает телепрограмму"),
            "{:?}",
            p.text
        );
        assert_eq!(p.charset_guessed.as_deref(), Some("windows-1251"));
        // Body only, declared us-ascii but 8-bit (common in real mail).
        let mut raw = b"From: a@b.c\nSubject: s\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\n".to_vec();
        raw.extend(cp1251(
            "Приставка перезагружается каждые пять минут, помогите разобраться.",
        ));
        let p = parse(&raw);
        assert!(p.text.contains("Приставка перезагружается"), "{:?}", p.text);
        assert!(p.charset_guessed.is_some());
        // Declared and right: nothing is guessed.
        let p = parse(
            b"From: a@b.c\nSubject: s\nContent-Type: text/plain; charset=utf-8\n\nplain ascii\n",
        );
        assert_eq!(p.charset_guessed, None);
        assert_eq!(p.from_source, "from");
    }

    #[test]
    fn broken_from_falls_back_to_sender_then_reply_to() {
        let with = |from: &str, rest: &str| {
            parse(format!("From: {from}\n{rest}Subject: s\n\nbody\n").as_bytes())
        };
        for broken in ["Ivan Petrov", "\"Ivan Petrov\"", "a@b.c, d@e.f", "<>"] {
            let p = with(broken, "Sender: s@x.ru\nReply-To: r@y.ru\n");
            assert_eq!(p.from_source, "sender", "{broken:?}");
            assert_eq!(p.from.as_ref().unwrap().address, "s@x.ru", "{broken:?}");
            let p = with(broken, "Reply-To: r@y.ru\n");
            assert_eq!(p.from_source, "reply_to", "{broken:?}");
            assert_eq!(p.from.as_ref().unwrap().address, "r@y.ru");
            let p = with(broken, "");
            assert_eq!(p.from_source, "none", "{broken:?}");
            assert!(p.from.as_ref().is_none_or(|m| m.address.is_empty()));
        }
        let p = with("Ivan <ivan@x.ru>", "Sender: s@x.ru\n");
        assert_eq!(p.from_source, "from");
        assert_eq!(p.from.unwrap().address, "ivan@x.ru");
    }
}
