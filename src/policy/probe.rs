//! Explain probes: while switched on for the current thread ([`capture`]), the
//! script helpers note what they were asked and what they answered — the list
//! words matched and where, the tickets found and their similarity, the
//! contracts looked up, the findings `decide.rhai` tested. `intake check
//! --explain` and the corpus runner's failure report print them; the server
//! never switches them on, and then a helper pays one thread-local read.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};

use serde::Serialize;

/// The text a helper was given: a hash to name it (`msg.subject`) and an excerpt.
#[derive(Debug, Clone, Serialize)]
pub struct TextRef {
    #[serde(skip)]
    pub hash: u64,
    pub excerpt: String,
}

impl TextRef {
    fn of(text: &str) -> TextRef {
        let mut excerpt: String = text.chars().take(40).collect();
        if excerpt.len() < text.len() {
            excerpt.push('…');
        }
        TextRef {
            hash: text_hash(text),
            excerpt: excerpt.replace(['\r', '\n'], " "),
        }
    }
}

/// One helper call: `list_match("obscene", {text})` → `…`.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The rule that made the call (`decide` for the decide script).
    pub rule: String,
    /// The call; `{text}` stands for [`Probe::text`].
    pub call: String,
    pub text: Option<TextRef>,
    pub result: String,
}

/// A hash to recognise which field of the message a helper was given.
pub fn text_hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

thread_local! {
    static PROBES: RefCell<Option<Vec<Probe>>> = const { RefCell::new(None) };
    /// The rule running now, kept here so noting never touches the helpers' context.
    static RULE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Sets the rule probes are attributed to (called as each rule starts).
pub fn set_rule(rule: &str) {
    if enabled() {
        RULE.with(|r| rule.clone_into(&mut r.borrow_mut()));
    }
}

/// Whether probes are being recorded on this thread.
pub fn enabled() -> bool {
    PROBES.with(|p| p.borrow().is_some())
}

/// Notes a helper call; the closures only run while probes are on.
pub fn note(call: impl FnOnce() -> String, text: Option<&str>, result: impl FnOnce() -> String) {
    if !enabled() {
        return;
    }
    let probe = Probe {
        rule: RULE.with(|r| r.borrow().clone()),
        call: call(),
        text: text.map(TextRef::of),
        result: result(),
    };
    PROBES.with(|p| {
        if let Some(v) = p.borrow_mut().as_mut() {
            v.push(probe);
        }
    });
}

/// Runs `f` with probes on; returns its result and the probes noted.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<Probe>) {
    let previous = PROBES.with(|p| p.borrow_mut().replace(Vec::new()));
    let out = f();
    let probes = PROBES.with(|p| std::mem::replace(&mut *p.borrow_mut(), previous));
    (out, probes.unwrap_or_default())
}

/// `line:col` (1-based, columns in characters) of a byte offset of `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_noted_only_inside_capture() {
        note(|| "outside".into(), None, || "x".into());
        let ((), probes) = capture(|| {
            note(
                || "f({text})".into(),
                Some("hello\nworld"),
                || "true".into(),
            );
        });
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].text.as_ref().unwrap().excerpt, "hello world");
        assert!(!enabled());
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\nпривет мир", 3 + "привет ".len()), (2, 8));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
