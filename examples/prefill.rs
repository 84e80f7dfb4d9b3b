//! Bench helper: fills a data directory with N tickets straight through the
//! store (no HTTP), so the load benchmark can run against a large store; and
//! reports how many messages a directory holds and their raw bytes.
//!
//! cargo run --release --example prefill -- fill DATA_DIR N
//! cargo run --release --example prefill -- stats DATA_DIR
//!
//! Filings are the corpus messages evaluated once by the shipped policy, then
//! repeated with fresh Message-IDs, senders and receipt times spread over five
//! years (as a real store grows); only `create` outcomes, and no replies queued.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use intake::config::Config;
use intake::corpus::Runner;
use intake::decision::Outcome;
use intake::facts::Envelope;
use intake::pipeline::Prepared;
use intake::store::{Filing, Store};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("fill") => {
            let n: u64 = args.get(3).context("N")?.parse()?;
            fill(Path::new(args.get(2).context("DATA_DIR")?), n)
        }
        Some("stats") => stats(Path::new(args.get(2).context("DATA_DIR")?)),
        _ => anyhow::bail!("usage: prefill fill DATA_DIR N | prefill stats DATA_DIR"),
    }
}

fn templates(runner: &Runner) -> anyhow::Result<Vec<Filing>> {
    let scratch = tempfile::tempdir()?;
    let pipeline = runner.pipeline_in(scratch.path())?;
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir("fixtures/cases")?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    for f in files {
        let raw = std::fs::read(&f)?;
        if let Prepared::New { filing, .. } = pipeline.prepare(raw, Envelope::default(), now)? {
            if filing.decision.outcome == Outcome::Create {
                out.push(*filing);
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "no corpus messages under fixtures/cases");
    Ok(out)
}

fn fill(dir: &Path, n: u64) -> anyhow::Result<()> {
    let config = Config::defaults();
    let runner = Runner::new(
        Path::new("rules"),
        Path::new("fixtures/contracts.toml"),
        config.clone(),
    )?;
    let templates = templates(&runner)?;
    std::fs::create_dir_all(dir)?;
    let store = Store::open(dir, config.first_number, config.cache_bytes)?;
    let committer = intake::store::Committer::start(store.clone(), Duration::ZERO);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let start = Instant::now();
    let five_years = 5 * 365 * 86_400i64;
    let now = jiff::Timestamp::now().as_second();
    let raw_bytes = rt.block_on(async {
        let filings = futures_util::stream::iter(0..n).map(|i| {
            let mut f = templates[(i as usize) % templates.len()].clone();
            f.dedup_key = format!("prefill:{i}").into_bytes();
            f.message_id = Some(format!("prefill-{i}@bench.example"));
            f.from = format!(
                "p{}@{}",
                i % 50_000,
                f.from.rsplit('@').next().unwrap_or("x")
            );
            f.received_at =
                jiff::Timestamp::from_second(now - five_years + (i as i64 * five_years) / n as i64)
                    .unwrap_or_default();
            f.reply = None;
            f.reply_suppressed = Some("prefill".into());
            f.decision.ticket = None;
            f.decision.reply = None;
            let c = committer.clone();
            async move {
                let len = f.raw.len() as u64;
                c.commit(f).await.map(|_| len)
            }
        });
        let mut done = 0u64;
        let mut bytes = 0u64;
        let mut results = filings.buffer_unordered(2048);
        while let Some(r) = results.next().await {
            bytes += r.map_err(|e| anyhow::anyhow!(e))?;
            done += 1;
            if done % 100_000 == 0 {
                eprintln!(
                    "{done} filed, {:.0}/s",
                    done as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
        Ok::<_, anyhow::Error>(bytes)
    })?;
    store.flush()?;
    let took = start.elapsed();
    println!(
        "prefilled {n} tickets ({raw_bytes} raw bytes) in {:.1}s: {:.0} tickets/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    Ok(())
}

fn stats(dir: &Path) -> anyhow::Result<()> {
    let store = Store::open(dir, 100_001, 8 * 1024 * 1024)?;
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut seq = 1;
    while let Some(raw) = store.raw_message(seq)? {
        count += 1;
        bytes += raw.len() as u64;
        seq += 1;
    }
    println!("{count} {bytes}");
    // Live bytes per part of the store, against what is on disk.
    let trees: Vec<String> = store
        .usage()?
        .iter()
        .map(|u| format!("{} {}/{}", u.name, u.entries, u.bytes))
        .collect();
    eprintln!("live entries/bytes per tree: {}", trees.join(", "));
    Ok(())
}
