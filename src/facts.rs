//! Stage 2, facts: [`ParsedMail`] + [`Envelope`] + contracts → [`Facts`], the
//! read-only view that policy scripts see (SPEC §3). Built once per message.
//!
//! The field names of [`Facts`] are the script API: renaming one breaks policies,
//! so they are listed in `rules/README.md` and versioned with [`FACTS_VERSION`].

use jiff::Timestamp;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::contracts::{Contract, Contracts};
use crate::parse::{Attachment, ParsedMail};
use crate::text;

/// Version of the facts schema exposed to scripts.
pub const FACTS_VERSION: u32 = 1;

/// SMTP envelope as the gateway passed it (optional headers of the hook).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    pub client_ip: Option<String>,
}

/// Everything a rule may look at. Read-only for scripts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub from: String,
    pub from_name: String,
    pub reply_to: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub subject_core: String,
    pub ticket_ref: Option<u64>,
    pub message_id: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub text_new: String,
    pub attachments: Vec<Attachment>,
    pub lang: String,
    pub size: u64,
    pub received_at: Timestamp,
    pub client_ids: Vec<String>,
    pub contract: Option<Contract>,
    pub sender_contract: Option<Contract>,
    pub envelope: Envelope,
    /// False when the bytes could not be parsed as a message at all.
    pub parsed: bool,
    /// The spam scanner's or the trusted gateway's verdict (`msg.spam`).
    #[serde(default)]
    pub spam: Option<crate::spam::SpamVerdict>,
    /// Whether a scanner was asked and answered (`msg.spam_check`).
    #[serde(default)]
    pub spam_check: crate::spam::SpamCheck,
    /// `Authentication-Results` of our own MTA (`msg.auth`).
    #[serde(default)]
    pub auth: Option<crate::spam::AuthResults>,
    /// Where `from` came from: `from`, or `sender`/`reply_to`/`none` when the From
    /// header was broken (the sender is then unverified).
    #[serde(default)]
    pub from_source: String,
    /// Encoding detected for undeclared 8-bit bytes, when there were any.
    #[serde(default)]
    pub charset_guessed: Option<String>,
    /// The body was only an embedded message: `text` is the forwarded message's.
    #[serde(default)]
    pub forwarded: bool,
}

impl Facts {
    /// First value of a header, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::parse::find_header(&self.headers, name)
    }

    /// The address replies go to: a valid `Reply-To`, else `From`.
    pub fn reply_address(&self) -> &str {
        if is_plausible_address(&self.reply_to) {
            &self.reply_to
        } else {
            &self.from
        }
    }
}

/// Whether `s` looks like `local@domain.tld` that a reply can be sent to: one `@`,
/// printable ASCII only (8-bit bytes cannot be sent without SMTPUTF8, which a
/// relay may not offer), no spaces, no control characters, a dotted domain.
pub fn is_plausible_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && s.is_ascii()
        && !domain.contains("..")
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>')
}

/// How subjects and client identifiers are recognised (mechanism settings).
#[derive(Debug, Clone)]
pub struct FactsConfig {
    tag: Regex,
    prefixes: Regex,
    client_id: Regex,
    pub tag_prefix: String,
    /// `spam.authserv_id`: whose `Authentication-Results` are read (none: no `msg.auth`).
    pub authserv_id: Option<String>,
}

impl FactsConfig {
    /// Builds the recognisers for a ticket tag prefix such as `Ticket#`.
    pub fn new(tag_prefix: &str) -> FactsConfig {
        let flexible: Vec<String> = tag_prefix
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| regex::escape(&c.to_string()))
            .collect();
        let tag = format!(r"(?i)\[\s*{}\s*(\d{{1,12}})\s*\]", flexible.join(r"\s*"));
        // Both built from constants and escaped input: they always compile.
        #[allow(clippy::expect_used)]
        FactsConfig {
            tag: Regex::new(&tag).expect("escaped tag pattern compiles"),
            prefixes: Regex::new(
                r"(?i)^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|antw|rif|ref|отв|ответ|пересл|пересылка|переслано|на|rv)(?:\s*[\[(]\d+[\])])?\s*[:：]\s*)+",
            )
            .expect("constant prefix pattern compiles"),
            client_id: Regex::new(r"(?i)\bMI[-‐‑–](\d{3,6})\b").expect("constant id pattern compiles"),
            tag_prefix: tag_prefix.to_owned(),
            authserv_id: None,
        }
    }

    /// The same recognisers reading `Authentication-Results` of `authserv_id`.
    pub fn with_authserv_id(mut self, authserv_id: Option<String>) -> FactsConfig {
        self.authserv_id = authserv_id;
        self
    }

    /// Ticket number from the first tag in `subject`.
    pub fn ticket_ref(&self, subject: &str) -> Option<u64> {
        self.tag
            .captures(subject)
            .and_then(|c| c.get(1))
            .and_then(|m| m.as_str().parse().ok())
    }

    /// Subject without reply/forward prefixes, ticket tags and surrounding noise.
    pub fn subject_core(&self, subject: &str) -> String {
        let no_tags = self.tag.replace_all(subject, " ");
        let mut s: &str = &no_tags;
        loop {
            let trimmed = s.trim_start_matches(|c: char| {
                c.is_whitespace() || "[]()-–—_:;.,!?*#|/\\\"'«»".contains(c)
            });
            let stripped = self.prefixes.replace(trimmed, "");
            if stripped.len() == trimmed.len() {
                s = trimmed;
                break;
            }
            // The prefix regex only removes a leading part; re-borrow from the original.
            s = &trimmed[trimmed.len() - stripped.len()..];
        }
        let core = s.trim_end_matches(|c: char| {
            c.is_whitespace() || "[]()-–—_:;.,!?*#|/\\\"'«»".contains(c)
        });
        core.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Client identifiers in `text`, normalised to `MI-12345`, without repeats.
    pub fn client_ids(&self, texts: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in texts {
            for c in self.client_id.captures_iter(t) {
                if let Some(d) = c.get(1) {
                    let id = format!("MI-{}", d.as_str());
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
        }
        out
    }
}

/// Longest subject scripts see, in bytes (cut at a character boundary): a
/// description is a line (RFC 5322 allows 998 characters), and a megabyte of
/// subject must not make the rules that read it run out of budget.
pub const MAX_SUBJECT: usize = 16 * 1024;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Builds the facts of one message.
pub fn extract_facts(
    mail: &ParsedMail,
    envelope: &Envelope,
    size: u64,
    received_at: Timestamp,
    contracts: &Contracts,
    cfg: &FactsConfig,
) -> Facts {
    let from = mail.from.clone().unwrap_or_default();
    let subject = cut(&mail.subject, MAX_SUBJECT);
    let from_address = from.address.clone();
    let text_new = text::strip_quoted(&mail.text);
    let client_ids = cfg.client_ids(&[subject, &mail.text]);
    let contract = client_ids
        .iter()
        .find_map(|id| contracts.by_client_id(id))
        .cloned();
    // Reply-To never confers identity (SPEC §5): an address taken from it for a broken
    // From names no sender contract.
    let sender_contract = if from.address.is_empty() || mail.from_source == "reply_to" {
        None
    } else {
        contracts.for_sender(&from.address).cloned()
    };
    let (cyr, lat) = text::lang::letters(&text_new);
    let (scyr, slat) = text::lang::letters(subject);
    let lang = if cyr + lat + scyr + slat == 0 {
        contract
            .as_ref()
            .or(sender_contract.as_ref())
            .map(|c| c.language.clone())
            .unwrap_or_else(|| "en".to_owned())
    } else if cyr + lat > 0 {
        text::detect_lang(&text_new).to_owned()
    } else {
        text::detect_lang(subject).to_owned()
    };
    Facts {
        from: from.address,
        from_name: from.name,
        reply_to: mail
            .reply_to
            .as_ref()
            .map(|m| m.address.clone())
            .unwrap_or_default(),
        to: mail.to.clone(),
        cc: mail.cc.clone(),
        subject: subject.to_owned(),
        subject_core: cfg.subject_core(subject),
        ticket_ref: cfg.ticket_ref(subject),
        message_id: mail.message_id.clone().unwrap_or_default(),
        in_reply_to: mail.in_reply_to.clone(),
        references: mail.references.clone(),
        headers: mail.headers.clone(),
        text: mail.text.clone(),
        text_new,
        attachments: mail.attachments.clone(),
        lang,
        size,
        received_at,
        client_ids,
        contract,
        sender_contract,
        envelope: envelope.clone(),
        parsed: mail.parsed,
        spam: None,
        spam_check: crate::spam::SpamCheck::Off,
        auth: cfg
            .authserv_id
            .as_deref()
            .and_then(|id| crate::spam::auth::parse(&mail.headers, id, &from_address)),
        from_source: mail.from_source.clone(),
        charset_guessed: mail.charset_guessed.clone(),
        forwarded: mail.forwarded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FactsConfig {
        FactsConfig::new("Ticket#")
    }

    #[test]
    fn tag_variants_are_found() {
        let c = cfg();
        for s in [
            "[Ticket#100001] EPG",
            "Re: RE: Fwd: [Ticket# 100001] EPG",
            "Отв: [TICKET#100001]",
            "[ticket #100001]",
            "EPG sync [ Ticket # 100001 ]",
        ] {
            assert_eq!(c.ticket_ref(s), Some(100_001), "{s}");
        }
        assert_eq!(c.ticket_ref("Ticket 100001"), None);
        assert_eq!(c.ticket_ref("[Ticket#]"), None);
    }

    #[test]
    fn subject_core_strips_prefixes_tags_and_noise() {
        let c = cfg();
        assert_eq!(
            c.subject_core("Re: RE: Fwd: [Ticket#100001] EPG не обновляется!!!"),
            "EPG не обновляется"
        );
        assert_eq!(c.subject_core("Отв: Пересл: Вопрос"), "Вопрос");
        assert_eq!(c.subject_core("Re[2]: FW: Stream drops"), "Stream drops");
        assert_eq!(c.subject_core("Re: "), "");
        assert_eq!(c.subject_core("???"), "");
        assert_eq!(c.subject_core("Renewal of CAS keys"), "Renewal of CAS keys");
        assert_eq!(c.subject_core("Настройка HLS"), "Настройка HLS");
    }

    #[test]
    fn client_ids_are_normalised() {
        let c = cfg();
        assert_eq!(
            c.client_ids(&[
                "договор mi-10234 и MI-777, MI 555",
                "MI-10234, MI-1234567, MI‑4321"
            ]),
            vec!["MI-10234", "MI-777", "MI-4321"]
        );
    }

    #[test]
    fn reply_to_fallback_confers_no_sender_contract() {
        let contracts = Contracts::parse(
            "[[contract]]\nclient_id = \"MI-20417\"\nname = \"N\"\nlevel = \"standard\"\nstatus = \"active\"\nvalid_until = \"2027-06-30\"\ndomains = [\"y.ru\"]\naddresses = []\nlanguage = \"en\"\n",
        );
        let contracts = contracts.unwrap();
        let facts = |raw: &[u8]| {
            extract_facts(
                &crate::parse::parse(raw),
                &Envelope::default(),
                10,
                Timestamp::UNIX_EPOCH,
                &contracts,
                &cfg(),
            )
        };
        let f = facts(b"From: \"Ivan\"\r\nReply-To: b@y.ru\r\nSubject: s\r\n\r\nhello\r\n");
        assert_eq!(
            (f.from.as_str(), f.from_source.as_str()),
            ("b@y.ru", "reply_to")
        );
        assert!(f.sender_contract.is_none());
        let f = facts(b"From: \"Ivan\"\r\nSender: b@y.ru\r\nSubject: s\r\n\r\nhello\r\n");
        assert_eq!(f.from_source, "sender");
        assert!(f.sender_contract.is_some());
    }

    #[test]
    fn reply_address_prefers_valid_reply_to() {
        let mut f = extract_facts(
            &crate::parse::parse(
                b"From: A <a@x.ru>\r\nReply-To: b@y.ru\r\nSubject: s\r\n\r\nhello there\r\n",
            ),
            &Envelope::default(),
            10,
            Timestamp::UNIX_EPOCH,
            &Contracts::default(),
            &cfg(),
        );
        assert_eq!(f.reply_address(), "b@y.ru");
        f.reply_to = "bad address\r\nBcc: x@y".into();
        assert_eq!(f.reply_address(), "a@x.ru");
    }
}
