//! Portal sign-in: one-time links and sessions, kept in sled trees of the store.
//!
//! Input: an address a contract lists (sign-in request), a link token, a session
//! cookie; output: [`LinkGrant`]s and [`Session`]s. Tokens are 256 random bits
//! (rand), given out once and stored only as their blake3 hash, so a copy of the
//! database does not sign anyone in. Links are used up when redeemed; links and
//! sessions expire; sessions end on sign-out and can be revoked per address.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// A sign-in link, while not yet used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkGrant {
    pub email: String,
    pub client_id: String,
    pub lang: String,
    pub expires_at: Timestamp,
}

/// A signed-in client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub email: String,
    pub client_id: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The anti-CSRF token of this session's forms.
    pub csrf: String,
}

/// The trees of links and sessions.
#[derive(Clone)]
pub struct AuthStore {
    /// The trees are looked up per use: the store may have been reopened after a
    /// disk fault, and a kept tree handle would hold on to the old database.
    store: Store,
}

/// 256 random bits as 64 hex digits.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn corrupt(tree: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        tree,
        message: e.to_string(),
    }
}

fn sled_err(op: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, source }
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AuthStore {
    /// Opens the trees in the store's database.
    ///
    /// # Errors
    /// sled cannot open them.
    pub fn open(store: &Store) -> Result<AuthStore, StoreError> {
        for tree in ["portal_links", "portal_sessions"] {
            match store.tree(tree) {
                // Not open yet (read-only disk at start): opened on first use.
                Ok(_) | Err(StoreError::Reopening) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(AuthStore {
            store: store.clone(),
        })
    }

    fn links(&self) -> Result<sled::Tree, StoreError> {
        self.store.tree("portal_links")
    }

    fn sessions(&self) -> Result<sled::Tree, StoreError> {
        self.store.tree("portal_sessions")
    }

    /// Issues a one-time link token for `grant` (only its hash is stored).
    ///
    /// # Errors
    /// Write failures.
    pub fn issue_link(&self, grant: &LinkGrant) -> Result<String, StoreError> {
        let token = random_token();
        let v = serde_json::to_vec(grant).map_err(corrupt("portal_links"))?;
        self.links()?
            .insert(key(&token), v)
            .map_err(sled_err("issue link"))?;
        self.links()?.flush().map_err(sled_err("flush links"))?;
        Ok(token)
    }

    /// Uses up a link: the grant when the token is known and not expired; the
    /// record is removed either way, so a link works once.
    ///
    /// # Errors
    /// Read/write failures, corrupt records.
    pub fn redeem_link(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<LinkGrant>, StoreError> {
        let Some(v) = self
            .links()?
            .remove(key(token))
            .map_err(sled_err("redeem link"))?
        else {
            return Ok(None);
        };
        let grant: LinkGrant = serde_json::from_slice(&v).map_err(corrupt("portal_links"))?;
        Ok((grant.expires_at > now).then_some(grant))
    }

    /// Whether a link token is known and unexpired (without using it).
    ///
    /// # Errors
    /// Read failures, corrupt records.
    pub fn peek_link(&self, token: &str, now: Timestamp) -> Result<bool, StoreError> {
        let Some(v) = self
            .links()?
            .get(key(token))
            .map_err(sled_err("read link"))?
        else {
            return Ok(false);
        };
        let grant: LinkGrant = serde_json::from_slice(&v).map_err(corrupt("portal_links"))?;
        Ok(grant.expires_at > now)
    }

    /// Starts a session; returns its cookie token.
    ///
    /// # Errors
    /// Write failures.
    pub fn start_session(
        &self,
        email: &str,
        client_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(String, Session), StoreError> {
        let token = random_token();
        let session = Session {
            email: email.to_owned(),
            client_id: client_id.to_owned(),
            created_at: now,
            expires_at: now + jiff::SignedDuration::try_from(ttl).unwrap_or_default(),
            csrf: random_token(),
        };
        let v = serde_json::to_vec(&session).map_err(corrupt("portal_sessions"))?;
        self.sessions()?
            .insert(key(&token), v)
            .map_err(sled_err("start session"))?;
        self.sessions()?
            .flush()
            .map_err(sled_err("flush sessions"))?;
        Ok((token, session))
    }

    /// The live session of a cookie token; an expired one is removed.
    ///
    /// # Errors
    /// Read failures, corrupt records.
    pub fn session(&self, token: &str, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let k = key(token);
        let Some(v) = self.sessions()?.get(k).map_err(sled_err("read session"))? else {
            return Ok(None);
        };
        let s: Session = serde_json::from_slice(&v).map_err(corrupt("portal_sessions"))?;
        if s.expires_at <= now {
            self.sessions()?
                .remove(k)
                .map_err(sled_err("expire session"))?;
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Ends a session (sign-out).
    ///
    /// # Errors
    /// Write failures.
    pub fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.sessions()?
            .remove(key(token))
            .map_err(sled_err("end session"))?;
        self.sessions()?
            .flush()
            .map_err(sled_err("flush sessions"))?;
        Ok(())
    }

    /// Revokes every session and unused link of an address; returns how many.
    ///
    /// # Errors
    /// Read/write failures.
    pub fn revoke_address(&self, email: &str) -> Result<usize, StoreError> {
        let email = email.trim().to_lowercase();
        let mut n = 0;
        for tree in [self.sessions()?, self.links()?] {
            for item in tree.iter() {
                let (k, v) = item.map_err(sled_err("scan sessions"))?;
                let who = serde_json::from_slice::<serde_json::Value>(&v)
                    .ok()
                    .and_then(|j| j.get("email").and_then(|e| e.as_str()).map(str::to_owned));
                if who.as_deref() == Some(email.as_str()) {
                    tree.remove(k).map_err(sled_err("revoke"))?;
                    n += 1;
                }
            }
            tree.flush().map_err(sled_err("flush revoke"))?;
        }
        Ok(n)
    }
}

/// A sliding-window limit on sign-in requests per key (address, client IP).
pub struct RateLimiter {
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
    max: usize,
    window: Duration,
}

impl RateLimiter {
    /// At most `max` hits per key within `window`.
    pub fn new(max: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            hits: Mutex::new(HashMap::new()),
            max,
            window,
        }
    }

    /// Records a hit for `key`; false when the key is over its limit (the hit is
    /// then not recorded).
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        // A poisoned lock only means another request panicked mid-update; the
        // counters are still usable.
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 100_000 {
            hits.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let q = hits.entry(key.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max {
            return false;
        }
        q.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, AuthStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 100_001, 0).unwrap();
        (dir, AuthStore::open(&s).unwrap())
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_link_works_once_and_only_before_it_expires() {
        let (_d, a) = store();
        let grant = LinkGrant {
            email: "a@x.ru".into(),
            client_id: "MI-1".into(),
            lang: "ru".into(),
            expires_at: ts("2026-11-24T10:20:00Z"),
        };
        let t = a.issue_link(&grant).unwrap();
        assert_eq!(t.len(), 64);
        // Only the hash is stored.
        assert!(a.links().unwrap().get(t.as_bytes()).unwrap().is_none());
        assert!(a.peek_link(&t, ts("2026-11-24T10:00:00Z")).unwrap());
        assert_eq!(
            a.redeem_link(&t, ts("2026-11-24T10:00:00Z")).unwrap(),
            Some(grant.clone())
        );
        assert_eq!(a.redeem_link(&t, ts("2026-11-24T10:00:00Z")).unwrap(), None);
        let t2 = a.issue_link(&grant).unwrap();
        assert_ne!(t, t2);
        assert_eq!(
            a.redeem_link(&t2, ts("2026-11-24T10:20:01Z")).unwrap(),
            None
        );
        assert_eq!(
            a.redeem_link("guess", ts("2026-11-24T10:00:00Z")).unwrap(),
            None
        );
    }

    #[test]
    fn sessions_expire_end_and_are_revocable() {
        let (_d, a) = store();
        let now = ts("2026-11-24T10:00:00Z");
        let (t, s) = a
            .start_session("a@x.ru", "MI-1", now, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(a.session(&t, now).unwrap(), Some(s.clone()));
        assert_eq!(a.session(&t, ts("2026-11-24T11:00:00Z")).unwrap(), None);
        // Expired sessions are gone for good.
        assert_eq!(a.session(&t, now).unwrap(), None);
        let (t, _) = a
            .start_session("a@x.ru", "MI-1", now, Duration::from_secs(3600))
            .unwrap();
        a.end_session(&t).unwrap();
        assert_eq!(a.session(&t, now).unwrap(), None);
        let (t1, _) = a
            .start_session("a@x.ru", "MI-1", now, Duration::from_secs(3600))
            .unwrap();
        let (t2, _) = a
            .start_session("b@x.ru", "MI-1", now, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(a.revoke_address("A@x.ru").unwrap(), 1);
        assert!(a.session(&t1, now).unwrap().is_none());
        assert!(a.session(&t2, now).unwrap().is_some());
    }

    #[test]
    fn rate_limiter_counts_per_key() {
        let r = RateLimiter::new(2, Duration::from_secs(60));
        assert!(r.allow("a"));
        assert!(r.allow("a"));
        assert!(!r.allow("a"));
        assert!(r.allow("b"));
    }
}
