//! Part of stage 1, parse: a parsed message → the body text the rules see.
//!
//! mail-parser's own choice of text parts is the start; on real mail it is not enough:
//! - an empty `text/plain` alternative: the HTML alternative is the text;
//! - a text part after which the final boundary is missing, and a part typed only
//!   `Content-Type: text`, are listed by mail-parser as nameless attachments: an
//!   unnamed text part that is not `Content-Disposition: attachment` is body text;
//! - a body that is only an embedded `message/rfc822` (a forward as attachment): that
//!   message's text, and [`Body::forwarded`];
//! - 8-bit text without a usable charset: decoded by detection ([`super::repair`]).

use mail_parser::{Message, MessagePart, MessagePartId, MimeHeaders, PartType};

use super::{html::html_to_text, repair, MAX_TEXT};

/// How deep forwarded messages are followed for text.
const MAX_DEPTH: usize = 3;

/// The text of a message and how it was found.
pub(super) struct Body {
    pub text: String,
    /// Parts listed as attachments by mail-parser that are body text here.
    pub text_parts: Vec<MessagePartId>,
    pub forwarded: bool,
    pub guessed: Option<&'static encoding_rs::Encoding>,
}

/// The body text of `msg`, whose part offsets point into `raw`.
pub(super) fn extract(msg: &Message<'_>, raw: &[u8]) -> Body {
    let mut body = Body {
        text: String::new(),
        text_parts: Vec::new(),
        forwarded: false,
        guessed: None,
    };
    collect(msg, raw, 0, &mut body);
    body
}

fn collect(msg: &Message<'_>, raw: &[u8], depth: usize, body: &mut Body) {
    let start = body.text.len();
    for &id in &msg.text_body {
        push_part(msg, raw, id, body);
    }
    if body.text[start..].trim().is_empty() {
        body.text.truncate(start);
        for &id in &msg.html_body {
            push_part(msg, raw, id, body);
        }
    }
    for &id in &msg.attachments {
        let listed = msg.text_body.contains(&id) || msg.html_body.contains(&id);
        if !listed && msg.part(id).is_some_and(is_unnamed_text) {
            if depth == 0 {
                body.text_parts.push(id);
            }
            push_part(msg, raw, id, body);
        }
    }
    if body.text[start..].trim().is_empty() && depth < MAX_DEPTH {
        body.text.truncate(start);
        for &id in &msg.attachments {
            if let Some(PartType::Message(inner)) = msg.part(id).map(|p| &p.body) {
                collect(inner, &inner.raw_message, depth + 1, body);
                if !body.text[start..].trim().is_empty() {
                    body.forwarded = true;
                    break;
                }
            }
        }
    }
}

/// A text part mail-parser put among the attachments although nothing names it one:
/// no file name, no `attachment` disposition, and either damaged (its boundary never
/// came), or typed `text` without a subtype, or untyped.
fn is_unnamed_text(part: &MessagePart<'_>) -> bool {
    if !matches!(part.body, PartType::Text(_) | PartType::Html(_))
        || part.attachment_name().is_some()
    {
        return false;
    }
    if part
        .content_disposition()
        .is_some_and(|d| d.is_attachment())
    {
        return false;
    }
    let ct = part.content_type();
    part.is_encoding_problem
        || ct.is_none()
        || ct.is_some_and(|c| c.ctype().eq_ignore_ascii_case("text") && c.subtype().is_none())
}

fn push_part(msg: &Message<'_>, raw: &[u8], id: MessagePartId, body: &mut Body) {
    if body.text.len() > MAX_TEXT {
        return;
    }
    let Some(part) = msg.part(id) else {
        return;
    };
    let redecoded = repair::redecode_part(part, raw);
    let source = match (&redecoded, &part.body) {
        (Some((text, encoding)), _) => {
            body.guessed.get_or_insert(*encoding);
            text.as_str()
        }
        (None, PartType::Text(t) | PartType::Html(t)) => t.as_ref(),
        _ => return,
    };
    let converted;
    let text = if matches!(part.body, PartType::Html(_)) {
        converted = html_to_text(source);
        converted.as_str()
    } else {
        source
    };
    if text.trim().is_empty() {
        return;
    }
    if !body.text.is_empty() {
        body.text.push('\n');
    }
    body.text.push_str(text);
}
