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
    crate::rules::copy_rules(&to);
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
        let tmp = tempfile::tempdir().unwrap();
        let rules = rules_copy(tmp.path());
        std::fs::write(rules.join(&name), &src).unwrap();
        let (code, out, err) = intake(tmp.path(), &["lint", "rules"]);
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
