//! The script API: the read-only `msg` object (the [`Facts`] of SPEC §3) and the
//! native helpers rules call — findings, word lists, text mechanics, contracts and
//! read-only store look-ups.
//!
//! Helpers that need the message's context (findings so far, word lists of the
//! rule set, store, clock) read it from a thread-local [`EvalCtx`] that
//! [`super::evaluate`] installs for the duration of one evaluation, so the shared
//! engine stays free of per-message state.

use std::cell::RefCell;
use std::sync::Arc;

use jiff::Timestamp;
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, INT};

use super::contract::ScriptContract;

use crate::contracts::Contracts;
use crate::decision::Finding;
use crate::facts::Facts;
use crate::store::Ticket;
use crate::text::{self, WordLists};

use super::probe::{self, line_col};

/// Read-only store look-ups available to scripts.
pub trait Lookups: Send + Sync {
    /// A ticket by number.
    fn ticket(&self, number: u64) -> Option<Ticket>;
    /// The ticket of a stored message or sent reply with this Message-ID.
    fn ticket_for_message_id(&self, id: &str) -> Option<u64>;
    /// Open tickets of `client:ID` or `sender:ADDR` created since `since`.
    fn open_tickets(&self, owner_key: &str, since: Timestamp) -> Vec<Ticket>;
    /// Open tickets of `client:ID` or `sender:ADDR` with this normalised core subject.
    fn open_tickets_about(
        &self,
        owner_key: &str,
        subject_norm: &str,
        since: Timestamp,
    ) -> Vec<Ticket>;
    /// Messages from `sender` received in `(since, until]`, counted up to `limit`.
    fn count_from_sender(
        &self,
        sender: &str,
        since: Timestamp,
        until: Timestamp,
        limit: u64,
    ) -> u64;
}

/// Look-ups against an empty store (lint, unit tests).
pub struct NoLookups;

impl Lookups for NoLookups {
    fn ticket(&self, _: u64) -> Option<Ticket> {
        None
    }
    fn ticket_for_message_id(&self, _: &str) -> Option<u64> {
        None
    }
    fn open_tickets(&self, _: &str, _: Timestamp) -> Vec<Ticket> {
        Vec::new()
    }
    fn open_tickets_about(&self, _: &str, _: &str, _: Timestamp) -> Vec<Ticket> {
        Vec::new()
    }
    fn count_from_sender(&self, _: &str, _: Timestamp, _: Timestamp, _: u64) -> u64 {
        0
    }
}

/// Per-evaluation state the helpers read.
pub struct EvalCtx {
    pub rule: String,
    pub findings: Vec<Finding>,
    pub lookups: Arc<dyn Lookups>,
    pub lists: Arc<WordLists>,
    pub contracts: Contracts,
    pub now: Timestamp,
}

thread_local! {
    static CTX: RefCell<Option<EvalCtx>> = const { RefCell::new(None) };
}

/// Installs `ctx` for the current thread; returns the previous one.
pub fn install(ctx: Option<EvalCtx>) -> Option<EvalCtx> {
    CTX.with(|c| std::mem::replace(&mut *c.borrow_mut(), ctx))
}

/// Sets the rule whose findings are being recorded.
pub fn set_rule(rule: &str) {
    probe::set_rule(rule);
    CTX.with(|c| {
        if let Some(ctx) = c.borrow_mut().as_mut() {
            rule.clone_into(&mut ctx.rule);
        }
    });
}

/// Number of findings recorded so far in this evaluation.
pub fn finding_count() -> usize {
    CTX.with(|c| c.borrow().as_ref().map(|x| x.findings.len()).unwrap_or(0))
}

/// The rule running now (for log lines), or `-`.
pub fn current_rule() -> String {
    CTX.with(|c| {
        c.borrow()
            .as_ref()
            .map(|x| x.rule.clone())
            .unwrap_or_else(|| "-".into())
    })
}

fn with_ctx<T>(f: impl FnOnce(&mut EvalCtx) -> T) -> Result<T, Box<EvalAltResult>> {
    CTX.with(|c| match c.borrow_mut().as_mut() {
        Some(ctx) => Ok(f(ctx)),
        None => Err("this function is only available while a message is evaluated".into()),
    })
}

/// The message as scripts see it: `msg.subject`, `msg.header("X-Foo")`.
#[derive(Clone)]
pub struct Msg(Arc<MsgInner>);

struct MsgInner {
    facts: Arc<Facts>,
    /// Values of [`MSG_FIELDS`], by position: converted on first access, then cloned.
    values: Vec<std::sync::OnceLock<Dynamic>>,
}

/// The byte offset after `words` whitespace-separated words of `text` from `start`,
/// punctuation after the last word left out (`Office:` ends before the colon).
fn end_of_words(text: &str, start: usize, words: usize) -> usize {
    let end = end_of_chunks(text, start, words);
    let word = &text[start..end];
    start + word.trim_end_matches(|c: char| !c.is_alphanumeric()).len()
}

/// The byte offset after `words` whitespace-separated chunks of `text` from `start`.
fn end_of_chunks(text: &str, start: usize, words: usize) -> usize {
    let Some(rest) = text.get(start..) else {
        return start;
    };
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in rest.char_indices() {
        if c.is_whitespace() {
            if in_word {
                seen += 1;
                if seen == words {
                    return start + i;
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    text.len()
}

fn s(v: &str) -> Dynamic {
    Dynamic::from(ImmutableString::from(v))
}

fn strings(v: &[String]) -> Dynamic {
    Dynamic::from_array(v.iter().map(|x| s(x)).collect())
}

fn ticket_map(t: &Ticket, now: Timestamp) -> Dynamic {
    let mut m = Map::new();
    m.insert("number".into(), Dynamic::from_int(t.number as INT));
    m.insert("status".into(), s(t.status.as_str()));
    m.insert("open".into(), Dynamic::from_bool(t.status.is_open()));
    m.insert(
        "client_id".into(),
        t.client_id.as_deref().map(s).unwrap_or(Dynamic::UNIT),
    );
    m.insert("owner".into(), s(&t.owner));
    m.insert("subject".into(), s(&t.subject));
    m.insert("subject_core".into(), s(&t.subject_core));
    m.insert(
        "created_at".into(),
        Dynamic::from_int(t.created_at.as_second() as INT),
    );
    let age = (now.as_second() - t.created_at.as_second()) as f64 / 86_400.0;
    m.insert("age_days".into(), Dynamic::from_float(age));
    m.insert("text".into(), s(&t.text_norm));
    // Lifecycle: whether it was ever taken into work, and since when it has
    // its current status (the reopen period counts from there).
    m.insert(
        "opened".into(),
        Dynamic::from_bool(crate::lifecycle::was_opened(t)),
    );
    let since = crate::lifecycle::status_since(t);
    m.insert(
        "status_since".into(),
        Dynamic::from_int(since.as_second() as INT),
    );
    m.insert(
        "status_days".into(),
        Dynamic::from_float((now.as_second() - since.as_second()) as f64 / 86_400.0),
    );
    Dynamic::from_map(m)
}

impl Msg {
    /// Wraps facts; each property is converted on first access, once.
    pub fn new(facts: Arc<Facts>) -> Msg {
        Msg(Arc::new(MsgInner {
            facts,
            values: MSG_FIELDS
                .iter()
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        }))
    }

    fn get(&self, index: usize) -> Dynamic {
        let Some(cell) = self.0.values.get(index) else {
            return Dynamic::UNIT;
        };
        cell.get_or_init(|| property(&self.0.facts, MSG_FIELDS[index]))
            .clone()
    }
}

/// Converts one property of the facts for scripts.
fn property(f: &Facts, name: &str) -> Dynamic {
    let at = f.received_at;
    let opt = |v: Option<&str>| v.map(s).unwrap_or(Dynamic::UNIT);
    match name {
        "from" => s(&f.from),
        "from_name" => s(&f.from_name),
        "reply_to" => s(&f.reply_to),
        "to" => strings(&f.to),
        "cc" => strings(&f.cc),
        "subject" => s(&f.subject),
        "subject_core" => s(&f.subject_core),
        "ticket_ref" => f
            .ticket_ref
            .map(|n| Dynamic::from_int(n as INT))
            .unwrap_or(Dynamic::UNIT),
        "message_id" => s(&f.message_id),
        "in_reply_to" => strings(&f.in_reply_to),
        "references" => strings(&f.references),
        "text" => s(&f.text),
        "text_new" => s(&f.text_new),
        "attachments" => Dynamic::from_array(
            f.attachments
                .iter()
                .map(|a| {
                    let mut am = Map::new();
                    am.insert("name".into(), s(&a.name));
                    am.insert("mime".into(), s(&a.mime));
                    am.insert("size".into(), Dynamic::from_int(a.size as INT));
                    Dynamic::from_map(am)
                })
                .collect(),
        ),
        "lang" => s(&f.lang),
        "size" => Dynamic::from_int(f.size as INT),
        "received_at" => Dynamic::from_int(at.as_second() as INT),
        "client_ids" => strings(&f.client_ids),
        "contract" => f
            .contract
            .as_ref()
            .map(|c| ScriptContract::dynamic(c, at))
            .unwrap_or(Dynamic::UNIT),
        "sender_contract" => f
            .sender_contract
            .as_ref()
            .map(|c| ScriptContract::dynamic(c, at))
            .unwrap_or(Dynamic::UNIT),
        "envelope_from" => opt(f.envelope.mail_from.as_deref()),
        "envelope_to" => strings(&f.envelope.rcpt_to),
        "client_ip" => opt(f.envelope.client_ip.as_deref()),
        "parsed" => Dynamic::from_bool(f.parsed),
        "spam" => f.spam.as_ref().map_or(Dynamic::UNIT, spam_map),
        "spam_check" => s(&f.spam_check.describe()),
        "auth" => f.auth.as_ref().map_or(Dynamic::UNIT, auth_map),
        "from_source" => s(&f.from_source),
        "charset_guessed" => opt(f.charset_guessed.as_deref()),
        "forwarded" => Dynamic::from_bool(f.forwarded),
        _ => Dynamic::UNIT,
    }
}

/// Names of the `msg` properties, for docs, lint and tests.
pub const MSG_FIELDS: &[&str] = &[
    "from",
    "from_name",
    "reply_to",
    "to",
    "cc",
    "subject",
    "subject_core",
    "ticket_ref",
    "message_id",
    "in_reply_to",
    "references",
    "text",
    "text_new",
    "attachments",
    "lang",
    "size",
    "received_at",
    "client_ids",
    "contract",
    "sender_contract",
    "envelope_from",
    "envelope_to",
    "client_ip",
    "parsed",
    "spam",
    "spam_check",
    "auth",
    "from_source",
    "charset_guessed",
    "forwarded",
];

fn spam_map(v: &crate::spam::SpamVerdict) -> Dynamic {
    let mut m = Map::new();
    m.insert("verdict".into(), s(&v.verdict));
    m.insert("score".into(), Dynamic::from_float(v.score as rhai::FLOAT));
    m.insert("action".into(), s(&v.action));
    m.insert("symbols".into(), strings(&v.symbols));
    m.insert("source".into(), s(&v.source));
    Dynamic::from_map(m)
}

fn auth_map(a: &crate::spam::AuthResults) -> Dynamic {
    let mut m = Map::new();
    m.insert("spf".into(), s(&a.spf));
    m.insert("dkim".into(), s(&a.dkim));
    m.insert("dkim_domains".into(), strings(&a.dkim_domains));
    m.insert("dmarc".into(), s(&a.dmarc));
    m.insert("from_domain".into(), s(&a.from_domain));
    m.insert("forged".into(), Dynamic::from_bool(a.sender_forged()));
    Dynamic::from_map(m)
}

type Res<T> = Result<T, Box<EvalAltResult>>;

fn list_error(name: &str) -> Box<EvalAltResult> {
    format!("no word list {name:?} in rules/lists/").into()
}

fn flag(code: &str, detail: &str, ticket: Option<u64>) -> Res<()> {
    if code.is_empty()
        || !code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!("finding code {code:?} must be snake_case").into());
    }
    with_ctx(|c| {
        if !c.findings.iter().any(|f| f.code == code) {
            c.findings.push(Finding {
                code: code.to_owned(),
                rule: c.rule.clone(),
                detail: detail.to_owned(),
                ticket,
            });
        }
    })
}

fn owner_key(owner: &str) -> String {
    if owner.contains('@') {
        format!("sender:{}", owner.to_lowercase())
    } else {
        format!("client:{}", owner.to_ascii_uppercase())
    }
}

fn messages_last_hour(sender: &str, limit: u64) -> Res<INT> {
    with_ctx(|c| {
        let since = c.now - jiff::SignedDuration::from_hours(1);
        c.lookups
            .count_from_sender(&sender.to_lowercase(), since, c.now, limit) as INT
    })
}

static REGEX_CACHE: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<String, Arc<regex::Regex>>>,
> = std::sync::LazyLock::new(Default::default);

/// A compiled pattern from the cache (at most 256 patterns are kept).
fn regex(pattern: &str) -> Res<Arc<regex::Regex>> {
    if let Some(re) = REGEX_CACHE
        .read()
        .ok()
        .and_then(|c| c.get(pattern).cloned())
    {
        return Ok(re);
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map(Arc::new)
        .map_err(|e| -> Box<EvalAltResult> {
            format!("bad regular expression {pattern:?}: {e}").into()
        })?;
    if let Ok(mut c) = REGEX_CACHE.write() {
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(pattern.to_owned(), re.clone());
    }
    Ok(re)
}

/// Registers the `Message` type and every helper.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Msg>("Message");
    for (index, &name) in MSG_FIELDS.iter().enumerate() {
        engine.register_get(name, move |m: &mut Msg| m.get(index));
    }
    engine.register_fn("header", |m: &mut Msg, name: &str| -> Dynamic {
        m.0.facts.header(name).map(s).unwrap_or(Dynamic::UNIT)
    });
    engine.register_fn("headers", |m: &mut Msg, name: &str| -> Array {
        let name = name.to_ascii_lowercase();
        m.0.facts
            .headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| s(v))
            .collect()
    });

    // Findings.
    engine.register_fn("flag", |code: &str, detail: &str| flag(code, detail, None));
    engine.register_fn("flag", |code: &str, detail: &str, ticket: INT| {
        flag(code, detail, u64::try_from(ticket).ok())
    });
    engine.register_fn("has_finding", |code: &str| -> Res<bool> {
        let r = with_ctx(|c| c.findings.iter().any(|f| f.code == code))?;
        probe::note(
            || format!("has_finding(\"{code}\")"),
            None,
            || r.to_string(),
        );
        Ok(r)
    });
    engine.register_fn("has_any_finding", |a: &str, b: &str| -> Res<bool> {
        with_ctx(|c| c.findings.iter().any(|f| f.code == a || f.code == b))
    });
    engine.register_fn(
        "has_any_finding",
        |a: &str, b: &str, d: &str| -> Res<bool> {
            with_ctx(|c| {
                c.findings
                    .iter()
                    .any(|f| f.code == a || f.code == b || f.code == d)
            })
        },
    );
    engine.register_fn("has_any_finding", |codes: Array| -> Res<bool> {
        let shown = || {
            let names: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
            format!("has_any_finding([{}])", names.join(", "))
        };
        let r = with_ctx(|c| {
            c.findings.iter().any(|f| {
                codes.iter().any(|x| {
                    x.clone()
                        .into_immutable_string()
                        .is_ok_and(|s| s == f.code.as_str())
                })
            })
        })?;
        probe::note(shown, None, || r.to_string());
        Ok(r)
    });
    engine.register_fn("finding_ticket", |code: &str| -> Res<Dynamic> {
        with_ctx(|c| {
            c.findings
                .iter()
                .find(|f| f.code == code)
                .and_then(|f| f.ticket)
                .map(|t| Dynamic::from_int(t as INT))
                .unwrap_or(Dynamic::UNIT)
        })
    });
    engine.register_fn("findings", || -> Res<Array> {
        with_ctx(|c| {
            c.findings
                .iter()
                .map(|f| {
                    let mut m = Map::new();
                    m.insert("code".into(), s(&f.code));
                    m.insert("rule".into(), s(&f.rule));
                    m.insert("detail".into(), s(&f.detail));
                    m.insert(
                        "ticket".into(),
                        f.ticket
                            .map(|t| Dynamic::from_int(t as INT))
                            .unwrap_or(Dynamic::UNIT),
                    );
                    Dynamic::from_map(m)
                })
                .collect()
        })
    });

    // Word lists.
    engine.register_fn("list_has", |list: &str, text: &str| -> Res<bool> {
        let r = with_ctx(|c| c.lists.get(list).map(|l| l.is_match(text)))?
            .ok_or_else(|| list_error(list))?;
        probe::note(
            || format!("list_has(\"{list}\", {{text}})"),
            Some(text),
            || r.to_string(),
        );
        Ok(r)
    });
    engine.register_fn("list_match", |list: &str, text: &str| -> Res<Array> {
        let found = with_ctx(|c| c.lists.get(list).map(|l| l.find_all(text)))?
            .ok_or_else(|| list_error(list))?;
        probe::note(
            || format!("list_match(\"{list}\", {{text}})"),
            Some(text),
            || {
                if found.is_empty() {
                    return "no match".into();
                }
                found
                    .iter()
                    .map(|m| {
                        let (l, c) = line_col(text, m.start);
                        format!("'{}' (entry '{}') at {l}:{c}", m.word, m.entry)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        Ok(found
            .into_iter()
            .map(|m| {
                let mut map = Map::new();
                map.insert("entry".into(), s(&m.entry));
                map.insert("word".into(), s(&m.word));
                map.insert("start".into(), Dynamic::from_int(m.start as INT));
                Dynamic::from_map(map)
            })
            .collect())
    });

    // The text with every match of a list blanked (each matched word replaced by spaces),
    // e.g. terms that contain a failure word but name a thing ("error correction").
    engine.register_fn("list_remove", |list: &str, text: &str| -> Res<String> {
        let found = with_ctx(|c| c.lists.get(list).map(|l| l.find_all(text)))?
            .ok_or_else(|| list_error(list))?;
        let mut out = text.to_owned();
        for m in &found {
            let words = m.word.split_whitespace().count().max(1);
            let end = end_of_words(text, m.start, words);
            if m.start < end && out.is_char_boundary(m.start) && out.is_char_boundary(end) {
                out.replace_range(m.start..end, &" ".repeat(end - m.start));
            }
        }
        probe::note(
            || format!("list_remove(\"{list}\", {{text}})"),
            Some(text),
            || format!("{} removed", found.len()),
        );
        Ok(out)
    });
    engine.register_fn("sentence_at", |t: &str, at: INT| -> String {
        text::prose::sentence_at(t, usize::try_from(at).unwrap_or(0)).to_owned()
    });
    engine.register_fn("text_before", |t: &str, at: INT| -> String {
        text::prose::text_before(t, usize::try_from(at).unwrap_or(0)).to_owned()
    });
    engine.register_fn("prose", |t: &str| text::prose(t));
    engine.register_fn("statements", |t: &str| text::statements(t));
    engine.register_fn("questions", |t: &str| -> Array {
        text::questions(t).iter().map(|q| s(q)).collect()
    });

    engine.register_fn("list_unmatched", |list: &str, text: &str| -> Res<Array> {
        let words = with_ctx(|c| c.lists.get(list).map(|l| l.unmatched_words(text)))?
            .ok_or_else(|| list_error(list))?;
        probe::note(
            || format!("list_unmatched(\"{list}\", {{text}})"),
            Some(text),
            || format!("{words:?}"),
        );
        Ok(words.iter().map(|w| s(w)).collect())
    });

    // Regular expressions, compiled once per pattern and cached.
    engine.register_fn("regex_count", |text: &str, pattern: &str| -> Res<INT> {
        regex(pattern).map(|re| re.find_iter(text).count() as INT)
    });
    engine.register_fn("regex_find", |text: &str, pattern: &str| -> Res<Array> {
        regex(pattern).map(|re| re.find_iter(text).map(|m| s(m.as_str())).collect())
    });
    // `text in array` for the common case of a string: compared natively rather than
    // by calling `==` through the interpreter once per element (Rhai's generic
    // `contains`), which made membership in a constant list of ten words cost as
    // much as a whole rule. Other element types are never equal to a string.
    engine.register_fn(
        "contains",
        |items: &mut Array, item: ImmutableString| -> bool {
            items
                .iter()
                .any(|d| match d.read_lock::<ImmutableString>() {
                    Some(x) => *x == item,
                    None => d.as_char().is_ok_and(|c| {
                        let mut chars = item.chars();
                        chars.next() == Some(c) && chars.next().is_none()
                    }),
                })
        },
    );
    engine.register_fn("starts_with_any", |text: &str, prefixes: Array| -> bool {
        prefixes.iter().any(|p| {
            p.read_lock::<ImmutableString>()
                .is_some_and(|p| text.starts_with(p.as_str()))
        })
    });
    engine.register_fn("ends_with_any", |text: &str, suffixes: Array| -> bool {
        suffixes.iter().any(|p| {
            p.read_lock::<ImmutableString>()
                .is_some_and(|p| text.ends_with(p.as_str()))
        })
    });
    engine.register_fn("join", |items: Array, sep: &str| -> String {
        items
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(sep)
    });

    // Text mechanics.
    engine.register_fn("normalize", |t: &str| text::normalize(t));
    engine.register_fn("tokens", |t: &str| -> Array {
        text::tokens(t).iter().map(|w| s(w)).collect()
    });
    engine.register_fn("similarity", |a: &str, b: &str| {
        let r = text::similarity(a, b);
        probe::note(
            || {
                format!(
                    "similarity({:?}…, {{text}})",
                    a.chars().take(30).collect::<String>()
                )
            },
            Some(b),
            || format!("{r:.3}"),
        );
        r
    });
    engine.register_fn("detect_lang", |t: &str| text::detect_lang(t).to_owned());
    engine.register_fn("strip_quoted", |t: &str| text::strip_quoted(t));
    engine.register_fn("has_pasted_log", |t: &str| text::has_pasted_log(t));
    engine.register_fn("strip_pasted", |t: &str| text::strip_pasted(t));
    engine.register_fn("aimed_at_self", |t: &str, offset: INT| {
        text::aimed_at_self(t, usize::try_from(offset).unwrap_or(0))
    });
    engine.register_fn("is_mojibake", |t: &str| text::is_mojibake(t));
    engine.register_fn("has_meaningful_text", |t: &str| {
        text::has_meaningful_text(t)
    });
    engine.register_fn("domain_of", |addr: &str| -> String {
        addr.rsplit_once('@')
            .map(|(_, d)| d.to_lowercase())
            .unwrap_or_default()
    });

    // Contracts.
    engine.register_fn("contract_of", |id: &str| -> Res<Dynamic> {
        with_ctx(|c| {
            let k = c.contracts.by_client_id(id);
            probe::note(
                || format!("contract_of(\"{id}\")"),
                None,
                || match k {
                    Some(k) => format!(
                        "{} ({}), {}, active: {}",
                        k.client_id,
                        k.name,
                        k.status,
                        k.is_active_at(c.now)
                    ),
                    None => "no such contract".into(),
                },
            );
            k.map(|k| ScriptContract::dynamic(k, c.now))
                .unwrap_or(Dynamic::UNIT)
        })
    });
    super::contract::register(engine);

    // Store look-ups (read-only).
    engine.register_fn("ticket", |number: INT| -> Res<Dynamic> {
        with_ctx(|c| {
            let t = u64::try_from(number).ok().and_then(|n| c.lookups.ticket(n));
            probe::note(
                || format!("ticket({number})"),
                None,
                || match &t {
                    Some(t) => format!(
                        "#{} {}, owner {}, client {}",
                        t.number,
                        t.status.as_str(),
                        t.owner,
                        t.client_id.as_deref().unwrap_or("-")
                    ),
                    None => "no such ticket".into(),
                },
            );
            t.map(|t| ticket_map(&t, c.now)).unwrap_or(Dynamic::UNIT)
        })
    });
    engine.register_fn("ticket_for_message_id", |id: &str| -> Res<Dynamic> {
        with_ctx(|c| {
            let n = c.lookups.ticket_for_message_id(id);
            probe::note(
                || format!("ticket_for_message_id(\"{id}\")"),
                None,
                || n.map_or("none".into(), |n| format!("#{n}")),
            );
            n.map(|n| Dynamic::from_int(n as INT))
                .unwrap_or(Dynamic::UNIT)
        })
    });
    engine.register_fn("open_tickets", |owner: &str, days: INT| -> Res<Array> {
        with_ctx(|c| {
            let since = c.now - jiff::SignedDuration::from_hours(24 * days.max(0));
            c.lookups
                .open_tickets(&owner_key(owner), since)
                .iter()
                .filter(|t| t.created_at <= c.now)
                .map(|t| ticket_map(t, c.now))
                .collect()
        })
    });
    engine.register_fn(
        "open_tickets_about",
        |owner: &str, subject: &str, days: INT| -> Res<Array> {
            with_ctx(|c| {
                let since = c.now - jiff::SignedDuration::from_hours(24 * days.max(0));
                let found: Vec<Ticket> = c
                    .lookups
                    .open_tickets_about(&owner_key(owner), &text::normalize(subject), since)
                    .into_iter()
                    .filter(|t| t.created_at <= c.now)
                    .collect();
                probe::note(
                    || format!("open_tickets_about(\"{owner}\", {{text}}, {days})"),
                    Some(subject),
                    || {
                        let n: Vec<String> =
                            found.iter().map(|t| format!("#{}", t.number)).collect();
                        format!("[{}]", n.join(", "))
                    },
                );
                found.iter().map(|t| ticket_map(t, c.now)).collect()
            })
        },
    );
    engine.register_fn("messages_last_hour", |sender: &str| -> Res<INT> {
        let n = messages_last_hour(sender, 10_000)?;
        probe::note(
            || format!("messages_last_hour(\"{sender}\")"),
            None,
            || n.to_string(),
        );
        Ok(n)
    });
    engine.register_fn("messages_last_hour", |sender: &str, max: INT| -> Res<INT> {
        let n = messages_last_hour(sender, u64::try_from(max).unwrap_or(0))?;
        probe::note(
            || format!("messages_last_hour(\"{sender}\", {max})"),
            None,
            || n.to_string(),
        );
        Ok(n)
    });
    engine.register_fn("now", || -> Res<INT> {
        with_ctx(|c| c.now.as_second() as INT)
    });
}

#[cfg(test)]
mod tests {
    fn eval(script: &str) -> bool {
        super::super::engine::shared()
            .eval::<bool>(script)
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    #[test]
    fn string_membership_is_exact_and_other_types_still_work() {
        assert!(eval(r#""bulk" in ["bulk", "junk"]"#));
        assert!(!eval(r#""bul" in ["bulk", "junk"]"#));
        assert!(!eval(r#""1" in [1, 2]"#));
        assert!(eval(r#""x" in ['x']"#));
        assert!(!eval(r#""xy" in ['x']"#));
        assert!(eval("2 in [1, 2]"));
        assert!(!eval(r#"let a = []; "a" in a"#));
    }

    #[test]
    fn prefix_and_suffix_of_any() {
        assert!(eval(
            r#"starts_with_any("image/png", ["video/", "image/"])"#
        ));
        assert!(!eval(
            r#"starts_with_any("application/x-msdownload", ["application/zip"])"#
        ));
        assert!(eval(
            r#"ends_with_any("dump.LOG".to_lower(), [".txt", ".log"])"#
        ));
        assert!(!eval(r#"ends_with_any("report.docx", [".doc", 5])"#));
    }
}
