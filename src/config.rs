//! Typed settings, layered: defaults < optional TOML file (`--config FILE`) <
//! `SESSIOND_*` environment variables < command-line flags.
//!
//! The database URL may carry a password, so it is wrapped in [`DatabaseUrl`], whose
//! `Debug`/`Display` redact it.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A database URL that never prints its password (a `secrecy::SecretString`, zeroed
/// on drop; `Debug`/`Display` show it with the password redacted).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }
    /// The real URL, for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for DatabaseUrl {}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DatabaseUrl({})",
            crate::store::redact_url(self.expose())
        )
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::store::redact_url(self.expose()))
    }
}

/// A secret setting (the key-encryption key): never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretText(SecretString);

impl SecretText {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }
    /// The secret itself.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for SecretText {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(***)")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The service's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `sqlite://PATH` (embedded default) or `postgres://...`.
    pub database_url: DatabaseUrl,
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Max pooled database connections.
    pub max_connections: u32,
    /// Scheduler timer in milliseconds: each scaling group's scheduler and sweeper also
    /// run this often when nothing wakes them (SPEC §2.3: default 1 s).
    pub scheduler_interval_ms: u64,
    /// Milliseconds a projection runner woken by an append waits before reading, so
    /// the appends of that time are one batch per read model (0..=1000; 0: at once).
    pub projection_linger_ms: u64,
    /// Seconds without a heartbeat after which an ALIVE agent is marked LOST.
    pub agent_lost_after_secs: u64,
    /// Milliseconds after which a request that is not a stream (SSE) or a long-poll is
    /// answered 503 `timeout` (1..=3600000).
    pub request_timeout_ms: u64,
    /// Volumes vfolders live on: `[volumes.<name>] root = "/path"` (SPEC §7.1). None
    /// configured: one volume `local` at `./volumes/local`, created when missing.
    pub volumes: BTreeMap<String, VolumeSettings>,
    /// The volume used when a request names none (default: `local` if configured,
    /// else the first volume by name).
    pub default_volume: Option<String>,
    /// Files a clone copies at once (1..=64; default 4).
    pub clone_parallelism: u32,
    /// Most bytes per second a clone copies (0: unlimited; default 0). An operator's
    /// brake for a volume shared with running sessions.
    pub clone_max_bytes_per_sec: u64,
    /// Largest file an upload may write (default 64 GiB).
    pub max_upload_bytes: u64,
    /// Background tasks one process runs at once (1..=64; default 4).
    pub task_concurrency: u32,
    /// The key-encryption key of keypair secrets: base64 of 32 bytes. Without it, an
    /// SQLite store keeps one in a file beside itself (`<file>.secret-key`, 0600); a
    /// PostgreSQL store needs it once keypairs exist.
    pub secret_key: Option<SecretText>,
    /// Webhook delivery (`[webhooks]`, SPEC §8).
    pub webhooks: WebhookConfig,
    /// Requests per second each API key may sustain (a token bucket per key; 0: no
    /// limit; default 1000). Over it: 429 `rate_limited` with `Retry-After`.
    pub rate_limit_per_sec: u32,
    /// Requests a key may send at once from a full bucket (0: twice the rate; default 0).
    pub rate_limit_burst: u32,
    /// Seconds an `Idempotency-Key` record is kept (default 86400: 24 h; then purged).
    /// A retry after that gets the session the key created (in its current state)
    /// instead of the stored response: the session id is derived from the key, so it
    /// never creates a second session; a different body is no longer refused.
    pub idempotency_ttl_secs: u64,
    /// Snapshot a stream once loading it folds at least this many events after its
    /// last snapshot (default 100; 0: never). Keeps a command on a long stream (an
    /// agent's) at the cost of a short one. A cache: changing it never changes a state.
    pub snapshot_every: u64,
}

impl Settings {
    /// The per-key request quota (`None`: no limit).
    pub fn rate_quota(&self) -> Option<crate::http::limits::RateQuota> {
        let per_second = std::num::NonZeroU32::new(self.rate_limit_per_sec)?;
        let burst = std::num::NonZeroU32::new(self.rate_limit_burst)
            .or_else(|| std::num::NonZeroU32::new(self.rate_limit_per_sec.saturating_mul(2)))
            .unwrap_or(per_second);
        Some(crate::http::limits::RateQuota { per_second, burst })
    }
}

/// How webhooks are delivered (`[webhooks]` in the file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Seconds to wait before each attempt, the first one included: the first entry must
    /// be 0 (a change is sent at once). After the last entry's attempt fails the
    /// delivery is `dead`. Each wait gets up to 10% of random jitter. Default: the
    /// Standard Webhooks schedule 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    pub retry_schedule: Vec<f64>,
    /// Networks deliveries may reach although they are loopback, private, link-local or
    /// otherwise internal (CIDRs, e.g. `["10.1.0.0/16"]`). Default: none.
    pub allow_networks: Vec<String>,
    /// Milliseconds one attempt may take, connection included (default 10000).
    pub timeout_ms: u64,
    /// Deliveries in flight at once (1..=1024; default 64).
    pub concurrency: u32,
    /// Seconds a rotated-out secret keeps signing beside the new one (default 86400).
    pub rotation_overlap_secs: u64,
}

/// The Standard Webhooks retry schedule, in seconds.
pub const DEFAULT_RETRY_SCHEDULE: [f64; 10] = [
    0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0,
];

/// Longest wait of a retry schedule entry (a week).
pub const MAX_RETRY_WAIT_SECS: f64 = 7.0 * 86400.0;

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry_schedule: DEFAULT_RETRY_SCHEDULE.to_vec(),
            allow_networks: Vec::new(),
            timeout_ms: 10_000,
            concurrency: 64,
            rotation_overlap_secs: 86_400,
        }
    }
}

impl WebhookConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, message: String| ConfigError::Env {
            name: name.into(),
            message,
        };
        let schedule = &self.retry_schedule;
        if schedule.is_empty() || schedule.len() > 100 {
            return Err(bad(
                "webhooks.retry_schedule",
                "expected 1 to 100 entries".into(),
            ));
        }
        if schedule.first().copied() != Some(0.0) {
            return Err(bad(
                "webhooks.retry_schedule",
                "the first entry must be 0 (the first attempt is immediate)".into(),
            ));
        }
        if schedule
            .iter()
            .any(|s| !s.is_finite() || *s < 0.0 || *s > MAX_RETRY_WAIT_SECS)
        {
            return Err(bad(
                "webhooks.retry_schedule",
                format!("every entry must be 0..={MAX_RETRY_WAIT_SECS} seconds"),
            ));
        }
        for n in &self.allow_networks {
            crate::webhooks::guard::parse_networks(n)
                .map_err(|e| bad("webhooks.allow_networks", e.to_string()))?;
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            return Err(bad("webhooks.timeout_ms", "expected 1..=600000".into()));
        }
        if !(1..=1024).contains(&self.concurrency) {
            return Err(bad("webhooks.concurrency", "expected 1..=1024".into()));
        }
        Ok(())
    }
}

/// `"0,5,300"`: seconds, comma-separated.
fn parse_schedule(v: &str) -> Result<Vec<f64>, ConfigError> {
    v.split(',')
        .map(|s| {
            s.trim().parse::<f64>().map_err(|_| ConfigError::Env {
                name: "SESSIOND_WEBHOOK_RETRY_SCHEDULE".into(),
                message: format!("'{}' is not a number of seconds", s.trim()),
            })
        })
        .collect()
}

/// One volume: a local directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSettings {
    /// Its root directory; vfolders live at `<root>/<vfolder_id>/`.
    pub root: PathBuf,
    /// Bytes of the file system to leave free for others (sessions writing to the same
    /// disk): a clone or an upload that would eat into them is refused
    /// (`insufficient-space`). Default 0.
    #[serde(default)]
    pub reserve_bytes: u64,
}

/// The volume used when none is configured.
pub const DEFAULT_VOLUME: &str = "local";
/// Its root, relative to the working directory.
pub const DEFAULT_VOLUME_ROOT: &str = "volumes/local";

/// Longest configurable request timeout (an hour).
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 3_600_000;

/// The embedded default store: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sessiond.db";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: DatabaseUrl::new(DEFAULT_DATABASE_URL),
            listen: DEFAULT_LISTEN.to_string(),
            log_format: LogFormat::Pretty,
            max_connections: 16,
            scheduler_interval_ms: 1000,
            projection_linger_ms: DEFAULT_PROJECTION_LINGER_MS,
            agent_lost_after_secs: 30,
            request_timeout_ms: 30_000,
            volumes: BTreeMap::new(),
            default_volume: None,
            clone_parallelism: 4,
            clone_max_bytes_per_sec: 0,
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
            task_concurrency: 4,
            secret_key: None,
            webhooks: WebhookConfig::default(),
            rate_limit_per_sec: 1000,
            rate_limit_burst: 0,
            idempotency_ttl_secs: 24 * 60 * 60,
            snapshot_every: store::snapshots::DEFAULT_EVERY,
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`Settings`].
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has an invalid value.
    #[error("invalid value for {name}: {message}")]
    Env {
        /// Variable.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
}

impl Settings {
    /// Loads settings: defaults, then `file`, then `env` (`SESSIOND_*`), then `overrides`.
    /// `env` is passed in (not read here) so tests never touch the process environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.message().to_string(),
                })?
            }
            None => Settings::default(),
        };
        if let Some(v) = env("SESSIOND_DATABASE_URL") {
            settings.database_url = DatabaseUrl::new(v);
        }
        if let Some(v) = env("SESSIOND_LISTEN") {
            settings.listen = v;
        }
        if let Some(v) = env("SESSIOND_LOG_FORMAT") {
            settings.log_format = match v.as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        name: "SESSIOND_LOG_FORMAT".into(),
                        message: "expected 'pretty' or 'json'".into(),
                    })
                }
            };
        }
        if let Some(v) = env("SESSIOND_MAX_CONNECTIONS") {
            settings.max_connections = v.parse().map_err(|_| ConfigError::Env {
                name: "SESSIOND_MAX_CONNECTIONS".into(),
                message: "expected a positive whole number".into(),
            })?;
        }
        if let Some(v) = env("SESSIOND_SCHEDULER_INTERVAL_MS") {
            settings.scheduler_interval_ms = positive(&v, "SESSIOND_SCHEDULER_INTERVAL_MS")?;
        }
        if let Some(v) = env("SESSIOND_PROJECTION_LINGER_MS") {
            settings.projection_linger_ms = v.parse().map_err(|_| ConfigError::Env {
                name: "SESSIOND_PROJECTION_LINGER_MS".into(),
                message: format!("expected 0..={MAX_PROJECTION_LINGER_MS} milliseconds"),
            })?;
        }
        if let Some(v) = env("SESSIOND_AGENT_LOST_AFTER_SECS") {
            settings.agent_lost_after_secs = positive(&v, "SESSIOND_AGENT_LOST_AFTER_SECS")?;
        }
        if let Some(v) = env("SESSIOND_REQUEST_TIMEOUT_MS") {
            settings.request_timeout_ms = positive(&v, "SESSIOND_REQUEST_TIMEOUT_MS")?;
        }
        if let Some(v) = env("SESSIOND_VOLUMES") {
            settings.volumes = parse_volumes(&v)?;
        }
        if let Some(v) = env("SESSIOND_DEFAULT_VOLUME") {
            settings.default_volume = Some(v);
        }
        if let Some(v) = env("SESSIOND_CLONE_PARALLELISM") {
            settings.clone_parallelism =
                u32::try_from(positive(&v, "SESSIOND_CLONE_PARALLELISM")?).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("SESSIOND_CLONE_MAX_BYTES_PER_SEC") {
            settings.clone_max_bytes_per_sec = v.parse().map_err(|_| ConfigError::Env {
                name: "SESSIOND_CLONE_MAX_BYTES_PER_SEC".into(),
                message: "expected a whole number of bytes per second (0: unlimited)".into(),
            })?;
        }
        for (name, slot) in [
            (
                "SESSIOND_RATE_LIMIT_PER_SEC",
                &mut settings.rate_limit_per_sec,
            ),
            ("SESSIOND_RATE_LIMIT_BURST", &mut settings.rate_limit_burst),
        ] {
            if let Some(v) = env(name) {
                *slot = v.parse().map_err(|_| ConfigError::Env {
                    name: name.into(),
                    message: "expected a whole number of requests (0: see the docs)".into(),
                })?;
            }
        }
        if let Some(v) = env("SESSIOND_IDEMPOTENCY_TTL_SECS") {
            settings.idempotency_ttl_secs = positive(&v, "SESSIOND_IDEMPOTENCY_TTL_SECS")?;
        }
        if let Some(v) = env("SESSIOND_SNAPSHOT_EVERY") {
            settings.snapshot_every = v.parse().map_err(|_| ConfigError::Env {
                name: "SESSIOND_SNAPSHOT_EVERY".into(),
                message: "expected a whole number of events (0: never snapshot)".into(),
            })?;
        }
        if let Some(v) = env("SESSIOND_MAX_UPLOAD_BYTES") {
            settings.max_upload_bytes = positive(&v, "SESSIOND_MAX_UPLOAD_BYTES")?;
        }
        if let Some(v) = env("SESSIOND_SECRET_KEY") {
            settings.secret_key = Some(SecretText::new(v));
        }
        if let Some(v) = env("SESSIOND_TASK_CONCURRENCY") {
            settings.task_concurrency =
                u32::try_from(positive(&v, "SESSIOND_TASK_CONCURRENCY")?).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("SESSIOND_WEBHOOK_RETRY_SCHEDULE") {
            settings.webhooks.retry_schedule = parse_schedule(&v)?;
        }
        if let Some(v) = env("SESSIOND_WEBHOOK_ALLOW_NETWORKS") {
            settings.webhooks.allow_networks = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = env("SESSIOND_WEBHOOK_TIMEOUT_MS") {
            settings.webhooks.timeout_ms = positive(&v, "SESSIOND_WEBHOOK_TIMEOUT_MS")?;
        }
        if let Some(v) = env("SESSIOND_WEBHOOK_CONCURRENCY") {
            settings.webhooks.concurrency =
                u32::try_from(positive(&v, "SESSIOND_WEBHOOK_CONCURRENCY")?).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("SESSIOND_WEBHOOK_ROTATION_OVERLAP_SECS") {
            settings.webhooks.rotation_overlap_secs = v.parse().map_err(|_| ConfigError::Env {
                name: "SESSIOND_WEBHOOK_ROTATION_OVERLAP_SECS".into(),
                message: "expected a whole number of seconds".into(),
            })?;
        }
        settings.webhooks.check()?;
        for (name, value) in [
            ("clone_parallelism", settings.clone_parallelism),
            ("task_concurrency", settings.task_concurrency),
        ] {
            if !(1..=64).contains(&value) {
                return Err(ConfigError::Env {
                    name: name.into(),
                    message: "expected 1..=64".into(),
                });
            }
        }
        if settings.projection_linger_ms > MAX_PROJECTION_LINGER_MS {
            return Err(ConfigError::Env {
                name: "projection_linger_ms".into(),
                message: format!("expected 0..={MAX_PROJECTION_LINGER_MS} milliseconds"),
            });
        }
        if !(1..=MAX_REQUEST_TIMEOUT_MS).contains(&settings.request_timeout_ms) {
            return Err(ConfigError::Env {
                name: "request_timeout_ms".into(),
                message: format!("expected 1..={MAX_REQUEST_TIMEOUT_MS} milliseconds"),
            });
        }
        if let Some(v) = &overrides.database_url {
            settings.database_url = DatabaseUrl::new(v.clone());
        }
        if let Some(v) = &overrides.listen {
            settings.listen = v.clone();
        }
        Ok(settings)
    }
}

/// `SESSIOND_VOLUMES="local=/srv/vol1,fast=/srv/vol2"`.
fn parse_volumes(v: &str) -> Result<BTreeMap<String, VolumeSettings>, ConfigError> {
    let bad = |message: String| ConfigError::Env {
        name: "SESSIOND_VOLUMES".into(),
        message,
    };
    let mut volumes = BTreeMap::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, root) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("'{part}': expected name=/path")))?;
        if root.is_empty() {
            return Err(bad(format!("'{part}': the root path is empty")));
        }
        let previous = volumes.insert(
            name.trim().to_string(),
            VolumeSettings {
                root: PathBuf::from(root.trim()),
                reserve_bytes: 0,
            },
        );
        if previous.is_some() {
            return Err(bad(format!("volume '{name}' is named twice")));
        }
    }
    Ok(volumes)
}

/// Default of [`Settings::projection_linger_ms`] (docs/PERFORMANCE.md).
pub const DEFAULT_PROJECTION_LINGER_MS: u64 = 5;
/// Most [`Settings::projection_linger_ms`]: a read model a second behind is the limit.
pub const MAX_PROJECTION_LINGER_MS: u64 = 1000;

fn positive(v: &str, name: &str) -> Result<u64, ConfigError> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::Env {
            name: name.into(),
            message: "expected a positive whole number".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn without_file_env_or_flags_the_embedded_defaults_apply() {
        let s = Settings::load(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.database_url.expose(), "sqlite://sessiond.db");
        assert_eq!(s.listen, "127.0.0.1:8080");
    }

    #[test]
    fn the_rate_limit_is_on_by_default_can_be_turned_off_and_bad_values_are_refused() {
        let s = Settings::load(None, env(&[]), &Overrides::default()).unwrap();
        let q = s.rate_quota().unwrap();
        assert_eq!((q.per_second.get(), q.burst.get()), (1000, 2000));
        assert_eq!(s.idempotency_ttl_secs, 86_400);
        let s = Settings::load(
            None,
            env(&[
                ("SESSIOND_RATE_LIMIT_PER_SEC", "5"),
                ("SESSIOND_RATE_LIMIT_BURST", "7"),
                ("SESSIOND_IDEMPOTENCY_TTL_SECS", "60"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        let q = s.rate_quota().unwrap();
        assert_eq!((q.per_second.get(), q.burst.get()), (5, 7));
        assert_eq!(s.idempotency_ttl_secs, 60);
        let off = Settings::load(
            None,
            env(&[("SESSIOND_RATE_LIMIT_PER_SEC", "0")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(off.rate_quota(), None);
        for (name, bad) in [
            ("SESSIOND_RATE_LIMIT_PER_SEC", "-1"),
            ("SESSIOND_RATE_LIMIT_BURST", "lots"),
            ("SESSIOND_IDEMPOTENCY_TTL_SECS", "0"),
        ] {
            let r = Settings::load(None, env(&[(name, bad)]), &Overrides::default());
            assert!(
                matches!(r, Err(ConfigError::Env { name: ref n, .. }) if n == name),
                "{name}={bad}: {r:?}"
            );
        }
    }

    #[test]
    fn env_overrides_the_file_and_flags_override_env() {
        let dir = std::env::temp_dir().join(format!("sessiond-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:1\"\ndatabase_url = \"sqlite://file.db\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&file),
            env(&[("SESSIOND_LISTEN", "0.0.0.0:2")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.listen, "0.0.0.0:2");
        assert_eq!(s.database_url.expose(), "sqlite://file.db");
        let s = Settings::load(
            Some(&file),
            env(&[("SESSIOND_LISTEN", "0.0.0.0:2")]),
            &Overrides {
                listen: Some("0.0.0.0:3".into()),
                database_url: None,
            },
        )
        .unwrap();
        assert_eq!(s.listen, "0.0.0.0:3");
    }

    #[test]
    fn the_request_timeout_comes_from_the_file_or_env_and_zero_or_too_long_is_an_error() {
        let s = Settings::load(
            None,
            env(&[("SESSIOND_REQUEST_TIMEOUT_MS", "250")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.request_timeout_ms, 250);
        let r = Settings::load(
            None,
            env(&[("SESSIOND_REQUEST_TIMEOUT_MS", "0")]),
            &Overrides::default(),
        );
        assert!(
            matches!(r, Err(ConfigError::Env { ref name, .. }) if name == "SESSIOND_REQUEST_TIMEOUT_MS"),
            "{r:?}"
        );
        let dir = std::env::temp_dir().join(format!("sessiond-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "request_timeout_ms = 3600001\n").unwrap();
        let r = Settings::load(Some(&file), env(&[]), &Overrides::default());
        assert!(
            matches!(r, Err(ConfigError::Env { ref name, .. }) if name == "request_timeout_ms"),
            "{r:?}"
        );
    }

    #[test]
    fn the_projection_linger_defaults_to_5_ms_and_zero_is_allowed_but_over_a_second_is_an_error() {
        let s = Settings::load(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.projection_linger_ms, 5);
        let s = Settings::load(
            None,
            env(&[("SESSIOND_PROJECTION_LINGER_MS", "0")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.projection_linger_ms, 0);
        for bad in ["1001", "-1", "5ms"] {
            let r = Settings::load(
                None,
                env(&[("SESSIOND_PROJECTION_LINGER_MS", bad)]),
                &Overrides::default(),
            );
            assert!(
                matches!(r, Err(ConfigError::Env { ref name, .. }) if name.to_lowercase().contains("projection_linger_ms")),
                "{bad}: {r:?}"
            );
        }
    }

    #[test]
    fn volumes_come_from_the_file_or_from_env_and_a_malformed_list_is_an_error() {
        let dir = std::env::temp_dir().join(format!("sessiond-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "default_volume = \"fast\"\n[volumes.fast]\nroot = \"/srv/fast\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.volumes["fast"].root, PathBuf::from("/srv/fast"));
        assert_eq!(s.default_volume.as_deref(), Some("fast"));
        let s = Settings::load(
            None,
            env(&[("SESSIOND_VOLUMES", "local=/srv/a, fast=/srv/b")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.volumes.len(), 2);
        assert_eq!(s.volumes["fast"].root, PathBuf::from("/srv/b"));
        for bad in ["local", "local=", "a=/x,a=/y"] {
            let r = Settings::load(
                None,
                env(&[("SESSIOND_VOLUMES", bad)]),
                &Overrides::default(),
            );
            assert!(
                matches!(r, Err(ConfigError::Env { ref name, .. }) if name == "SESSIOND_VOLUMES"),
                "{bad}: {r:?}"
            );
        }
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("sessiond-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let r = Settings::load(Some(&file), env(&[]), &Overrides::default());
        assert!(matches!(r, Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn the_webhook_schedule_and_networks_come_from_env_and_bad_values_are_errors() {
        // Given a compressed schedule and an allow-list in the environment
        let s = Settings::load(
            None,
            env(&[
                ("SESSIOND_WEBHOOK_RETRY_SCHEDULE", "0, 0.5,2"),
                ("SESSIOND_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8, ::1/128"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        // Then both are taken as given
        assert_eq!(s.webhooks.retry_schedule, vec![0.0, 0.5, 2.0]);
        assert_eq!(s.webhooks.allow_networks, vec!["127.0.0.0/8", "::1/128"]);
        // And a schedule that does not start at 0, a negative wait, a word or a bad
        // network is refused
        for (name, value) in [
            ("SESSIOND_WEBHOOK_RETRY_SCHEDULE", "5,10"),
            ("SESSIOND_WEBHOOK_RETRY_SCHEDULE", "0,-1"),
            ("SESSIOND_WEBHOOK_RETRY_SCHEDULE", "0,soon"),
            ("SESSIOND_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/33"),
        ] {
            assert!(
                Settings::load(None, env(&[(name, value)]), &Overrides::default()).is_err(),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn the_database_password_never_prints() {
        let url = DatabaseUrl::new("postgres://u:hunter2@h/db");
        assert!(!format!("{url:?} {url}").contains("hunter2"));
    }
}
