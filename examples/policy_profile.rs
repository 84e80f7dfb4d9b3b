//! Where policy time goes: evaluates every corpus message many times and prints
//! the median per-message time and each rule's mean share.
//!
//! `cargo run --release --example policy_profile`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use intake::contracts::Contracts;
use intake::facts::{extract_facts, Envelope, FactsConfig};
use intake::policy::{evaluate, Lookups, NoLookups, RuleSet};

fn emls(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.is_dir() {
            emls(&p, out);
        } else if p.extension().is_some_and(|x| x == "eml") {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    emls(&root.join("fixtures/cases"), &mut files);
    files.sort();
    let rules_dir = std::env::var_os("RULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("rules"));
    let rules = RuleSet::load(&rules_dir).unwrap();
    let contracts = Contracts::load(&root.join("fixtures/contracts.toml")).unwrap();
    let cfg = FactsConfig::new("Ticket#");
    let now: jiff::Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
    let lookups: Arc<dyn Lookups> = Arc::new(NoLookups);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let facts: Vec<_> = files
        .iter()
        .map(|f| {
            let raw = std::fs::read(f).unwrap();
            Arc::new(extract_facts(
                &intake::parse::parse(&raw),
                &Envelope::default(),
                raw.len() as u64,
                now,
                &contracts,
                &cfg,
            ))
        })
        .collect();
    // Messages in turn, run after run: every evaluation sees a message the helpers'
    // per-thread caches have not just seen (as in service), never the same one twice in a row.
    let mut times: Vec<Vec<u64>> = vec![Vec::with_capacity(runs); facts.len()];
    let mut per_rule: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..runs {
        for (i, f) in facts.iter().enumerate() {
            let t0 = Instant::now();
            let ev = evaluate(&rules, f.clone(), lookups.clone(), &contracts);
            times[i].push(t0.elapsed().as_nanos() as u64);
            for t in &ev.trace {
                *per_rule.entry(t.rule.clone()).or_default() += t.micros;
            }
        }
    }
    let mut medians = Vec::new();
    let mut slowest = Vec::new();
    for (i, mut t) in times.into_iter().enumerate() {
        t.sort_unstable();
        let m = t[t.len() / 2];
        medians.push(m);
        slowest.push((
            m,
            files[i].file_name().unwrap().to_string_lossy().into_owned(),
            facts[i].text.len(),
        ));
    }
    medians.sort_unstable();
    let n = medians.len();
    println!("{n} messages, {runs} runs each");
    println!(
        "median per message: {:.1} µs; p90 {:.1} µs; max {:.1} µs",
        medians[n / 2] as f64 / 1000.0,
        medians[n * 9 / 10] as f64 / 1000.0,
        medians[n - 1] as f64 / 1000.0
    );
    let total: u64 = per_rule.values().sum();
    let mut rows: Vec<_> = per_rule.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (rule, us) in rows {
        println!(
            "  {rule:<24} {:>5.1}%  {:>6.1} µs/message",
            us as f64 * 100.0 / total as f64,
            us as f64 / (n * runs) as f64
        );
    }
    slowest.sort_unstable();
    for (m, name, len) in slowest.iter().rev().take(5) {
        println!(
            "  slow: {:>7.1} µs  {len:>6} B text  {name}",
            *m as f64 / 1000.0
        );
    }
}
