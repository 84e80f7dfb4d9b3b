//! The commands of SPEC §9: `serve`, `check`, `test`, `lint`, `submit`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jiff::Timestamp;

use crate::config::Config;
use crate::corpus;
use crate::facts::Envelope;
use crate::intake::App;

/// sysexits(3) codes used by `submit`.
pub mod sysexits {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const SOFTWARE: u8 = 70;
    pub const TEMPFAIL: u8 = 75;
    pub const NOPERM: u8 = 77;
    pub const CONFIG: u8 = 78;
}

/// intake: files support email by a Rhai policy.
#[derive(Debug, Parser)]
#[command(name = "intake", version, about)]
pub struct Cli {
    /// TOML configuration file (then INTAKE__SECTION__KEY environment variables).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP hook, the API and the reply worker.
    Serve,
    /// Show the decision the hook would give a message (no side effects).
    Check {
        file: PathBuf,
        /// Print the decision JSON of the hook.
        #[arg(long)]
        json: bool,
        /// Show each rule, its findings and time, and the decide result.
        #[arg(long)]
        explain: bool,
        /// Contracts file (default: contracts.file of the configuration).
        #[arg(long)]
        contracts: Option<PathBuf>,
        /// Rules directory (default: rules.path of the configuration).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Clock for the evaluation, RFC 3339 (default: the Date header, else now).
        #[arg(long)]
        now: Option<Timestamp>,
    },
    /// Run the fixture corpus (SPEC §10) and report.
    Test {
        /// Corpus directory holding contracts.toml and cases/.
        #[arg(default_value = "fixtures")]
        dir: PathBuf,
        /// Rules directory (default: rules.path of the configuration).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Only cases about this finding code: named after it, or expecting it in a step.
        #[arg(long)]
        only: Option<String>,
        /// Worker threads (default: the number of CPUs).
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
    },
    /// Show the corpus cases whose decision changes between two versions of rules/.
    /// Exit 0 when none changes, 1 when some do, 2 on trouble (like diff(1)).
    Diff {
        /// The rules directory in force now.
        #[arg(long)]
        from: PathBuf,
        /// The rules directory proposed.
        #[arg(long)]
        to: PathBuf,
        /// Corpus directory holding contracts.toml and cases/.
        #[arg(default_value = "fixtures")]
        corpus: PathBuf,
        /// Worker threads (default: the number of CPUs).
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
    },
    /// Compile and check the policy directory.
    Lint {
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Manage staff accounts: add, list, disable, token.
    Staff {
        #[command(subcommand)]
        command: crate::staff::cli::StaffCommand,
    },
    /// Read one message on stdin and post it to the hook (for an MTA pipe).
    Submit {
        /// Envelope sender, as Postfix passes ${sender}.
        #[arg(long, short = 'f')]
        sender: Option<String>,
        /// Hook URL (default: http://<http.listen>/v1/messages).
        #[arg(long)]
        url: Option<String>,
        /// File holding the gateway token (default: auth.gateway_token, else <store.path>/gateway.token).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Connect timeout in seconds (fractions allowed).
        #[arg(long, default_value_t = 10.0)]
        connect_timeout: f64,
        /// Total timeout of the exchange in seconds (fractions allowed).
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Envelope recipients, as Postfix passes ${recipient}.
        recipients: Vec<String>,
    },
}

/// Answers a command line clap refused: `submit`'s usage errors exit 64
/// (EX_USAGE, which an MTA treats as permanent), the others as clap does
/// (2); `--help` and `--version` exit 0.
pub fn usage_error(e: clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    let code = if !e.use_stderr() {
        0
    } else if invokes_submit(args) {
        sysexits::USAGE
    } else {
        u8::try_from(e.exit_code()).unwrap_or(2)
    };
    let _ = e.print();
    ExitCode::from(code)
}

/// Whether a command line names the `submit` subcommand (before any `--`).
fn invokes_submit(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "submit")
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) if matches!(cli.command, Command::Submit { .. }) => {
            // EX_CONFIG: the fault is ours, not the message's. Postfix's pipe(8)
            // maps a bare 78 to 5.3.5 and would bounce the mail, but an enhanced
            // status code at the start of the output takes precedence, so the
            // leading 4.3.5 keeps it queued until the configuration is fixed.
            eprintln!(
                "4.3.5 intake submit: configuration error, retry later: {}",
                one_line(&e.to_string())
            );
            return ExitCode::from(sysexits::CONFIG);
        }
        Err(e) => {
            eprintln!("intake: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => serve(config),
        Command::Check {
            file,
            json,
            explain,
            contracts,
            rules,
            now,
        } => check(&config, &file, json, explain, contracts, rules, now),
        Command::Test {
            dir,
            rules,
            junit,
            only,
            jobs,
        } => test(&config, &dir, rules, junit, only, jobs),
        Command::Lint { dir } => lint(&dir),
        Command::Staff { command } => crate::staff::cli::run(&config, command),
        Command::Diff {
            from,
            to,
            corpus,
            jobs,
        } => diff(&config, &from, &to, &corpus, jobs),
        Command::Submit {
            sender,
            url,
            token_file,
            connect_timeout,
            timeout,
            recipients,
        } => {
            return submit(
                &config,
                sender,
                url,
                token_file,
                connect_timeout,
                timeout,
                recipients,
            )
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("intake: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = App::build(&config, Arc::new(Timestamp::now))?;
        app.run_until_stopped().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn check(
    config: &Config,
    file: &Path,
    json: bool,
    explain: bool,
    contracts: Option<PathBuf>,
    rules: Option<PathBuf>,
    now: Option<Timestamp>,
) -> anyhow::Result<ExitCode> {
    let runner = corpus::Runner::new(
        rules.as_deref().unwrap_or(&config.rules_path),
        contracts.as_deref().unwrap_or(&config.contracts_file),
        config.clone(),
    )?;
    let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let now = now
        .or_else(|| {
            crate::parse::parse(&raw)
                .date
                .and_then(|s| Timestamp::from_second(s).ok())
        })
        .unwrap_or_else(Timestamp::now);
    let dir = tempfile::tempdir()?;
    let pipeline = runner.pipeline_in(dir.path())?;
    let outbox = crate::reply::outbox::OutboxConfig::from_config(config);
    let (record, trace) = crate::explain::run(&pipeline, &outbox, raw, Envelope::default(), now)?;
    let Some(trace) = trace else {
        anyhow::bail!("a fresh store cannot hold this message already");
    };
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = crate::intake::handlers::decision_json(&record);
        if explain {
            v["explain"] = serde_json::to_value(&trace)?;
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let d = &record.decision;
    writeln!(
        out,
        "outcome: {}\nstatus:  {}\nticket:  {}\nreply:   {}\nrules:   {}",
        d.outcome.as_str(),
        d.status.map(|s| s.as_str()).unwrap_or("-"),
        d.ticket
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".into()),
        d.reply.as_deref().unwrap_or("none"),
        record.rules_revision
    )?;
    for f in &d.findings {
        writeln!(out, "finding: {} ({}): {}", f.code, f.rule, f.detail)?;
    }
    if let Some(why) = &record.reply_suppressed {
        writeln!(out, "reply suppressed: {why}")?;
    }
    if explain {
        write!(out, "\n{}", trace.render(""))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn threads(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// `[#########...........]  120/200 cases, 1 failed` on one terminal line.
fn progress_line(done: usize, total: usize, failed: usize) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!(
        "\r[{}{}] {done}/{total} cases{}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    )
}

fn test(
    config: &Config,
    dir: &Path,
    rules: Option<PathBuf>,
    junit: Option<PathBuf>,
    only: Option<String>,
    jobs: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let rules_path = rules.unwrap_or_else(|| config.rules_path.clone());
    let runner = corpus::Runner::new(&rules_path, &dir.join("contracts.toml"), config.clone())?;
    let mut cases = corpus::discover(dir)?;
    if let Some(code) = &only {
        cases.retain(|c| {
            c.name.starts_with(code.as_str())
                || c.steps.iter().any(|s| s.expect.findings.contains(code))
        });
    }
    if cases.is_empty() {
        anyhow::bail!("no cases found under {}", dir.display());
    }
    let tty = std::io::stderr().is_terminal();
    let total = cases.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let failed_so_far = std::sync::atomic::AtomicUsize::new(0);
    let progress = |r: &corpus::CaseResult| {
        use std::sync::atomic::Ordering::SeqCst;
        let n = done.fetch_add(1, SeqCst) + 1;
        if !r.passed() {
            failed_so_far.fetch_add(1, SeqCst);
        }
        if tty {
            eprint!("{}", progress_line(n, total, failed_so_far.load(SeqCst)));
        }
    };
    let results = corpus::run_all(&runner, &cases, threads(jobs), &progress);
    if tty {
        eprintln!();
    }
    let mut out = std::io::stdout().lock();
    let (mut passed, mut failed) = (0, 0);
    for r in &results {
        if r.passed() {
            passed += 1;
            writeln!(out, "ok     {}", r.name)?;
        } else {
            failed += 1;
            writeln!(out, "FAILED {}", r.name)?;
            write!(out, "{}", corpus::failure_report(r))?;
        }
    }
    if let Some(path) = junit {
        std::fs::write(&path, corpus::junit(&results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut scores = crate::scoring::score(&results);
    if let Some(code) = &only {
        scores.retain(|s| &s.code == code);
    }
    writeln!(out, "\n{}", crate::scoring::render(&scores))?;
    let misses = crate::scoring::render_misses(&scores);
    if !misses.is_empty() {
        writeln!(out, "{misses}")?;
    }
    let (exact, steps) = crate::scoring::steps_exact(&results);
    writeln!(
        out,
        "{exact} of {steps} steps exact ({:.1}%)",
        100.0 * exact as f64 / steps.max(1) as f64
    )?;
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn diff(
    config: &Config,
    from: &Path,
    to: &Path,
    corpus_dir: &Path,
    jobs: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let contracts = corpus_dir.join("contracts.toml");
    let mut before = corpus::Runner::new(from, &contracts, config.clone())
        .with_context(|| format!("--from {}", from.display()))?;
    let mut after = corpus::Runner::new(to, &contracts, config.clone())
        .with_context(|| format!("--to {}", to.display()))?;
    before.explain_failures = false;
    after.explain_failures = false;
    let cases = corpus::discover(corpus_dir)?;
    if cases.is_empty() {
        anyhow::bail!("no cases found under {}", corpus_dir.display());
    }
    let changes = crate::policy_diff::diff(&before, &after, &cases, threads(jobs));
    let mut out = std::io::stdout().lock();
    write!(out, "{}", crate::policy_diff::render(&changes))?;
    let count = |v: &str| changes.iter().filter(|c| c.verdict() == v).count();
    writeln!(
        out,
        "{} of {} steps decide differently ({} fixed, {} broken, {} otherwise changed); rules {} → {}",
        changes.len(),
        cases.iter().map(|c| c.steps.len()).sum::<usize>(),
        count("fixes"),
        count("breaks"),
        count("changes"),
        before.rules.revision,
        after.rules.revision
    )?;
    Ok(ExitCode::from(u8::from(!changes.is_empty())))
}

fn lint(dir: &Path) -> anyhow::Result<ExitCode> {
    let report = match crate::policy::lint::lint(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("intake lint: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    for d in &report.diagnostics {
        println!("{d}");
    }
    // The portal's and notifications' own files (rules/notify.toml and its templates).
    let portal_problems = match crate::policy::RuleSet::load(dir) {
        Ok(set) => crate::portal::lint_rules(dir, &set),
        Err(_) => Vec::new(),
    };
    for p in &portal_problems {
        println!("{p}");
    }
    if report.diagnostics.is_empty() && portal_problems.is_empty() {
        println!(
            "{}: {} rules, revision {}, replies [{}], {} finding codes: ok",
            dir.display(),
            report.rules,
            report.revision.as_deref().unwrap_or("-"),
            report
                .templates
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            report.codes.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} problem(s)",
            report.diagnostics.len() + portal_problems.len()
        );
        Ok(ExitCode::from(1))
    }
}

#[allow(clippy::too_many_arguments)]
fn submit(
    config: &Config,
    sender: Option<String>,
    url: Option<String>,
    token_file: Option<PathBuf>,
    connect_timeout: f64,
    timeout: f64,
    recipients: Vec<String>,
) -> ExitCode {
    let fail = |code: u8, msg: String| {
        // One line per failure: the MTA puts it into its log and bounce.
        eprintln!("intake submit: {}", one_line(&msg));
        ExitCode::from(code)
    };
    let seconds = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v <= 86_400.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!(
                "--{name} must be between 0 and 86400 seconds, not {v}"
            ))
        }
    };
    let (connect_timeout, timeout) = match (
        seconds("connect-timeout", connect_timeout),
        seconds("timeout", timeout),
    ) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(e), _) | (_, Err(e)) => return fail(sysexits::USAGE, e),
    };
    let token = match (&token_file, &config.gateway_token) {
        (Some(f), _) => match std::fs::read_to_string(f) {
            Ok(t) => t.trim().to_owned(),
            Err(e) => {
                return fail(
                    sysexits::TEMPFAIL,
                    format!("cannot read token file {}: {e}", f.display()),
                )
            }
        },
        (None, Some(t)) => t.expose().to_owned(),
        (None, None) => {
            let f = config.store_path.join("gateway.token");
            match std::fs::read_to_string(&f) {
                Ok(t) => t.trim().to_owned(),
                Err(e) => {
                    return fail(
                        sysexits::TEMPFAIL,
                        format!("no gateway token ({}: {e})", f.display()),
                    )
                }
            }
        }
    };
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut raw) {
        return fail(
            sysexits::TEMPFAIL,
            format!("cannot read the message from stdin: {e}"),
        );
    }
    if raw.is_empty() {
        return fail(sysexits::DATAERR, "empty message on stdin".into());
    }
    let url = url.unwrap_or_else(|| format!("http://{}/v1/messages", config.listen));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect_timeout))
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut req = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "message/rfc822");
    if let Some(s) = &sender {
        // Postfix passes the null sender as an empty ${sender}.
        let s = if s.is_empty() { "<>" } else { s.as_str() };
        req = req.header("X-Envelope-From", s);
    }
    for r in &recipients {
        req = req.header("X-Envelope-To", r);
    }
    match req.send(&raw[..]) {
        Err(e) => fail(sysexits::TEMPFAIL, format!("{url}: {e}; retry later")),
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            let why = error_message(&body);
            match status {
                200..=299 => ExitCode::from(sysexits::OK),
                401 | 403 => fail(sysexits::NOPERM, format!("token refused ({status}): {why}")),
                400 | 413 | 415 | 422 => fail(
                    sysexits::DATAERR,
                    format!("message refused ({status}): {why}"),
                ),
                _ if status >= 500 || status == 429 || status == 408 => fail(
                    sysexits::TEMPFAIL,
                    format!("service unavailable ({status}), retry later: {why}"),
                ),
                _ => fail(
                    sysexits::SOFTWARE,
                    format!("unexpected answer {status}: {why}"),
                ),
            }
        }
    }
}

/// The `error.code: error.message` of a JSON error body, else the body itself, short.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = match parsed.as_ref().map(|v| &v["error"]) {
        Some(e) if e.is_object() => format!(
            "{}: {}",
            e["code"].as_str().unwrap_or("error"),
            e["message"].as_str().unwrap_or("")
        ),
        _ => body.trim().to_owned(),
    };
    text.chars().take(300).collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
