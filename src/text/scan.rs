//! One scan for every word list: normalised text → the raw automaton hits of all the
//! lists of a [`WordLists`](super::WordLists) at once.
//!
//! The policy matches the same two texts (subject, new text) against most of its lists.
//! Scanning a text once per list ran the overlapping Aho–Corasick search seven or eight
//! times over the same bytes. A [`Combined`] automaton holds the literals of every list
//! of a set; its hits for a normalised text are computed once and remembered with that
//! text's normalisation (see [`super::normalize`]), and each list then reads only the
//! hits that belong to it. Which hits are valid matches (word boundaries, phrase tails,
//! exclusions) is still decided by each list, exactly as with its own automaton.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// One occurrence of a list's literal in normalised text: its byte span and the
/// list's own pattern id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) pattern: usize,
}

/// The hits in one text, one vector per list of the set, by list index.
pub(crate) type Hits = Rc<[Vec<Hit>]>;

/// The hits of one combined automaton in one text, remembered with the text's
/// normalisation: `(automaton id, hits)`.
pub(crate) type Memo = Option<(u64, Hits)>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The literals of every list of a set in one automaton.
#[derive(Debug)]
pub(crate) struct Combined {
    /// Distinguishes automata of different sets (a reload, `intake diff`) in memos.
    id: u64,
    automaton: AhoCorasick,
    /// Literal id → `(list index, the list's own pattern id)` for each list that has it.
    owners: Vec<Vec<(usize, usize)>>,
    lists: usize,
}

impl Combined {
    /// Builds the automaton over `lists`, each given as its literals in its own pattern
    /// order. `None` when no list has a literal.
    ///
    /// # Errors
    /// The automaton builder's error (a set too large to compile).
    pub(crate) fn build(lists: &[Vec<&str>]) -> Result<Option<Combined>, aho_corasick::BuildError> {
        let mut literals: Vec<&str> = Vec::new();
        let mut owners: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut ids = std::collections::HashMap::new();
        for (list, patterns) in lists.iter().enumerate() {
            for (pattern, literal) in patterns.iter().enumerate() {
                let id = *ids.entry(*literal).or_insert_with(|| {
                    literals.push(literal);
                    owners.push(Vec::new());
                    literals.len() - 1
                });
                owners[id].push((list, pattern));
            }
        }
        if literals.is_empty() {
            return Ok(None);
        }
        let automaton = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .build(&literals)?;
        Ok(Some(Combined {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            automaton,
            owners,
            lists: lists.len(),
        }))
    }

    /// All hits in `text`, overlapping, sorted out by list.
    pub(crate) fn hits(&self, text: &str) -> Hits {
        let mut by_list: Vec<Vec<Hit>> = vec![Vec::new(); self.lists];
        for m in self.automaton.find_overlapping_iter(text) {
            for &(list, pattern) in self
                .owners
                .get(m.pattern().as_usize())
                .into_iter()
                .flatten()
            {
                if let Some(hits) = by_list.get_mut(list) {
                    hits.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        pattern,
                    });
                }
            }
        }
        by_list.into()
    }

    /// The hits of `text`, from `memo` when it holds this automaton's, else computed
    /// and remembered there.
    pub(crate) fn hits_memo(&self, text: &str, memo: &std::cell::RefCell<Memo>) -> Hits {
        if let Ok(m) = memo.try_borrow() {
            if let Some((id, hits)) = m.as_ref() {
                if *id == self.id {
                    return hits.clone();
                }
            }
        }
        let hits = self.hits(text);
        if let Ok(mut m) = memo.try_borrow_mut() {
            *m = Some((self.id, hits.clone()));
        }
        hits
    }
}
