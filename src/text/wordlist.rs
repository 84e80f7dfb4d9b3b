//! Word lists of `rules/lists/*.txt`: list source text → [`WordList`] (a compiled
//! matcher) → [`ListMatch`]es over any text.
//!
//! The list format, for policy writers:
//!
//! ```text
//! # comment; blank lines are ignored
//! хуй*          root: any word that STARTS with it (хуйня, хуйло), never mid-word
//! *пизд*        contains: any word that has it anywhere (распиздяй)
//! *shit         suffix: any word that ENDS with it (bullshit)
//! манда         whole word only
//! не работает   a phrase: whole words, in this order
//! коммерческое предложени*   a phrase whose last word is a root
//! перестал* работать          any word of a phrase may be a root
//! !застрахуй    exclusion: this word never matches any entry of the list
//! ```
//!
//! Entries and exclusions are normalised with [`normalize`], the same function applied to
//! the text, so case, `ё`, look-alike letters, leet digits and repeated letters do not
//! matter (`ass` and `as` are the same entry after collapsing — keep entries long enough
//! to be unambiguous).
//!
//! Matching runs one Aho–Corasick DFA over the normalised text (all matches, overlapping),
//! keeps those that sit on the word boundaries their entry asks for and touch no excluded
//! word, then picks the leftmost-longest non-overlapping words. A word written with a `*`
//! wildcard (`х*й`, `f*ck`) is compared with the single-word entries by pattern.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use super::normalize::{normalize, with_normalized};
use super::scan::{Combined, Memo};

/// Why a word list could not be loaded; the message names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A line of a list is not a valid entry.
    #[error("{file}:{line}: {message}")]
    Entry {
        /// The list's file path (or its name when parsed from a string).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A list file or the list directory could not be read.
    #[error("cannot read word list {path}")]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The matcher could not be built (too large a list).
    #[error("cannot build the matcher of word list {name}")]
    Build {
        /// The list's name.
        name: String,
        /// The automaton builder's error.
        #[source]
        source: aho_corasick::BuildError,
    },
    /// Two lists with the same name were given.
    #[error("word list {name} is defined twice")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
}

/// One hit of a list in a text, for findings' details and for scripts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListMatch {
    /// The entry as written in the list file (`хуй*`, `не работает`).
    pub entry: String,
    /// The normalised word (or words, for a phrase) that matched.
    pub word: String,
    /// Byte offset in the original text where the matched word begins (best effort; for
    /// [`WordList::find_all_normalized`] an offset into the normalised text).
    pub start: usize,
}

/// One parsed entry of a list.
#[derive(Debug)]
struct Entry {
    /// As written in the file.
    raw: String,
    /// Normalised words up to and including the first root word (`*` at its end): the
    /// literal the automaton looks for.
    literal: String,
    /// `*` before: the match may start inside a word.
    open_start: bool,
    /// The last word of `literal` is a root: the match may end inside a word.
    open_end: bool,
    /// Words after the first root word, each with its root flag, checked word by word.
    tail: Vec<(String, bool)>,
    /// Characters of `literal`, kept for wildcard words (single-word entries only).
    chars: Vec<char>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    entries: Vec<Entry>,
    /// `None` for an empty list and for a list of a [`WordLists`] set, which scans
    /// with the set's automaton (`shared`).
    automaton: Option<AhoCorasick>,
    /// Aho–Corasick pattern id → entries with that literal, most specific first.
    by_pattern: Vec<Vec<usize>>,
    exclusions: HashSet<String>,
    /// Single-word entries that a wildcard word can be compared with.
    wildcard_entries: Vec<usize>,
    /// The automaton of the set this list belongs to and the list's index in it: set
    /// once by [`WordLists`], which then scans each text once for all its lists.
    shared: OnceLock<(Arc<Combined>, usize)>,
}

/// A compiled list of `rules/lists/NAME.txt` (see the module documentation for the
/// format). Cheap to clone and shareable between threads.
#[derive(Debug, Clone)]
pub struct WordList(Arc<Inner>);

/// A candidate hit in normalised text: the word span and the entry.
#[derive(Clone, Copy)]
struct Candidate {
    word_start: usize,
    word_end: usize,
    entry: usize,
    literal_len: usize,
}

impl WordList {
    /// Parses the source text of the list `name`.
    ///
    /// # Errors
    /// [`ListError::Entry`] with the line number for an entry without letters or digits,
    /// a `*` in the middle of an entry, or an exclusion that is not a single word;
    /// [`ListError::Build`] when the automaton cannot be built.
    pub fn parse(name: &str, source: &str) -> Result<WordList, ListError> {
        Self::parse_file(name, name, source, true)
    }

    /// Parses a list; `own_automaton` is false for a list that goes into a
    /// [`WordLists`] set, which scans with the set's shared automaton instead.
    fn parse_file(
        name: &str,
        file: &str,
        source: &str,
        own_automaton: bool,
    ) -> Result<WordList, ListError> {
        let mut entries = Vec::new();
        let mut exclusions = HashSet::new();
        for (index, line) in source.lines().enumerate() {
            let error = |message: String| ListError::Entry {
                file: file.to_owned(),
                line: index + 1,
                message,
            };
            let line = match line.find(" #").or_else(|| line.find("\t#")) {
                Some(cut) => &line[..cut],
                None => line,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(word) = line.strip_prefix('!') {
                let normalized = normalize(word);
                if normalized.is_empty() || normalized.contains(' ') || word.contains('*') {
                    return Err(error(format!(
                        "exclusion `{line}` must be a single word without `*`"
                    )));
                }
                exclusions.insert(normalized);
                continue;
            }
            let entry = parse_entry(line).map_err(error)?;
            entries.push(entry);
        }
        Self::build(name, entries, exclusions, own_automaton)
    }

    fn build(
        name: &str,
        entries: Vec<Entry>,
        exclusions: HashSet<String>,
        own_automaton: bool,
    ) -> Result<WordList, ListError> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut by_pattern: Vec<Vec<usize>> = Vec::new();
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let id = *ids.entry(entry.literal.as_str()).or_insert_with(|| {
                patterns.push(entry.literal.as_str());
                by_pattern.push(Vec::new());
                patterns.len() - 1
            });
            by_pattern[id].push(index);
        }
        // Whole-word entries before roots/suffixes before contains.
        for list in &mut by_pattern {
            list.sort_by_key(|&i| u8::from(entries[i].open_start) + u8::from(entries[i].open_end));
        }
        let automaton = if patterns.is_empty() || !own_automaton {
            None
        } else {
            let built = AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::DFA))
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .map_err(|source| ListError::Build {
                    name: name.to_owned(),
                    source,
                })?;
            Some(built)
        };
        let wildcard_entries = (0..entries.len())
            .filter(|&i| !entries[i].chars.is_empty() && !entries[i].open_start)
            .collect();
        Ok(WordList(Arc::new(Inner {
            name: name.to_owned(),
            entries,
            automaton,
            by_pattern,
            exclusions,
            wildcard_entries,
            shared: OnceLock::new(),
        })))
    }

    /// The list's name (its file stem).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Number of entries (exclusions not counted).
    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    /// All matches in `text`, in text order, one per matched word or phrase; the text is
    /// normalised here.
    pub fn find_all(&self, text: &str) -> Vec<ListMatch> {
        with_normalized(text, |normalized| {
            let found = self.candidates(&normalized.text, Some(&normalized.hits));
            self.to_matches(&normalized.text, found, |word_start| {
                let index = normalized.word_starts.partition_point(|&s| s <= word_start);
                index
                    .checked_sub(1)
                    .and_then(|i| normalized.original_starts.get(i).copied())
                    .unwrap_or(0)
            })
        })
    }

    /// Whether anything of the list occurs in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        with_normalized(text, |normalized| {
            !self
                .candidates(&normalized.text, Some(&normalized.hits))
                .is_empty()
        })
    }

    /// Same as [`WordList::find_all`] for text already passed through [`normalize`]
    /// (callers that test several lists normalise once); `start` is then an offset into
    /// `normalized`.
    pub fn find_all_normalized(&self, normalized: &str) -> Vec<ListMatch> {
        let found = self.candidates(normalized, None);
        self.to_matches(normalized, found, |word_start| word_start)
    }

    /// The words of `normalize(text)` that no match covers, in order — empty when the
    /// text consists only of list words (how "every word of the subject is generic" is
    /// checked).
    pub fn unmatched_words(&self, text: &str) -> Vec<String> {
        with_normalized(text, |normalized| {
            let found = self.candidates(&normalized.text, Some(&normalized.hits));
            let mut out = Vec::new();
            for (i, &start) in normalized.word_starts.iter().enumerate() {
                let end = normalized
                    .word_starts
                    .get(i + 1)
                    .map_or(normalized.text.len(), |next| next - 1);
                if !found
                    .iter()
                    .any(|c| c.word_start <= start && start < c.word_end)
                {
                    out.push(normalized.text[start..end].to_owned());
                }
            }
            out
        })
    }

    fn to_matches(
        &self,
        normalized: &str,
        found: Vec<Candidate>,
        original_start: impl Fn(usize) -> usize,
    ) -> Vec<ListMatch> {
        found
            .into_iter()
            .map(|c| ListMatch {
                entry: self.0.entries[c.entry].raw.clone(),
                word: normalized[c.word_start..c.word_end].to_owned(),
                start: original_start(c.word_start),
            })
            .collect()
    }

    /// The list's literals in pattern-id order, for a [`Combined`] automaton.
    fn literals(&self) -> Vec<&str> {
        let inner = &*self.0;
        inner
            .by_pattern
            .iter()
            .filter_map(|entries| entries.first())
            .map(|&e| inner.entries[e].literal.as_str())
            .collect()
    }

    /// Valid, non-overlapping hits in normalised text, leftmost-longest first. The raw
    /// automaton hits come from the set's shared automaton (remembered in `memo` when
    /// given) or from the list's own.
    fn candidates(&self, text: &str, memo: Option<&RefCell<Memo>>) -> Vec<Candidate> {
        let inner = &*self.0;
        let mut found: Vec<Candidate> = Vec::new();
        if let Some((combined, index)) = inner.shared.get() {
            let hits = match memo {
                Some(memo) => combined.hits_memo(text, memo),
                None => combined.hits(text),
            };
            for hit in hits.get(*index).into_iter().flatten() {
                self.hit_candidates(text, hit.start, hit.end, hit.pattern, &mut found);
            }
        } else if let Some(automaton) = &inner.automaton {
            for m in automaton.find_overlapping_iter(text) {
                let pattern = m.pattern().as_usize();
                self.hit_candidates(text, m.start(), m.end(), pattern, &mut found);
            }
        }
        if !inner.wildcard_entries.is_empty() && text.contains('*') {
            self.wildcard_candidates(text, &mut found);
        }
        found.sort_by(|a, b| {
            a.word_start
                .cmp(&b.word_start)
                .then(b.word_end.cmp(&a.word_end))
                .then(b.literal_len.cmp(&a.literal_len))
                .then(a.entry.cmp(&b.entry))
        });
        let mut last_end = 0;
        found.retain(|c| {
            let keep = c.word_start >= last_end;
            if keep {
                last_end = c.word_end;
            }
            keep
        });
        found
    }

    /// The candidates of one automaton hit of the list's pattern `pattern` at
    /// `start..end`: each entry with that literal whose word boundaries, phrase tail
    /// and exclusions allow it.
    fn hit_candidates(
        &self,
        text: &str,
        start: usize,
        end: usize,
        pattern: usize,
        found: &mut Vec<Candidate>,
    ) {
        let inner = &*self.0;
        let bytes = text.as_bytes();
        let at_word_start = start == 0 || bytes[start - 1] == b' ';
        let at_word_end = end == bytes.len() || bytes[end] == b' ';
        let Some(list) = inner.by_pattern.get(pattern) else {
            return;
        };
        let mut spans: Option<(usize, usize)> = None;
        for &entry in list {
            let e = &inner.entries[entry];
            if !(e.open_start || at_word_start) || !(e.open_end || at_word_end) {
                continue;
            }
            let (word_start, head_end) = *spans.get_or_insert_with(|| {
                (
                    text[..start].rfind(' ').map_or(0, |p| p + 1),
                    text[end..].find(' ').map_or(text.len(), |p| end + p),
                )
            });
            let Some(word_end) = match_tail(text, head_end, &e.tail) else {
                continue;
            };
            if self.excluded(&text[word_start..word_end]) {
                continue;
            }
            found.push(Candidate {
                word_start,
                word_end,
                entry,
                literal_len: end - start,
            });
        }
    }

    fn excluded(&self, words: &str) -> bool {
        !self.0.exclusions.is_empty() && words.split(' ').any(|w| self.0.exclusions.contains(w))
    }

    /// Words written with a `*` wildcard compared with every single-word entry.
    fn wildcard_candidates(&self, text: &str, found: &mut Vec<Candidate>) {
        let inner = &*self.0;
        let mut offset = 0;
        let mut pattern: Vec<char> = Vec::new();
        for word in text.split(' ') {
            let start = offset;
            offset += word.len() + 1;
            if !word.contains('*') || self.excluded(word) {
                continue;
            }
            pattern.clear();
            pattern.extend(word.chars());
            let hit = inner.wildcard_entries.iter().copied().find(|&i| {
                let e = &inner.entries[i];
                glob_matches(&pattern, &e.chars, e.open_end)
            });
            if let Some(entry) = hit {
                let literal_len = inner.entries[entry].literal.len();
                found.push(Candidate {
                    word_start: start,
                    word_end: start + word.len(),
                    entry,
                    literal_len,
                });
            }
        }
    }
}

/// Parses one entry line (not a comment, not an exclusion).
fn parse_entry(line: &str) -> Result<Entry, String> {
    let open_start = line.starts_with('*');
    let body = line.strip_prefix('*').unwrap_or(line);
    let mut words: Vec<(String, bool)> = Vec::new();
    for raw_word in body.split_whitespace() {
        let root = raw_word.ends_with('*');
        let core = raw_word.trim_end_matches('*');
        if core.contains('*') {
            return Err(format!(
                "entry `{line}`: `*` may only open or close an entry"
            ));
        }
        let normalized = normalize(core);
        let mut parts = normalized.split(' ').filter(|w| !w.is_empty()).peekable();
        while let Some(part) = parts.next() {
            words.push((part.to_owned(), root && parts.peek().is_none()));
        }
    }
    if words.is_empty() {
        return Err(format!("entry `{line}` has no letters or digits"));
    }
    let head_len = words
        .iter()
        .position(|(_, root)| *root)
        .map_or(words.len(), |i| i + 1);
    let tail = words.split_off(head_len);
    let open_end = words.last().is_some_and(|(_, root)| *root);
    let literal = words
        .iter()
        .map(|(w, _)| w.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let chars = if tail.is_empty() && words.len() == 1 {
        literal.chars().collect()
    } else {
        Vec::new()
    };
    Ok(Entry {
        raw: line.to_owned(),
        literal,
        open_start,
        open_end,
        tail,
        chars,
    })
}

/// End of the phrase tail starting after the word that ends at `word_end`, if the next
/// words of `text` are the tail's words.
fn match_tail(text: &str, mut word_end: usize, tail: &[(String, bool)]) -> Option<usize> {
    for (word, root) in tail {
        if text.as_bytes().get(word_end) != Some(&b' ') {
            return None;
        }
        let start = word_end + 1;
        let end = text[start..].find(' ').map_or(text.len(), |p| start + p);
        let found = &text[start..end];
        let ok = if *root {
            found.starts_with(word.as_str())
        } else {
            found == word
        };
        if !ok {
            return None;
        }
        word_end = end;
    }
    Some(word_end)
}

/// Most letters a `*` in a word may stand for.
const WILDCARD_MAX: usize = 4;

/// Whether the word pattern (`*` = 1..=4 letters) can spell `entry` (followed by any
/// ending when `root`). A `*` stands only for letters of the entry's own spelling: the
/// letters written after it must go on with that spelling, and the word must write at
/// least as many of the entry's letters as it masks (two at least). So `f*ck`,
/// `f*cking`, `fuc*` and `х*й` spell their entries, but `s*dc` does not spell `shit*`
/// and `E*Trade` does not spell `ebanut*` (the `*` would swallow most of the entry and
/// leave the rest of the word to the free ending).
fn glob_matches(pattern: &[char], entry: &[char], root: bool) -> bool {
    glob_counted(pattern, entry, root, 0, 0)
}

fn glob_counted(
    pattern: &[char],
    entry: &[char],
    root: bool,
    written: usize,
    masked: usize,
) -> bool {
    let fair = || written >= masked && written >= 2;
    match pattern.split_first() {
        None => entry.is_empty() && fair(),
        Some(_) if entry.is_empty() => root && fair(),
        Some(('*', [])) => {
            entry.len() <= WILDCARD_MAX && written >= masked + entry.len() && written >= 2
        }
        Some(('*', rest)) => (1..=WILDCARD_MAX.min(entry.len() - 1))
            .any(|k| glob_counted(rest, &entry[k..], root, written, masked + k)),
        Some((c, rest)) => {
            *c == entry[0] && glob_counted(rest, &entry[1..], root, written + 1, masked)
        }
    }
}

/// Every list of a `rules/lists/` directory, by file stem; cheap to clone and shareable
/// between threads.
#[derive(Debug, Clone, Default)]
pub struct WordLists(Arc<BTreeMap<String, WordList>>);

impl WordLists {
    /// Loads every `*.txt` of `dir`; a missing directory is an empty set.
    ///
    /// # Errors
    /// [`ListError::Io`] when the directory or a file cannot be read, or a file is not
    /// UTF-8; [`ListError::Entry`] naming the file and line of an invalid entry.
    pub fn load_dir(dir: &Path) -> Result<WordLists, ListError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ListError::Io { path, source }
        };
        let read = match std::fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WordLists::default()),
            Err(e) => return Err(io(dir)(e)),
        };
        let mut paths = Vec::new();
        for item in read {
            let path = item.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "txt") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut lists = BTreeMap::new();
        for path in paths {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let source = std::fs::read_to_string(&path).map_err(io(&path))?;
            let list = WordList::parse_file(name, &path.display().to_string(), &source, false)?;
            lists.insert(name.to_owned(), list);
        }
        WordLists::combine(lists)
    }

    /// The list named `name` (file stem), if loaded.
    pub fn get(&self, name: &str) -> Option<&WordList> {
        self.0.get(name)
    }

    /// Names of all loaded lists, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Builds a set from `(name, source)` pairs (tests, embedded defaults).
    ///
    /// # Errors
    /// [`ListError::Entry`] for an invalid entry, [`ListError::Duplicate`] for a name
    /// given twice.
    pub fn from_sources(items: &[(&str, &str)]) -> Result<WordLists, ListError> {
        let mut lists = BTreeMap::new();
        for (name, source) in items {
            let list = WordList::parse_file(name, name, source, false)?;
            if lists.insert((*name).to_owned(), list).is_some() {
                return Err(ListError::Duplicate {
                    name: (*name).to_owned(),
                });
            }
        }
        WordLists::combine(lists)
    }

    /// Wraps the lists of a set and gives them one shared automaton, so that a text
    /// is scanned once for all of them.
    fn combine(lists: BTreeMap<String, WordList>) -> Result<WordLists, ListError> {
        let members: Vec<&WordList> = lists.values().collect();
        let literals: Vec<Vec<&str>> = members.iter().map(|l| l.literals()).collect();
        let combined = Combined::build(&literals).map_err(|source| ListError::Build {
            name: "(all lists)".to_owned(),
            source,
        })?;
        if let Some(combined) = combined.map(Arc::new) {
            for (index, list) in members.iter().enumerate() {
                // A list is only ever combined here, right after it was parsed.
                let _ = list.0.shared.set((combined.clone(), index));
            }
        }
        Ok(WordLists(Arc::new(lists)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBSCENE: &str = "\
# test list
хуй*
хуе*
пизд*
*пизд*
бля*
бладь
еба*
ебл*
fuck*
*fuck*
shit*
*shit
манда
ass*
!застрахуй
!class
!assistant
!scunthorpe
!бляха
";

    fn list() -> WordList {
        WordList::parse("obscene", OBSCENE).unwrap()
    }

    fn words(text: &str) -> Vec<String> {
        list().find_all(text).into_iter().map(|m| m.word).collect()
    }

    #[test]
    fn root_matches_inflected_forms() {
        assert_eq!(
            words("Что за хуйня с приставкой, опять всё по пизде"),
            vec!["хуйня", "пизде"]
        );
    }

    #[test]
    fn root_never_matches_mid_word() {
        assert!(words("Подстрахуйте, пожалуйста, и застрахуй оборудование").is_empty());
        assert!(words("Оскорблять никого не хочу, но скорбь велика").is_empty());
        assert!(words("Приставка потребляет 10 Вт; хлебал я этот учебный стенд").is_empty());
    }

    #[test]
    fn exclusion_blocks_a_word() {
        assert!(words("assistant of our class from Scunthorpe").is_empty());
        assert_eq!(words("assistant? ass!"), vec!["as"]);
    }

    #[test]
    fn contains_entry_matches_inside_words() {
        assert_eq!(words("распиздяйство полное"), vec!["распиздяйство"]);
        assert_eq!(words("this clusterfucking box"), vec!["clusterfucking"]);
    }

    #[test]
    fn suffix_entry_matches_word_ends_only() {
        assert_eq!(words("total bullshit"), vec!["bulshit"]);
    }

    #[test]
    fn whole_word_entry_does_not_match_longer_words() {
        assert!(words("мандарин и мандат").is_empty());
        assert_eq!(words("ну ты манда"), vec!["манда"]);
    }

    #[test]
    fn obfuscations_are_found() {
        assert_eq!(words("х*й тебе"), vec!["х*й"]);
        assert_eq!(words("х у й"), vec!["хуй"]);
        assert_eq!(words("хууууй"), vec!["хуй"]);
        assert_eq!(words("f*ck this box"), vec!["f*ck"]);
        assert_eq!(words("this is sh1t"), vec!["shit"]);
        assert_eq!(words("ПИЗДEЦ полный"), vec!["пиздец"]);
        assert_eq!(words("бл@дь, опять"), vec!["бладь"]);
    }

    #[test]
    fn wildcard_word_does_not_match_unrelated_entries() {
        assert!(words("м*н сообщение: с*к").is_empty());
    }

    #[test]
    fn wildcard_stands_only_for_letters_of_the_entry() {
        // The letters after the mask must continue the entry's own spelling.
        assert!(words(r#"m = re.compile(r"\s*dc:title=(.*?)")"#).is_empty());
        assert!(words("I also use E*Trade and s*dc").is_empty());
        let list = WordList::parse("o", "прайс*\nebal*\nebanut*").unwrap();
        assert!(list.find_all("п*здец").is_empty());
        assert!(list.find_all("E*Trade").is_empty());
        // Every masked form of a real entry is still caught.
        assert_eq!(
            words("f*ck f*cking fuc* sh*t"),
            vec!["f*ck", "f*cking", "fuc*", "sh*t"]
        );
        assert_eq!(words("п*зда, х*йня, f*k"), vec!["п*зда", "х*йня", "f*k"]);
    }

    #[test]
    fn match_reports_entry_and_original_offset() {
        let text = "Привет. Это ПИЗДEЦ!";
        let found = list().find_all(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entry, "пизд*");
        assert_eq!(&text[found[0].start..found[0].start + "ПИЗД".len()], "ПИЗД");
    }

    #[test]
    fn normalized_variant_reports_normalized_offsets() {
        let normalized = normalize("ну и хуйня");
        let found = list().find_all_normalized(&normalized);
        assert_eq!(found[0].start, "ну и ".len());
        assert!(list().is_match("ну и хуйня"));
    }

    #[test]
    fn phrases_match_word_aligned_and_prefer_longest() {
        let list =
            WordList::parse("g", "не работает\nне\nкоммерческое предложени*\nerror*").unwrap();
        let found: Vec<_> = list
            .find_all("Не работает! Коммерческое предложение. не работаете")
            .into_iter()
            .map(|m| m.entry)
            .collect();
        assert_eq!(found, vec!["не работает", "коммерческое предложени*", "не"]);
        assert_eq!(list.unmatched_words("Не работает EPG"), vec!["epg"]);
        assert!(list.unmatched_words("Errors: не работает").is_empty());
    }

    #[test]
    fn roots_inside_phrases() {
        let list = WordList::parse(
            "e",
            "перестал* работать\nперестал* показывать\nне запускает*",
        )
        .unwrap();
        let found: Vec<_> = list
            .find_all(
                "Приставка перестала показывать каналы и не запускается, пульт перестали работать",
            )
            .into_iter()
            .map(|m| m.word)
            .collect();
        assert_eq!(
            found,
            vec![
                "перестала показывать",
                "не запускается",
                "перестали работать"
            ]
        );
        assert!(!list.is_match("перестала работа"));
        assert!(
            list.is_match("перестала. Работать"),
            "punctuation is dropped: still the phrase"
        );
    }

    #[test]
    fn parse_errors_carry_line_numbers() {
        let err = WordList::parse("bad", "# header\nok\nx*y\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad:3: entry `x*y`: `*` may only open or close an entry"
        );
        let err = WordList::parse("bad", "ok\n*\n").unwrap_err();
        assert!(err.to_string().starts_with("bad:2:"), "{err}");
        let err = WordList::parse("bad", "!two words\n").unwrap_err();
        assert!(err.to_string().starts_with("bad:1:"), "{err}");
    }

    #[test]
    fn counts_entries_without_exclusions() {
        let list = list();
        assert_eq!(list.name(), "obscene");
        assert_eq!(list.len(), 14);
        assert!(!list.is_empty());
        assert!(WordList::parse("empty", "# nothing\n").unwrap().is_empty());
        assert!(WordList::parse("empty", "")
            .unwrap()
            .find_all("хуй")
            .is_empty());
    }

    #[test]
    fn lists_load_from_a_directory_by_stem() {
        let dir = std::env::temp_dir().join(format!("textkit-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), "alpha\n").unwrap();
        std::fs::write(dir.join("b.txt"), "beta*\n").unwrap();
        std::fs::write(dir.join("notes.md"), "ignored\n").unwrap();
        let lists = WordLists::load_dir(&dir).unwrap();
        assert_eq!(lists.names(), vec!["a", "b"]);
        assert!(lists.get("b").unwrap().is_match("betamax"));
        std::fs::write(dir.join("c.txt"), "ok\nbad*entry\n").unwrap();
        let err = WordLists::load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("c.txt:2:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_directory_is_an_empty_set() {
        let lists = WordLists::load_dir(Path::new("/nonexistent/rules/lists")).unwrap();
        assert!(lists.names().is_empty());
    }

    #[test]
    fn from_sources_rejects_duplicate_names() {
        assert!(matches!(
            WordLists::from_sources(&[("a", "x"), ("a", "y")]),
            Err(ListError::Duplicate { .. })
        ));
        assert!(WordLists::from_sources(&[("a", "x"), ("b", "y")])
            .unwrap()
            .get("b")
            .is_some());
    }

    #[test]
    fn lists_are_shareable_between_threads() {
        fn assert_shared<T: Send + Sync + Clone + 'static>() {}
        assert_shared::<WordList>();
        assert_shared::<WordLists>();
    }
}
