//! Loading `rules/` into an immutable [`RuleSet`]: every `*.rhai` compiled once
//! (file-name order, `decide.rhai` last and required), the word lists of
//! `rules/lists/`, the reply templates of `rules/templates/`, and a revision that
//! is a content hash of all of it. Reload builds a new set and swaps it whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Scope, AST};

use crate::reply::render::Templates;
use crate::text::WordLists;

/// A problem found while loading rules, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// A problem with a whole file (no line or column to point at).
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: path.into(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.message
            )
        } else {
            write!(f, "{}: {}", self.path.display(), self.message)
        }
    }
}

/// Why a rule set could not be loaded: every problem found, not just the first.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rules in {root} do not load:\n{}", .diagnostics.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"))]
pub struct RuleError {
    pub root: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

/// One compiled rule script.
#[derive(Debug, Clone)]
pub struct Rule {
    /// File stem without its ordering prefix: `10-auto_generated.rhai` → `auto_generated`.
    pub id: String,
    pub path: PathBuf,
    pub ast: AST,
}

/// Everything `rules/` holds, compiled. Immutable; shared as `Arc<RuleSet>`.
#[derive(Debug)]
pub struct RuleSet {
    pub root: PathBuf,
    pub revision: String,
    pub rules: Vec<Rule>,
    pub decide: Rule,
    pub lists: Arc<WordLists>,
    pub templates: Templates,
}

/// The name of the decide script.
pub const DECIDE: &str = "decide.rhai";

/// A scope with the variables scripts may use, for compiling with strict variables.
pub fn script_scope() -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push_constant("msg", ());
    scope
}

fn rule_id(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("rule");
    let trimmed = stem.trim_start_matches(|c: char| c.is_ascii_digit());
    let trimmed = trimmed.trim_start_matches(['-', '_']);
    if trimmed.is_empty() { stem } else { trimmed }.to_owned()
}

impl RuleSet {
    /// Loads and compiles a rules directory.
    ///
    /// # Errors
    /// Every syntax error, unreadable file, bad list and bad template, with positions.
    pub fn load(root: &Path) -> Result<RuleSet, RuleError> {
        RuleSet::load_checked(root, true)
    }

    /// As [`RuleSet::load`]; `check_calls: false` leaves calls to unknown
    /// functions to the caller (lint reports them beside its other findings).
    ///
    /// # Errors
    /// As [`RuleSet::load`].
    pub fn load_checked(root: &Path, check_calls: bool) -> Result<RuleSet, RuleError> {
        let mut diags = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(root) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
                .collect(),
            Err(e) => {
                return Err(RuleError {
                    root: root.to_owned(),
                    diagnostics: vec![Diagnostic::file(
                        root.to_owned(),
                        format!("cannot read rules directory: {e}"),
                    )],
                })
            }
        };
        files.sort();
        let engine = super::engine::shared();
        let scope = script_scope();
        let mut rules = Vec::new();
        let mut decide = None;
        for path in files {
            let src = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) => {
                    diags.push(Diagnostic::file(path.clone(), format!("cannot read: {e}")));
                    continue;
                }
            };
            hasher.update(
                path.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            hasher.update(&[0]);
            hasher.update(src.as_bytes());
            match engine.compile_with_scope(&scope, &src) {
                Ok(mut ast) => {
                    // Unknown functions are load errors, not run-time surprises.
                    if check_calls {
                        diags.extend(super::calls::check_calls(
                            &ast,
                            &path,
                            super::calls::KnownFns::shared(),
                        ));
                    }
                    ast.set_source(path.display().to_string());
                    let rule = Rule {
                        id: rule_id(&path),
                        path: path.clone(),
                        ast,
                    };
                    if path.file_name().is_some_and(|n| n == DECIDE) {
                        decide = Some(rule);
                    } else {
                        rules.push(rule);
                    }
                }
                Err(e) => diags.push(Diagnostic {
                    path: path.clone(),
                    line: e.1.line().unwrap_or(0),
                    col: e.1.position().unwrap_or(0),
                    message: e.0.to_string(),
                }),
            }
        }
        let lists_dir = root.join("lists");
        hash_dir(&mut hasher, &lists_dir);
        let lists = match WordLists::load_dir(&lists_dir) {
            Ok(l) => l,
            Err(e) => {
                diags.push(Diagnostic::file(lists_dir.clone(), e.to_string()));
                WordLists::default()
            }
        };
        let tpl_dir = root.join("templates");
        hash_dir(&mut hasher, &tpl_dir);
        let templates = match Templates::load(&tpl_dir) {
            Ok(t) => t,
            Err(mut ds) => {
                diags.append(&mut ds);
                Templates::default()
            }
        };
        if decide.is_none() && diags.iter().all(|d| !d.path.ends_with(DECIDE)) {
            diags.push(Diagnostic::file(
                root.join(DECIDE),
                "missing: the decide script picks the outcome from the findings",
            ));
        }
        match decide {
            Some(decide) if diags.is_empty() => Ok(RuleSet {
                root: root.to_owned(),
                revision: hasher.finalize().to_hex()[..12].to_owned(),
                rules,
                decide,
                lists: Arc::new(lists),
                templates,
            }),
            _ => Err(RuleError {
                root: root.to_owned(),
                diagnostics: diags,
            }),
        }
    }
}

fn hash_dir(hasher: &mut blake3::Hasher, dir: &Path) {
    let mut stack = vec![dir.to_owned()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.filter_map(Result::ok) {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    for f in files {
        if let Ok(bytes) = std::fs::read(&f) {
            hasher.update(
                f.strip_prefix(dir)
                    .unwrap_or(&f)
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            hasher.update(&[0]);
            hasher.update(&bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_drop_ordering_prefix() {
        assert_eq!(
            rule_id(Path::new("rules/10-auto_generated.rhai")),
            "auto_generated"
        );
        assert_eq!(rule_id(Path::new("rules/decide.rhai")), "decide");
        assert_eq!(rule_id(Path::new("rules/20_flood.rhai")), "flood");
    }

    #[test]
    fn syntax_errors_carry_file_line_col() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("decide.rhai"), "#{ outcome: \"create\" }").unwrap();
        std::fs::write(dir.path().join("10-bad.rhai"), "let x = 1;\nlet y = ;\n").unwrap();
        let err = RuleSet::load(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("10-bad.rhai:2:"), "{text}");
    }

    #[test]
    fn unknown_variable_is_a_compile_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("decide.rhai"), "#{ outcome: \"create\" }").unwrap();
        std::fs::write(dir.path().join("10-x.rhai"), "if mgs.subject == \"\" { }\n").unwrap();
        assert!(RuleSet::load(dir.path()).is_err());
    }

    #[test]
    fn unknown_function_is_a_load_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("decide.rhai"), "#{ outcome: \"create\" }").unwrap();
        std::fs::write(dir.path().join("10-x.rhai"), "// x\nif lookup(1) { }\n").unwrap();
        let err = RuleSet::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("10-x.rhai:2:4: unknown function 'lookup'"),
            "{err}"
        );
        assert!(RuleSet::load_checked(dir.path(), false).is_ok());
    }

    #[test]
    fn missing_decide_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = RuleSet::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("decide.rhai"));
    }
}
