//! Named staff accounts (issue 13 item 1): who may work tickets (agents) and who
//! may also manage contracts, staff, webhooks and rules (admins).
//!
//! Accounts, their API tokens and their console sign-in links and sessions live in
//! keyed collections of the store (`staff_accounts`, `staff_tokens`, `staff_links`,
//! `staff_sessions`), so they work on every engine and every node sees the same
//! ones. Tokens are 256 random bits, shown once and stored only as their blake3
//! hash (the mechanism of the portal's [`crate::portal::AuthStore`], whose
//! sign-in links and sessions the console uses under its own collection names).
//!
//! A disabled account stops at once: every request looks the account up, and
//! disabling also removes its sessions, unused links and tokens.
//!
//! Input: e-mail addresses, roles, tokens; output: [`Account`]s and the `by` that
//! events record (`staff:<email>`).

pub mod cli;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::portal::auth::{random_token, token_key, AuthStore};
use crate::store::{Store, StoreError, Writes};

/// Collection of accounts, keyed by the lower-cased address.
const ACCOUNTS: &str = "staff_accounts";
/// Collection of API tokens, keyed by the hash of the token.
const TOKENS: &str = "staff_tokens";
/// Prefix of a staff API token (tells it apart from the shared tokens in logs).
pub const TOKEN_PREFIX: &str = "ist_";

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works tickets and the review queue.
    Agent,
    /// Also manages contracts, staff, webhooks and rules.
    Admin,
}

impl Role {
    /// `agent` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "agent" => Some(Role::Agent),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` allows (an admin may do everything).
    pub fn covers(self, needed: Role) -> bool {
        self >= needed
    }
}

/// One staff member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
    /// When the account was disabled; a disabled account can do nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
}

impl Account {
    pub fn active(&self) -> bool {
        self.disabled_at.is_none()
    }

    /// What events record as `by` for this account.
    pub fn by(&self) -> String {
        format!("staff:{}", self.email)
    }
}

/// An API token record (the token itself is not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TokenRecord {
    email: String,
    created_at: Timestamp,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("{0:?} is not an e-mail address")]
    BadAddress(String),
    #[error("no staff account {0}")]
    NoSuchAccount(String),
    #[error("the staff account {0} is disabled")]
    Disabled(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lower-cased, trimmed address, when it is one.
///
/// # Errors
/// [`StaffError::BadAddress`].
pub fn normalise_email(email: &str) -> Result<String, StaffError> {
    let e = email.trim().to_lowercase();
    if e.len() > 254 || !crate::facts::is_plausible_address(&e) {
        return Err(StaffError::BadAddress(email.to_owned()));
    }
    Ok(e)
}

/// Accounts, tokens, and the console's links and sessions; clone freely.
#[derive(Clone)]
pub struct Staff {
    store: Store,
    auth: AuthStore,
}

impl Staff {
    pub fn open(store: &Store) -> Staff {
        Staff {
            store: store.clone(),
            auth: AuthStore::named(store, "staff_links", "staff_sessions"),
        }
    }

    /// The console's sign-in links and sessions.
    pub fn auth(&self) -> &AuthStore {
        &self.auth
    }

    /// Adds an account, or changes the role of an existing one and enables it
    /// again; returns it and whether it is new.
    ///
    /// # Errors
    /// Not an address; store failures.
    pub fn add(
        &self,
        email: &str,
        role: Role,
        now: Timestamp,
    ) -> Result<(Account, bool), StaffError> {
        let email = normalise_email(email)?;
        let old = self.get(&email)?;
        let account = Account {
            email: email.clone(),
            role,
            created_at: old.as_ref().map_or(now, |a| a.created_at),
            disabled_at: None,
        };
        self.store
            .collection(ACCOUNTS)?
            .put_json(email.as_bytes(), &account, None)?;
        Ok((account, old.is_none()))
    }

    /// The account of an address, active or not.
    ///
    /// # Errors
    /// Store failures.
    pub fn get(&self, email: &str) -> Result<Option<Account>, StaffError> {
        let email = email.trim().to_lowercase();
        let Some(entry) = self.store.collection(ACCOUNTS)?.get(email.as_bytes())? else {
            return Ok(None);
        };
        Ok(Some(entry.json()?))
    }

    /// The account of an address when it is active.
    ///
    /// # Errors
    /// Store failures.
    pub fn active(&self, email: &str) -> Result<Option<Account>, StaffError> {
        Ok(self.get(email)?.filter(Account::active))
    }

    /// Every account, by address.
    ///
    /// # Errors
    /// Store failures, corrupt records.
    pub fn list(&self) -> Result<Vec<Account>, StaffError> {
        self.store
            .collection(ACCOUNTS)?
            .scan_all(b"", None)?
            .iter()
            .map(|e| e.json().map_err(StaffError::from))
            .collect()
    }

    /// Disables an account: its sessions, unused sign-in links and API tokens are
    /// removed, and every later request of it is refused. Returns how many
    /// sessions, links and tokens were removed.
    ///
    /// # Errors
    /// No such account; store failures.
    pub fn disable(&self, email: &str, now: Timestamp) -> Result<usize, StaffError> {
        let email = email.trim().to_lowercase();
        let mut account = self
            .get(&email)?
            .ok_or_else(|| StaffError::NoSuchAccount(email.clone()))?;
        if account.disabled_at.is_none() {
            account.disabled_at = Some(now);
        }
        // The account first: from here on nothing of it is accepted, even if the
        // clean-up below fails half-way.
        self.store
            .collection(ACCOUNTS)?
            .put_json(email.as_bytes(), &account, None)?;
        let mut removed = self.auth.revoke_address(&email)?;
        let mut w = Writes::new();
        for entry in self.store.collection(TOKENS)?.scan_all(b"", None)? {
            if entry.json::<TokenRecord>().is_ok_and(|t| t.email == email) {
                w.delete(TOKENS, &entry.key);
                removed += 1;
            }
        }
        self.store.write(&w)?;
        Ok(removed)
    }

    /// A new API token for an active account; the token is returned once and only
    /// its hash is stored.
    ///
    /// # Errors
    /// No such account, a disabled one; store failures.
    pub fn issue_token(&self, email: &str, now: Timestamp) -> Result<String, StaffError> {
        let email = email.trim().to_lowercase();
        match self.get(&email)? {
            None => return Err(StaffError::NoSuchAccount(email)),
            Some(a) if !a.active() => return Err(StaffError::Disabled(email)),
            Some(_) => {}
        }
        let token = format!("{TOKEN_PREFIX}{}", random_token());
        self.store.collection(TOKENS)?.put_json(
            &token_key(&token),
            &TokenRecord {
                email,
                created_at: now,
            },
            None,
        )?;
        Ok(token)
    }

    /// The active account an API token belongs to.
    ///
    /// # Errors
    /// Store failures.
    pub fn by_token(&self, token: &str) -> Result<Option<Account>, StaffError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() != TOKEN_PREFIX.len() + 64 {
            return Ok(None);
        }
        let Some(entry) = self.store.collection(TOKENS)?.get(&token_key(token))? else {
            return Ok(None);
        };
        let rec: TokenRecord = entry.json()?;
        self.active(&rec.email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff() -> (tempfile::TempDir, Staff) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 100_001, 0).unwrap();
        (dir, Staff::open(&s))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn accounts_are_added_listed_and_disabled() {
        let (_d, s) = staff();
        let now = ts("2026-12-01T10:00:00Z");
        let (a, new) = s.add(" Anna@Vendor.Example ", Role::Agent, now).unwrap();
        assert!(new);
        assert_eq!(a.email, "anna@vendor.example");
        assert_eq!(a.by(), "staff:anna@vendor.example");
        s.add("boss@vendor.example", Role::Admin, now).unwrap();
        assert!(matches!(
            s.add("not an address", Role::Agent, now),
            Err(StaffError::BadAddress(_))
        ));
        let all = s.list().unwrap();
        assert_eq!(
            all.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(),
            ["anna@vendor.example", "boss@vendor.example"]
        );
        s.disable("ANNA@vendor.example", now).unwrap();
        assert!(s.active("anna@vendor.example").unwrap().is_none());
        assert!(s.get("anna@vendor.example").unwrap().unwrap().disabled_at == Some(now));
        assert!(matches!(
            s.disable("nobody@vendor.example", now),
            Err(StaffError::NoSuchAccount(_))
        ));
        // Adding again enables it, with its first creation time.
        let later = ts("2026-12-02T10:00:00Z");
        let (a, new) = s.add("anna@vendor.example", Role::Admin, later).unwrap();
        assert!(!new);
        assert_eq!((a.role, a.created_at, a.active()), (Role::Admin, now, true));
    }

    #[test]
    fn tokens_are_hashed_and_stop_when_the_account_is_disabled() {
        let (_d, s) = staff();
        let now = ts("2026-12-01T10:00:00Z");
        s.add("anna@vendor.example", Role::Agent, now).unwrap();
        let t = s.issue_token("anna@vendor.example", now).unwrap();
        assert!(t.starts_with(TOKEN_PREFIX));
        let t2 = s.issue_token("anna@vendor.example", now).unwrap();
        assert_ne!(t, t2);
        // Only the hash is stored.
        let raw = s
            .store
            .collection(TOKENS)
            .unwrap()
            .scan_all(b"", None)
            .unwrap();
        assert_eq!(raw.len(), 2);
        assert!(raw.iter().all(|e| e.key.len() == 32
            && !String::from_utf8_lossy(&e.key).contains(&t[4..])
            && !String::from_utf8_lossy(&e.value).contains(&t[4..])));
        assert_eq!(
            s.by_token(&t).unwrap().map(|a| a.email),
            Some("anna@vendor.example".to_owned())
        );
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('0') { '1' } else { '0' });
        assert!(s.by_token(&forged).unwrap().is_none());
        assert!(s.by_token("anything").unwrap().is_none());
        let (session, _) = s
            .auth()
            .start_session(
                "anna@vendor.example",
                "",
                now,
                std::time::Duration::from_secs(60),
            )
            .unwrap();
        assert!(s.auth().session(&session, now).unwrap().is_some());
        assert_eq!(s.disable("anna@vendor.example", now).unwrap(), 3);
        assert!(s.by_token(&t).unwrap().is_none());
        assert!(s.by_token(&t2).unwrap().is_none());
        assert!(s.auth().session(&session, now).unwrap().is_none());
        assert!(matches!(
            s.issue_token("anna@vendor.example", now),
            Err(StaffError::Disabled(_))
        ));
        assert!(matches!(
            s.issue_token("nobody@vendor.example", now),
            Err(StaffError::NoSuchAccount(_))
        ));
    }

    #[test]
    fn staff_sessions_are_not_portal_sessions() {
        let (_d, s) = staff();
        let now = ts("2026-12-01T10:00:00Z");
        let portal = AuthStore::open(&s.store);
        let (t, _) = portal
            .start_session(
                "anna@vendor.example",
                "MI-1",
                now,
                std::time::Duration::from_secs(60),
            )
            .unwrap();
        assert!(s.auth().session(&t, now).unwrap().is_none());
        let (t, _) = s
            .auth()
            .start_session(
                "anna@vendor.example",
                "",
                now,
                std::time::Duration::from_secs(60),
            )
            .unwrap();
        assert!(portal.session(&t, now).unwrap().is_none());
    }
}
