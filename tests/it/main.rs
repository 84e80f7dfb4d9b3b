//! One integration binary: the real server, a real sled directory, a real SMTP
//! server on loopback.

mod badinput;
mod corpus;
mod crash;
mod helpers;
mod hook;
mod lifecycle;
mod outbox;
mod portal;
mod portal_browser;
mod process;
mod redelivery;
mod reload;
mod rules;
mod security;
mod spam;
mod staff;
mod storage;
mod submit;
mod tools;
