//! One integration binary: the real server, a real sled directory, a real SMTP
//! server on loopback.

mod corpus;
mod helpers;
mod hook;
mod outbox;
mod reload;
mod rules;
mod tools;
