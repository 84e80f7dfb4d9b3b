//! The policy writer's tools as a user runs them: the built `intake` binary on
//! copies of `rules/` (lint, check, test, diff), and hot reload and metrics on
//! the real server.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

/// Runs the `intake` binary in `cwd`; (exit code, stdout, stderr).
pub fn intake(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(args)
        .current_dir(cwd)
        .env(
            "INTAKE__CONTRACTS__FILE",
            repo().join("fixtures/contracts.toml"),
        )
        .output()
        .expect("the intake binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the shipped `rules/` at `dir/rules`.
pub fn rules_copy(dir: &Path) -> std::path::PathBuf {
    let to = dir.join("rules");
    copy_rules(&to);
    to
}

#[test]
fn lint_passes_the_shipped_rules() {
    let (code, out, err) = intake(&repo(), &["lint", "rules"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn lint_cannot_run_on_a_missing_directory() {
    let (code, _, err) = intake(&repo(), &["lint", "no-such-rules"]);
    assert_eq!(code, 2, "{err}");
}

/// Every `fixtures/rules-bad/*.rhai` is put into a copy of the shipped rules (as
/// itself, or as the file its `// as: NAME` second line names) and must make lint
/// report the diagnostic of its first line, `// expect: DIAGNOSTIC`.
#[test]
fn lint_reports_each_bad_rule_fixture() {
    let mut fixtures: Vec<_> = std::fs::read_dir(repo().join("fixtures/rules-bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 5, "{fixtures:?}");
    let mut failures = Vec::new();
    for f in &fixtures {
        let src = std::fs::read_to_string(f).unwrap();
        let mut lines = src.lines();
        let expect = lines
            .next()
            .and_then(|l| l.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{}: first line must be `// expect: …`", f.display()));
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("// as: "))
            .map(str::to_owned)
            .unwrap_or_else(|| f.file_name().unwrap().to_string_lossy().into_owned());
        let rules = RulesDir::copy().with(&name, &src);
        let (code, out, err) = intake(rules.root(), &["lint", "rules"]);
        if code != 1 || !out.lines().any(|l| l == expect) {
            failures.push(format!(
                "{}: exit {code}, expected the line\n  {expect}\ngot:\n{out}{err}",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lint_catches_a_missing_template() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_copy(tmp.path());
    std::fs::remove_file(rules.join("templates/en/duplicate.txt")).unwrap();
    let (code, out, _) = intake(tmp.path(), &["lint", "rules"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("decide can select reply 'duplicate', but rules/templates/en/duplicate.txt does not exist"),
        "{out}"
    );
}

#[test]
fn lint_catches_a_template_using_an_unknown_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_copy(tmp.path());
    std::fs::write(
        rules.join("templates/ru/created.txt"),
        "Subject: {{ tag }} {{ subject }}\n\nЗаявка {{ ticket_number }} принята.\n",
    )
    .unwrap();
    let (code, out, _) = intake(tmp.path(), &["lint", "rules"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(
            |l| l.starts_with("rules/templates/ru/created.txt: does not render")
                && l.contains("undefined")
        ),
        "{out}"
    );
}

/// A corpus of one case: `clean_ru` with the given expectation.
fn one_case_corpus(dir: &Path, expectation: &str) -> std::path::PathBuf {
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(corpus.join("cases")).unwrap();
    std::fs::copy(
        repo().join("fixtures/contracts.toml"),
        corpus.join("contracts.toml"),
    )
    .unwrap();
    std::fs::write(
        corpus.join("cases/epg-ru.eml"),
        crate::hook::clean_ru("tools@telecom-sever.ru"),
    )
    .unwrap();
    std::fs::write(corpus.join("cases/epg-ru.toml"), expectation).unwrap();
    corpus
}

#[test]
fn test_fails_on_a_wrong_expectation_with_a_readable_diff_and_trace() {
    let tmp = tempfile::tempdir().unwrap();
    rules_copy(tmp.path());
    one_case_corpus(
        tmp.path(),
        "outcome = \"reject\"\nfindings = [\"out_of_scope\"]\nreply = \"rejected\"\n",
    );
    let junit = tmp.path().join("junit.xml");
    let (code, out, err) = intake(
        tmp.path(),
        &[
            "test",
            "corpus",
            "--rules",
            "rules",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAILED epg-ru"), "{out}");
    // Expected and actual side by side, differing fields marked.
    let row = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("outcome"),
        ["outcome", "reject", "create", "≠"],
        "{out}"
    );
    assert_eq!(row("status"), ["status", "-", "new", "≠"], "{out}");
    assert_eq!(
        row("findings"),
        [
            "findings",
            "out_of_scope",
            "-",
            "≠",
            "missing:",
            "out_of_scope"
        ],
        "{out}"
    );
    assert_eq!(row("reply"), ["reply", "rejected", "created", "≠"], "{out}");
    // The explain trace of the step follows.
    assert!(out.contains("      explain:"), "{out}");
    assert!(
        out.contains("list_match(\"out_of_scope\", msg.text_new) → no match"),
        "{out}"
    );
    assert!(
        out.contains("reply ru/created to i.petrov@telecom-sever.ru:"),
        "{out}"
    );
    // The per-finding table counts the miss.
    let table_row = out
        .lines()
        .find(|l| l.starts_with("out_of_scope "))
        .unwrap_or_else(|| panic!("no table row in\n{out}"));
    assert_eq!(
        table_row.split_whitespace().collect::<Vec<_>>(),
        ["out_of_scope", "0", "0", "1", "-", "0.0%"]
    );
    assert!(out.trim_end().ends_with("0 passed, 1 failed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<failure message=\"decision mismatch\">"),
        "{xml}"
    );
}

#[test]
fn test_passes_a_right_expectation_and_only_filters_by_finding() {
    let tmp = tempfile::tempdir().unwrap();
    rules_copy(tmp.path());
    one_case_corpus(
        tmp.path(),
        "outcome = \"create\"\nstatus = \"new\"\nfindings = []\nreply = \"created\"\n",
    );
    let (code, out, err) = intake(tmp.path(), &["test", "corpus", "--rules", "rules"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.trim_end().ends_with("1 passed, 0 failed"), "{out}");
    let (code, _, err) = intake(
        tmp.path(),
        &["test", "corpus", "--rules", "rules", "--only", "duplicate"],
    );
    assert_eq!(code, 2, "no case is about duplicate: {err}");
    assert!(err.contains("no cases found"), "{err}");
}

#[test]
fn diff_shows_the_cases_a_rule_change_decides_differently() {
    let tmp = tempfile::tempdir().unwrap();
    let before = rules_copy(tmp.path());
    let after = RulesDir::copy().with(
        "65-epg_sales.rhai",
        "// EPG feeds are a paid add-on: questions about them go to sales.\nif msg.subject_core.contains(\"EPG\") { flag(\"out_of_scope\", \"EPG feed question\"); }\n",
    );
    let corpus = one_case_corpus(
        tmp.path(),
        "outcome = \"create\"\nstatus = \"new\"\nfindings = []\nreply = \"created\"\n",
    );
    std::fs::write(corpus.join("cases/other.eml"), b"From: x@telecom-sever.ru\r\nSubject: Pairing the remote fails on STB-4K\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <other@x>\r\n\r\nThe remote does not pair. MI-10234\r\n").unwrap();
    std::fs::write(
        corpus.join("cases/other.toml"),
        "outcome = \"create\"\nstatus = \"needs_info\"\nfindings = [\"incomplete_bug_report\"]\nreply = \"needs_info\"\n",
    )
    .unwrap();
    let (code, out, err) = intake(
        tmp.path(),
        &[
            "diff",
            "--from",
            before.to_str().unwrap(),
            "--to",
            after.path().to_str().unwrap(),
            "corpus",
        ],
    );
    assert_eq!(code, 1, "a change was found: {out}{err}");
    assert!(out.contains("breaks epg-ru (epg-ru.eml)"), "{out}");
    assert!(
        out.contains("  before:   create/new [] reply created ticket 100001"),
        "{out}"
    );
    assert!(
        out.contains("  after:    reject [out_of_scope] reply rejected"),
        "{out}"
    );
    assert!(
        !out.contains("other.eml"),
        "an unchanged case is not listed: {out}"
    );
    assert!(out.contains("1 of 2 steps decide differently"), "{out}");
    let (code, out, _) = intake(
        tmp.path(),
        &["diff", "--from", "rules", "--to", "rules", "corpus"],
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_explain_shows_the_words_the_decide_path_and_the_rendered_reply() {
    let tmp = tempfile::tempdir().unwrap();
    let eml = repo().join("fixtures/cases/abusive_language-ru-pos-kh-star-with-log.eml");
    let (code, out, err) = intake(
        tmp.path(),
        &[
            "check",
            eml.to_str().unwrap(),
            "--explain",
            "--rules",
            repo().join("rules").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("outcome: reject\n"), "{out}");
    assert!(
        out.contains("contract:        MI-10234 (ООО «Телесеть Север»), premium, active — identifier MI-10234 in the message"),
        "{out}"
    );
    assert!(
        // The rule matches msg.text_new with pasted material blanked (strip_pasted).
        out.contains("list_match(\"obscene\", \"Добрый день.  Ваш TX-8 — это какая-то х*…\") → 'х*йня' (entry 'хуй*') at 3:25"),
        "{out}"
    );
    assert!(
        out.contains("  has_any_finding([abusive_language, unknown_client, contract_inactive, out_of_scope]) → true\n  ⇒ outcome reject"),
        "{out}"
    );
    assert!(
        out.contains(
            "reply ru/rejected to a.kuznetsov@telecom-sever.ru:\n  Subject: Обращение не принято:"
        ),
        "{out}"
    );
    let (code, out, _) = intake(
        tmp.path(),
        &[
            "check",
            eml.to_str().unwrap(),
            "--json",
            "--explain",
            "--rules",
            repo().join("rules").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "reject");
    assert_eq!(v["explain"]["reply"]["kind"], "rendered");
    assert!(v["explain"]["rules"].as_array().unwrap().len() >= 10);
}
