//! Static checks of compiled scripts (stage 3, at load and `intake lint`): the
//! function calls of an [`AST`] against the functions the engine registers and the
//! script defines, and the literal arguments lint needs (finding codes of `flag`,
//! list names, reply template names of `decide.rhai`).
//!
//! Rhai resolves function calls at run time, so a typo in a helper name would only
//! show as a `policy_error` on the first message that reaches it. Walking the AST
//! once at load turns it into a diagnostic with its position.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rhai::{ASTNode, Engine, Expr, FnCallExpr, Position, Stmt, AST};

use super::rules::Diagnostic;

/// Functions the engine handles itself (keywords), any arity.
const KEYWORD_FNS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// Every function name the engine knows, with the argument counts it accepts.
#[derive(Debug, Clone, Default)]
pub struct KnownFns {
    arities: BTreeMap<String, BTreeSet<usize>>,
}

impl KnownFns {
    /// The functions registered in `engine` (script API and standard packages).
    pub fn of(engine: &Engine) -> KnownFns {
        let mut arities: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (name, n) in engine.collect_fn_metadata(
            None,
            |info| Some((info.metadata.name.to_string(), info.metadata.num_params)),
            true,
        ) {
            arities.entry(name).or_default().insert(n);
        }
        KnownFns { arities }
    }

    /// The functions of the shared engine, collected once.
    pub fn shared() -> &'static KnownFns {
        static KNOWN: std::sync::LazyLock<KnownFns> =
            std::sync::LazyLock::new(|| KnownFns::of(super::engine::shared()));
        &KNOWN
    }

    /// Whether `name` exists at all.
    pub fn has(&self, name: &str) -> bool {
        self.arities.contains_key(name)
    }

    /// The closest known name to `name`, for a "did you mean" hint.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        closest(name, self.arities.keys().map(String::as_str))
    }
}

/// The candidate closest to `name` by edit distance, when close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .filter(|c| !c.starts_with("get$") && !c.starts_with("set$") && !c.starts_with("index$"))
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// One function call in a script.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    /// Number of arguments written (without the object of a method call).
    pub n_args: usize,
    /// The first argument when it is a string literal.
    pub first_literal: Option<String>,
    /// `x.name(args)`: the object is an extra first argument.
    pub method: bool,
    pub pos: Position,
}

fn named_call(x: &FnCallExpr) -> bool {
    !x.is_operator_call()
        && x.name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Every named function call of `ast` (operators left out), in source order.
pub fn calls(ast: &AST) -> Vec<Call> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(x, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(x, pos))) => Some((x, false, *pos)),
            Some(ASTNode::Expr(Expr::MethodCall(x, pos))) => Some((x, true, *pos)),
            _ => None,
        };
        if let Some((x, method, pos)) = call {
            if named_call(x) {
                out.push(Call {
                    name: x.name.to_string(),
                    n_args: x.args.len(),
                    first_literal: x.args.first().and_then(literal),
                    method,
                    pos,
                });
            }
        }
        true
    });
    out.sort_by_key(|c| (c.pos.line().unwrap_or(0), c.pos.position().unwrap_or(0)));
    out
}

/// A diagnostic at a script position.
pub fn at(path: &Path, pos: Position, message: String) -> Diagnostic {
    Diagnostic {
        path: path.to_owned(),
        line: pos.line().unwrap_or(0),
        col: pos.position().unwrap_or(0),
        message,
    }
}

fn arities_text(set: &BTreeSet<usize>) -> String {
    let v: Vec<String> = set.iter().map(|n| n.to_string()).collect();
    match v.len() {
        1 => v[0].clone(),
        _ => format!("{} or {}", v[..v.len() - 1].join(", "), v[v.len() - 1]),
    }
}

/// Calls of `ast` to functions that exist neither in the engine nor in the
/// script, or with an argument count no variant accepts.
pub fn check_calls(ast: &AST, path: &Path, known: &KnownFns) -> Vec<Diagnostic> {
    let mut own: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for f in ast.iter_functions() {
        own.entry(f.name.to_owned())
            .or_default()
            .insert(f.params.len());
    }
    let mut diags = Vec::new();
    for c in calls(ast) {
        let name = c.name.as_str();
        if KEYWORD_FNS.contains(&name) {
            continue;
        }
        let n = c.n_args + usize::from(c.method);
        let script = own.get(name);
        // A script function called as a method binds the object to `this`.
        if script.is_some_and(|s| s.contains(&n) || (c.method && s.contains(&c.n_args))) {
            continue;
        }
        match known.arities.get(name) {
            Some(set) if set.contains(&n) => {}
            Some(set) => diags.push(at(
                path,
                c.pos,
                format!(
                    "function '{name}' takes {} argument{}, not {n}",
                    arities_text(set),
                    if set.len() == 1 && set.contains(&1) {
                        ""
                    } else {
                        "s"
                    }
                ),
            )),
            None if script.is_some() => {}
            None => {
                let hint = closest(
                    name,
                    known
                        .arities
                        .keys()
                        .map(String::as_str)
                        .chain(own.keys().map(String::as_str)),
                );
                let mut message = format!("unknown function '{name}'");
                if let Some(h) = hint {
                    message.push_str(&format!("\n  hint: did you mean '{h}'?"));
                }
                diags.push(at(path, c.pos, message));
            }
        }
    }
    diags
}

/// The string literal of an expression, if it is one.
pub fn literal(e: &Expr) -> Option<String> {
    match e {
        Expr::StringConstant(s, _) => Some(s.to_string()),
        _ => None,
    }
}

/// Calls of `ast` to `name` with a string literal first argument: (literal, position).
pub fn literal_args(ast: &AST, names: &[&str]) -> Vec<(String, String, Position)> {
    calls(ast)
        .into_iter()
        .filter(|c| names.contains(&c.name.as_str()) && !c.method)
        .filter_map(|c| c.first_literal.map(|s| (c.name, s, c.pos)))
        .collect()
}

/// String values given to `key` in object map literals (`#{ reply: "created" }`).
pub fn map_literals(ast: &AST, key: &str) -> Vec<(String, Position)> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::DynamicConstant(v, pos))) = path.last() {
            // A map of constants is folded into one constant value.
            if let Some(m) = v.read_lock::<rhai::Map>() {
                if let Some(s) = m.get(key).and_then(|x| x.clone().into_string().ok()) {
                    out.push((s, *pos));
                }
            }
        }
        if let Some(ASTNode::Expr(Expr::Map(m, _))) = path.last() {
            for (ident, value) in &m.0 {
                if ident.name == key {
                    if let Some(s) = literal(value) {
                        out.push((s, ident.pos));
                    }
                }
            }
        }
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> AST {
        super::super::engine::shared()
            .compile_with_scope(&super::super::rules::script_scope(), src)
            .unwrap()
    }

    #[test]
    fn reports_unknown_function_with_position_and_hint() {
        let known = KnownFns::of(super::super::engine::shared());
        let ast = compile("let a = 1;\nif lst_has(\"x\", msg.subject) { flag(\"a\", \"b\"); }\n");
        let d = check_calls(&ast, Path::new("rules/x.rhai"), &known);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].to_string(),
            "rules/x.rhai:2:4: unknown function 'lst_has'\n  hint: did you mean 'list_has'?"
        );
    }

    #[test]
    fn accepts_registered_script_and_method_calls() {
        let known = KnownFns::of(super::super::engine::shared());
        let ast = compile(
            "fn twice(x) { x * 2 }\nlet w = [];\nw.push(twice(2));\nif msg.header(\"X\") == () && w.len() > 0 { flag(\"a\", \"b\", 1); }\nprint(type_of(w));\n",
        );
        let d = check_calls(&ast, Path::new("x.rhai"), &known);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn reports_wrong_argument_count() {
        let known = KnownFns::of(super::super::engine::shared());
        let ast = compile("flag(\"only_code\");\n");
        let d = check_calls(&ast, Path::new("x.rhai"), &known);
        assert_eq!(d.len(), 1);
        assert!(
            d[0].message.contains("takes 2 or 3 arguments, not 1"),
            "{d:?}"
        );
    }

    #[test]
    fn finds_literal_codes_and_reply_names() {
        let ast = compile(
            "if true { flag(\"a_code\", `x`); }\nif has_finding(\"b\") { #{ outcome: \"create\", reply: \"created\" } } else { #{ outcome: \"ignore\", reply: \"none\" } }\n",
        );
        let codes: Vec<String> = literal_args(&ast, &["flag"])
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(codes, ["a_code"]);
        let mut replies: Vec<String> = map_literals(&ast, "reply")
            .into_iter()
            .map(|x| x.0)
            .collect();
        replies.sort();
        assert_eq!(replies, ["created", "none"]);
    }
}
