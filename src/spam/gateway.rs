//! The gateway's spam headers → [`SpamVerdict`] with `source = "gateway"`.
//!
//! Read: `X-Spam-Flag` (`YES`/`NO`), `X-Spam-Status` (SpamAssassin's
//! `Yes, score=7.2 required=5.0 tests=A,B autolearn=no`, or Rspamd's `Yes, score=7.20`),
//! `X-Spam-Score`, `X-Rspamd-Action`, `X-Rspamd-Score` and `X-Spamd-Result` (Rspamd's
//! `default: True [16.50 / 15.00]; GTUBE(0.00)[]; …`). Only the first (topmost)
//! occurrence of each counts: our gateway prepends its own.
//!
//! These headers are anybody's to write: a sender can put `X-Spam-Flag: NO` in a
//! message. They are trusted only when `spam.trust_gateway_headers = true` (the MTA
//! strips incoming copies before its scanner adds its own: see docs/postfix.md) and the
//! hook was called with the gateway's token; the caller checks both.

use super::rspamd::is_spam_action;
use super::SpamVerdict;
use crate::parse::find_header;

/// The verdict the gateway's headers carry, or `None` when there are none.
pub fn verdict(headers: &[(String, String)]) -> Option<SpamVerdict> {
    let h = |n: &str| find_header(headers, n).map(|v| v.trim().to_owned());
    let flag = h("x-spam-flag");
    let status = h("x-spam-status");
    let score_h = h("x-spam-score");
    let action_h = h("x-rspamd-action");
    let rscore = h("x-rspamd-score");
    let result = h("x-spamd-result");
    if flag.is_none()
        && status.is_none()
        && score_h.is_none()
        && action_h.is_none()
        && result.is_none()
        && rscore.is_none()
    {
        return None;
    }
    let status_l = status.as_deref().map(str::to_ascii_lowercase);
    let result_l = result.as_deref().map(str::to_ascii_lowercase);
    let action_l = action_h.as_deref().map(|a| a.to_ascii_lowercase());
    let spam = flag
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("yes") || f.eq_ignore_ascii_case("true"))
        || status_l.as_deref().is_some_and(|s| s.starts_with("yes"))
        || action_l.as_deref().is_some_and(is_spam_action)
        || result_l
            .as_deref()
            .is_some_and(|r| r.split(';').next().is_some_and(|d| d.contains("true")));
    let score = score_h
        .as_deref()
        .and_then(number)
        .or_else(|| rscore.as_deref().and_then(number))
        .or_else(|| status_l.as_deref().and_then(|s| field(s, "score=")))
        .or_else(|| result_l.as_deref().and_then(result_score))
        .unwrap_or(0.0);
    let action = action_l.unwrap_or_else(|| if spam { "add header" } else { "no action" }.into());
    let mut symbols = Vec::new();
    if let Some(s) = &status {
        if let Some(i) = s.to_ascii_lowercase().find("tests=") {
            let rest = &s[i + 6..];
            let list = rest.split_whitespace().next().unwrap_or("");
            symbols.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("none"))
                    .map(str::to_owned),
            );
        }
    }
    if let Some(r) = &result {
        for part in r.split(';').skip(1) {
            let name = part.trim().split('(').next().unwrap_or("").trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                symbols.push(name.to_owned());
            }
        }
    }
    symbols.sort();
    symbols.dedup();
    Some(SpamVerdict {
        verdict: if spam { "spam" } else { "ham" }.into(),
        score,
        action,
        symbols,
        source: "gateway".into(),
    })
}

fn number(s: &str) -> Option<f64> {
    s.trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

fn field(s: &str, name: &str) -> Option<f64> {
    let i = s.find(name)?;
    let rest = &s[i + name.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    number(&rest[..end])
}

/// `default: true [16.50 / 15.00]` → 16.5.
fn result_score(r: &str) -> Option<f64> {
    let open = r.find('[')?;
    let rest = &r[open + 1..];
    let end = rest.find(['/', ']'])?;
    number(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn spamassassin_headers() {
        let v = verdict(&hs(&[
            ("X-Spam-Flag", "YES"),
            (
                "X-Spam-Status",
                "Yes, score=7.2 required=5.0 tests=HTML_MESSAGE,URIBL_BLACK autolearn=no",
            ),
        ]))
        .unwrap();
        assert_eq!(v.verdict, "spam");
        assert_eq!(v.score, 7.2);
        assert_eq!(v.symbols, ["HTML_MESSAGE", "URIBL_BLACK"]);
        assert_eq!(v.source, "gateway");
    }

    #[test]
    fn rspamd_milter_headers() {
        let v = verdict(&hs(&[
            ("X-Rspamd-Action", "no action"),
            (
                "X-Spamd-Result",
                "default: False [1.40 / 15.00]; MIME_GOOD(-0.10)[text/plain]; R_SPF_NA(0.00)[]",
            ),
        ]))
        .unwrap();
        assert_eq!(v.verdict, "ham");
        assert_eq!(v.score, 1.4);
        assert_eq!(v.action, "no action");
        assert_eq!(v.symbols, ["MIME_GOOD", "R_SPF_NA"]);
        let v = verdict(&hs(&[(
            "X-Spamd-Result",
            "default: True [16.50 / 15.00]; GTUBE(0.00)[]",
        )]))
        .unwrap();
        assert_eq!((v.verdict.as_str(), v.score), ("spam", 16.5));
    }

    #[test]
    fn the_topmost_header_wins_and_none_means_none() {
        let v = verdict(&hs(&[("X-Spam-Flag", "YES"), ("X-Spam-Flag", "NO")])).unwrap();
        assert_eq!(v.verdict, "spam");
        assert!(verdict(&hs(&[("Subject", "x")])).is_none());
    }
}
