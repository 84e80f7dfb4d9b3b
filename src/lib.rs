//! `intake`: the front door of a technical-support helpdesk.
//!
//! # Layout
//! The modules follow the pipeline of one message (SPEC §1):
//!
//! - [`parse`]: raw RFC 5322 bytes → [`parse::ParsedMail`]
//! - [`facts`]: parsed mail + envelope + [`contracts`] → [`facts::Facts`], the script view
//! - [`text`]: native text mechanics scripts call (normalisation, word lists, quotes,
//!   similarity, language, logs, mojibake)
//! - [`spam`]: Rspamd's verdict, the trusted gateway's spam headers, Authentication-Results
//! - [`policy`]: Rhai rules of `rules/` → findings → [`decision::Decision`]
//! - [`decision`]: the typed verdict and its validation
//! - [`store`]: one interface over two engines (embedded sled, PostgreSQL), one transaction per message, group commit, keyed collections
//! - [`reply`]: templates → rendered replies; the SMTP outbox worker
//! - [`sla`]: reaction and in-work due times on a business calendar
//! - [`lifecycle`]: statuses and transitions after intake, SLA timers, staff
//!   replies and status notifications
//! - [`pipeline`]: the stages wired together, shared by the server and the tools
//! - [`explain`]: one message through the pipeline with every rule's reasons, for the tools
//! - [`intake`]: the HTTP service; [`portal`]: the client portal (HTML); [`corpus`]: the
//!   fixture runner, [`scoring`]: its per-finding precision and recall, [`policy_diff`]:
//!   two rule sets over the corpus; [`cli`]: the commands
//! - [`metrics`]: Prometheus metrics of every stage, served at `/metrics`
//! - [`config`], [`telemetry`]: settings and logging

pub mod cli;
pub mod config;
pub mod contracts;
pub mod corpus;
pub mod decision;
pub mod explain;
pub mod facts;
pub mod intake;
pub mod lifecycle;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod policy;
pub mod policy_diff;
pub mod portal;
pub mod reply;
pub mod scoring;
pub mod sla;
pub mod spam;
pub mod staff;
pub mod store;
pub mod telemetry;
pub mod text;

/// mimalloc instead of the system allocator: the policy interpreter and the
/// store allocate many small short-lived values per message, where glibc's malloc
/// spends a large share of the time (see benches/RESULTS.md). Declared in the
/// library so the server, the tests, the benches and the examples all measure the
/// same allocator.
///
/// Wrapped by [`policy::budget::Metered`], which counts the bytes a thread holds
/// while it evaluates a message (the sandbox's memory ceiling).
#[global_allocator]
static ALLOCATOR: policy::budget::Metered<mimalloc::MiMalloc> =
    policy::budget::Metered(mimalloc::MiMalloc);
