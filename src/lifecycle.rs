//! Ticket lifecycle after intake: statuses and their allowed transitions (SPEC §4),
//! SLA timers (reaction and in-work, paused while waiting for the client), staff
//! replies and status notifications as outbox items.
//!
//! Input: a stored [`Ticket`] and what a person did to it (a client's follow-up, a
//! staff status change or reply); output: the ticket changed in place, the
//! [`TicketEvent`] that records it, and the mail to queue. Everything here is pure
//! over its arguments (the clock is a parameter), so tests inject time; the store
//! applies it in one transaction ([`crate::store::Store::change_ticket`]).
//!
//! Which changes email the client is policy: `rules/notify.toml` ([`NotifyPolicy`]).

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::decision::Status;
use crate::sla::SlaConfig;
use crate::store::{OutboxItem, ReplyIntent, Ticket, TicketEvent};

/// Why a lifecycle action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("ticket {ticket} is {from}; it cannot move to {to}")]
    NotAllowed {
        ticket: u64,
        from: &'static str,
        to: &'static str,
    },
    #[error("ticket {ticket} is already {status}")]
    Unchanged { ticket: u64, status: &'static str },
    #[error("ticket {ticket} is {status}: it takes no replies")]
    Finished { ticket: u64, status: &'static str },
    #[error("a reply needs some text")]
    EmptyReply,
}

/// One pause of the SLA timers (the ticket waited for the client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub from: Timestamp,
    /// `None` while the pause lasts.
    pub to: Option<Timestamp>,
}

/// The state of a ticket's SLA timers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timers {
    /// First staff reply: stops the reaction timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reacted_at: Option<Timestamp>,
    /// First move to `open`: stops the in-work timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_work_at: Option<Timestamp>,
    /// Time in `needs_info` does not count against the vendor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<Pause>,
}

impl Timers {
    /// Whether the timers are paused now.
    pub fn paused(&self) -> bool {
        self.pauses.last().is_some_and(|p| p.to.is_none())
    }
}

/// Statuses staff may move a ticket to from `from`.
pub fn staff_targets(from: Status) -> &'static [Status] {
    use Status::*;
    match from {
        New => &[Open, NeedsInfo, Escalated, Resolved, Closed],
        NeedsReview => &[New, Open, NeedsInfo, Closed],
        NeedsInfo => &[Open, Escalated, Resolved, Closed],
        Open => &[NeedsInfo, Escalated, Resolved],
        Escalated => &[Open, NeedsInfo, Resolved],
        Resolved => &[Open, Closed],
        Closed => &[],
    }
}

/// Statuses a client's own follow-up may move a ticket to from `from`: an answer
/// to a question resumes it; an answer to a resolved ticket reopens it.
pub fn client_targets(from: Status) -> &'static [Status] {
    use Status::*;
    match from {
        NeedsInfo => &[New, Open],
        Resolved => &[Open],
        _ => &[],
    }
}

/// Whether the ticket has ever been taken into work.
pub fn was_opened(t: &Ticket) -> bool {
    t.timers.in_work_at.is_some() || t.events.iter().any(|e| e.to == Some(Status::Open))
}

/// When the ticket got its current status.
pub fn status_since(t: &Ticket) -> Timestamp {
    t.events
        .iter()
        .rev()
        .find(|e| e.to == Some(t.status))
        .map(|e| e.at)
        .unwrap_or(t.created_at)
}

/// Timer bookkeeping for a new ticket (one created as `needs_info` starts paused).
pub fn on_created(t: &mut Ticket) {
    if t.status == Status::NeedsInfo && !t.timers.paused() {
        t.timers.pauses.push(Pause {
            from: t.created_at,
            to: None,
        });
    }
}

/// Moves the status and keeps the timers right; records nothing.
fn set_status(t: &mut Ticket, to: Status, at: Timestamp) {
    if t.status == Status::NeedsInfo && to != Status::NeedsInfo {
        if let Some(p) = t.timers.pauses.last_mut().filter(|p| p.to.is_none()) {
            p.to = Some(at.max(p.from));
        }
    }
    if to == Status::NeedsInfo && !t.timers.paused() {
        t.timers.pauses.push(Pause { from: at, to: None });
    }
    if to == Status::Open && t.timers.in_work_at.is_none() {
        t.timers.in_work_at = Some(at);
    }
    t.status = to;
    t.updated_at = t.updated_at.max(at);
}

/// A staff status change with its note: checked against [`staff_targets`],
/// applied, and recorded as an event (who, when, from, to, why).
///
/// `by` is recorded as given: the authenticated caller (`staff:<email>`, `api`, `admin`).
///
/// # Errors
/// The ticket already has that status, or the transition is not allowed.
pub fn staff_change(
    t: &mut Ticket,
    to: Status,
    by: &str,
    note: &str,
    at: Timestamp,
) -> Result<TicketEvent, LifecycleError> {
    let from = t.status;
    if from == to {
        return Err(LifecycleError::Unchanged {
            ticket: t.number,
            status: to.as_str(),
        });
    }
    if !staff_targets(from).contains(&to) {
        return Err(LifecycleError::NotAllowed {
            ticket: t.number,
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    set_status(t, to, at);
    let event = TicketEvent {
        at,
        kind: "status".into(),
        detail: format!("{} -> {}", from.as_str(), to.as_str()),
        by: Some(by.to_owned()),
        from: Some(from),
        to: Some(to),
        note: Some(note.to_owned()).filter(|n| !n.is_empty()),
        message_id: None,
        public: true,
    };
    t.events.push(event.clone());
    Ok(event)
}

/// A client's follow-up asks (through the policy) for status `to`: applied when
/// [`client_targets`] allows it from the ticket's current status, else ignored
/// (the status changed since the policy looked). Returns the event when applied.
pub fn client_answer(
    t: &mut Ticket,
    to: Status,
    from_addr: &str,
    at: Timestamp,
) -> Option<TicketEvent> {
    let from = t.status;
    if from == to || !client_targets(from).contains(&to) {
        return None;
    }
    set_status(t, to, at);
    let why = if from == Status::Resolved {
        "reopened by the client's follow-up"
    } else {
        "the client answered"
    };
    let event = TicketEvent {
        at,
        kind: "status".into(),
        detail: format!("{} -> {}", from.as_str(), to.as_str()),
        by: Some(format!("client:{from_addr}")),
        from: Some(from),
        to: Some(to),
        note: Some(why.to_owned()),
        message_id: None,
        public: true,
    };
    t.events.push(event.clone());
    Some(event)
}

/// Due times with the pauses added, and whether each timer is overdue at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaView {
    pub level: String,
    pub reaction_due: Timestamp,
    pub in_work_due: Timestamp,
    pub reacted_at: Option<Timestamp>,
    pub in_work_at: Option<Timestamp>,
    pub paused: bool,
    pub reaction_overdue: bool,
    pub in_work_overdue: bool,
}

impl SlaView {
    /// Either timer overdue.
    pub fn overdue(&self) -> bool {
        self.reaction_overdue || self.in_work_overdue
    }
}

/// The ticket's SLA as of `now`: due times pushed later by the counted time the
/// ticket spent waiting for the client; a stopped or paused timer is never overdue,
/// nor is any timer of a resolved or closed ticket.
pub fn sla_view(t: &Ticket, sla: &SlaConfig, now: Timestamp) -> Option<SlaView> {
    let due = t.sla.as_ref()?;
    let paused: std::time::Duration = t
        .timers
        .pauses
        .iter()
        .map(|p| sla.counted_between(&due.level, p.from, p.to.unwrap_or(now).max(p.from)))
        .sum();
    let reaction_due = sla.extend(&due.level, due.reaction_due, paused);
    let in_work_due = sla.extend(&due.level, due.in_work_due, paused);
    let running = t.status.is_open() && !t.timers.paused();
    Some(SlaView {
        level: due.level.clone(),
        reaction_due,
        in_work_due,
        reacted_at: t.timers.reacted_at,
        in_work_at: t.timers.in_work_at,
        paused: t.timers.paused(),
        reaction_overdue: running && t.timers.reacted_at.is_none() && now > reaction_due,
        in_work_overdue: running && t.timers.in_work_at.is_none() && now > in_work_due,
    })
}

/// Overdue tickets of one contract level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OverdueCount {
    pub reaction: u64,
    pub in_work: u64,
    /// Tickets with either timer overdue.
    pub tickets: u64,
}

/// Overdue counts per contract level at `now` (every configured level appears,
/// with zeros): the figures a metrics endpoint exports.
pub fn overdue_counts<'a>(
    tickets: impl IntoIterator<Item = &'a Ticket>,
    sla: &SlaConfig,
    now: Timestamp,
) -> BTreeMap<String, OverdueCount> {
    let mut out: BTreeMap<String, OverdueCount> = sla
        .levels
        .keys()
        .map(|l| (l.clone(), OverdueCount::default()))
        .collect();
    for t in tickets {
        let Some(v) = sla_view(t, sla, now) else {
            continue;
        };
        let c = out.entry(v.level.clone()).or_default();
        c.reaction += u64::from(v.reaction_overdue);
        c.in_work += u64::from(v.in_work_overdue);
        c.tickets += u64::from(v.overdue());
    }
    out
}

/// Message-IDs of the ticket's conversation, oldest first (for `References`).
fn thread_ids(t: &Ticket) -> Vec<String> {
    t.events
        .iter()
        .filter_map(|e| e.message_id.clone())
        .collect()
}

/// The client's latest message in the ticket (what a reply answers).
fn last_client_message(t: &Ticket) -> Option<String> {
    t.events
        .iter()
        .rev()
        .filter(|e| e.by.as_deref().is_some_and(|b| b.starts_with("client:")))
        .find_map(|e| e.message_id.clone())
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where mail about a ticket goes and what it answers.
fn intent_for(
    t: &Ticket,
    template: &str,
    vars: BTreeMap<String, String>,
    human: bool,
) -> ReplyIntent {
    ReplyIntent {
        template: template.to_owned(),
        lang: t.lang.clone(),
        to: t.owner.clone(),
        original_subject: t.subject.clone(),
        original_message_id: last_client_message(t),
        references: thread_ids(t),
        vars,
        human,
    }
}

fn item_for(
    t: &Ticket,
    what: &str,
    intent: ReplyIntent,
    domain: &str,
    at: Timestamp,
) -> OutboxItem {
    let n = t.events.len();
    let message_id = format!("intake.t{}.{what}{n}.{}@{domain}", t.number, random_hex(6));
    let mut key = format!("{what}:").into_bytes();
    key.extend_from_slice(&t.number.to_be_bytes());
    key.extend_from_slice(&(n as u64).to_be_bytes());
    OutboxItem::standalone(key, Some(t.number), intent, message_id, at)
}

/// A staff reply: an email to the client (template `staff_reply`, ticket tag in
/// the subject, answering the client's latest message), an event in the history,
/// and the reaction timer stopped.
///
/// `by` is recorded as given (see [`staff_change`]).
///
/// # Errors
/// Empty text; the ticket is closed.
pub fn staff_reply(
    t: &mut Ticket,
    by: &str,
    text: &str,
    domain: &str,
    at: Timestamp,
) -> Result<OutboxItem, LifecycleError> {
    if text.trim().is_empty() {
        return Err(LifecycleError::EmptyReply);
    }
    if t.status == Status::Closed {
        return Err(LifecycleError::Finished {
            ticket: t.number,
            status: t.status.as_str(),
        });
    }
    let mut vars = BTreeMap::new();
    vars.insert("text".to_owned(), text.to_owned());
    vars.insert("author".to_owned(), by.to_owned());
    let item = item_for(
        t,
        "reply",
        intent_for(t, "staff_reply", vars, true),
        domain,
        at,
    );
    if t.timers.reacted_at.is_none() {
        t.timers.reacted_at = Some(at);
    }
    t.updated_at = t.updated_at.max(at);
    t.events.push(TicketEvent {
        at,
        kind: "staff_reply".into(),
        detail: format!("reply to {}", t.owner),
        by: Some(by.to_owned()),
        note: Some(text.to_owned()),
        message_id: Some(item.message_id.clone()),
        public: true,
        ..TicketEvent::default()
    });
    Ok(item)
}

/// Which status changes email the client: `rules/notify.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyPolicy {
    /// Status moved to → reply template announcing it.
    #[serde(default)]
    pub on_status: BTreeMap<String, String>,
    /// Announce changes the client's own follow-up caused (default: no).
    #[serde(default)]
    pub notify_client_changes: bool,
}

/// Why `rules/notify.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

/// The file name of the notification policy under `rules/`.
pub const NOTIFY_FILE: &str = "notify.toml";

impl NotifyPolicy {
    /// Loads `rules/notify.toml`; a missing file notifies nothing.
    ///
    /// # Errors
    /// Unreadable file, bad TOML, unknown keys or statuses.
    pub fn load(rules_root: &Path) -> Result<NotifyPolicy, NotifyError> {
        let path = rules_root.join(NOTIFY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(NotifyPolicy::default())
            }
            Err(source) => return Err(NotifyError::Read { path, source }),
        };
        let p: NotifyPolicy = toml::from_str(&text).map_err(|e| NotifyError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(bad) = p.on_status.keys().find(|k| Status::parse(k).is_none()) {
            return Err(NotifyError::Invalid {
                path,
                message: format!("on_status: unknown status {bad:?}"),
            });
        }
        Ok(p)
    }

    /// The template announcing `event`, if the policy notifies it.
    pub fn template_for(&self, event: &TicketEvent) -> Option<&str> {
        let to = event.to?;
        let by_client = event
            .by
            .as_deref()
            .is_some_and(|b| b.starts_with("client:"));
        if by_client && !self.notify_client_changes {
            return None;
        }
        self.on_status.get(to.as_str()).map(String::as_str)
    }
}

/// The email announcing a status change, when the policy asks for one.
/// `public_note`: whether the note goes to the client (staff notes are internal
/// unless said otherwise).
pub fn notification(
    t: &Ticket,
    event: &TicketEvent,
    policy: &NotifyPolicy,
    public_note: bool,
    domain: &str,
) -> Option<OutboxItem> {
    let template = policy.template_for(event)?;
    let mut vars = BTreeMap::new();
    if let Some(to) = event.to {
        vars.insert("status".to_owned(), to.as_str().to_owned());
    }
    if let Some(from) = event.from {
        vars.insert("previous_status".to_owned(), from.as_str().to_owned());
    }
    // Always present (templates run with strict undefined); empty unless public.
    let note = match (public_note, &event.note) {
        (true, Some(note)) => note.clone(),
        _ => String::new(),
    };
    vars.insert("note".to_owned(), note);
    Some(item_for(
        t,
        "status",
        intent_for(t, template, vars, false),
        domain,
        event.at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::{Calendar, LevelSpec, SlaDue};
    use std::time::Duration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sla() -> SlaConfig {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .map(String::from)
            .to_vec();
        let mut levels = BTreeMap::new();
        levels.insert(
            "standard".to_owned(),
            LevelSpec {
                reaction: Duration::from_secs(4 * 3600),
                in_work: Duration::from_secs(24 * 3600),
                business_hours: true,
            },
        );
        levels.insert(
            "premium".to_owned(),
            LevelSpec {
                reaction: Duration::from_secs(3600),
                in_work: Duration::from_secs(8 * 3600),
                business_hours: false,
            },
        );
        SlaConfig {
            calendar: Calendar::parse("Europe/Moscow", &days, "09:00-18:00").unwrap(),
            levels,
        }
    }

    fn ticket(status: Status, level: &str, created: &str) -> Ticket {
        let created = ts(created);
        let cfg = sla();
        let mut t = Ticket {
            number: 100_001,
            status,
            client_id: Some("MI-1".into()),
            owner: "client@example.com".into(),
            subject: "EPG stalls".into(),
            subject_core: "EPG stalls".into(),
            lang: "en".into(),
            created_at: created,
            updated_at: created,
            sla: cfg.due(level, created),
            messages: vec![1],
            text_norm: String::new(),
            events: vec![TicketEvent {
                at: created,
                kind: "created".into(),
                to: Some(status),
                by: Some("client:client@example.com".into()),
                message_id: Some("m1@client".into()),
                public: true,
                ..TicketEvent::default()
            }],
            timers: Timers::default(),
            link: None,
        };
        on_created(&mut t);
        t
    }

    #[test]
    fn staff_walks_the_main_path_and_history_records_each_step() {
        let mut t = ticket(Status::New, "standard", "2026-11-24T07:00:00Z");
        let steps = [
            (Status::Open, "taking it"),
            (Status::Escalated, "passed to development"),
            (Status::Open, "fix available"),
            (Status::Resolved, "fixed in 5.2"),
            (Status::Closed, "confirmed"),
        ];
        for (i, (to, note)) in steps.iter().enumerate() {
            let at = ts("2026-11-24T08:00:00Z") + jiff::SignedDuration::from_mins(i as i64);
            let e = staff_change(&mut t, *to, "staff:anna", note, at).unwrap();
            assert_eq!(e.to, Some(*to));
            assert_eq!(e.by.as_deref(), Some("staff:anna"));
            assert_eq!(e.note.as_deref(), Some(*note));
            assert_eq!(e.at, at);
        }
        assert_eq!(t.status, Status::Closed);
        let changes: Vec<_> = t.events.iter().filter(|e| e.kind == "status").collect();
        assert_eq!(changes.len(), 5);
        assert_eq!(changes[1].from, Some(Status::Open));
    }

    #[test]
    fn forbidden_transitions_are_refused() {
        let mut t = ticket(Status::New, "standard", "2026-11-24T07:00:00Z");
        let at = ts("2026-11-24T08:00:00Z");
        assert!(matches!(
            staff_change(&mut t, Status::New, "a", "", at),
            Err(LifecycleError::Unchanged { .. })
        ));
        staff_change(&mut t, Status::Resolved, "a", "", at).unwrap();
        assert!(matches!(
            staff_change(&mut t, Status::Escalated, "a", "", at),
            Err(LifecycleError::NotAllowed { .. })
        ));
        staff_change(&mut t, Status::Closed, "a", "", at).unwrap();
        for s in [Status::Open, Status::New, Status::Resolved] {
            assert!(staff_change(&mut t, s, "a", "", at).is_err());
        }
        assert!(staff_reply(&mut t, "a", "hello", "v.example", at).is_err());
    }

    #[test]
    fn client_answer_resumes_needs_info_and_reopens_resolved_only() {
        let mut t = ticket(Status::NeedsInfo, "standard", "2026-11-24T07:00:00Z");
        let at = ts("2026-11-24T09:00:00Z");
        assert!(client_answer(&mut t, Status::New, "client@example.com", at).is_some());
        assert_eq!(t.status, Status::New);
        // An answer on a ticket in work changes nothing.
        staff_change(&mut t, Status::Open, "a", "", at).unwrap();
        assert!(client_answer(&mut t, Status::New, "client@example.com", at).is_none());
        assert_eq!(t.status, Status::Open);
        staff_change(&mut t, Status::Resolved, "a", "", at).unwrap();
        let e = client_answer(&mut t, Status::Open, "client@example.com", at).unwrap();
        assert_eq!((e.from, e.to), (Some(Status::Resolved), Some(Status::Open)));
        assert!(was_opened(&t));
        staff_change(&mut t, Status::Resolved, "a", "", at).unwrap();
        staff_change(&mut t, Status::Closed, "a", "", at).unwrap();
        assert!(client_answer(&mut t, Status::Open, "client@example.com", at).is_none());
        assert_eq!(t.status, Status::Closed);
    }

    #[test]
    fn reaction_is_overdue_after_its_business_hours_until_a_staff_reply() {
        // Standard: 4 business hours. Created Fri 2026-11-27 16:00 MSK (13:00Z):
        // 2h on Friday, 2h on Monday -> due Mon 11:00 MSK = 08:00Z.
        let mut t = ticket(Status::New, "standard", "2026-11-27T13:00:00Z");
        let cfg = sla();
        let v = sla_view(&t, &cfg, ts("2026-11-30T07:59:00Z")).unwrap();
        assert_eq!(v.reaction_due, ts("2026-11-30T08:00:00Z"));
        assert!(!v.reaction_overdue);
        // Saturday: the wall clock ran, business hours did not.
        assert!(!sla_view(&t, &cfg, ts("2026-11-28T20:00:00Z"))
            .unwrap()
            .overdue());
        let late = ts("2026-11-30T08:01:00Z");
        assert!(sla_view(&t, &cfg, late).unwrap().reaction_overdue);
        let counts = overdue_counts([&t], &cfg, late);
        assert_eq!(counts["standard"].reaction, 1);
        assert_eq!(counts["premium"], OverdueCount::default());
        staff_reply(&mut t, "anna", "Looking at it.", "v.example", late).unwrap();
        let v = sla_view(&t, &cfg, late).unwrap();
        assert!(!v.reaction_overdue);
        assert_eq!(v.reacted_at, Some(late));
    }

    #[test]
    fn moving_to_open_stops_the_in_work_timer() {
        // Premium: 8h round the clock.
        let mut t = ticket(Status::New, "premium", "2026-11-28T10:00:00Z");
        let cfg = sla();
        assert!(
            sla_view(&t, &cfg, ts("2026-11-28T18:30:00Z"))
                .unwrap()
                .in_work_overdue
        );
        staff_change(&mut t, Status::Open, "a", "", ts("2026-11-28T12:00:00Z")).unwrap();
        let v = sla_view(&t, &cfg, ts("2026-11-28T18:30:00Z")).unwrap();
        assert!(!v.in_work_overdue);
        assert_eq!(v.in_work_at, Some(ts("2026-11-28T12:00:00Z")));
        // Going back and forth does not restart it.
        staff_change(
            &mut t,
            Status::Escalated,
            "a",
            "",
            ts("2026-11-28T13:00:00Z"),
        )
        .unwrap();
        staff_change(&mut t, Status::Open, "a", "", ts("2026-11-28T14:00:00Z")).unwrap();
        assert_eq!(t.timers.in_work_at, Some(ts("2026-11-28T12:00:00Z")));
    }

    #[test]
    fn needs_info_pauses_business_hour_timers_across_a_weekend() {
        // Standard, created Thu 2026-11-26 10:00 MSK (07:00Z): reaction due 14:00 MSK.
        let mut t = ticket(Status::New, "standard", "2026-11-26T07:00:00Z");
        let cfg = sla();
        // Staff ask a question at 11:00 MSK (1h used) ...
        staff_change(
            &mut t,
            Status::NeedsInfo,
            "a",
            "which version?",
            ts("2026-11-26T08:00:00Z"),
        )
        .unwrap();
        // ... while waiting, nothing is overdue, even days later.
        let v = sla_view(&t, &cfg, ts("2026-11-30T12:00:00Z")).unwrap();
        assert!(v.paused && !v.overdue());
        // The client answers Fri 17:00 MSK (14:00Z). Paused business time:
        // Thu 11:00-18:00 (7h) + Fri 09:00-17:00 (8h) = 15h. Reaction due
        // Thu 14:00 + 15 business hours = Fri 17:00 + ... : Thu 14-18 (4h), Fri 9-18 (9h),
        // Mon 9-11 (2h) -> Mon 2026-11-30 11:00 MSK = 08:00Z.
        client_answer(
            &mut t,
            Status::New,
            "client@example.com",
            ts("2026-11-27T14:00:00Z"),
        )
        .unwrap();
        let v = sla_view(&t, &cfg, ts("2026-11-30T07:00:00Z")).unwrap();
        assert!(!v.paused);
        assert_eq!(v.reaction_due, ts("2026-11-30T08:00:00Z"));
        assert!(!v.reaction_overdue);
        assert!(
            sla_view(&t, &cfg, ts("2026-11-30T08:30:00Z"))
                .unwrap()
                .reaction_overdue
        );
    }

    #[test]
    fn created_waiting_for_the_client_starts_paused() {
        let t = ticket(Status::NeedsInfo, "premium", "2026-11-24T07:00:00Z");
        assert!(t.timers.paused());
        let cfg = sla();
        assert!(!sla_view(&t, &cfg, ts("2026-12-24T07:00:00Z"))
            .unwrap()
            .overdue());
    }

    #[test]
    fn staff_reply_threads_under_the_clients_message() {
        let mut t = ticket(Status::Open, "premium", "2026-11-24T07:00:00Z");
        let item = staff_reply(
            &mut t,
            "anna",
            "Try 5.2.",
            "vendor.example",
            ts("2026-11-24T08:00:00Z"),
        )
        .unwrap();
        assert!(item.message_id.ends_with("@vendor.example"));
        assert_eq!(
            item.intent.original_message_id.as_deref(),
            Some("m1@client")
        );
        assert_eq!(item.intent.template, "staff_reply");
        assert!(item.intent.human);
        assert_eq!(item.intent.vars["text"], "Try 5.2.");
        let e = t.events.last().unwrap();
        assert_eq!(e.message_id.as_deref(), Some(item.message_id.as_str()));
        let again = staff_reply(
            &mut t,
            "anna",
            "And 5.3.",
            "vendor.example",
            ts("2026-11-24T09:00:00Z"),
        )
        .unwrap();
        assert_ne!(again.key, item.key);
        assert_ne!(again.message_id, item.message_id);
        assert!(matches!(
            staff_reply(
                &mut t,
                "anna",
                "  ",
                "vendor.example",
                ts("2026-11-24T09:00:00Z")
            ),
            Err(LifecycleError::EmptyReply)
        ));
    }

    #[test]
    fn notify_policy_picks_templates_and_keeps_notes_internal_by_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(NOTIFY_FILE),
            "[on_status]\nresolved = \"status_changed\"\n",
        )
        .unwrap();
        let p = NotifyPolicy::load(dir.path()).unwrap();
        let mut t = ticket(Status::Open, "premium", "2026-11-24T07:00:00Z");
        let at = ts("2026-11-24T08:00:00Z");
        let e = staff_change(&mut t, Status::Escalated, "a", "internal", at).unwrap();
        assert!(notification(&t, &e, &p, false, "v.example").is_none());
        let e = staff_change(&mut t, Status::Resolved, "a", "fixed", at).unwrap();
        let item = notification(&t, &e, &p, false, "v.example").unwrap();
        assert_eq!(item.intent.template, "status_changed");
        assert_eq!(item.intent.vars["status"], "resolved");
        assert_eq!(item.intent.vars["note"], "");
        let item = notification(&t, &e, &p, true, "v.example").unwrap();
        assert_eq!(item.intent.vars["note"], "fixed");
        // The client's own reopen is not announced to them.
        let e = client_answer(&mut t, Status::Open, "client@example.com", at).unwrap();
        assert!(notification(&t, &e, &p, true, "v.example").is_none());
        std::fs::write(dir.path().join(NOTIFY_FILE), "[on_status]\ndone = \"x\"\n").unwrap();
        assert!(NotifyPolicy::load(dir.path()).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            NotifyPolicy::load(empty.path()).unwrap(),
            NotifyPolicy::default()
        );
    }

    #[test]
    fn sla_due_unchanged_without_pauses() {
        let t = ticket(Status::New, "standard", "2026-11-24T07:00:00Z");
        let cfg = sla();
        let v = sla_view(&t, &cfg, ts("2026-11-24T07:00:00Z")).unwrap();
        let SlaDue {
            reaction_due,
            in_work_due,
            ..
        } = t.sla.clone().unwrap();
        assert_eq!((v.reaction_due, v.in_work_due), (reaction_due, in_work_due));
    }
}
