//! API keys and roles (SPEC §4).
//!
//! A key is `sdk_` followed by 64 hex digits (32 random bytes from the operating
//! system). Only its SHA-256 is stored: a key has 256 bits of entropy, so a fast hash is
//! enough (there is nothing to brute-force), and lookup is one indexed equality on the
//! hash. Each key also has a public id (`key_` + 16 hex digits) that is safe to log and
//! is the `actor` of the events its requests cause.
//!
//! Roles: `admin` (everything), `user` bound to one owner (their own sessions only),
//! `agent` bound to one agent id (register itself, heartbeat, read its assignments,
//! report on sessions placed on it).
//!
//! The first start of `sessiond serve` on a store that never had a key creates one admin
//! key ([`bootstrap_admin_key`]); `sessionctl keys create|list|revoke` manages the rest.

use chrono::{SecondsFormat, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use store::db::Db;
use tokio::sync::watch;

use domain::ids::{AgentId, Owner};

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// One owner's sessions.
    User {
        /// The owner this key acts as.
        owner: String,
    },
    /// One agent.
    Agent {
        /// The agent this key is bound to.
        agent_id: String,
    },
}

impl Role {
    /// `admin`, `user` or `agent`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User { .. } => "user",
            Role::Agent { .. } => "agent",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's public id.
    pub key_id: String,
    /// Its role.
    pub role: Role,
}

impl Principal {
    /// The `actor` recorded in event metadata: `agent:<id>` for agents, the key id
    /// otherwise.
    pub fn actor(&self) -> String {
        match &self.role {
            Role::Agent { agent_id } => format!("agent:{agent_id}"),
            _ => self.key_id.clone(),
        }
    }

    /// Whether this is an admin key.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may see / act on something owned by `owner`.
    pub fn can_access_owner(&self, owner: &str) -> bool {
        match &self.role {
            Role::Admin => true,
            Role::User { owner: mine } => mine == owner,
            Role::Agent { .. } => false,
        }
    }
}

/// A new key's secret (a `secrecy::SecretString`: zeroed on drop, never printed by
/// `Debug`).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(SecretString::from(key.into()))
    }
    /// The key itself, to show to its owner once.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// Public id.
    pub id: String,
    /// Role (with owner / agent id).
    #[serde(flatten)]
    pub role: Role,
    /// Free text.
    pub description: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Database failure.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// No key with that id.
    #[error("no API key '{0}'")]
    NotFound(String),
}

/// Shortest key accepted from `SESSIOND_BOOTSTRAP_ADMIN_KEY`.
pub const MIN_KEY_LEN: usize = 16;

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a presented key.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn columns(role: &Role) -> (Option<&str>, Option<&str>) {
    match role {
        Role::Admin => (None, None),
        Role::User { owner } => (Some(owner.as_str()), None),
        Role::Agent { agent_id } => (None, Some(agent_id.as_str())),
    }
}

fn validate(role: &Role) -> Result<(), KeyError> {
    match role {
        Role::User { owner } => Owner::parse("owner", owner)
            .map(|_| ())
            .map_err(|e| KeyError::Invalid(e.to_string())),
        Role::Agent { agent_id } => AgentId::parse("agent-id", agent_id)
            .map(|_| ())
            .map_err(|e| KeyError::Invalid(e.to_string())),
        Role::Admin => Ok(()),
    }
}

fn role_of(role: &str, owner: Option<String>, agent_id: Option<String>) -> Option<Role> {
    match (role, owner, agent_id) {
        ("admin", _, _) => Some(Role::Admin),
        ("user", Some(owner), _) => Some(Role::User { owner }),
        ("agent", _, Some(agent_id)) => Some(Role::Agent { agent_id }),
        _ => None,
    }
}

/// Creates a key with `role`; returns its stored form and the key itself (shown once).
pub async fn create_key(
    db: &Db,
    role: Role,
    description: &str,
) -> Result<(ApiKeyInfo, Secret), KeyError> {
    validate(&role)?;
    let secret = Secret::new(format!("sdk_{}", random_hex(32)));
    let info = ApiKeyInfo {
        id: format!("key_{}", random_hex(8)),
        role,
        description: description.to_string(),
        created_at: now(),
        revoked_at: None,
    };
    let (owner, agent_id) = columns(&info.role);
    store::keys::insert(
        db,
        &store::keys::NewKey {
            id: &info.id,
            key_hash: &hash_key(secret.expose()),
            role: info.role.name(),
            owner,
            agent_id,
            description: &info.description,
            created_at: &info.created_at,
        },
    )
    .await?;
    Ok((info, secret))
}

/// A Backend.AI keypair as created: shown once.
#[derive(Debug)]
pub struct Keypair {
    /// The stored key (its id, role, …).
    pub info: ApiKeyInfo,
    /// The access key (public: it names the keypair in signed requests).
    pub access_key: String,
    /// The secret key (signs requests; stored only sealed).
    pub secret_key: Secret,
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut buf = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter()
        .map(|b| {
            let i = usize::from(*b).checked_rem(alphabet.len()).unwrap_or(0);
            char::from(alphabet.get(i).copied().unwrap_or(b'A'))
        })
        .collect()
}

/// Creates a keypair with `role` (Backend.AI's access key `AKIA…` and a 40-character
/// secret key); the secret is stored sealed with `kek`.
pub async fn create_keypair(
    db: &Db,
    kek: &crate::compat::kek::Kek,
    role: Role,
    description: &str,
) -> Result<Keypair, KeyError> {
    validate(&role)?;
    let access_key = format!(
        "AKIA{}",
        random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    );
    let secret_key = Secret::new(random_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    ));
    let info = ApiKeyInfo {
        id: format!("key_{}", random_hex(8)),
        role,
        description: description.to_string(),
        created_at: now(),
        revoked_at: None,
    };
    let (owner, agent_id) = columns(&info.role);
    // Nobody holds this value: the keypair can never be presented as a bearer key.
    let unpresentable = hash_key(&format!("keypair:{}", random_hex(32)));
    store::keys::insert_keypair(
        db,
        &store::keys::NewKey {
            id: &info.id,
            key_hash: &unpresentable,
            role: info.role.name(),
            owner,
            agent_id,
            description: &info.description,
            created_at: &info.created_at,
        },
        &access_key,
        &kek.seal(secret_key.expose()),
    )
    .await?;
    Ok(Keypair {
        info,
        access_key,
        secret_key,
    })
}

/// The unrevoked keypair with `access_key`: its principal and its secret (opened with
/// `kek`). `None` for an unknown or revoked access key, or a secret that does not open.
pub async fn find_keypair(
    db: &Db,
    kek: &crate::compat::kek::Kek,
    access_key: &str,
) -> Result<Option<(Principal, Secret)>, KeyError> {
    let Some((key_id, role, owner, agent_id, sealed)) =
        store::keys::find_keypair(db, access_key).await?
    else {
        return Ok(None);
    };
    let Some(role) = role_of(&role, owner, agent_id) else {
        return Ok(None);
    };
    match kek.open(&sealed) {
        Ok(secret) => Ok(Some((Principal { key_id, role }, Secret::new(secret)))),
        Err(e) => {
            tracing::warn!(error = %e, key_id = %key_id, "a keypair's secret does not open with this server's secret_key");
            Ok(None)
        }
    }
}

/// On a store that never had an admin key bootstrapped, creates one — `provided` (from
/// `SESSIOND_BOOTSTRAP_ADMIN_KEY`) or a random one — and returns it. Returns `None` when
/// the store was bootstrapped before (also by a replica starting at the same moment:
/// the `api_bootstrap` row is inserted in the same transaction as the key, and only
/// one insert of that row can succeed).
pub async fn bootstrap_admin_key(
    db: &Db,
    provided: Option<Secret>,
) -> Result<Option<(ApiKeyInfo, Secret)>, KeyError> {
    if let Some(p) = &provided {
        if p.expose().len() < MIN_KEY_LEN || p.expose().chars().any(char::is_whitespace) {
            return Err(KeyError::Invalid(format!(
                "SESSIOND_BOOTSTRAP_ADMIN_KEY must be at least {MIN_KEY_LEN} characters without spaces"
            )));
        }
    }
    if store::keys::bootstrapped(db).await? {
        return Ok(None);
    }
    let secret = provided.unwrap_or_else(|| Secret::new(format!("sdk_{}", random_hex(32))));
    let info = ApiKeyInfo {
        id: format!("key_{}", random_hex(8)),
        role: Role::Admin,
        description: "bootstrap admin key".into(),
        created_at: now(),
        revoked_at: None,
    };
    let stored = store::keys::bootstrap(
        db,
        &store::keys::NewKey {
            id: &info.id,
            key_hash: &hash_key(secret.expose()),
            role: Role::Admin.name(),
            owner: None,
            agent_id: None,
            description: &info.description,
            created_at: &info.created_at,
        },
    )
    .await?;
    if !stored {
        return Ok(None);
    }
    Ok(Some((info, secret)))
}

/// The principal of a presented key, if it is known and not revoked.
pub async fn authenticate(db: &Db, presented: &str) -> Result<Option<Principal>, KeyError> {
    let row = store::keys::find_active(db, &hash_key(presented)).await?;
    Ok(row.and_then(|(key_id, role, owner, agent_id)| {
        role_of(&role, owner, agent_id).map(|role| Principal { key_id, role })
    }))
}

/// Every key (revoked ones too), oldest first.
pub async fn list_keys(db: &Db) -> Result<Vec<ApiKeyInfo>, KeyError> {
    let rows = store::keys::list(db).await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(id, role, owner, agent_id, description, created_at, revoked_at)| {
                role_of(&role, owner, agent_id).map(|role| ApiKeyInfo {
                    id,
                    role,
                    description,
                    created_at,
                    revoked_at,
                })
            },
        )
        .collect())
}

/// Revokes a key (idempotent: revoking a revoked key keeps its first revocation time)
/// and bumps the revision every replica watches ([`Keys::watch`]), in one transaction.
pub async fn revoke_key(db: &Db, id: &str) -> Result<(), KeyError> {
    if store::keys::revoke(db, id, &now()).await? {
        Ok(())
    } else {
        Err(KeyError::NotFound(id.to_string()))
    }
}

/// How long a looked-up key is trusted before it is read again (revocations are pushed
/// sooner, by [`Keys::watch`]).
const KEY_TTL: Duration = Duration::from_secs(60);
/// How long an unknown key is remembered as unknown (new keys are random, so a key
/// created later was never presented before).
const MISS_TTL: Duration = Duration::from_secs(5);
/// Most entries of each cache (cleared when full: a flood of bad keys cannot grow it).
const CACHE_LIMIT: usize = 10_000;

/// The API keys as a request sees them: a cache in front of `api_keys`, with
/// revocations applied at once on every replica: every request makes sure the revision
/// `revoke_key` bumps was read after it arrived (one shared read for concurrent
/// requests), and [`Keys::watch`] polls it for the streams; when it moves, revoked keys
/// leave the cache and [`Keys::revocations`] wakes the streams they opened, which end.
#[derive(Debug)]
pub struct Keys {
    db: Db,
    hits: Mutex<HashMap<String, (Principal, Instant)>>,
    misses: Mutex<HashMap<String, Instant>>,
    revoked: RwLock<HashSet<String>>,
    revision: watch::Sender<i64>,
    /// One revision check at a time; holds when the last completed check started.
    /// Requests that arrive while a check runs wait for the next one (a check that
    /// started before a request arrived may have missed a revocation it must see).
    checked: tokio::sync::Mutex<Option<Instant>>,
    /// Revision checks made (requests that shared one count once).
    checks: AtomicU64,
}

impl Keys {
    /// A cache over `db`'s keys (empty; [`Keys::refresh`] loads the revocations).
    pub fn new(db: Db) -> Self {
        Self {
            db,
            hits: Mutex::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            revoked: RwLock::new(HashSet::new()),
            revision: watch::channel(-1).0,
            checked: tokio::sync::Mutex::new(None),
            checks: AtomicU64::new(0),
        }
    }

    /// Makes sure the revocations are as of a read that started after this call: a key
    /// revoked anywhere (another replica, `sessionctl`) before a request arrived is
    /// refused by that request. One read of the revision (a one-row table) serves every
    /// request that arrived before it started, so concurrent requests share it: under
    /// load the cost is about one small query per round trip, not one per request.
    async fn revocations_as_of_now(&self) -> Result<(), KeyError> {
        let arrived = Instant::now();
        let mut checked = self.checked.lock().await;
        if checked.is_some_and(|started| started >= arrived) {
            return Ok(());
        }
        let started = Instant::now();
        self.refresh().await?;
        self.checks.fetch_add(1, Ordering::Relaxed);
        *checked = Some(started);
        Ok(())
    }

    /// How many revision checks this cache has made (tests: concurrent requests share).
    pub fn revision_checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The principal of a presented key, if it is known and not revoked: from the
    /// cache, else one indexed lookup.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>, KeyError> {
        self.revocations_as_of_now().await?;
        let hash = hash_key(presented);
        let cached = self.hits.lock().ok().and_then(|h| {
            h.get(&hash)
                .filter(|(_, at)| at.elapsed() < KEY_TTL)
                .cloned()
        });
        if let Some((principal, _)) = cached {
            if !self.is_revoked(&principal.key_id) {
                return Ok(Some(principal));
            }
            return Ok(None);
        }
        let missed = self
            .misses
            .lock()
            .ok()
            .is_some_and(|m| m.get(&hash).is_some_and(|at| at.elapsed() < MISS_TTL));
        if missed {
            return Ok(None);
        }
        let found = authenticate(&self.db, presented).await?;
        match &found {
            Some(p) => {
                if let Ok(mut h) = self.hits.lock() {
                    if h.len() >= CACHE_LIMIT {
                        h.clear();
                    }
                    h.insert(hash, (p.clone(), Instant::now()));
                }
            }
            None => {
                if let Ok(mut m) = self.misses.lock() {
                    if m.len() >= CACHE_LIMIT {
                        m.clear();
                    }
                    m.insert(hash, Instant::now());
                }
            }
        }
        Ok(found.filter(|p| !self.is_revoked(&p.key_id)))
    }

    /// Whether the key `key_id` has been revoked (as of the last refresh).
    pub fn is_revoked(&self, key_id: &str) -> bool {
        self.revoked.read().is_ok_and(|r| r.contains(key_id))
    }

    /// Changes whenever revocations were reloaded (streams check their key then).
    pub fn revocations(&self) -> watch::Receiver<i64> {
        self.revision.subscribe()
    }

    /// Reloads the revoked keys if the revision moved; returns whether it did.
    pub async fn refresh(&self) -> Result<bool, KeyError> {
        let revision = store::keys::revision(&self.db).await?;
        if revision == *self.revision.borrow() {
            return Ok(false);
        }
        let ids = store::keys::revoked_ids(&self.db).await?;
        let revoked: HashSet<String> = ids.into_iter().collect();
        if let Ok(mut h) = self.hits.lock() {
            h.retain(|_, (p, _)| !revoked.contains(&p.key_id));
        }
        if let Ok(mut r) = self.revoked.write() {
            *r = revoked;
        }
        self.revision.send_replace(revision);
        Ok(true)
    }

    /// The watcher: refreshes every `interval` until `shutdown` turns true.
    pub async fn watch(&self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read key revocations; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_hex_sha256_and_never_the_key() {
        let h = hash_key("sdk_abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, "sdk_abc");
        assert_eq!(h, hash_key("sdk_abc"));
    }

    #[test]
    fn a_secret_never_prints() {
        assert_eq!(format!("{:?}", Secret::new("sdk_x")), "Secret(***)");
    }

    #[test]
    fn users_see_only_their_own_and_agents_no_owner() {
        let alice = Principal {
            key_id: "k".into(),
            role: Role::User {
                owner: "alice".into(),
            },
        };
        assert!(alice.can_access_owner("alice"));
        assert!(!alice.can_access_owner("bob"));
        let agent = Principal {
            key_id: "k".into(),
            role: Role::Agent {
                agent_id: "a1".into(),
            },
        };
        assert!(!agent.can_access_owner("alice"));
        assert_eq!(agent.actor(), "agent:a1");
    }
}
