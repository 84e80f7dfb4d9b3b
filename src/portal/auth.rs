//! Portal sign-in: one-time links and sessions, kept in keyed collections of the
//! store (`portal_links`, `portal_sessions`), so every node sees the same ones.
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

use crate::store::{Collection, Store, StoreError, Writes};

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

/// Links and sessions, in two collections (the portal's, or the staff console's).
#[derive(Clone)]
pub struct AuthStore {
    store: Store,
    links: &'static str,
    sessions: &'static str,
}

/// 256 random bits as 64 hex digits.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The stored key of a token: its blake3 hash (a copy of the database signs no one in).
pub fn token_key(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Collection of unused sign-in links, keyed by the hash of the token.
const LINKS: &str = "portal_links";
/// Collection of sessions, keyed by the hash of the cookie token.
const SESSIONS: &str = "portal_sessions";

impl AuthStore {
    /// Links and sessions in the store's keyed collections.
    pub fn open(store: &Store) -> AuthStore {
        AuthStore::named(store, LINKS, SESSIONS)
    }

    /// Links and sessions in other collections (the staff console's), with the
    /// same promises; a token of one never opens the other.
    pub fn named(store: &Store, links: &'static str, sessions: &'static str) -> AuthStore {
        AuthStore {
            store: store.clone(),
            links,
            sessions,
        }
    }

    fn links(&self) -> Result<Collection, StoreError> {
        self.store.collection(self.links)
    }

    fn sessions(&self) -> Result<Collection, StoreError> {
        self.store.collection(self.sessions)
    }

    /// Issues a one-time link token for `grant` (only its hash is stored).
    ///
    /// # Errors
    /// Write failures.
    pub fn issue_link(&self, grant: &LinkGrant) -> Result<String, StoreError> {
        let token = random_token();
        self.links()?
            .put_json(&token_key(&token), grant, Some(grant.expires_at))?;
        Ok(token)
    }

    /// Uses up a link: the grant when the token is known and not expired; the
    /// record is removed either way, so a link works once (on every node: of two
    /// requests redeeming one link, one gets it).
    ///
    /// # Errors
    /// Read/write failures, corrupt records.
    pub fn redeem_link(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<LinkGrant>, StoreError> {
        let Some(entry) = self.links()?.take(&token_key(token))? else {
            return Ok(None);
        };
        let grant: LinkGrant = entry.json()?;
        Ok((grant.expires_at > now).then_some(grant))
    }

    /// Whether a link token is known and unexpired (without using it).
    ///
    /// # Errors
    /// Read failures, corrupt records.
    pub fn peek_link(&self, token: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self
            .links()?
            .get_json::<LinkGrant>(&token_key(token), now)?
            .is_some_and(|g| g.expires_at > now))
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
        self.sessions()?
            .put_json(&token_key(&token), &session, Some(session.expires_at))?;
        Ok((token, session))
    }

    /// The live session of a cookie token; an expired one is removed.
    ///
    /// # Errors
    /// Read failures, corrupt records.
    pub fn session(&self, token: &str, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let k = token_key(token);
        let sessions = self.sessions()?;
        let Some(entry) = sessions.get(&k)? else {
            return Ok(None);
        };
        let s: Session = entry.json()?;
        if s.expires_at <= now {
            sessions.delete(&k)?;
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Ends a session (sign-out).
    ///
    /// # Errors
    /// Write failures.
    pub fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.sessions()?.delete(&token_key(token))
    }

    /// Revokes every session and unused link of an address; returns how many.
    ///
    /// # Errors
    /// Read/write failures.
    pub fn revoke_address(&self, email: &str) -> Result<usize, StoreError> {
        let email = email.trim().to_lowercase();
        let mut writes = Writes::new();
        for name in [self.sessions, self.links] {
            for entry in self.store.collection(name)?.scan_all(b"", None)? {
                let who = serde_json::from_slice::<serde_json::Value>(&entry.value)
                    .ok()
                    .and_then(|j| j.get("email").and_then(|e| e.as_str()).map(str::to_owned));
                if who.as_deref() == Some(email.as_str()) {
                    writes.delete(name, &entry.key);
                }
            }
        }
        self.store.write(&writes)?;
        Ok(writes.len())
    }

    /// Removes expired links and sessions; returns how many.
    ///
    /// # Errors
    /// Read/write failures.
    pub fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        Ok(self.links()?.purge_expired(now)? + self.sessions()?.purge_expired(now)?)
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
        (dir, AuthStore::open(&s))
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
        assert!(a.links().unwrap().get(&token_key(&t)).unwrap().is_some());
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
