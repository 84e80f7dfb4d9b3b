//! `Authentication-Results` (RFC 8601) → [`AuthResults`] (`msg.auth`).
//!
//! Only headers whose authserv-id is our own MTA's (`spam.authserv_id`) are read:
//! any other is a claim made by the sender or by a host on the way, and our MTA must
//! remove copies of its own id from incoming mail (RFC 8601 §5; docs/postfix.md).
//! Several headers of our id (one per verifier: SPF, OpenDKIM, OpenDMARC) are
//! combined; for each method the first result counts, except DKIM where every
//! passing signature's domain is kept.

use serde::{Deserialize, Serialize};

/// What our MTA found about the sender, as scripts see it in `msg.auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResults {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`; empty
    /// when our MTA reported no SPF result.
    pub spf: String,
    /// `pass` when any signature passed, else the first DKIM result; empty when none.
    pub dkim: String,
    /// Domains (`header.d`, else the domain of `header.i`) of the passing signatures.
    pub dkim_domains: Vec<String>,
    pub dmarc: String,
    /// The RFC 5322.From domain the results are about: DMARC's `header.from`, else
    /// the domain of `From`.
    pub from_domain: String,
}

impl AuthResults {
    /// Whether the sender is not who the From says: DMARC fails, or SPF fails and
    /// no passing DKIM signature is aligned (relaxed: the same organisational
    /// domain, approximated as one being equal to or a subdomain of the other)
    /// with the From domain.
    pub fn sender_forged(&self) -> bool {
        if self.dmarc == "fail" {
            return true;
        }
        self.spf == "fail"
            && !self
                .dkim_domains
                .iter()
                .any(|d| aligned(d, &self.from_domain))
    }
}

fn aligned(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let sub = |x: &str, y: &str| x == y || x.ends_with(&format!(".{y}"));
    sub(a, b) || sub(b, a)
}

/// The results of `authserv_id` among `headers`, or `None` when it reported none.
/// `from` is the message's From address (for `from_domain` when DMARC gives none).
pub fn parse(headers: &[(String, String)], authserv_id: &str, from: &str) -> Option<AuthResults> {
    let mut out = AuthResults::default();
    let mut found = false;
    for (_, value) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("authentication-results"))
    {
        let text = strip_comments(value);
        let mut parts = text.split(';');
        let id = parts
            .next()
            .and_then(|p| p.split_whitespace().next())
            .unwrap_or("");
        if !id.eq_ignore_ascii_case(authserv_id) {
            continue;
        }
        found = true;
        for resinfo in parts {
            let mut words = resinfo.split_whitespace();
            let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
                continue;
            };
            let method = method.split('/').next().unwrap_or("").to_ascii_lowercase();
            let result = unquote(result).to_ascii_lowercase();
            let props: Vec<(String, String)> = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_ascii_lowercase(), unquote(v).to_ascii_lowercase()))
                .collect();
            let prop = |name: &str| {
                props
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            match method.as_str() {
                "spf" if out.spf.is_empty() => out.spf = result,
                "dkim" => {
                    if result == "pass" {
                        let d = prop("header.d")
                            .map(str::to_owned)
                            .or_else(|| prop("header.i").map(domain_of));
                        if let Some(d) = d.filter(|d| !d.is_empty()) {
                            if !out.dkim_domains.contains(&d) {
                                out.dkim_domains.push(d);
                            }
                        }
                        out.dkim = result;
                    } else if out.dkim.is_empty() {
                        out.dkim = result;
                    }
                }
                "dmarc" if out.dmarc.is_empty() => {
                    out.dmarc = result;
                    if let Some(d) = prop("header.from") {
                        out.from_domain = domain_of(d);
                    }
                }
                _ => {}
            }
        }
    }
    if !found {
        return None;
    }
    if out.from_domain.is_empty() {
        out.from_domain = domain_of(from);
    }
    Some(out)
}

fn domain_of(s: &str) -> String {
    s.rsplit_once('@')
        .map_or(s, |(_, d)| d)
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// Removes RFC 5322 comments (`(…)`, nested, with `\` escapes) outside quotes.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0u32, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                out.push(' ');
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> (String, String) {
        ("Authentication-Results".into(), v.into())
    }

    #[test]
    fn rfc8601_example_with_comments_and_version() {
        let a = parse(
            &[h("mx.vendor.example 1; spf=pass (sender SPF authorized) smtp.mailfrom=client.example; \
                 dkim=pass (good signature) header.d=client.example header.s=sel; \
                 dmarc=pass (p=reject) header.from=Client.Example")],
            "mx.vendor.example",
            "a@client.example",
        )
        .unwrap();
        assert_eq!(a.spf, "pass");
        assert_eq!(a.dkim, "pass");
        assert_eq!(a.dkim_domains, ["client.example"]);
        assert_eq!(a.dmarc, "pass");
        assert_eq!(a.from_domain, "client.example");
        assert!(!a.sender_forged());
    }

    #[test]
    fn other_authserv_ids_are_claims_and_ignored() {
        let hs = [h("evil.example; dmarc=pass header.from=client.example")];
        assert_eq!(parse(&hs, "mx.vendor.example", "a@client.example"), None);
        let hs = [
            h("evil.example; dmarc=pass header.from=client.example"),
            h("MX.vendor.example; dmarc=fail header.from=client.example"),
        ];
        let a = parse(&hs, "mx.vendor.example", "a@client.example").unwrap();
        assert_eq!(a.dmarc, "fail");
        assert!(a.sender_forged());
    }

    #[test]
    fn spf_fail_is_forged_only_without_aligned_dkim() {
        let a = parse(
            &[h(
                "mx; spf=fail smtp.mailfrom=client.example; dkim=pass header.d=mail.client.example",
            )],
            "mx",
            "boss@client.example",
        )
        .unwrap();
        assert_eq!(a.from_domain, "client.example");
        assert!(!a.sender_forged(), "aligned DKIM passes");
        let a = parse(
            &[h(
                "mx; spf=fail smtp.mailfrom=client.example; dkim=pass header.d=other.example",
            )],
            "mx",
            "boss@client.example",
        )
        .unwrap();
        assert!(a.sender_forged());
        let a = parse(&[h("mx; none")], "mx", "boss@client.example").unwrap();
        assert_eq!((a.spf.as_str(), a.dmarc.as_str()), ("", ""));
        assert!(!a.sender_forged());
    }

    #[test]
    fn separate_headers_per_verifier_combine() {
        let a = parse(
            &[
                h("mx; dkim=fail header.i=@client.example"),
                h("mx; spf=softfail smtp.mailfrom=client.example"),
                h("mx; dmarc=none header.from=client.example"),
            ],
            "mx",
            "x@client.example",
        )
        .unwrap();
        assert_eq!(
            (a.spf.as_str(), a.dkim.as_str(), a.dmarc.as_str()),
            ("softfail", "fail", "none")
        );
        assert!(!a.sender_forged());
    }
}
