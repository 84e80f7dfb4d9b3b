//! Support contracts (SPEC §6): loaded from a TOML file into an immutable
//! [`Contracts`] registry that answers "which contract has this client id" and
//! "which contract covers this sender address".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Why contracts could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read contracts file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("contracts file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One client's support contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub client_id: String,
    pub name: String,
    pub level: String,
    pub status: String,
    pub valid_until: Date,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "en".into()
}

impl Contract {
    /// Active by status and not past `valid_until` at instant `at` (in UTC).
    pub fn is_active_at(&self, at: Timestamp) -> bool {
        let today = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        self.status == "active" && self.valid_until >= today
    }

    /// Whether `address` (lower case) is listed, or its domain or a parent domain is.
    pub fn covers(&self, address: &str) -> bool {
        if self.addresses.iter().any(|a| a == address) {
            return true;
        }
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        self.domains.iter().any(|d| {
            domain == d
                || domain
                    .strip_suffix(d.as_str())
                    .is_some_and(|p| p.ends_with('.'))
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractsFile {
    #[serde(default)]
    contract: Vec<Contract>,
}

/// Immutable registry, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Contracts {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    all: Vec<Contract>,
    by_id: HashMap<String, usize>,
}

impl Contracts {
    /// Reads and validates a contracts file.
    ///
    /// # Errors
    /// Unreadable file, TOML errors, duplicate client ids, invalid statuses.
    pub fn load(path: &Path) -> Result<Contracts, ContractError> {
        let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read {
            path: path.to_owned(),
            source,
        })?;
        Contracts::parse(&text).map_err(|message| ContractError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the TOML text of a contracts file.
    ///
    /// # Errors
    /// A message describing the first problem.
    pub fn parse(text: &str) -> Result<Contracts, String> {
        let file: ContractsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Contracts::from_list(file.contract)
    }

    /// Builds the registry from contracts, normalising ids, domains and addresses.
    ///
    /// # Errors
    /// Duplicate client ids or an unknown status.
    pub fn from_list(list: Vec<Contract>) -> Result<Contracts, String> {
        let mut inner = Inner::default();
        for mut c in list {
            c.client_id = c.client_id.trim().to_ascii_uppercase();
            c.domains = c.domains.iter().map(|d| d.trim().to_lowercase()).collect();
            c.addresses = c
                .addresses
                .iter()
                .map(|a| a.trim().to_lowercase())
                .collect();
            if !["active", "suspended", "expired"].contains(&c.status.as_str()) {
                return Err(format!(
                    "{}: status {:?} (active, suspended or expired)",
                    c.client_id, c.status
                ));
            }
            if inner
                .by_id
                .insert(c.client_id.clone(), inner.all.len())
                .is_some()
            {
                return Err(format!("duplicate client_id {}", c.client_id));
            }
            inner.all.push(c);
        }
        Ok(Contracts {
            inner: Arc::new(inner),
        })
    }

    /// The contract of a client id (any case).
    pub fn by_client_id(&self, id: &str) -> Option<&Contract> {
        let key = id.to_ascii_uppercase();
        self.inner.by_id.get(&key).map(|&i| &self.inner.all[i])
    }

    /// The contract whose addresses or domains cover `address`; an exact address wins.
    pub fn for_sender(&self, address: &str) -> Option<&Contract> {
        let address = address.to_lowercase();
        self.inner
            .all
            .iter()
            .find(|c| c.addresses.contains(&address))
            .or_else(|| self.inner.all.iter().find(|c| c.covers(&address)))
    }

    /// Every contract, in file order.
    pub fn all(&self) -> &[Contract] {
        &self.inner.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[contract]]
client_id = "mi-10234"
name = "A"
level = "premium"
status = "active"
valid_until = "2027-12-31"
domains = ["Telecom-Sever.ru"]
addresses = ["x@gmail.com"]
language = "ru"

[[contract]]
client_id = "MI-51003"
name = "B"
level = "standard"
status = "active"
valid_until = "2026-06-30"
"#;

    #[test]
    fn lookups_normalise_case_and_subdomains() {
        let c = Contracts::parse(SAMPLE).unwrap();
        assert_eq!(c.by_client_id("MI-10234").unwrap().name, "A");
        assert_eq!(c.for_sender("Noc@Mail.Telecom-Sever.RU").unwrap().name, "A");
        assert_eq!(c.for_sender("x@gmail.com").unwrap().name, "A");
        assert!(c.for_sender("y@gmail.com").is_none());
        assert!(c.for_sender("a@evil-telecom-sever.ru").is_none());
    }

    #[test]
    fn valid_until_in_the_past_is_inactive() {
        let c = Contracts::parse(SAMPLE).unwrap();
        let b = c.by_client_id("MI-51003").unwrap();
        assert!(b.is_active_at("2026-06-30T12:00:00Z".parse().unwrap()));
        assert!(!b.is_active_at("2026-07-01T00:00:01Z".parse().unwrap()));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let text = format!("{SAMPLE}\n[[contract]]\nclient_id=\"MI-10234\"\nname=\"C\"\nlevel=\"basic\"\nstatus=\"active\"\nvalid_until=\"2027-01-01\"\n");
        assert!(Contracts::parse(&text).unwrap_err().contains("duplicate"));
    }
}
