//! The whole fixture corpus through the same runner as `intake test`.

use intake::config::Config;
use intake::corpus;

use crate::helpers::repo;

#[test]
fn fixture_corpus_passes() {
    let dir = repo().join("fixtures");
    let runner = corpus::Runner::new(
        &repo().join("rules"),
        &dir.join("contracts.toml"),
        Config::defaults(),
    )
    .unwrap();
    let cases = corpus::discover(&dir).unwrap();
    assert!(cases.len() >= 150, "the corpus has {} cases", cases.len());
    let results = corpus::run_all(&runner, &cases, 2, &|_| {});
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    let report: String = failed
        .iter()
        .map(|r| format!("FAILED {}\n{}", r.name, corpus::failure_report(r)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{report}",
        failed.len(),
        results.len()
    );
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    std::fs::copy(
        repo().join("fixtures/contracts.toml"),
        dir.path().join("contracts.toml"),
    )
    .unwrap();
    std::fs::write(
        cases.join("x.eml"),
        crate::hook::clean_ru("x@telecom-sever.ru"),
    )
    .unwrap();
    std::fs::write(
        cases.join("x.toml"),
        "outcome = \"reject\"\nfindings = [\"out_of_scope\"]\nreply = \"rejected\"\n",
    )
    .unwrap();
    let runner = corpus::Runner::new(
        &repo().join("rules"),
        &dir.path().join("contracts.toml"),
        Config::defaults(),
    )
    .unwrap();
    let found = corpus::discover(dir.path()).unwrap();
    let results = corpus::run_all(&runner, &found, 1, &|_| {});
    assert!(!results[0].passed());
    let report = corpus::failure_report(&results[0]);
    let outcome_row: Vec<&str> = report
        .lines()
        .find(|l| l.trim_start().starts_with("outcome "))
        .unwrap_or_else(|| panic!("no outcome row in\n{report}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        outcome_row,
        ["outcome", "reject", "create", "≠"],
        "{report}"
    );
    assert!(report.contains("missing: out_of_scope"), "{report}");
    assert!(report.contains("      explain:"), "{report}");
    assert!(
        corpus::junit(&results).contains("<failure"),
        "junit marks the failure"
    );
}
