//! What the sender wrote in sentences, for content rules that judge language rather than
//! data: `text` → [`prose`] (pasted log, header, JSON and `key=value` lines dropped, quoted
//! one-word mentions such as `"error"` blanked) → [`statements`] / [`questions`].
//!
//! A failure word in a pasted log line, in a field name a client asks about (`"error"`),
//! or inside a question about a feature ("is the failover timeout configurable?") does
//! not say that something failed; the scripts decide what to do with each part.

use std::sync::LazyLock;

use regex::Regex;

use super::detect::is_log_line;

/// A mail or HTTP header line (`Content-Type: …`, `WWW-Authenticate: …`, `Server: nginx`).
static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[ \t]*(?:[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+|Server|Host|Date|Location):[ \t]*\S",
    )
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A `key=value` pair (`dkim=fail`, `header.i=@x.ru`, `error_code=0`).
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z_][A-Za-z0-9_.-]*=\S").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A quoted single token: `"error"`, `«error_code»`, `'status'`, `` `fail` ``.
static QUOTED_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"["«'`“„]([^\s"«»'`“”„]{1,40})["»'`”“]"#)
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Whether a line is data rather than prose: a log record or stack frame, a JSON or
/// markup line, a header line (and its folded continuation), or mostly `key=value` pairs.
fn is_data_line(line: &str, after_header: bool) -> bool {
    let t = line.trim();
    if t.is_empty() {
        return false;
    }
    if is_log_line(line) || HEADER_LINE.is_match(line) {
        return true;
    }
    if after_header && line.starts_with([' ', '\t']) {
        return true;
    }
    let (first, last) = (t.as_bytes()[0], t.as_bytes()[t.len() - 1]);
    if matches!(
        (first, last),
        (b'{', b'}') | (b'[', b']') | (b'<', b'>') | (b'{', b',')
    ) {
        return true;
    }
    let pairs = KEY_VALUE.find_iter(t).count();
    pairs >= 2 && pairs * 2 >= t.split_whitespace().count()
}

/// The text without data lines (replaced by empty lines, so paragraphs stay apart) and
/// with quoted one-word mentions blanked.
pub fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_header = false;
    for line in text.lines() {
        let data = is_data_line(line, after_header);
        after_header =
            data && (HEADER_LINE.is_match(line) || (after_header && line.starts_with([' ', '\t'])));
        if !data {
            if line.contains(['"', '«', '\'', '`', '“', '„']) {
                out.push_str(&QUOTED_TOKEN.replace_all(line, " "));
            } else {
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

/// The sentences of a text: paragraphs (split at blank lines and list items) cut after
/// `.`, `!`, `?` or `…` followed by white space. Hard-wrapped lines stay one sentence.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if line_start {
            let trimmed = text[i..].trim_start_matches([' ', '\t']);
            let item = trimmed.starts_with(['-', '*', '•', '—', '–'])
                || trimmed.split_once(['.', ')']).is_some_and(|(n, _)| {
                    !n.is_empty() && n.len() <= 2 && n.bytes().all(|c| c.is_ascii_digit())
                });
            let blank = trimmed.is_empty() || trimmed.starts_with(['\n', '\r']);
            if (item || blank) && i > start {
                out.push(&text[start..i]);
                start = i;
            }
        }
        line_start = c == '\n';
        if matches!(c, '.' | '!' | '?' | '…') {
            let next = i + c.len_utf8();
            if chars.peek().is_none_or(|&(_, n)| n.is_whitespace()) {
                out.push(&text[start..next]);
                start = next;
            }
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether a sentence asks: it ends with `?` (closing quotes and brackets aside).
fn is_question(sentence: &str) -> bool {
    sentence
        .trim_end_matches(['"', '»', ')', '”', ' ', '\t', '\r', '\n'])
        .ends_with('?')
}

/// The prose without its questions: what the sender states.
pub fn statements(text: &str) -> String {
    let p = prose(text);
    let mut out = String::with_capacity(p.len());
    for s in sentences(&p) {
        if !is_question(s) {
            out.push_str(s);
            out.push('\n');
        }
    }
    out
}

/// The questions of the prose, one sentence each.
pub fn questions(text: &str) -> Vec<String> {
    let p = prose(text);
    sentences(&p)
        .into_iter()
        .filter(|s| is_question(s))
        .map(str::to_owned)
        .collect()
}

/// The sentence of `text` that holds byte offset `at` (a [`ListMatch`](super::ListMatch)'s
/// `start`), or `""` when `at` is past the end.
pub fn sentence_at(text: &str, at: usize) -> &str {
    for s in sentences(text) {
        // `sentences` returns trimmed slices of `text`: locate each by its address.
        let start = s.as_ptr() as usize - text.as_ptr() as usize;
        if at < start + s.len() {
            return if at >= start { s } else { "" };
        }
    }
    ""
}

/// The text before byte offset `at` (rounded down to a character boundary).
pub fn text_before(text: &str, at: usize) -> &str {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_are_not_prose() {
        let t = "Hi,\nthe edge drops out:\n\n{\"ts\":\"2026-11-21T22:14:03Z\",\"error\":\"origin timeout\"}\nAuthentication-Results: mx.google.com;\n       dkim=fail header.i=@x.ru\nThanks";
        let p = prose(t);
        assert!(p.contains("the edge drops out"));
        assert!(p.contains("Thanks"));
        assert!(!p.contains("timeout"), "{p}");
        assert!(!p.contains("fail"), "{p}");
    }

    #[test]
    fn quoted_single_words_are_mentions() {
        let p =
            prose("Are \"error\" and «error_code» always present? The box shows \"Ошибка 503\".");
        assert!(!p.contains("error"), "{p}");
        assert!(
            p.contains("Ошибка 503"),
            "a quoted message of several words stays: {p}"
        );
        assert!(prose("It doesn't work, isn't it").contains("doesn't"));
    }

    #[test]
    fn questions_and_statements_are_split() {
        let t = "Since Monday the box freezes every evening.\nCan you tell me where the failover\ntimeout is set? Thanks!\n\n- is it per channel?\n- or global?";
        let q = questions(t);
        assert_eq!(q.len(), 3, "{q:?}");
        assert!(q[0].starts_with("Can you tell me"));
        let s = statements(t);
        assert!(s.contains("freezes"));
        assert!(!s.contains("failover"), "{s}");
    }

    #[test]
    fn the_sentence_of_an_offset() {
        let t = "First one. And one more question about the same thing: is it so?";
        let at = t.find("one more").unwrap();
        assert_eq!(
            sentence_at(t, at),
            "And one more question about the same thing: is it so?"
        );
        assert_eq!(sentence_at(t, 0), "First one.");
        assert_eq!(text_before(t, at), "First one. And ");
        assert_eq!(text_before("ещё", 1), "");
    }

    #[test]
    fn numbered_items_are_sentences() {
        let q = questions("Вопросы:\n1. Где задаётся глубина\n2) Нужно ли перезапускать сервис?");
        assert_eq!(q, vec!["2) Нужно ли перезапускать сервис?"]);
    }
}
