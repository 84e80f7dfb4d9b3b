//! The HTTP service (SPEC §9): [`app::App`] builds and binds it, `handlers`
//! holds the routes, `error` the JSON error answers, `tickets` the staff side of
//! the ticket lifecycle (status changes, replies, lists, overdue counts).

pub mod app;
pub mod error;
pub mod evalpool;
pub mod handlers;
pub mod reload;
pub mod staff_admin;
pub mod staff_auth;
pub mod tickets;

pub use app::{App, Clock};
