//! One integration binary: the real server, a real sled directory, a real SMTP
//! server on loopback.

mod corpus;
mod helpers;
mod hook;
mod lifecycle;
mod outbox;
mod portal;
mod portal_browser;
mod rules;
