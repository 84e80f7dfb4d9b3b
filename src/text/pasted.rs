//! What a person wrote to someone, for `abusive_language`: message text → the same text
//! with pasted material blanked ([`strip_pasted`]), and whether a word is aimed at the
//! writer themself ([`aimed_at_self`]).
//!
//! Pasted material says nothing about how the sender addresses support: source code and
//! regular expressions (`\s*dc`), base64 and uuencoded blocks (whose letters spell
//! anything), PGP armour, log lines, fenced or back-quoted code, URLs, e-mail addresses
//! and domain names. [`strip_pasted`] keeps the line structure (a blanked line stays as an empty
//! line) so that the text still reads line by line.

use std::sync::LazyLock;

use regex::Regex;

use super::detect::is_log_line;

/// A URL, an e-mail address or a bare domain name (`fuckedcompany.com`).
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)\S+",
        r"|[^\s<>()\[\]]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+",
        r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|info|biz|edu|gov|io|ru|uk|de|co|us|ca|au|fr|nl|it|es|jp|su|рф)\b(?:/\S*)?",
    ))
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// `inline code` between backquotes.
static BACKQUOTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"`[^`\n]+`").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Characters that are frequent in code and rare in prose.
const CODE_SYMBOLS: &str = "{}[]()<>=;\\$|&^~`";

/// `text` with every line that is not prose replaced by an empty line, and links and
/// back-quoted code inside prose lines replaced by spaces.
pub fn strip_pasted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    let mut uuencoded = false;
    let mut armour = false;
    for line in text.split('\n') {
        if !out.is_empty() {
            out.push('\n');
        }
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if t.starts_with("-----BEGIN ") {
            armour = true;
        }
        if armour {
            armour = !t.starts_with("-----END ");
            continue;
        }
        if is_uuencode_begin(t) {
            uuencoded = true;
            continue;
        }
        if uuencoded {
            uuencoded = t != "end";
            continue;
        }
        if fenced || is_encoded_line(line) || is_code_line(t) || is_log_line(line) {
            continue;
        }
        let cleaned = BACKQUOTED.replace_all(line, " ");
        out.push_str(&LINK.replace_all(&cleaned, " "));
    }
    out
}

/// `begin 644 name` opening a uuencoded file.
fn is_uuencode_begin(t: &str) -> bool {
    let mut words = t.split_whitespace();
    words.next() == Some("begin")
        && words
            .next()
            .is_some_and(|mode| mode.len() == 3 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)))
}

/// A line of base64 (long, no spaces, base64 alphabet) or of uuencode (`M` then 60
/// characters of the uuencode alphabet).
fn is_encoded_line(line: &str) -> bool {
    let line = line.trim_end_matches('\r');
    let uu = line.len() == 61
        && line.starts_with('M')
        && line.bytes().all(|b| (b' '..=b'`').contains(&b));
    let t = line.trim();
    let b64 = t.len() >= 40
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        && t.bytes()
            .any(|b| b.is_ascii_digit() || b == b'+' || b == b'/');
    uu || b64
}

/// A line of source code, a regular expression or a shell command: several code
/// symbols, and letters not the bulk of it; or a statement ending in `;`, `{` or `}`.
fn is_code_line(t: &str) -> bool {
    let mut symbols = 0usize;
    let mut letters = 0usize;
    let mut visible = 0usize;
    for c in t.chars() {
        if c.is_whitespace() {
            continue;
        }
        visible += 1;
        if c.is_alphabetic() {
            letters += 1;
        } else if CODE_SYMBOLS.contains(c) {
            symbols += 1;
        }
    }
    let regex_escape = ["\\s", "\\d", "\\w", "\\b", "\\S", "\\W"]
        .iter()
        .any(|e| t.contains(e));
    (symbols >= 4 && letters * 3 < visible * 2)
        || (symbols >= 2 && (regex_escape || t.ends_with(';') || t.ends_with('{') || t == "}"))
}

/// Words that put the writer in the sentence.
const FIRST_PERSON: &[&str] = &[
    "i",
    "im",
    "ive",
    "id",
    "ill",
    "me",
    "my",
    "myself",
    "we",
    "us",
    "our",
    "ourselves",
    "я",
    "меня",
    "мне",
    "мной",
    "себя",
    "себе",
    "собой",
    "сам",
    "сама",
    "сами",
    "мы",
    "нас",
    "нам",
];

/// Words that aim a sentence at the reader (support) or at others.
const SECOND_PERSON: &[&str] = &[
    "you",
    "your",
    "youre",
    "yours",
    "yourself",
    "yourselves",
    "u",
    "ya",
    "ye",
    "ты",
    "вы",
    "тебя",
    "вас",
    "тебе",
    "вам",
    "твой",
    "твоя",
    "твои",
    "ваш",
    "ваша",
    "ваши",
    "вашу",
    "вашего",
    "вашей",
    "вашим",
];

/// Determiners that make an insult generic ("some jerk is spamming").
const INDEFINITE: &[&str] = &[
    "some",
    "any",
    "whatever",
    "какой-то",
    "какой",
    "какие-то",
    "любой",
];

/// Whether the word starting at byte `offset` of `text` is aimed at the writer or at
/// nobody in particular: its sentence has a first-person word ("I feel like an idiot",
/// "what an idiot I am", "я идиот") or the word follows an indefinite determiner
/// ("some jerk"), and no second-person word. Offsets inside a character or past the
/// end are clamped.
pub fn aimed_at_self(text: &str, offset: usize) -> bool {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    // A sentence ends at `.`, `!`, `?` or a blank line; a single line break is only the
    // wrapping of plain-text mail.
    let is_end = |c: char| matches!(c, '.' | '!' | '?');
    let head = &text[..offset];
    let start = [
        head.rfind(is_end).map(|p| p + 1),
        head.rfind("\n\n").map(|p| p + 2),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    let tail = &text[offset..];
    let end = [tail.find(is_end), tail.find("\n\n")]
        .into_iter()
        .flatten()
        .min()
        .map_or(text.len(), |p| offset + p);
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '-'))
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase().replace(['\'', '’'], ""))
            .collect()
    };
    let before = words(&text[start..offset]);
    let after = words(&text[offset..end]);
    let all = before.iter().chain(after.iter().skip(1));
    let mut first = false;
    for w in all {
        if SECOND_PERSON.contains(&w.as_str()) {
            return false;
        }
        first |= FIRST_PERSON.contains(&w.as_str());
    }
    let generic = before
        .iter()
        .rev()
        .take(2)
        .any(|w| INDEFINITE.contains(&w.as_str()));
    first || generic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_material_is_blanked_and_prose_kept() {
        let text = "The import fails on this line:\n  m = re.compile(r\"\\s*dc:title=(.*?)\")\n\
                    10:00:01 ERROR import failed\n\
                    TWFuIGlzIGRpc3Rpbmd1aXNoZWQsIG5vdCBvbmx5IGJ5IGhpcyByZWFzb24sIGJ1dA==\n\
                    begin 644 a.bin\nM9G5C:R!F=6-K(&9U8VL@9G5C:R!F=6-K(&9U8VL@9G5C:R!F=6-K(&9U8VL@\nend\n\
                    see `fuck()` and http://www.fuckedcompany.com/ or sporadic@fuckedcompany.com\n\
                    Are you idiots even reading this?";
        let p = strip_pasted(text);
        let lines: Vec<&str> = p.split('\n').collect();
        assert_eq!(lines.len(), text.split('\n').count());
        assert_eq!(lines[0], "The import fails on this line:");
        assert!(lines[1..7].iter().all(|l| l.is_empty()), "{lines:?}");
        assert!(!lines[7].contains("fuck"), "{}", lines[7]);
        assert!(lines[7].starts_with("see "));
        assert_eq!(lines[8], "Are you idiots even reading this?");
    }

    #[test]
    fn prose_with_a_few_symbols_is_kept() {
        let line =
            "Are you idiots? Every call to GET /api/v2/subscribers/{id} returns 502 (again).";
        assert_eq!(strip_pasted(line), line);
        assert_eq!(strip_pasted("if ($a == $b) { print \"f*ck\"; }"), "");
        assert_eq!(strip_pasted("my $x = qr/\\s*dc/;"), "");
    }

    #[test]
    fn self_deprecating_and_generic_words_aim_at_no_one() {
        let at = |t: &str, w: &str| aimed_at_self(t, t.find(w).unwrap());
        assert!(at("It was on the right and I feel like an idiot.", "idiot"));
        assert!(at("What an idiot I am", "idiot"));
        assert!(at("Subject: I'm just an idiot", "idiot"));
        assert!(at("Я идиот, забыл перезагрузить", "идиот"));
        assert!(at(
            "which I failed to deliver a copy to,\nlike a total idiot. Sorry",
            "idiot"
        ));
        assert!(at("if some jerk is busily spamming the list", "jerk"));
        assert!(!at("Are you idiots even reading what we send?", "idiots"));
        assert!(!at("Your developers are morons.", "morons"));
        assert!(!at("The developers are morons. I told them.", "morons"));
        assert!(!at("Вы идиоты", "идиоты"));
        assert!(!at("I think you are idiots", "idiots"));
    }
}
