//! Contracts as scripts see them: a [`Contract`] → the read-only script type
//! `Contract` (`msg.contract`, `msg.sender_contract`, `contract_of(id)`).
//!
//! A contract is one shared value: handing it to a variable or a function copies a
//! pointer, not the record. As an object map it was deep-copied at every access
//! (`let c = msg.contract`, `contract_covers(c, …)`), which cost a policy run more
//! than any single rule's own logic. Scripts read it as they read a map: `c.name`,
//! `c["name"]`, `c == ()`.

use std::sync::Arc;

use jiff::Timestamp;
use rhai::{Array, Dynamic, Engine, ImmutableString};

use super::probe;
use crate::contracts::Contract;

/// The names scripts can read.
pub const FIELDS: &[&str] = &[
    "client_id",
    "name",
    "level",
    "status",
    "valid_until",
    "domains",
    "addresses",
    "language",
    "active",
];

/// A contract with `active` evaluated at the message's time.
#[derive(Clone)]
pub struct ScriptContract(Arc<(Contract, bool)>);

impl ScriptContract {
    /// The script value of `contract` as of `at`.
    pub fn dynamic(contract: &Contract, at: Timestamp) -> Dynamic {
        let active = contract.is_active_at(at);
        Dynamic::from(ScriptContract(Arc::new((contract.clone(), active))))
    }

    fn contract(&self) -> &Contract {
        &self.0 .0
    }

    /// One field by name; `()` for a name that is not a field (as a map would).
    fn field(&self, name: &str) -> Dynamic {
        let c = self.contract();
        let text = |v: &str| Dynamic::from(ImmutableString::from(v));
        let list = |v: &[String]| -> Dynamic {
            Dynamic::from_array(v.iter().map(|x| text(x)).collect::<Array>())
        };
        match name {
            "client_id" => text(&c.client_id),
            "name" => text(&c.name),
            "level" => text(&c.level),
            "status" => text(&c.status),
            "valid_until" => text(&c.valid_until.to_string()),
            "domains" => list(&c.domains),
            "addresses" => list(&c.addresses),
            "language" => text(&c.language),
            "active" => Dynamic::from_bool(self.0 .1),
            _ => Dynamic::UNIT,
        }
    }
}

/// Registers the `Contract` type, its fields and `contract_covers`.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ScriptContract>("Contract");
    for &name in FIELDS {
        engine.register_get(name, move |c: &mut ScriptContract| c.field(name));
    }
    engine.register_indexer_get(|c: &mut ScriptContract, name: &str| c.field(name));
    engine.register_fn("contract_covers", |c: &mut ScriptContract, addr: &str| {
        let addr = addr.to_lowercase();
        let k = c.contract();
        let r = k.covers(&addr);
        probe::note(
            || format!("contract_covers({}, \"{addr}\")", k.client_id),
            None,
            || format!("{r} (domains {:?}, addresses {:?})", k.domains, k.addresses),
        );
        r
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract {
            client_id: "MI-10234".into(),
            name: "Telecom".into(),
            level: "premium".into(),
            status: "active".into(),
            valid_until: jiff::civil::date(2030, 1, 1),
            domains: vec!["telecom.example".into()],
            addresses: vec![],
            language: "ru".into(),
        }
    }

    fn eval<T: rhai::Variant + Clone>(script: &str) -> T {
        let engine = super::super::engine::shared();
        let mut scope = rhai::Scope::new();
        scope.push_constant(
            "c",
            ScriptContract::dynamic(&contract(), Timestamp::UNIX_EPOCH),
        );
        scope.push_constant("none", Dynamic::UNIT);
        engine
            .eval_with_scope::<T>(&mut scope, script)
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    #[test]
    fn reads_like_a_map() {
        assert_eq!(eval::<ImmutableString>("c.client_id"), "MI-10234");
        assert_eq!(eval::<ImmutableString>(r#"c["name"]"#), "Telecom");
        assert_eq!(eval::<ImmutableString>("c.valid_until"), "2030-01-01");
        assert!(eval::<bool>("c.active"));
        assert!(eval::<bool>(r#"c["nothing"] == ()"#));
        assert!(eval::<bool>(r#""telecom.example" in c.domains"#));
    }

    #[test]
    fn compares_with_unit_as_a_value() {
        assert!(eval::<bool>("c != ()"));
        assert!(!eval::<bool>("c == ()"));
        assert!(eval::<bool>("none == ()"));
        assert!(eval::<bool>("let d = c; d != () && d.level == \"premium\""));
    }

    #[test]
    fn covers_its_domains() {
        assert!(eval::<bool>(r#"contract_covers(c, "Ops@Telecom.example")"#));
        assert!(!eval::<bool>(r#"contract_covers(c, "ops@other.example")"#));
    }
}
