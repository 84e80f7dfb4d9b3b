//! Per-finding-code scores of a corpus run (`intake test`): for every step that
//! ran, each code expected and raised is a true positive, raised but not
//! expected a false positive, expected but not raised a false negative; then
//! precision `TP/(TP+FP)` and recall `TP/(TP+FN)` per code. Each false positive
//! and false negative is kept with its case, step and language, so that the report
//! can list what a policy writer has to look at ([`render_misses`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::corpus::CaseResult;

/// The counts of one finding code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeScore {
    pub code: String,
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
    /// The steps where the code was raised but not expected.
    pub false_positives: Vec<Miss>,
    /// The steps where the code was expected but not raised.
    pub false_negatives: Vec<Miss>,
}

/// One step a code got wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Miss {
    /// `case` for a single case, `case/step.eml` for a step of a sequence.
    pub step: String,
    /// `ru`/`en`: from the case name (`…-ru-…`), else the decision's language.
    pub lang: String,
}

/// The language a case is about: the `ru`/`en` part of its name, else `fallback`.
fn case_lang(name: &str, fallback: &str) -> String {
    name.split('-')
        .find(|p| *p == "ru" || *p == "en")
        .unwrap_or(fallback)
        .to_owned()
}

/// How many steps matched their expectation exactly, and how many ran or should have.
pub fn steps_exact(results: &[CaseResult]) -> (usize, usize) {
    let total = results.iter().map(|r| r.steps.len()).sum();
    let exact = results
        .iter()
        .flat_map(|r| r.steps.iter())
        .filter(|s| s.3)
        .count();
    (exact, total)
}

impl CodeScore {
    /// `TP/(TP+FP)`, or `None` when the code was never raised.
    pub fn precision(&self) -> Option<f64> {
        let d = self.tp + self.fp;
        (d > 0).then(|| f64::from(self.tp) / f64::from(d))
    }

    /// `TP/(TP+FN)`, or `None` when the code was never expected.
    pub fn recall(&self) -> Option<f64> {
        let d = self.tp + self.fn_;
        (d > 0).then(|| f64::from(self.tp) / f64::from(d))
    }
}

/// Scores every code expected or raised in `results`, sorted by code.
pub fn score(results: &[CaseResult]) -> Vec<CodeScore> {
    let mut by_code: BTreeMap<String, CodeScore> = BTreeMap::new();
    for r in results {
        let single = r.steps.len() == 1;
        for (eml, exp, act, _) in &r.steps {
            let Some(act) = act else { continue };
            let miss = || Miss {
                step: if single {
                    r.name.clone()
                } else {
                    let file = eml.file_name().and_then(|f| f.to_str()).unwrap_or("?");
                    format!("{}/{file}", r.name)
                },
                lang: case_lang(&r.name, &act.lang),
            };
            let e: BTreeSet<&str> = exp.findings.iter().map(String::as_str).collect();
            let a: BTreeSet<&str> = act.findings.iter().map(String::as_str).collect();
            for code in e.union(&a) {
                let s = by_code
                    .entry((*code).to_owned())
                    .or_insert_with(|| CodeScore {
                        code: (*code).to_owned(),
                        ..CodeScore::default()
                    });
                match (e.contains(code), a.contains(code)) {
                    (true, true) => s.tp += 1,
                    (false, true) => {
                        s.fp += 1;
                        s.false_positives.push(miss());
                    }
                    (true, false) => {
                        s.fn_ += 1;
                        s.false_negatives.push(miss());
                    }
                    (false, false) => {}
                }
            }
        }
    }
    by_code.into_values().collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// The scores as an aligned text table.
pub fn render(scores: &[CodeScore]) -> String {
    let w = scores
        .iter()
        .map(|s| s.code.len())
        .max()
        .unwrap_or(4)
        .max("finding".len());
    let mut out = format!(
        "{:<w$}  {:>4}  {:>4}  {:>4}  {:>9}  {:>7}\n",
        "finding", "TP", "FP", "FN", "precision", "recall"
    );
    for s in scores {
        out.push_str(&format!(
            "{:<w$}  {:>4}  {:>4}  {:>4}  {:>9}  {:>7}\n",
            s.code,
            s.tp,
            s.fp,
            s.fn_,
            pct(s.precision()),
            pct(s.recall())
        ));
    }
    out
}

/// Per code, the steps it fired on wrongly and those it missed, grouped by
/// language: what a policy writer has to look at after the table. Empty when
/// every code is exact.
pub fn render_misses(scores: &[CodeScore]) -> String {
    let mut out = String::new();
    for s in scores {
        for (what, misses) in [
            ("raised wrongly", &s.false_positives),
            ("missed", &s.false_negatives),
        ] {
            if misses.is_empty() {
                continue;
            }
            out.push_str(&format!("{} {what} ({}):\n", s.code, misses.len()));
            let mut by_lang: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for m in misses {
                by_lang.entry(&m.lang).or_default().push(&m.step);
            }
            for (lang, steps) in by_lang {
                out.push_str(&format!("  {lang}: {}\n", steps.join(", ")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Actual, Expectation};

    fn step(expected: &[&str], actual: &[&str]) -> CaseResult {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        CaseResult {
            name: "x".into(),
            steps: vec![(
                "x.eml".into(),
                Expectation {
                    outcome: "create".into(),
                    status: None,
                    findings: s(expected),
                    reply: "none".into(),
                    now: None,
                },
                Some(Actual {
                    outcome: "create".into(),
                    status: None,
                    findings: s(actual),
                    reply: "none".into(),
                    ticket: None,
                    details: vec![],
                    lang: "en".into(),
                }),
                true,
            )],
            error: None,
            explains: vec![],
        }
    }

    #[test]
    fn counts_true_false_positives_and_negatives() {
        let results = [
            step(&["a"], &["a"]),
            step(&["a"], &[]),
            step(&[], &["a", "b"]),
            step(&["b"], &["b"]),
        ];
        let s = score(&results);
        assert_eq!(
            s[0],
            CodeScore {
                code: "a".into(),
                tp: 1,
                fp: 1,
                fn_: 1,
                false_positives: vec![Miss {
                    step: "x".into(),
                    lang: "en".into()
                }],
                false_negatives: vec![Miss {
                    step: "x".into(),
                    lang: "en".into()
                }],
            }
        );
        assert_eq!(s[0].precision(), Some(0.5));
        assert_eq!(s[0].recall(), Some(0.5));
        assert_eq!(
            s[1],
            CodeScore {
                code: "b".into(),
                tp: 1,
                fp: 1,
                fn_: 0,
                false_positives: vec![Miss {
                    step: "x".into(),
                    lang: "en".into()
                }],
                false_negatives: vec![],
            }
        );
        assert_eq!(s[1].recall(), Some(1.0));
        let table = render(&s);
        assert!(table.lines().nth(1).unwrap().contains("50.0%"), "{table}");
    }

    #[test]
    fn misses_are_listed_per_code_and_language() {
        let mut ru = step(&["a"], &[]);
        ru.name = "a-ru-pos-thing".into();
        let mut seq = step(&[], &["a"]);
        seq.name = "seq-en-flow".into();
        seq.steps.push(seq.steps[0].clone());
        seq.steps[1].0 = "cases/seq-en-flow/2-second.eml".into();
        seq.steps[1].2.as_mut().unwrap().findings.clear();
        let report = render_misses(&score(&[ru, seq]));
        assert_eq!(
            report,
            "a raised wrongly (1):\n  en: seq-en-flow/x.eml\na missed (1):\n  ru: a-ru-pos-thing\n"
        );
        assert_eq!(steps_exact(&[step(&["a"], &["a"])]), (1, 1));
    }
}
