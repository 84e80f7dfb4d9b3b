//! parse + facts + policy over every `.eml` of `fixtures/`, no I/O (store
//! look-ups answer as an empty store). Throughput is in messages: the time per
//! element is the mean cost of one message of the corpus.
//!
//! `cargo bench --bench pipeline`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intake::contracts::Contracts;
use intake::facts::{extract_facts, Envelope, FactsConfig};
use intake::policy::{evaluate, NoLookups, RuleSet};

fn emls(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            emls(&p, out);
        } else if p.extension().is_some_and(|x| x == "eml") {
            out.push(p);
        }
    }
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    emls(&root.join("fixtures/cases"), &mut files);
    files.sort();
    let raws: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let rules = RuleSet::load(&root.join("rules")).unwrap();
    let contracts = Contracts::load(&root.join("fixtures/contracts.toml")).unwrap();
    let cfg = FactsConfig::new("Ticket#");
    let now: jiff::Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
    let lookups: Arc<dyn intake::policy::Lookups> = Arc::new(NoLookups);
    let facts: Vec<_> = raws
        .iter()
        .map(|r| {
            Arc::new(extract_facts(
                &intake::parse::parse(r),
                &Envelope::default(),
                r.len() as u64,
                now,
                &contracts,
                &cfg,
            ))
        })
        .collect();

    let mut g = c.benchmark_group("corpus");
    g.throughput(Throughput::Elements(raws.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            for r in &raws {
                std::hint::black_box(intake::parse::parse(r));
            }
        })
    });
    g.bench_function("parse+facts", |b| {
        b.iter(|| {
            for r in &raws {
                let p = intake::parse::parse(r);
                std::hint::black_box(extract_facts(
                    &p,
                    &Envelope::default(),
                    r.len() as u64,
                    now,
                    &contracts,
                    &cfg,
                ));
            }
        })
    });
    g.bench_function("policy", |b| {
        b.iter(|| {
            for f in &facts {
                std::hint::black_box(evaluate(&rules, f.clone(), lookups.clone(), &contracts));
            }
        })
    });
    g.bench_function("parse+facts+policy", |b| {
        b.iter(|| {
            for r in &raws {
                let p = intake::parse::parse(r);
                let f = Arc::new(extract_facts(
                    &p,
                    &Envelope::default(),
                    r.len() as u64,
                    now,
                    &contracts,
                    &cfg,
                ));
                std::hint::black_box(evaluate(&rules, f, lookups.clone(), &contracts));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
