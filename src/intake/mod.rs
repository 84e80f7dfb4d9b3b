//! The HTTP service (SPEC §9): [`app::App`] builds and binds it, `handlers`
//! holds the routes, `error` the JSON error answers.

pub mod app;
pub mod error;
pub mod handlers;
pub mod reload;

pub use app::{App, Clock};
