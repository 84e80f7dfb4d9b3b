//! Configuration: built-in defaults, then a TOML file, then `INTAKE__SECTION__KEY`
//! environment variables (later wins), validated into [`Config`].
//!
//! `RawConfig` is the serde shape with `deny_unknown_fields`; [`Config::from_raw`]
//! parses sizes and addresses, resolves paths and wraps credentials in [`Secret`].
//! This is the only module that reads the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sla::{Calendar, LevelSpec, SlaConfig};

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Invalid { origin: String, message: String },
}

fn invalid(origin: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_owned(),
        message: message.into(),
    }
}

/// A credential: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The credential itself, for comparison and sending only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    http: RawHttp,
    auth: RawAuth,
    store: RawStore,
    rules: RawRules,
    contracts: RawContracts,
    smtp: RawSmtp,
    replies: RawReplies,
    spam: RawSpam,
    tickets: RawTickets,
    portal: RawPortal,
    sla: Option<BTreeMap<String, RawLevel>>,
    calendar: RawCalendar,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: String,
    max_body: String,
    workers: Option<usize>,
    request_timeout_secs: u64,
}
impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8088".into(),
            max_body: "25MiB".into(),
            workers: None,
            request_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    gateway_token: Option<String>,
    staff_token: Option<String>,
    admin_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    engine: String,
    path: PathBuf,
    url: Option<String>,
    password_file: Option<PathBuf>,
    commit_window_us: u64,
    cache_mb: u64,
}
impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            engine: "sled".into(),
            path: "./data".into(),
            url: None,
            password_file: None,
            commit_window_us: 1000,
            cache_mb: 64,
        }
    }
}

/// Which storage engine holds the store (`store.engine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEngine {
    /// The embedded default: a directory (`store.path`), one process.
    Sled,
    /// PostgreSQL at `url` (`store.url`), password from `store.password_file`.
    Postgres {
        url: String,
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRules {
    path: PathBuf,
    watch: bool,
}
impl Default for RawRules {
    fn default() -> Self {
        RawRules {
            path: "./rules".into(),
            watch: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawContracts {
    file: PathBuf,
}
impl Default for RawContracts {
    fn default() -> Self {
        RawContracts {
            file: "fixtures/contracts.toml".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSmtp {
    relay: String,
    from: String,
    timeout_secs: u64,
    max_backoff_secs: u64,
    max_attempts: u32,
}
impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            relay: "localhost:25".into(),
            from: "support@vendor.example".into(),
            timeout_secs: 30,
            max_backoff_secs: 600,
            max_attempts: 200,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawReplies {
    max_per_address_per_day: u32,
    unknown_sender_days: u32,
    bounce_block_days: u32,
}
impl Default for RawReplies {
    fn default() -> Self {
        RawReplies {
            max_per_address_per_day: 5,
            unknown_sender_days: 7,
            bounce_block_days: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSpam {
    rspamd_url: Option<String>,
    timeout_ms: u64,
    trust_gateway_headers: bool,
    authserv_id: Option<String>,
}
impl Default for RawSpam {
    fn default() -> Self {
        RawSpam {
            rspamd_url: None,
            timeout_ms: 2000,
            trust_gateway_headers: false,
            authserv_id: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTickets {
    tag_prefix: String,
    first_number: u64,
}
impl Default for RawTickets {
    fn default() -> Self {
        RawTickets {
            tag_prefix: "Ticket#".into(),
            first_number: 100_001,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPortal {
    base_url: String,
}
impl Default for RawPortal {
    fn default() -> Self {
        RawPortal {
            base_url: "http://127.0.0.1:8088/portal".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    reaction: String,
    in_work: String,
    #[serde(default = "default_clock")]
    clock: String,
}
fn default_clock() -> String {
    "business".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCalendar {
    timezone: String,
    days: Vec<String>,
    hours: String,
}
impl Default for RawCalendar {
    fn default() -> Self {
        RawCalendar {
            timezone: "Europe/Moscow".into(),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            hours: "09:00-18:00".into(),
        }
    }
}

/// Validated configuration that the rest of the program takes by reference.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub max_body: usize,
    pub http_workers: Option<usize>,
    /// Longest a client may take to send its request head, and again its body.
    pub request_timeout: Duration,
    pub gateway_token: Option<Secret>,
    pub staff_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub store_path: PathBuf,
    pub store_engine: StoreEngine,
    pub commit_window: Duration,
    pub cache_bytes: u64,
    pub rules_path: PathBuf,
    pub rules_watch: bool,
    pub contracts_file: PathBuf,
    pub smtp_relay: String,
    pub smtp_from: String,
    pub smtp_timeout: Duration,
    pub smtp_max_backoff: Duration,
    pub smtp_max_attempts: u32,
    pub replies_per_day: u32,
    /// `spam.*`, and the backscatter guards `replies.unknown_sender_days` and
    /// `replies.bounce_block_days`.
    pub spam: crate::spam::SpamConfig,
    pub tag_prefix: String,
    pub first_number: u64,
    pub portal_url: String,
    pub sla: SlaConfig,
}

impl Config {
    /// Defaults, then `file` if given, then the process environment.
    ///
    /// # Errors
    /// An unreadable file, unknown keys, or values that do not validate.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::load_from(file, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| invalid(&path.display().to_string(), e.to_string()))?;
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("INTAKE__") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.iter().any(String::is_empty) {
                return Err(invalid(key, "empty section or key"));
            }
            insert_path(&mut table, &path, env_value(value));
        }
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("settings", e.message().to_owned()))?;
        Config::from_raw(raw)
    }

    /// The configuration with every default (what `serve` uses with no file and no env).
    pub fn defaults() -> Config {
        // The built-in defaults are constants that validate; a failure here is a bug
        // caught by the unit test `defaults_validate`.
        Config::from_raw(RawConfig::default())
            .unwrap_or_else(|e| panic!("built-in defaults invalid: {e}"))
    }

    fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let listen = raw
            .http
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("http.listen", format!("{:?}: {e}", raw.http.listen)))?;
        let max_body = raw
            .http
            .max_body
            .parse::<bytesize::ByteSize>()
            .map_err(|e| invalid("http.max_body", format!("{:?}: {e}", raw.http.max_body)))?
            .as_u64();
        if max_body < 1024 {
            return Err(invalid("http.max_body", "must be at least 1KiB"));
        }
        if raw.tickets.tag_prefix.trim().is_empty() || raw.tickets.tag_prefix.contains([']', '[']) {
            return Err(invalid(
                "tickets.tag_prefix",
                "must be non-empty and without brackets",
            ));
        }
        if raw.tickets.first_number == 0 {
            return Err(invalid("tickets.first_number", "must be positive"));
        }
        if !raw.smtp.relay.contains(':') {
            return Err(invalid("smtp.relay", "must be host:port"));
        }
        if raw.smtp.from.parse::<lettre::Address>().is_err() {
            return Err(invalid(
                "smtp.from",
                format!("{:?} is not an address", raw.smtp.from),
            ));
        }
        let store_engine = match raw.store.engine.as_str() {
            "sled" => StoreEngine::Sled,
            "postgres" => match raw.store.url.filter(|u| !u.is_empty()) {
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    StoreEngine::Postgres {
                        url,
                        password_file: raw.store.password_file,
                    }
                }
                Some(url) => {
                    return Err(invalid(
                        "store.url",
                        format!("{url:?} is not a postgres:// URL"),
                    ))
                }
                None => {
                    return Err(invalid(
                        "store.url",
                        "required with store.engine = \"postgres\" (e.g. postgres://intake@127.0.0.1:5432/intake)",
                    ))
                }
            },
            other => {
                return Err(invalid(
                    "store.engine",
                    format!("{other:?}: must be \"sled\" or \"postgres\""),
                ))
            }
        };
        let rspamd_url = raw.spam.rspamd_url.filter(|u| !u.trim().is_empty());
        if let Some(u) = &rspamd_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(invalid(
                    "spam.rspamd_url",
                    format!("{u:?}: must be an http:// URL such as http://127.0.0.1:11333"),
                ));
            }
        }
        if raw.spam.timeout_ms == 0 {
            return Err(invalid("spam.timeout_ms", "must be positive"));
        }
        let spam = crate::spam::SpamConfig {
            rspamd_url,
            timeout: Duration::from_millis(raw.spam.timeout_ms),
            trust_gateway_headers: raw.spam.trust_gateway_headers,
            authserv_id: raw
                .spam
                .authserv_id
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            unknown_sender_days: raw.replies.unknown_sender_days,
            bounce_block_days: raw.replies.bounce_block_days,
        };
        let secret = |s: Option<String>| s.filter(|t| !t.is_empty()).map(Secret);
        Ok(Config {
            spam,
            listen,
            max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
            http_workers: raw.http.workers,
            request_timeout: Duration::from_secs(raw.http.request_timeout_secs.max(1)),
            gateway_token: secret(raw.auth.gateway_token),
            staff_token: secret(raw.auth.staff_token),
            admin_token: secret(raw.auth.admin_token),
            store_path: raw.store.path,
            store_engine,
            commit_window: Duration::from_micros(raw.store.commit_window_us),
            cache_bytes: raw.store.cache_mb * 1024 * 1024,
            rules_path: raw.rules.path,
            rules_watch: raw.rules.watch,
            contracts_file: raw.contracts.file,
            smtp_relay: raw.smtp.relay,
            smtp_from: raw.smtp.from,
            smtp_timeout: Duration::from_secs(raw.smtp.timeout_secs.max(1)),
            smtp_max_backoff: Duration::from_secs(raw.smtp.max_backoff_secs.max(1)),
            smtp_max_attempts: raw.smtp.max_attempts.max(1),
            replies_per_day: raw.replies.max_per_address_per_day,
            tag_prefix: raw.tickets.tag_prefix,
            first_number: raw.tickets.first_number,
            portal_url: raw.portal.base_url,
            sla: sla_from_raw(raw.sla, raw.calendar)?,
        })
    }
}

fn sla_from_raw(
    levels: Option<BTreeMap<String, RawLevel>>,
    cal: RawCalendar,
) -> Result<SlaConfig, ConfigError> {
    let calendar = Calendar::parse(&cal.timezone, &cal.days, &cal.hours)
        .map_err(|m| invalid("calendar", m))?;
    let levels = levels.unwrap_or_else(default_levels);
    let mut out = BTreeMap::new();
    for (name, level) in levels {
        let origin = format!("sla.{name}");
        let reaction = parse_duration(&level.reaction).map_err(|m| invalid(&origin, m))?;
        let in_work = parse_duration(&level.in_work).map_err(|m| invalid(&origin, m))?;
        let business_hours = match level.clock.as_str() {
            "business" => true,
            "24x7" => false,
            other => {
                return Err(invalid(
                    &origin,
                    format!("clock {other:?}: use business or 24x7"),
                ))
            }
        };
        out.insert(
            name,
            LevelSpec {
                reaction,
                in_work,
                business_hours,
            },
        );
    }
    Ok(SlaConfig {
        calendar,
        levels: out,
    })
}

fn default_levels() -> BTreeMap<String, RawLevel> {
    let level = |reaction: &str, in_work: &str, clock: &str| RawLevel {
        reaction: reaction.into(),
        in_work: in_work.into(),
        clock: clock.into(),
    };
    BTreeMap::from([
        ("premium".to_owned(), level("1h", "8h", "24x7")),
        ("standard".to_owned(), level("4h", "24h", "business")),
        ("basic".to_owned(), level("8h", "40h", "business")),
    ])
}

/// `90m`, `4h`, `2d`, `1h30m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("bad duration unit {c:?} in {s:?}")),
        };
    }
    if !num.is_empty() || total == 0 {
        return Err(format!("bad duration {s:?} (e.g. 4h, 90m)"));
    }
    Ok(Duration::from_secs(total))
}

fn env_value(value: &str) -> toml::Value {
    if let Ok(i) = value.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_owned()),
    }
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, parents) = match path.split_last() {
        Some(split) => split,
        None => return,
    };
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else { return };
        cur = t;
    }
    cur.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8088");
        assert_eq!(c.max_body, 25 * 1024 * 1024);
        assert_eq!(c.first_number, 100_001);
        assert_eq!(c.replies_per_day, 5);
        assert!(c.gateway_token.is_none());
        assert_eq!(c.sla.levels.len(), 3);
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[http]\nlisten = \"127.0.0.1:9000\"\n[smtp]\nrelay = \"a:1\"\n",
        )
        .unwrap();
        let env = vec![
            (
                "INTAKE__SMTP__RELAY".to_owned(),
                "relay.example:2525".to_owned(),
            ),
            ("INTAKE__TICKETS__FIRST_NUMBER".to_owned(), "500".to_owned()),
            ("INTAKE__AUTH__GATEWAY_TOKEN".to_owned(), "gw".to_owned()),
        ];
        let c = Config::load_from(Some(&file), &env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.smtp_relay, "relay.example:2525");
        assert_eq!(c.first_number, 500);
        assert_eq!(c.gateway_token.unwrap().expose(), "gw");
    }

    #[test]
    fn store_engine_from_env() {
        assert_eq!(Config::defaults().store_engine, StoreEngine::Sled);
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let c = Config::load_from(
            None,
            &env(&[
                ("INTAKE__STORE__ENGINE", "postgres"),
                (
                    "INTAKE__STORE__URL",
                    "postgres://intake@127.0.0.1:5432/intake",
                ),
                ("INTAKE__STORE__PASSWORD_FILE", "/run/secrets/pg"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.store_engine,
            StoreEngine::Postgres {
                url: "postgres://intake@127.0.0.1:5432/intake".into(),
                password_file: Some("/run/secrets/pg".into()),
            }
        );
        let no_url = Config::load_from(None, &env(&[("INTAKE__STORE__ENGINE", "postgres")]))
            .unwrap_err()
            .to_string();
        assert!(no_url.contains("store.url"), "{no_url}");
        let bad = Config::load_from(None, &env(&[("INTAKE__STORE__ENGINE", "mysql")]))
            .unwrap_err()
            .to_string();
        assert!(bad.contains("store.engine"), "{bad}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let env = vec![("INTAKE__HTTP__LISTEN_ON".to_owned(), "x".to_owned())];
        let err = Config::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("listen_on"), "{err}");
    }

    #[test]
    fn bad_size_is_refused() {
        let env = vec![("INTAKE__HTTP__MAX_BODY".to_owned(), "lots".to_owned())];
        assert!(Config::load_from(None, &env).is_err());
    }

    #[test]
    fn secret_debug_hides_value() {
        assert_eq!(format!("{:?}", Secret::new("abc")), "Secret(***)");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("4x").is_err());
        assert!(parse_duration("").is_err());
    }
}
