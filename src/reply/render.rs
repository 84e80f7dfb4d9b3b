//! Reply rendering: a reply intent plus its message, ticket and findings →
//! [`Rendered`] subject and body, from the templates of `rules/templates/<lang>/`.
//!
//! A template file is `Subject: …`, a blank line, then the body; finding snippets
//! live in `rules/templates/<lang>/findings/<code>.txt` (body only). Templates are
//! minijinja; a rendered subject containing CR or LF is refused (no header injection).

use std::collections::BTreeSet;
use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::policy::Diagnostic;

/// The languages replies are written in.
pub const LANGS: &[&str] = &["ru", "en"];

/// Why a reply could not be rendered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("no template {lang}/{name}")]
    Missing { lang: String, name: String },
    #[error("template {lang}/{name}: {message}")]
    Template {
        lang: String,
        name: String,
        message: String,
    },
    #[error("template {lang}/{name}: rendered subject contains CR or LF; refused")]
    HeaderInjection { lang: String, name: String },
}

/// A rendered reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// One finding as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    pub code: String,
    pub detail: String,
    /// The finding's explanation paragraph, rendered from its snippet.
    pub text: String,
}

/// Everything a reply template may use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplyContext {
    pub ticket: Option<u64>,
    /// `[Ticket#100001]`, or empty without a ticket.
    pub tag: String,
    pub subject: String,
    pub subject_core: String,
    pub findings: Vec<FindingView>,
    pub portal_url: String,
    pub client_name: Option<String>,
    pub client_id: Option<String>,
    pub sla_level: Option<String>,
    pub sla_reaction_minutes: Option<u64>,
    pub sla_reaction_hours: Option<u64>,
    pub sla_business_hours: bool,
    pub sla_reaction_due: Option<String>,
    pub duplicate_of: Option<u64>,
    pub lang: String,
    /// Values of the reply itself: `text` and `author` of a staff reply; `status`,
    /// `previous_status`, `note` of a status notification; `url` of a sign-in link.
    pub vars: std::collections::BTreeMap<String, String>,
    /// The earlier ticket a new one continues, if any.
    pub link: Option<u64>,
}

/// All templates of a rule set.
#[derive(Debug, Default)]
pub struct Templates {
    env: Environment<'static>,
    names: BTreeSet<(String, String)>,
    snippets: BTreeSet<(String, String)>,
}

impl Templates {
    /// Loads `dir/<lang>/*.txt` and `dir/<lang>/findings/*.txt`.
    ///
    /// # Errors
    /// Every file that cannot be read, lacks its `Subject:` line, or does not compile.
    pub fn load(dir: &Path) -> Result<Templates, Vec<Diagnostic>> {
        let mut t = Templates::default();
        t.env
            .set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        t.env.set_keep_trailing_newline(true);
        let mut diags = Vec::new();
        for lang in LANGS {
            for (sub, is_snippet) in [("", false), ("findings", true)] {
                let d = dir.join(lang).join(sub);
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                let mut files: Vec<_> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                    .collect();
                files.sort();
                for path in files {
                    let name = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("")
                        .to_owned();
                    let src = match std::fs::read_to_string(&path) {
                        Ok(s) => s,
                        Err(e) => {
                            diags.push(Diagnostic::file(path.clone(), format!("cannot read: {e}")));
                            continue;
                        }
                    };
                    let res = if is_snippet {
                        t.add(format!("{lang}/findings/{name}"), src)
                            .map(|()| t.snippets.insert((lang.to_string(), name)))
                            .map(|_| ())
                    } else {
                        t.add_reply(lang, &name, &src)
                    };
                    if let Err(m) = res {
                        diags.push(Diagnostic::file(path.clone(), m));
                    }
                }
            }
        }
        if diags.is_empty() {
            Ok(t)
        } else {
            Err(diags)
        }
    }

    fn add(&mut self, key: String, src: String) -> Result<(), String> {
        self.env
            .add_template_owned(key, src)
            .map_err(|e| e.to_string())
    }

    fn add_reply(&mut self, lang: &str, name: &str, src: &str) -> Result<(), String> {
        let (head, body) = src
            .split_once("\n\n")
            .or_else(|| src.split_once("\r\n\r\n"))
            .ok_or("expected `Subject: …`, a blank line, then the body")?;
        let subject = head
            .trim()
            .strip_prefix("Subject:")
            .ok_or("the first line must be `Subject: …`")?
            .trim()
            .to_owned();
        if head.trim().contains('\n') {
            return Err("only a `Subject:` line may stand before the blank line".into());
        }
        self.add(format!("{lang}/{name}.subject"), subject)?;
        self.add(format!("{lang}/{name}.body"), body.to_owned())?;
        self.names.insert((lang.to_owned(), name.to_owned()));
        Ok(())
    }

    /// Whether a reply template exists in `lang`.
    pub fn has(&self, lang: &str, name: &str) -> bool {
        self.names.contains(&(lang.to_owned(), name.to_owned()))
    }

    /// Whether a finding snippet exists in `lang`.
    pub fn has_snippet(&self, lang: &str, code: &str) -> bool {
        self.snippets.contains(&(lang.to_owned(), code.to_owned()))
    }

    /// Reply template names, per language.
    pub fn names(&self) -> Vec<(String, String)> {
        self.names.iter().cloned().collect()
    }

    /// Renders a finding's explanation paragraph (empty when it has no snippet).
    ///
    /// # Errors
    /// The snippet fails to render.
    pub fn snippet(
        &self,
        lang: &str,
        code: &str,
        ctx: &ReplyContext,
        detail: &str,
    ) -> Result<String, RenderError> {
        if !self.has_snippet(lang, code) {
            return Ok(String::new());
        }
        let key = format!("{lang}/findings/{code}");
        let tpl = self
            .env
            .get_template(&key)
            .map_err(|e| self.err(lang, code, e))?;
        tpl.render(
            minijinja::context! { detail => detail, ..minijinja::Value::from_serialize(ctx) },
        )
        .map(|s| s.trim().to_owned())
        .map_err(|e| self.err(lang, code, e))
    }

    fn err(&self, lang: &str, name: &str, e: minijinja::Error) -> RenderError {
        let mut message = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            message.push_str(&format!(": {s}"));
            src = s.source();
        }
        RenderError::Template {
            lang: lang.to_owned(),
            name: name.to_owned(),
            message,
        }
    }

    /// Renders reply `name` in `lang` (falling back to `en`).
    ///
    /// # Errors
    /// Missing template, a render error, or CR/LF in the subject.
    pub fn render(
        &self,
        lang: &str,
        name: &str,
        ctx: &ReplyContext,
    ) -> Result<Rendered, RenderError> {
        let lang = if self.has(lang, name) { lang } else { "en" };
        if !self.has(lang, name) {
            return Err(RenderError::Missing {
                lang: lang.to_owned(),
                name: name.to_owned(),
            });
        }
        let get = |part: &str| {
            self.env
                .get_template(&format!("{lang}/{name}.{part}"))
                .and_then(|t| t.render(ctx))
                .map_err(|e| self.err(lang, name, e))
        };
        let subject = get("subject")?.trim().to_owned();
        if subject.contains(['\r', '\n']) {
            return Err(RenderError::HeaderInjection {
                lang: lang.to_owned(),
                name: name.to_owned(),
            });
        }
        let body = get("body")?;
        Ok(Rendered { subject, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Result<Templates, Vec<Diagnostic>> {
        let dir = tempfile::tempdir().unwrap();
        for (p, src) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, src).unwrap();
        }
        Templates::load(dir.path())
    }

    #[test]
    fn renders_subject_body_and_snippets() {
        let t = load(&[
            ("en/created.txt", "Subject: {{ tag }} Received: {{ subject }}\n\nHello.\n{% for f in findings %}{{ f.text }}\n{% endfor %}"),
            ("en/findings/empty_subject.txt", "Your subject was empty ({{ detail }})."),
        ])
        .unwrap();
        let mut ctx = ReplyContext {
            tag: "[Ticket#100001]".into(),
            subject: "EPG".into(),
            lang: "en".into(),
            ..ReplyContext::default()
        };
        let text = t
            .snippet("en", "empty_subject", &ctx, "no subject")
            .unwrap();
        assert_eq!(text, "Your subject was empty (no subject).");
        ctx.findings.push(FindingView {
            code: "empty_subject".into(),
            detail: String::new(),
            text,
        });
        let r = t.render("ru", "created", &ctx).unwrap();
        assert_eq!(r.subject, "[Ticket#100001] Received: EPG");
        assert!(r.body.contains("Your subject was empty"));
    }

    #[test]
    fn crlf_in_subject_is_refused() {
        let t = load(&[("en/x.txt", "Subject: {{ subject }}\n\nbody")]).unwrap();
        let ctx = ReplyContext {
            subject: "a\r\nBcc: victim@example.com".into(),
            ..ReplyContext::default()
        };
        assert!(matches!(
            t.render("en", "x", &ctx),
            Err(RenderError::HeaderInjection { .. })
        ));
    }

    #[test]
    fn missing_subject_line_is_a_diagnostic() {
        let err = load(&[("ru/created.txt", "Hello\n\nbody")]).unwrap_err();
        assert!(err[0].message.contains("Subject"), "{:?}", err);
    }
}
