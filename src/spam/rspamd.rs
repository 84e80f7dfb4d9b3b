//! Rspamd asked directly: raw message + envelope → [`SpamInput`] over
//! `POST {spam.rspamd_url}/checkv2` (Rspamd's protocol: the message as the body, the
//! envelope in the request headers `From`, `Rcpt`, `IP`, `Helo`).
//!
//! Blocking (ureq), bounded by one global timeout: the hook runs it on the blocking
//! pool. Any failure (refused, timed out, a non-2xx answer, JSON that is not a
//! result) is a [`SpamCheck::Unavailable`] with the reason; the message goes on
//! without a verdict.

use std::time::Duration;

use serde::Deserialize;

use super::{SpamCheck, SpamInput, SpamVerdict};
use crate::facts::Envelope;

/// A client of one Rspamd instance, cheap to clone (the agent pools connections).
#[derive(Clone)]
pub struct Rspamd {
    agent: ureq::Agent,
    url: String,
}

#[derive(Deserialize)]
struct CheckResult {
    #[serde(default)]
    score: f64,
    #[serde(default)]
    action: String,
    #[serde(default)]
    symbols: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    is_skipped: bool,
}

impl Rspamd {
    /// A client for `base_url` (`http://host:port`, with or without a trailing `/`).
    pub fn new(base_url: &str, timeout: Duration) -> Rspamd {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Rspamd {
            agent,
            url: format!("{}/checkv2", base_url.trim_end_matches('/')),
        }
    }

    /// Asks for a verdict on `raw`; never fails (see the module docs).
    pub fn check(&self, raw: &[u8], envelope: &Envelope) -> SpamInput {
        match self.ask(raw, envelope) {
            Ok(verdict) => SpamInput {
                verdict: Some(verdict),
                check: SpamCheck::Ok,
            },
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "rspamd gave no verdict; judging without one");
                SpamInput {
                    verdict: None,
                    check: SpamCheck::Unavailable(why),
                }
            }
        }
    }

    fn ask(&self, raw: &[u8], envelope: &Envelope) -> Result<SpamVerdict, String> {
        let mut req = self.agent.post(&self.url);
        // Header values must be plain visible ASCII: whatever the gateway passed
        // that is not is left out rather than sent broken.
        let clean = |v: &str| {
            let v = v.trim();
            (!v.is_empty() && v.bytes().all(|b| (0x20..0x7f).contains(&b))).then(|| v.to_owned())
        };
        if let Some(from) = envelope.mail_from.as_deref().and_then(clean) {
            let from = from
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
            // Rspamd reads an empty `From` as the null sender only as "<>".
            req = req.header("From", if from.is_empty() { "<>" } else { &from });
        }
        for rcpt in envelope.rcpt_to.iter().filter_map(|r| clean(r)) {
            req = req.header("Rcpt", &rcpt);
        }
        if let Some(ip) = envelope.client_ip.as_deref().and_then(clean) {
            if ip.parse::<std::net::IpAddr>().is_ok() {
                req = req.header("IP", &ip);
            }
        }
        let mut resp = req.send(raw).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        if !(200..300).contains(&status) {
            let short: String = body.chars().take(200).collect();
            return Err(format!("HTTP {status}: {}", short.trim()));
        }
        verdict_from_json(&body)
    }
}

/// The verdict in a `/checkv2` answer.
///
/// # Errors
/// The body is not a check result, or Rspamd skipped the message.
pub fn verdict_from_json(body: &str) -> Result<SpamVerdict, String> {
    let r: CheckResult =
        serde_json::from_str(body).map_err(|e| format!("not a check result: {e}"))?;
    // A message Rspamd stopped checking early (GTUBE, a settings rule) still has
    // the action it ended with; a skip without one is no verdict.
    if r.action.is_empty() && r.is_skipped {
        return Err("rspamd skipped the message".into());
    }
    if r.action.is_empty() {
        return Err("check result without an action".into());
    }
    let action = r.action.to_ascii_lowercase();
    let verdict = if is_spam_action(&action) {
        "spam"
    } else {
        "ham"
    };
    let mut symbols: Vec<String> = r.symbols.keys().cloned().collect();
    symbols.sort();
    Ok(SpamVerdict {
        verdict: verdict.into(),
        score: r.score,
        action,
        symbols,
        source: "rspamd".into(),
    })
}

/// Rspamd's actions that mean "the scanner judged this spam".
pub fn is_spam_action(action: &str) -> bool {
    matches!(
        action,
        "reject" | "add header" | "add_header" | "rewrite subject" | "rewrite_subject"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtube_style_answer_is_spam() {
        let v = verdict_from_json(
            r#"{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject",
               "symbols":{"GTUBE":{"name":"GTUBE","score":0.0},"MIME_GOOD":{"name":"MIME_GOOD","score":-0.1}}}"#,
        )
        .unwrap();
        assert_eq!(v.verdict, "spam");
        assert_eq!(v.action, "reject");
        assert_eq!(v.symbols, ["GTUBE", "MIME_GOOD"]);
        assert_eq!(v.source, "rspamd");
    }

    #[test]
    fn no_action_is_ham_and_bad_answers_are_errors() {
        let v = verdict_from_json(r#"{"score":1.5,"action":"no action","symbols":{}}"#).unwrap();
        assert_eq!((v.verdict.as_str(), v.score), ("ham", 1.5));
        assert!(verdict_from_json("<html>").is_err());
        assert!(verdict_from_json(r#"{"score":1}"#).is_err());
        assert!(verdict_from_json(r#"{"is_skipped":true,"score":0}"#).is_err());
        // Rspamd's answer to GTUBE: skipped after the pattern, with its action.
        let v = verdict_from_json(
            r#"{"is_skipped":true,"score":15.0,"action":"reject","symbols":{"GTUBE":{}}}"#,
        )
        .unwrap();
        assert_eq!(v.verdict, "spam");
    }

    #[test]
    fn refused_connection_is_unavailable_not_an_error() {
        // A port nobody listens on: bind, take the port, drop the listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Rspamd::new(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_millis(500),
        );
        let out = r.check(b"Subject: x\r\n\r\nbody\r\n", &Envelope::default());
        assert!(out.verdict.is_none());
        assert!(
            matches!(out.check, SpamCheck::Unavailable(_)),
            "{:?}",
            out.check
        );
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Rspamd::new(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_millis(300),
        );
        let t = std::time::Instant::now();
        let out = r.check(b"Subject: x\r\n\r\nbody\r\n", &Envelope::default());
        assert!(matches!(out.check, SpamCheck::Unavailable(_)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        drop(listener);
    }
}
