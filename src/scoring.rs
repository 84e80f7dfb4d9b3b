//! Per-finding-code scores of a corpus run (`intake test`): for every step that
//! ran, each code expected and raised is a true positive, raised but not
//! expected a false positive, expected but not raised a false negative; then
//! precision `TP/(TP+FP)` and recall `TP/(TP+FN)` per code.

use std::collections::{BTreeMap, BTreeSet};

use crate::corpus::CaseResult;

/// The counts of one finding code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeScore {
    pub code: String,
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
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
        for (_, exp, act, _) in &r.steps {
            let Some(act) = act else { continue };
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
                    (false, true) => s.fp += 1,
                    (true, false) => s.fn_ += 1,
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
                fn_: 1
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
                fn_: 0
            }
        );
        assert_eq!(s[1].recall(), Some(1.0));
        let table = render(&s);
        assert!(table.lines().nth(1).unwrap().contains("50.0%"), "{table}");
    }
}
