//! Replies: `render` turns a queued reply into subject and body from the
//! templates of `rules/templates/`; `outbox` sends queued replies over SMTP.

pub mod outbox;
pub mod render;
