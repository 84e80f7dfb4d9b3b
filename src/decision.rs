//! Stage 4, decide: findings → [`Decision`] via the decide script of `rules/`
//! (precedence is policy); this module holds the typed values and their validation.
//!
//! A decision says what happens to a message (SPEC §4): its outcome, the ticket
//! status after it, the findings that led there, the reply template and the ticket.

use serde::{Deserialize, Serialize};

/// A fact a rule established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub rule: String,
    pub detail: String,
    /// The ticket the finding is about (follow-up, duplicate), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<u64>,
}

/// What is done with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Create,
    Append,
    Duplicate,
    Reject,
    Ignore,
}

impl Outcome {
    /// Parses the snake_case name a script returns.
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "create" => Outcome::Create,
            "append" => Outcome::Append,
            "duplicate" => Outcome::Duplicate,
            "reject" => Outcome::Reject,
            "ignore" => Outcome::Ignore,
            _ => return None,
        })
    }
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Create => "create",
            Outcome::Append => "append",
            Outcome::Duplicate => "duplicate",
            Outcome::Reject => "reject",
            Outcome::Ignore => "ignore",
        }
    }
}

/// Ticket lifecycle statuses (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    NeedsInfo,
    NeedsReview,
    Open,
    Escalated,
    Resolved,
    Closed,
}

impl Status {
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "new" => Status::New,
            "needs_info" => Status::NeedsInfo,
            "needs_review" => Status::NeedsReview,
            "open" => Status::Open,
            "escalated" => Status::Escalated,
            "resolved" => Status::Resolved,
            "closed" => Status::Closed,
            _ => return None,
        })
    }
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::NeedsInfo => "needs_info",
            Status::NeedsReview => "needs_review",
            Status::Open => "open",
            Status::Escalated => "escalated",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }
    /// Still waiting for the vendor or the client (not resolved or closed).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }
}

/// The policy's verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// Ticket status after the message; `None` when no ticket is involved.
    pub status: Option<Status>,
    pub findings: Vec<Finding>,
    /// Reply template name, `None` for no reply.
    pub reply: Option<String>,
    /// Ticket number: the one appended to, or the new one once stored.
    pub ticket: Option<u64>,
    /// Language of the reply (`ru`/`en`).
    pub lang: String,
    /// For `create`: an earlier ticket the new one continues (a follow-up on a
    /// ticket closed too long ago to reopen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
    /// Kept with the decision for staff: the encoding detected for the message's
    /// undeclared 8-bit bytes (`msg.charset_guessed`), when the parser had to guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset_guessed: Option<String>,
}

impl Decision {
    /// The forced decision for a message whose policy failed (SPEC §1).
    pub fn policy_error(findings: Vec<Finding>, lang: &str) -> Decision {
        Decision {
            outcome: Outcome::Create,
            status: Some(Status::NeedsReview),
            findings,
            reply: Some("created".to_owned()),
            ticket: None,
            lang: lang.to_owned(),
            link: None,
            charset_guessed: None,
        }
    }

    /// Codes of the findings, in order.
    pub fn codes(&self) -> Vec<&str> {
        self.findings.iter().map(|f| f.code.as_str()).collect()
    }
}

/// Why a decide result is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("decide returned unknown outcome {0:?}")]
    Outcome(String),
    #[error("decide returned unknown status {0:?}")]
    Status(String),
    #[error("decide returned outcome {outcome} without a ticket number")]
    MissingTicket { outcome: &'static str },
    #[error(
        "decide returned status {status} for outcome create (new, needs_info or needs_review)"
    )]
    CreateStatus { status: &'static str },
    #[error("decide returned status {status} for outcome append (only new or open: a client's answer resumes or reopens a ticket)")]
    AppendStatus { status: &'static str },
}

/// Raw fields of a decide script's answer, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawDecision {
    pub outcome: String,
    pub status: Option<String>,
    pub reply: Option<String>,
    pub ticket: Option<u64>,
    pub lang: Option<String>,
    /// `create` only: the earlier ticket the new one links to.
    pub link: Option<u64>,
}

/// Validates what the decide script returned.
///
/// # Errors
/// Unknown outcome or status names, a missing ticket for append/duplicate, a status
/// that a new ticket cannot have.
pub fn validate(
    raw: RawDecision,
    findings: Vec<Finding>,
    default_lang: &str,
) -> Result<Decision, DecisionError> {
    let outcome =
        Outcome::parse(&raw.outcome).ok_or_else(|| DecisionError::Outcome(raw.outcome.clone()))?;
    let status = match raw.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| DecisionError::Status(s.to_owned()))?),
    };
    let status = match outcome {
        Outcome::Create => {
            let s = status.unwrap_or(Status::New);
            if !matches!(s, Status::New | Status::NeedsInfo | Status::NeedsReview) {
                return Err(DecisionError::CreateStatus { status: s.as_str() });
            }
            Some(s)
        }
        Outcome::Append | Outcome::Duplicate => {
            if raw.ticket.is_none() {
                return Err(DecisionError::MissingTicket {
                    outcome: outcome.as_str(),
                });
            }
            // The status a client's follow-up moves the ticket to (resume or
            // reopen); the store applies it only if the lifecycle allows it from
            // the ticket's status at write time. The stored ticket's status is
            // reported after the write.
            match (outcome, status) {
                (Outcome::Append, Some(s @ (Status::New | Status::Open))) => Some(s),
                (Outcome::Append, Some(s)) => {
                    return Err(DecisionError::AppendStatus { status: s.as_str() })
                }
                _ => None,
            }
        }
        Outcome::Reject | Outcome::Ignore => None,
    };
    let ticket = match outcome {
        Outcome::Append | Outcome::Duplicate => raw.ticket,
        _ => None,
    };
    let lang = match raw.lang.as_deref() {
        Some(l @ ("ru" | "en")) => l.to_owned(),
        _ => default_lang.to_owned(),
    };
    Ok(Decision {
        outcome,
        status,
        findings,
        reply: raw.reply.filter(|r| !r.is_empty() && r != "none"),
        ticket,
        lang,
        link: if outcome == Outcome::Create {
            raw.link
        } else {
            None
        },
        charset_guessed: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_needs_a_ticket() {
        let raw = RawDecision {
            outcome: "append".into(),
            ..RawDecision::default()
        };
        assert_eq!(
            validate(raw, vec![], "en").unwrap_err(),
            DecisionError::MissingTicket { outcome: "append" }
        );
    }

    #[test]
    fn create_defaults_to_new_and_refuses_closed() {
        let raw = RawDecision {
            outcome: "create".into(),
            reply: Some("created".into()),
            ..RawDecision::default()
        };
        let d = validate(raw, vec![], "ru").unwrap();
        assert_eq!(d.status, Some(Status::New));
        assert_eq!(d.lang, "ru");
        let raw = RawDecision {
            outcome: "create".into(),
            status: Some("closed".into()),
            ..RawDecision::default()
        };
        assert!(validate(raw, vec![], "ru").is_err());
    }

    #[test]
    fn none_reply_means_no_reply() {
        let raw = RawDecision {
            outcome: "ignore".into(),
            reply: Some("none".into()),
            ..RawDecision::default()
        };
        assert_eq!(validate(raw, vec![], "en").unwrap().reply, None);
    }
}
