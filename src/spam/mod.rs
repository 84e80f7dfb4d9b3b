//! Stage 1½, spam verdicts and sender authentication (before the policy): the raw
//! message and its envelope → [`SpamVerdict`] (`msg.spam`) and [`AuthResults`]
//! (`msg.auth`), both optional.
//!
//! - [`rspamd`]: Rspamd asked directly over its `/checkv2` HTTP interface, with a
//!   timeout; a scanner that is down or slow gives no verdict and a [`SpamCheck`]
//!   saying why, never an error for the message.
//! - [`gateway`]: the spam headers our own gateway added (`X-Spam-*`, `X-Rspamd-*`),
//!   read only when `spam.trust_gateway_headers` is set and the hook was called with
//!   the gateway's token.
//! - [`auth`]: `Authentication-Results` (RFC 8601) of our own `spam.authserv_id`.
//!
//! What follows from a verdict (thresholds, outcomes) is policy: `rules/05-spam.rhai`.

pub mod auth;
pub mod gateway;
pub mod rspamd;

use serde::{Deserialize, Serialize};

pub use auth::AuthResults;

/// A spam scanner's verdict on one message, as scripts see it in `msg.spam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpamVerdict {
    /// `"spam"` when the scanner itself judged the message spam at its own
    /// threshold (an action other than `no action`/`greylist`, or `X-Spam-Flag: YES`),
    /// else `"ham"`.
    pub verdict: String,
    pub score: f64,
    /// Rspamd's action (`reject`, `add header`, `rewrite subject`, `soft reject`,
    /// `greylist`, `no action`); from a SpamAssassin-style gateway `add header` or
    /// `no action`.
    pub action: String,
    /// Names of the rules that hit, as the scanner reported them.
    pub symbols: Vec<String>,
    /// `"rspamd"` (asked directly) or `"gateway"` (trusted headers).
    pub source: String,
}

/// Whether and how the spam scanner was asked about one message: recorded with
/// the message, so a judgement made without a verdict can be told from one with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum SpamCheck {
    /// No scanner is configured (`spam.rspamd_url` unset) and no trusted headers.
    #[default]
    Off,
    /// A verdict was obtained (from Rspamd or the trusted gateway headers).
    Ok,
    /// Rspamd was asked but gave no answer in time, or an unusable one: the
    /// message is judged without a verdict.
    Unavailable(String),
}

impl SpamCheck {
    /// `"off"`, `"ok"` or `"unavailable: why"`, as scripts see `msg.spam_check`.
    pub fn describe(&self) -> String {
        match self {
            SpamCheck::Off => "off".into(),
            SpamCheck::Ok => "ok".into(),
            SpamCheck::Unavailable(why) => format!("unavailable: {why}"),
        }
    }
}

/// The verdict half of the spam stage for one message: what the hook found before
/// the policy runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpamInput {
    pub verdict: Option<SpamVerdict>,
    pub check: SpamCheck,
}

/// How the spam stage and the backscatter guards are configured (`spam.*`,
/// `replies.unknown_sender_days`, `replies.bounce_block_days`).
#[derive(Debug, Clone, Default)]
pub struct SpamConfig {
    /// `http://127.0.0.1:11333`: Rspamd's normal worker (or its proxy).
    pub rspamd_url: Option<String>,
    pub timeout: std::time::Duration,
    pub trust_gateway_headers: bool,
    /// Our own MTA's authserv-id: only its `Authentication-Results` are read.
    pub authserv_id: Option<String>,
    /// At most one reply per unknown sender per this many days (0: no limit).
    pub unknown_sender_days: u32,
    /// A permanent bounce blocks replies to the address for this many days (0: never).
    pub bounce_block_days: u32,
}

impl SpamConfig {
    /// The shipped defaults (SPEC §11): no scanner, 2 s, 7 and 30 days.
    pub fn defaults() -> SpamConfig {
        SpamConfig {
            timeout: std::time::Duration::from_millis(2000),
            unknown_sender_days: 7,
            bounce_block_days: 30,
            ..SpamConfig::default()
        }
    }
}
