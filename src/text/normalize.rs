//! Text normalisation for matching: `&str` (a subject or body as sent) → normalised
//! `String` (lower-case words separated by single spaces).
//!
//! Word lists, similarity fingerprints and the policy scripts all compare text in this
//! one form, and list entries go through the very same function, so whatever this module
//! folds (case, `ё`, look-alike letters, leet digits, repeated letters) folds identically
//! on both sides.
//!
//! What it does, in order:
//! 1. whitespace-separated chunks are read from the text; a run of three or more
//!    single-letter chunks separated by single spaces is one spaced-out word
//!    (`х у й` → `хуй`);
//! 2. inside a chunk, `.`, `-`, `_` and `*` that split it into three or more single
//!    letters are dropped (`f.u.c.k`, `х-у-й`); otherwise `.`, `-`, `_` and other
//!    punctuation separate words (`MI-10234` → `mi 10234`), and a `*` between letters
//!    stays as the wildcard marker `*` (`х*й`); e-mail addresses and URLs are split on
//!    their punctuation with no letter substitution;
//! 3. each word is assigned a script (Cyrillic or Latin) from its letters; look-alike
//!    letters of the other script are folded into it (`пиздeц` with a Latin `e` →
//!    `пиздец`), and digits and `@ $ !` standing between letters are read as the letters
//!    they imitate (`sh1t` → `shit`, `бл@дь` → `бладь`); digits in other places are
//!    kept (`v2`, `h264`, `10234`);
//! 4. lower case, `ё` → `е`, accents of Latin letters dropped, invisible characters
//!    (zero-width space, soft hyphen) removed, and runs of one repeated letter collapsed
//!    to one letter (`хуууй` → `хуй`, `class` → `clas`); an apostrophe joins only an
//!    English `n't` (`doesn't` → `doesnt`) and elsewhere separates words.

use std::cell::RefCell;

use super::letters::{
    cyrillic_leet, cyrillic_to_latin, fold_case, is_alnum, is_apostrophe, is_combining,
    is_cyrillic, is_invisible, is_letter, is_letter_separator, is_subst_symbol, latin_leet,
    latin_to_cyrillic,
};

/// Which alphabet a word is written in, decided from its letters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Cyrillic,
    Latin,
    None,
}

fn word_script(raw: &[char]) -> Script {
    let (mut cyr, mut lat, mut cyr_unique, mut lat_unique) = (0usize, 0usize, 0usize, 0usize);
    for &c in raw {
        if !is_letter(c) {
            continue;
        }
        let lower = fold_case(c);
        if is_cyrillic(lower) {
            cyr += 1;
            if cyrillic_to_latin(lower).is_none() {
                cyr_unique += 1;
            }
        } else {
            lat += 1;
            if latin_to_cyrillic(c).is_none() {
                lat_unique += 1;
            }
        }
    }
    match (cyr, lat) {
        (0, 0) => Script::None,
        (0, _) => Script::Latin,
        (_, 0) => Script::Cyrillic,
        _ if cyr_unique > 0 && lat_unique == 0 => Script::Cyrillic,
        _ if lat_unique > 0 && cyr_unique == 0 => Script::Latin,
        _ if cyr >= lat => Script::Cyrillic,
        _ => Script::Latin,
    }
}

/// The result of normalising with positions: the normalised text, where each of its
/// words starts in it, and where each word started in the original text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Normalized {
    pub(crate) text: String,
    pub(crate) word_starts: Vec<usize>,
    pub(crate) original_starts: Vec<usize>,
    /// The word-list automaton's hits in `text`, computed on first use and kept as
    /// long as this normalisation is (see [`super::scan`]).
    pub(crate) hits: RefCell<super::scan::Memo>,
}

impl Normalized {
    fn push_word(&mut self, word: &[char], original_start: usize) {
        if word.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.word_starts.push(self.text.len());
        self.original_starts.push(original_start);
        self.text.extend(word.iter());
    }
}

impl Normalized {
    /// Appends a word that [`plain_word`] accepted: case folded, repeated letters
    /// collapsed (as `push_collapsed` does for letters).
    fn push_plain(&mut self, word: &str, original_start: usize) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.word_starts.push(self.text.len());
        self.original_starts.push(original_start);
        let mut last = None;
        for c in word.chars() {
            let folded = fold_case(c);
            if last != Some(folded) {
                self.text.push(folded);
                last = Some(folded);
            }
        }
    }
}

/// Lower-case the text and fold obfuscations so that word lists and similarity see one
/// canonical spelling: `ё`→`е`, look-alike letters folded into the script of the word,
/// leet digits and `@ $ !` between letters read as letters, spaced-out letters joined,
/// `*` inside a word kept as a wildcard marker, repeated letters collapsed.
///
/// The output is the words separated by single spaces, punctuation removed; see the
/// module documentation for the exact steps.
pub fn normalize(text: &str) -> String {
    with_normalized(text, |n| n.text.clone())
}

/// The words of [`normalize`]`(text)`, for scripts and callers that work per word.
pub fn tokens(text: &str) -> Vec<String> {
    normalize(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Longest text whose normalisation is remembered per thread.
const CACHE_MAX: usize = 64 * 1024;

/// How many recent texts each thread remembers.
const CACHE_ENTRIES: usize = 4;

thread_local! {
    /// The last few texts normalised on this thread and their results, most recent
    /// first: the rules of one message test its subject, its new text and their
    /// concatenation against several lists, and this spares re-normalising them.
    static RECENT: RefCell<Vec<(String, Normalized)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the normalisation of `text`, reusing this thread's previous result when
/// `text` is the same as last time.
pub(crate) fn with_normalized<R>(text: &str, f: impl FnOnce(&Normalized) -> R) -> R {
    if text.len() > CACHE_MAX {
        return f(&normalize_detailed(text));
    }
    RECENT.with(|cell| {
        let Ok(mut recent) = cell.try_borrow_mut() else {
            return f(&normalize_detailed(text));
        };
        match recent.iter().position(|(t, _)| t == text) {
            Some(0) => {}
            Some(i) => {
                let entry = recent.remove(i);
                recent.insert(0, entry);
            }
            None => {
                recent.truncate(CACHE_ENTRIES - 1);
                recent.insert(0, (text.to_owned(), normalize_detailed(text)));
            }
        }
        f(&recent[0].1)
    })
}

/// One whitespace-delimited piece of the original text.
struct Chunk<'a> {
    start: usize,
    text: &'a str,
    /// Whether exactly one space or tab separates it from the previous chunk.
    single_space_before: bool,
}

fn chunks(text: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::with_capacity(text.len() / 6 + 1);
    let mut start: Option<usize> = None;
    let mut gap = 0usize;
    let mut gap_single = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(Chunk {
                    start: s,
                    text: &text[s..i],
                    single_space_before: gap_single,
                });
                gap = 0;
            }
            gap += 1;
            gap_single = gap == 1 && (c == ' ' || c == '\t');
        } else if start.is_none() {
            if gap == 0 {
                gap_single = false;
            }
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Chunk {
            start: s,
            text: &text[s..],
            single_space_before: gap_single,
        });
    }
    out
}

/// The single letter a chunk consists of, ignoring invisible characters.
fn single_letter(chunk: &str) -> Option<char> {
    let mut letter = None;
    for c in chunk.chars() {
        if is_invisible(c) || is_combining(c) {
            continue;
        }
        if !is_letter(c) || letter.is_some() {
            return None;
        }
        letter = Some(c);
    }
    letter
}

/// Whether the chunk reads as an e-mail address or a URL, whose punctuation must not be
/// taken for letters.
fn is_address(chunk: &str) -> bool {
    if chunk.contains("://") || chunk.starts_with("www.") {
        return true;
    }
    match chunk.find('@') {
        Some(at) => at > 0 && chunk[at + 1..].contains('.'),
        None => false,
    }
}

/// Letters of a chunk spelled out with separators (`f.u.c.k`, `х-у-й`, `f*u*c*k`), when
/// it is exactly that: three or more single letters, one separator run between each.
fn spelled_out(chunk: &str, buf: &mut Vec<char>) -> bool {
    buf.clear();
    let trimmed = chunk.trim_matches(|c: char| !is_alnum(c));
    let mut expect_letter = true;
    for c in trimmed.chars() {
        if is_invisible(c) || is_combining(c) {
            continue;
        }
        if expect_letter {
            if !is_letter(c) {
                return false;
            }
            buf.push(c);
            expect_letter = false;
        } else if is_letter_separator(c) {
            expect_letter = true;
        } else {
            return false;
        }
    }
    buf.len() >= 3 && !expect_letter
}

/// Reusable buffers so that normalising allocates little more than its output.
#[derive(Default)]
struct Scratch {
    raw: Vec<char>,
    word: Vec<char>,
}

/// Normalises `text` and records where every word came from.
pub(crate) fn normalize_detailed(text: &str) -> Normalized {
    let mut out = Normalized {
        text: String::with_capacity(text.len()),
        word_starts: Vec::new(),
        original_starts: Vec::new(),
        hits: RefCell::default(),
    };
    let mut scratch = Scratch::default();
    let all = chunks(text);
    let mut i = 0;
    while i < all.len() {
        // Spaced-out letters: "х у й", "f u c k".
        if single_letter(all[i].text).is_some() {
            let mut j = i + 1;
            while j < all.len()
                && all[j].single_space_before
                && single_letter(all[j].text).is_some()
            {
                j += 1;
            }
            if j - i >= 3 {
                scratch.raw.clear();
                scratch
                    .raw
                    .extend(all[i..j].iter().filter_map(|c| single_letter(c.text)));
                finish_word(&scratch.raw, &mut scratch.word);
                out.push_word(&scratch.word, all[i].start);
                i = j;
                continue;
            }
        }
        match plain_word(all[i].text) {
            Some((offset, core)) => out.push_plain(core, all[i].start + offset),
            None => process_chunk(&all[i], &mut scratch, &mut out),
        }
        i += 1;
    }
    out
}

/// Punctuation that may stand around a plain word: what `process_chunk` drops at a
/// word's edges without any other effect. `!` only after the word (before it, it is
/// kept as a possible letter substitute and moves the word's start).
fn is_edge_punctuation(c: char, leading: bool) -> bool {
    matches!(
        c,
        '.' | ',' | ';' | ':' | '?' | '(' | ')' | '[' | ']' | '"' | '«' | '»' | '„' | '“' | '”'
    ) || (!leading && c == '!')
}

/// The fast path of normalisation, taken by most chunks of real text: a chunk that is
/// one word of two or more letters, all ASCII or all Cyrillic, with at most ordinary
/// punctuation around it. Such a word needs only case folding and collapsing of
/// repeated letters, the same result `process_chunk` and `finish_word` arrive at the
/// long way. Returns the word's offset in the chunk and the word.
fn plain_word(chunk: &str) -> Option<(usize, &str)> {
    let core = chunk
        .trim_start_matches(|c| is_edge_punctuation(c, true))
        .trim_end_matches(|c| is_edge_punctuation(c, false));
    let mut letters = core.chars();
    let first = letters.next()?;
    letters.next()?;
    let ascii = core.bytes().all(|b| b.is_ascii_alphabetic());
    let cyrillic = || is_cyrillic(first) && core.chars().all(|c| is_cyrillic(c) && is_letter(c));
    if !(ascii || cyrillic()) {
        return None;
    }
    Some((core.as_ptr() as usize - chunk.as_ptr() as usize, core))
}

fn process_chunk(chunk: &Chunk<'_>, scratch: &mut Scratch, out: &mut Normalized) {
    if spelled_out(chunk.text, &mut scratch.raw) {
        finish_word(&scratch.raw, &mut scratch.word);
        out.push_word(&scratch.word, chunk.start);
        return;
    }
    let address = is_address(chunk.text);
    scratch.raw.clear();
    let mut word_start = chunk.start;
    let mut prev_letter = false;
    let mut chars = chunk.text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let next_letter = chars.peek().is_some_and(|&(_, n)| is_alnum(n));
        let keep = if is_alnum(c) {
            true
        } else if is_invisible(c) {
            continue;
        } else if is_combining(c) {
            // A decomposed `й` is `и` + U+0306; other marks are dropped.
            if c == '\u{0306}' {
                if let Some(last) = scratch.raw.last_mut() {
                    match *last {
                        'и' => *last = 'й',
                        'И' => *last = 'Й',
                        _ => {}
                    }
                }
            }
            continue;
        } else if is_apostrophe(c)
            && prev_letter
            && next_letter
            && is_nt_contraction(chunk.text, offset, c)
        {
            continue;
        } else {
            !address && (c == '*' || is_subst_symbol(c))
        };
        if keep {
            if scratch.raw.is_empty() {
                word_start = chunk.start + offset;
            }
            scratch.raw.push(c);
            prev_letter = is_alnum(c);
        } else {
            flush(scratch, word_start, out);
            prev_letter = false;
        }
    }
    flush(scratch, word_start, out);
}

/// Whether the apostrophe at `offset` is that of an English `n't` contraction
/// (`doesn't` → `doesnt`); other apostrophes separate words (`who're` → `who re`,
/// `O'Brien` → `o brien`), so that joining never forms a different word.
fn is_nt_contraction(chunk: &str, offset: usize, apostrophe: char) -> bool {
    let before = chunk[..offset].chars().next_back();
    let mut after = chunk[offset + apostrophe.len_utf8()..].chars();
    matches!(before, Some('n' | 'N'))
        && matches!(after.next(), Some('t' | 'T'))
        && !after.next().is_some_and(is_letter)
}

fn flush(scratch: &mut Scratch, start: usize, out: &mut Normalized) {
    if scratch.raw.is_empty() {
        return;
    }
    finish_word(&scratch.raw, &mut scratch.word);
    out.push_word(&scratch.word, start);
    scratch.raw.clear();
}

/// Turns one raw word (letters, digits, `*`, `@ $ !`) into its normalised form in `out`.
fn finish_word(raw: &[char], out: &mut Vec<char>) {
    out.clear();
    // Fast path: a plain word of one script (most words) only needs case folding.
    if raw.iter().all(|c| c.is_ascii_alphabetic())
        || raw.iter().all(|&c| is_cyrillic(c) && is_letter(c))
    {
        for &c in raw {
            push_collapsed(out, fold_case(c));
        }
        return;
    }
    // Symbols at the edges are punctuation, except a leading `@`/`$` before a letter
    // (`$hit`) and a trailing `*` after three or more letters (`fuc*`).
    let mut lo = 0;
    let mut hi = raw.len();
    let mut stripped_leading_star = false;
    while lo < hi && !is_alnum(raw[lo]) {
        let c = raw[lo];
        let before_letter = raw.get(lo + 1).is_some_and(|n| is_letter(*n));
        if matches!(c, '@' | '$') && before_letter {
            break;
        }
        stripped_leading_star |= c == '*';
        lo += 1;
    }
    while hi > lo && !is_alnum(raw[hi - 1]) {
        if raw[hi - 1] == '*' && !stripped_leading_star {
            let letters = raw[lo..hi].iter().filter(|c| is_letter(**c)).count();
            if letters >= 3 {
                break;
            }
        }
        hi -= 1;
    }
    let raw = &raw[lo..hi];
    if raw.is_empty() {
        return;
    }
    let script = word_script(raw);
    let letters = raw.iter().filter(|c| is_letter(**c)).count();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if is_letter(c) {
            let folded = match script {
                Script::Cyrillic => {
                    if is_cyrillic(c) {
                        fold_case(c)
                    } else {
                        latin_to_cyrillic(c).unwrap_or_else(|| fold_case(c))
                    }
                }
                Script::Latin => {
                    let lower = fold_case(c);
                    if is_cyrillic(lower) {
                        cyrillic_to_latin(lower).unwrap_or(lower)
                    } else {
                        lower
                    }
                }
                Script::None => fold_case(c),
            };
            push_collapsed(out, folded);
            i += 1;
        } else if c.is_ascii_digit() || is_subst_symbol(c) {
            // A run of digits/symbols: letters in disguise when it is short and stands
            // between letters of a word of three or more letters (or opens a Cyrillic
            // word as a single `3`/`6`: `6ля`, or is `@`/`$` opening a word: `$hit`);
            // otherwise kept as digits (symbols dropped). `30мин`, `10гб` keep digits.
            let mut j = i;
            while j < raw.len() && (raw[j].is_ascii_digit() || is_subst_symbol(raw[j])) {
                j += 1;
            }
            let run = &raw[i..j];
            let letter_before = i > 0 && (is_letter(raw[i - 1]) || raw[i - 1] == '*');
            let letter_after = raw.get(j).is_some_and(|n| is_letter(*n) || *n == '*');
            let followers = raw[j..].iter().take_while(|n| is_letter(**n)).count();
            let symbols = run.iter().any(|c| is_subst_symbol(*c));
            let context = (letter_before && letter_after && (letters >= 3 || symbols))
                || (i == 0
                    && followers >= 2
                    && ((script == Script::Cyrillic
                        && run.len() == 1
                        && matches!(run[0], '3' | '6'))
                        || symbols));
            let table: fn(char) -> Option<char> = if script == Script::Cyrillic {
                cyrillic_leet
            } else {
                latin_leet
            };
            let subst = context && run.len() <= 2 && run.iter().all(|c| table(*c).is_some());
            for &d in run {
                if subst {
                    if let Some(l) = table(d) {
                        push_collapsed(out, l);
                    }
                } else if d.is_ascii_digit() {
                    out.push(d);
                }
            }
            i = j;
        } else {
            // `*` between letters: wildcard marker, runs collapsed to one.
            if out.last().is_some_and(|l| is_letter(*l)) {
                push_collapsed(out, '*');
            }
            i += 1;
        }
    }
    // A wildcard needs two real letters around it to mean anything.
    if out.contains(&'*') && out.iter().filter(|c| is_letter(**c)).count() < 2 {
        out.retain(|c| *c != '*');
    }
}

fn push_collapsed(out: &mut Vec<char>, c: char) {
    if out.last() != Some(&c) || c.is_ascii_digit() {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain-word fast path gives what the general path gives, offsets included.
    #[test]
    fn plain_words_normalise_as_the_general_path_does() {
        let chunks = [
            "Работает,",
            "«Первый»",
            "EPG.",
            "(ошибка)",
            "fuuuck!",
            "Ёлка",
            "HELLO!!",
            "сообщение:",
            "\"Quoted\"",
            "ааа",
            "Ok?",
            "[Тест]",
            "ммм...",
            "Ошибка!",
            "ПриВет",
        ];
        for text in chunks {
            let (offset, core) = plain_word(text).unwrap_or_else(|| panic!("{text}"));
            let mut fast = Normalized::default();
            fast.push_plain(core, offset);
            let mut slow = Normalized::default();
            let chunk = Chunk {
                start: 0,
                text,
                single_space_before: false,
            };
            process_chunk(&chunk, &mut Scratch::default(), &mut slow);
            assert_eq!(fast.text, slow.text, "{text}");
            assert_eq!(fast.original_starts, slow.original_starts, "{text}");
        }
        for text in [
            "!важно",
            "sh!t",
            "х*й",
            "a",
            "MI-10234",
            "пиздeц",
            "doesn't",
            "$hit",
            "e@mail.ru",
            "т.е.",
        ] {
            assert!(plain_word(text).is_none(), "{text}");
        }
    }

    #[test]
    fn lower_cases_and_strips_punctuation() {
        assert_eq!(
            normalize("Здравствуйте! Не работает EPG, канал «Первый»."),
            "здравствуйте не работает epg канал первый"
        );
    }

    #[test]
    fn yo_becomes_ye_and_short_i_is_kept() {
        assert_eq!(
            normalize("Ещё раз: приставка зависает, йогурт"),
            "еще раз приставка зависает йогурт"
        );
    }

    #[test]
    fn decomposed_short_i_is_recomposed() {
        assert_eq!(normalize("Приставка мои\u{0306}"), "приставка мой");
    }

    #[test]
    fn client_id_and_versions_keep_digits() {
        assert_eq!(
            normalize("Client MI-10234, firmware v2.3"),
            "client mi 10234 firmware v2 3"
        );
        assert_eq!(normalize("H264 1080p stream, 4K"), "h264 1080p stream 4k");
        assert_eq!(normalize("30мин, 10гб, 4ядра"), "30мин 10гб 4ядра");
    }

    #[test]
    fn latin_lookalike_in_cyrillic_word_is_folded() {
        assert_eq!(normalize("ПИЗДEЦ"), "пиздец");
        assert_eq!(normalize("пиздeц"), "пиздец");
        assert_eq!(normalize("xyй"), "хуй");
    }

    #[test]
    fn cyrillic_lookalike_in_latin_word_is_folded() {
        // "fuсk" with a Cyrillic "с", "shіt" with a Ukrainian "і".
        assert_eq!(normalize("fu\u{0441}k sh\u{0456}t"), "fuck shit");
    }

    #[test]
    fn leet_digits_and_symbols_are_read_as_letters() {
        assert_eq!(normalize("sh1t $hit sh!t"), "shit shit shit");
        assert_eq!(normalize("бл@дь"), "бладь");
        assert_eq!(normalize("пи3дец 6ля"), "пиздец бля");
    }

    #[test]
    fn spaced_and_dotted_letters_are_joined() {
        assert_eq!(normalize("ну х у й знает"), "ну хуй знает");
        assert_eq!(normalize("f.u.c.k this"), "fuck this");
        assert_eq!(normalize("х-у-й"), "хуй");
        assert_eq!(normalize("f*u*c*k"), "fuck");
    }

    #[test]
    fn two_single_letters_are_not_joined() {
        assert_eq!(normalize("я и ты, т.е. мы"), "я и ты т е мы");
    }

    #[test]
    fn star_inside_word_is_a_wildcard() {
        assert_eq!(normalize("х*й"), "х*й");
        assert_eq!(normalize("f**k"), "f*k");
        assert_eq!(normalize("*важно*"), "важно");
    }

    #[test]
    fn repeated_letters_collapse() {
        assert_eq!(normalize("хуууй хууй"), "хуй хуй");
        assert_eq!(normalize("class 10000"), "clas 10000");
    }

    #[test]
    fn emails_and_urls_are_split_without_substitution() {
        assert_eq!(normalize("ivan@tv-op.ru"), "ivan tv op ru");
        assert_eq!(
            normalize("https://portal.example/a!b"),
            "htps portal example a b"
        );
    }

    #[test]
    fn invisible_characters_do_not_split_words() {
        assert_eq!(normalize("ху\u{200B}й"), "хуй");
    }

    #[test]
    fn offsets_point_into_the_original() {
        let text = "Привет, ПИЗДEЦ!";
        let n = normalize_detailed(text);
        assert_eq!(n.text, "привет пиздец");
        assert_eq!(&text[n.original_starts[1]..n.original_starts[1] + 2], "П");
        assert_eq!(n.word_starts, vec![0, "привет ".len()]);
    }

    #[test]
    fn tokens_are_the_words() {
        assert_eq!(tokens("  Re: Не работает!! "), vec!["re", "не", "работает"]);
        assert!(tokens(" ... ").is_empty());
    }

    #[test]
    fn apostrophes_join_words() {
        assert_eq!(
            normalize("doesn't work, can’t connect"),
            "doesnt work cant conect"
        );
    }
}
