//! The ticket list, the ticket page with its public history, and the reply form
//! that files a follow-up through the pipeline exactly as an email would.

use actix_web::{web, HttpRequest, HttpResponse};
use jiff::Timestamp;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::auth::{same_token, Session};
use super::pages::{blocking, now, redirect, session, texts, Page};
use super::{Portal, PortalError};
use crate::decision::{Outcome, Status};
use crate::facts::Envelope;
use crate::lifecycle;
use crate::pipeline::Prepared;
use crate::store::Ticket;

fn fmt_time(portal: &Portal, t: Timestamp) -> String {
    t.to_zoned(portal.pipeline.sla.calendar.tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[derive(Serialize)]
struct Row {
    number: u64,
    tag: String,
    subject: String,
    status: &'static str,
    created: String,
    reaction_due: Option<String>,
    in_work_due: Option<String>,
    reaction_state: &'static str,
    in_work_state: &'static str,
    paused: bool,
    link: Option<u64>,
}

fn timer_state(stopped: bool, overdue: bool) -> &'static str {
    if stopped {
        "done"
    } else if overdue {
        "overdue"
    } else {
        "running"
    }
}

fn row(portal: &Portal, t: &Ticket, at: Timestamp) -> Row {
    let v = lifecycle::sla_view(t, &portal.pipeline.sla, at);
    Row {
        number: t.number,
        tag: format!("[{}{}]", portal.tag_prefix, t.number),
        subject: t.subject.clone(),
        status: t.status.as_str(),
        created: fmt_time(portal, t.created_at),
        reaction_due: v.as_ref().map(|v| fmt_time(portal, v.reaction_due)),
        in_work_due: v.as_ref().map(|v| fmt_time(portal, v.in_work_due)),
        reaction_state: v
            .as_ref()
            .map(|v| timer_state(v.reacted_at.is_some(), v.reaction_overdue))
            .unwrap_or(""),
        in_work_state: v
            .as_ref()
            .map(|v| timer_state(v.in_work_at.is_some(), v.in_work_overdue))
            .unwrap_or(""),
        paused: v.as_ref().is_some_and(|v| v.paused),
        link: t.link,
    }
}

pub(super) async fn list(
    req: HttpRequest,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    let Some((_, s)) = session(&portal, &req).await? else {
        return Ok(redirect("/portal"));
    };
    let store = portal.pipeline.store.clone();
    let client = s.client_id.clone();
    let tickets = blocking(move || store.client_tickets(&client)).await?;
    let at = now(&portal);
    let rows: Vec<Row> = tickets.iter().map(|t| row(&portal, t, at)).collect();
    let mut page = Page::new(&portal, &req);
    let lang = page.lang();
    page.render(
        actix_web::http::StatusCode::OK,
        "list.html",
        context! { lang, t => texts(lang), rows, session => context!{ email => s.email, csrf => s.csrf } },
    )
}

#[derive(Serialize)]
struct Entry {
    at: String,
    kind: &'static str,
    who: String,
    text: String,
    subject: String,
    from: Option<&'static str>,
    to: Option<&'static str>,
}

/// Longest message text shown on a page.
const SHOW_CAP: usize = 20_000;

fn message_entry(
    portal: &Portal,
    t: &Ticket,
    seq: u64,
    at: Timestamp,
) -> Result<Option<Entry>, crate::store::StoreError> {
    let store = &portal.pipeline.store;
    let Some(rec) = store.message(seq)? else {
        return Ok(None);
    };
    let raw = store.raw_message(seq)?.unwrap_or_default();
    let parsed = crate::parse::parse(&raw);
    let mut text = crate::text::quote::strip_quoted(&parsed.text);
    if text.trim().is_empty() {
        text = parsed.text;
    }
    if text.len() > SHOW_CAP {
        let mut cut = SHOW_CAP;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    let _ = t;
    Ok(Some(Entry {
        at: fmt_time(portal, at),
        kind: "message",
        who: rec.from,
        text: text.trim().to_owned(),
        subject: rec.subject,
        from: None,
        to: None,
    }))
}

/// The public history of a ticket: the client's messages, staff replies, status
/// changes (with their note only when it was made public).
fn history(portal: &Portal, t: &Ticket) -> Result<Vec<Entry>, crate::store::StoreError> {
    let mut out = Vec::new();
    for e in &t.events {
        match e.kind.as_str() {
            "created" => {
                if let Some(seq) = t.messages.first() {
                    out.extend(message_entry(portal, t, *seq, e.at)?);
                }
            }
            "append" | "duplicate" => {
                let seq = e
                    .detail
                    .strip_prefix("message ")
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(seq) = seq {
                    out.extend(message_entry(portal, t, seq, e.at)?);
                }
            }
            "staff_reply" => out.push(Entry {
                at: fmt_time(portal, e.at),
                kind: "staff",
                who: e
                    .by
                    .as_deref()
                    .and_then(|b| b.strip_prefix("staff:"))
                    .unwrap_or("")
                    .to_owned(),
                text: e.note.clone().unwrap_or_default(),
                subject: String::new(),
                from: None,
                to: None,
            }),
            "status" => out.push(Entry {
                at: fmt_time(portal, e.at),
                kind: "status",
                who: String::new(),
                text: if e.public {
                    e.note.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                subject: String::new(),
                from: e.from.map(Status::as_str),
                to: e.to.map(Status::as_str),
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// The ticket of this number if it belongs to the session's client; anything
/// else (no such ticket, another client's) is the same 404.
async fn own_ticket(
    portal: &web::Data<Portal>,
    s: &Session,
    number: &str,
) -> Result<Ticket, PortalError> {
    let number: u64 = number.parse().map_err(|_| PortalError::NotFound)?;
    let store = portal.pipeline.store.clone();
    let t = blocking(move || store.ticket(number)).await?;
    match t {
        Some(t) if t.client_id.as_deref() == Some(s.client_id.as_str()) => Ok(t),
        _ => Err(PortalError::NotFound),
    }
}

#[derive(Deserialize)]
pub(super) struct TicketQuery {
    filed: Option<String>,
    detail: Option<String>,
}

pub(super) async fn ticket_page(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<TicketQuery>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    let Some((_, s)) = session(&portal, &req).await? else {
        return Ok(redirect("/portal"));
    };
    let t = own_ticket(&portal, &s, &path).await?;
    let p = portal.clone();
    let t2 = t.clone();
    let entries = blocking(move || history(&p, &t2)).await?;
    let at = now(&portal);
    let mut page = Page::new(&portal, &req);
    let lang = page.lang();
    let filed = query.filed.as_deref().map(|f| match f {
        "append" => "append",
        "create" => "create",
        _ => "other",
    });
    page.render(
        actix_web::http::StatusCode::OK,
        "ticket.html",
        context! {
            lang,
            t => texts(lang),
            ticket => row(&portal, &t, at),
            closed => t.status == Status::Closed,
            entries,
            filed,
            filed_detail => query.detail.clone(),
            session => context!{ email => s.email, csrf => s.csrf },
        },
    )
}

#[derive(Deserialize)]
pub(super) struct ReplyForm {
    csrf: String,
    text: String,
}

/// The raw RFC 5322 message a portal reply files: from the signed-in address to
/// the desk, with the ticket tag in the subject and threading headers.
fn reply_message(
    portal: &Portal,
    s: &Session,
    t: &Ticket,
    text: &str,
    at: Timestamp,
) -> Result<(Vec<u8>, String), PortalError> {
    use lettre::message::{header::ContentType, Mailbox};
    let from: Mailbox = s
        .email
        .parse()
        .map_err(|e| PortalError::Internal(format!("session address: {e}")))?;
    let to: Mailbox = portal
        .reply_from
        .parse()
        .map_err(|e| PortalError::Internal(format!("smtp.from: {e}")))?;
    let domain = portal
        .reply_from
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| "intake.invalid".into());
    let id = format!("portal.{}@{domain}", &super::auth::random_token()[..40]);
    let core: String = t.subject_core.chars().filter(|c| !c.is_control()).collect();
    let subject = format!("Re: [{}{}] {core}", portal.tag_prefix, t.number);
    let ids: Vec<String> = t
        .events
        .iter()
        .filter_map(|e| e.message_id.clone())
        .map(|m| format!("<{}>", crate::store::normalise_id(&m)))
        .collect();
    let mut b = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{id}>")))
        .date(
            std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(at.as_second().max(0) as u64),
        )
        .header(ContentType::TEXT_PLAIN);
    if let Some(last) = ids.last() {
        b = b.in_reply_to(last.clone()).references(ids.join(" "));
    }
    let body = text.replace("\r\n", "\n");
    let msg = b
        .body(body)
        .map_err(|e| PortalError::Internal(format!("reply message: {e}")))?;
    Ok((msg.formatted(), id))
}

pub(super) async fn reply(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ReplyForm>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    let Some((_, s)) = session(&portal, &req).await? else {
        return Ok(redirect("/portal"));
    };
    if !same_token(&s.csrf, &form.csrf) {
        return Err(PortalError::Csrf);
    }
    let t = own_ticket(&portal, &s, &path).await?;
    if form.text.trim().is_empty() {
        return Ok(redirect(&format!("/portal/tickets/{}", t.number)));
    }
    let at = now(&portal);
    let (raw, _id) = reply_message(&portal, &s, &t, &form.text, at)?;
    let envelope = Envelope {
        mail_from: Some(s.email.clone()),
        rcpt_to: vec![portal.reply_from.clone()],
        client_ip: req.peer_addr().map(|a| a.ip().to_string()),
    };
    let pipeline = portal.pipeline.clone();
    let guard = pipeline.committer.begin();
    let p = pipeline.clone();
    let prepared = blocking(move || p.prepare(raw, envelope, at)).await?;
    let record = match prepared {
        Prepared::Filed(r) => *r,
        Prepared::New { filing, .. } => {
            drop(guard);
            let c = pipeline.committer.commit(*filing).await;
            c.map_err(|e| PortalError::Internal(format!("filing failed: {e}")))?
                .record
        }
    };
    if record.reply_message_id.is_some() {
        portal.wake.notify_one();
    }
    let d = &record.decision;
    tracing::info!(ticket = t.number, outcome = d.outcome.as_str(), filed_ticket = ?d.ticket, "portal reply filed");
    let to = match (d.outcome, d.ticket) {
        (Outcome::Append | Outcome::Duplicate, Some(n)) if n == t.number => {
            format!("/portal/tickets/{n}?filed=append")
        }
        (Outcome::Create, Some(n)) => format!("/portal/tickets/{n}?filed=create"),
        _ => {
            let codes = d.codes().join(",");
            format!(
                "/portal/tickets/{}?filed={}&detail={}",
                t.number,
                d.outcome.as_str(),
                codes
            )
        }
    };
    Ok(redirect(&to))
}
