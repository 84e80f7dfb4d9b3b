//! Metrics of the service at `GET /metrics`, in the Prometheus/OpenMetrics text
//! format (`prometheus-client`, the Prometheus project's Rust client).
//!
//! One process-wide registry: the stages record into it where they run (the hook
//! records each evaluation and each filed message, the outbox each delivery
//! attempt, reloads their result, an HTTP middleware every request), and the
//! `/metrics` route encodes it. The route needs no token, like most scrape
//! targets: it lives on `http.listen` (loopback by default) and exposes counts,
//! never message content; put it behind the same network policy as the hook.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `intake_messages_total` | `outcome`, `status` | messages filed (re-deliveries excluded) |
//! | `intake_redeliveries_total` | | re-delivered messages answered with their first decision |
//! | `intake_findings_total` | `code` | findings on filed messages |
//! | `intake_spam_checks_total` | `result` | Rspamd asked: `ok`, or `unavailable` (judged without a verdict) |
//! | `intake_rule_duration_seconds` | `rule` | evaluation time of each rule (and `decide`) |
//! | `intake_rule_errors_total` | `rule` | script errors (each files a `policy_error`) |
//! | `intake_rule_limit_hits_total` | `rule` | sandbox limits hit (operations, depth, sizes) |
//! | `intake_rules_reloads_total` | `trigger`, `result` | reloads by `api`/`sighup`/`watch`, `ok`/`failed` |
//! | `intake_rules_reload_failing` | | 1 while the last reload attempt was refused |
//! | `intake_outbox_depth` | | replies queued (at scrape time) |
//! | `intake_outbox_sent_total`, `…_failed_total`, `…_retries_total` | | delivery attempts by result |
//! | `intake_http_request_duration_seconds` | `method`, `route`, `status` | HTTP latency by route pattern |

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::intake::app::AppState;
use crate::policy::Evaluation;
use crate::reply::outbox::Delivery;
use crate::store::MessageRecord;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverdueLabels {
    level: String,
    timer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    trigger: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn rule_histogram() -> Histogram {
    // 5 µs … ~84 ms: rules take tens of µs; a slow regex or a loop shows at the top.
    Histogram::new(exponential_buckets(5e-6, 2.0, 15))
}

fn http_histogram() -> Histogram {
    // 100 µs … ~3.3 s: the hook answers after a group-commit flush.
    Histogram::new(exponential_buckets(1e-4, 2.0, 16))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    messages: Family<OutcomeLabels, Counter>,
    redeliveries: Counter,
    findings: Family<CodeLabels, Counter>,
    spam_checks: Family<ResultLabels, Counter>,
    rule_seconds: Histograms<RuleLabels>,
    rule_errors: Family<RuleLabels, Counter>,
    rule_limits: Family<RuleLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    reload_failing: Gauge,
    outbox_depth: Gauge,
    overdue: Family<OverdueLabels, Gauge>,
    outbox_sent: Counter,
    outbox_failed: Counter,
    outbox_retries: Counter,
    http_seconds: Histograms<HttpLabels>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("intake");
        let m = Metrics {
            messages: Family::default(),
            redeliveries: Counter::default(),
            findings: Family::default(),
            spam_checks: Family::default(),
            rule_seconds: Family::new_with_constructor(rule_histogram as fn() -> Histogram),
            rule_errors: Family::default(),
            rule_limits: Family::default(),
            reloads: Family::default(),
            reload_failing: Gauge::default(),
            outbox_depth: Gauge::default(),
            overdue: Family::default(),
            outbox_sent: Counter::default(),
            outbox_failed: Counter::default(),
            outbox_retries: Counter::default(),
            http_seconds: Family::new_with_constructor(http_histogram as fn() -> Histogram),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "messages",
            "Messages filed, by outcome and status",
            m.messages.clone(),
        );
        r.register(
            "redeliveries",
            "Re-delivered messages answered with their first decision",
            m.redeliveries.clone(),
        );
        r.register(
            "findings",
            "Findings on filed messages, by code",
            m.findings.clone(),
        );
        r.register(
            "spam_checks",
            "Rspamd asked before the policy, by result (ok, unavailable)",
            m.spam_checks.clone(),
        );
        r.register(
            "rule_duration_seconds",
            "Evaluation time of each rule script",
            m.rule_seconds.clone(),
        );
        r.register(
            "rule_errors",
            "Script errors, by rule",
            m.rule_errors.clone(),
        );
        r.register(
            "rule_limit_hits",
            "Sandbox limits hit, by rule",
            m.rule_limits.clone(),
        );
        r.register(
            "rules_reloads",
            "Reloads of rules/, by trigger and result",
            m.reloads.clone(),
        );
        r.register(
            "rules_reload_failing",
            "1 while the last reload of rules/ was refused",
            m.reload_failing.clone(),
        );
        r.register("outbox_depth", "Replies queued", m.outbox_depth.clone());
        r.register(
            "tickets_overdue",
            "Open tickets past an SLA due time, by contract level and timer (reaction, in_work, any)",
            m.overdue.clone(),
        );
        r.register(
            "outbox_sent",
            "Replies accepted by the relay",
            m.outbox_sent.clone(),
        );
        r.register(
            "outbox_failed",
            "Replies abandoned",
            m.outbox_failed.clone(),
        );
        r.register(
            "outbox_retries",
            "Delivery attempts deferred for a retry",
            m.outbox_retries.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency, by method, route pattern and status",
            m.http_seconds.clone(),
        );
        Metrics { registry, ..m }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Records whether Rspamd gave a verdict (nothing when none is configured).
pub fn record_spam_check(check: &crate::spam::SpamCheck) {
    let result = match check {
        crate::spam::SpamCheck::Off => return,
        crate::spam::SpamCheck::Ok => "ok",
        crate::spam::SpamCheck::Unavailable(_) => "unavailable",
    };
    METRICS
        .spam_checks
        .get_or_create(&ResultLabels {
            result: result.into(),
        })
        .inc();
}

/// Records what the rules did on one message (dry runs included).
pub fn record_evaluation(ev: &Evaluation) {
    let m = &*METRICS;
    for t in &ev.trace {
        let rule = RuleLabels {
            rule: t.rule.clone(),
        };
        m.rule_seconds
            .get_or_create(&rule)
            .observe(t.micros as f64 / 1e6);
        if t.error.is_some() {
            m.rule_errors.get_or_create(&rule).inc();
        }
        if t.limit_hit {
            m.rule_limits.get_or_create(&rule).inc();
        }
    }
}

/// Records a filed message, or a re-delivery answered with its first decision.
pub fn record_filed(record: &MessageRecord, redelivery: bool) {
    let m = &*METRICS;
    if redelivery {
        m.redeliveries.inc();
        return;
    }
    let d = &record.decision;
    m.messages
        .get_or_create(&OutcomeLabels {
            outcome: d.outcome.as_str().to_owned(),
            status: d.status.map(|s| s.as_str()).unwrap_or("").to_owned(),
        })
        .inc();
    for f in &d.findings {
        m.findings
            .get_or_create(&CodeLabels {
                code: f.code.clone(),
            })
            .inc();
    }
}

/// Records a reload attempt (`trigger`: `api`, `sighup` or `watch`).
pub fn record_reload(trigger: &str, ok: bool) {
    let m = &*METRICS;
    m.reloads
        .get_or_create(&ReloadLabels {
            trigger: trigger.to_owned(),
            result: if ok { "ok" } else { "failed" }.to_owned(),
        })
        .inc();
    m.reload_failing.set(i64::from(!ok));
}

/// Records one delivery step of the outbox.
pub fn record_delivery(d: &Delivery) {
    let m = &*METRICS;
    match d {
        Delivery::Idle => {}
        Delivery::Sent { .. } => {
            m.outbox_sent.inc();
        }
        Delivery::Retry { .. } => {
            m.outbox_retries.inc();
        }
        Delivery::Failed { .. } => {
            m.outbox_failed.inc();
        }
    }
}

/// Records one HTTP request.
pub fn record_http(method: &str, route: &str, status: u16, elapsed: Duration) {
    METRICS
        .http_seconds
        .get_or_create(&HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        })
        .observe(elapsed.as_secs_f64());
}

/// The registry in the OpenMetrics text format, with the outbox depth of now.
///
/// # Errors
/// Formatting failed (does not happen with a `String` writer).
pub fn encode(
    outbox_depth: usize,
    overdue: &std::collections::BTreeMap<String, crate::lifecycle::OverdueCount>,
) -> Result<String, std::fmt::Error> {
    let m = &*METRICS;
    m.outbox_depth
        .set(i64::try_from(outbox_depth).unwrap_or(i64::MAX));
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for (level, c) in overdue {
        for (timer, n) in [
            ("reaction", c.reaction),
            ("in_work", c.in_work),
            ("any", c.tickets),
        ] {
            m.overdue
                .get_or_create(&OverdueLabels {
                    level: level.clone(),
                    timer: timer.to_owned(),
                })
                .set(gauge(n));
        }
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.registry)?;
    Ok(out)
}

/// Middleware timing every request by its route pattern (`/v1/tickets/{number}`,
/// never the raw path, so label values stay few).
///
/// # Errors
/// The inner service's error, unchanged.
pub async fn http_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    record_http(&method, &route, res.status().as_u16(), start.elapsed());
    Ok(res)
}

/// The `/metrics` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Overdue counts are computed at scrape time from the tickets (SLA timers with
    // the client's waiting time paused), so they are never stale.
    let st = state.clone();
    let overdue = match web::block(move || crate::intake::tickets::overdue_now(&st)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot count overdue tickets for metrics");
            Default::default()
        }
        Err(e) => {
            tracing::error!(error = %e, "overdue count task failed");
            Default::default()
        }
    };
    match encode(state.pipeline.store.outbox_len(), &overdue) {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_and_deliveries_show_in_the_text() {
        record_reload("api", false);
        record_delivery(&Delivery::Retry {
            message_id: "x".into(),
            error: "down".into(),
            retry_at: jiff::Timestamp::UNIX_EPOCH,
        });
        let mut overdue = std::collections::BTreeMap::new();
        overdue.insert(
            "premium".to_owned(),
            crate::lifecycle::OverdueCount {
                reaction: 2,
                in_work: 1,
                tickets: 2,
            },
        );
        let text = encode(3, &overdue).unwrap();
        assert!(
            text.contains(r#"intake_tickets_overdue{level="premium",timer="reaction"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("intake_rules_reloads_total{trigger=\"api\",result=\"failed\"}"),
            "{text}"
        );
        assert!(text.contains("intake_outbox_depth 3"), "{text}");
        assert!(text.contains("intake_outbox_retries_total"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
