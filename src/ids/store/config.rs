//! Owns the `ids.store` config: which shared tier sits behind the mapping cache
//! ([`StoreConfig`], today only `type: redis`), its bounds, defaults and validation
//! ([`StoreConfigError`], each naming the key at fault).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::cache::MAX_TTL;
use crate::ids::duration::format_duration;

/// The shared tier. YAML: `store: { type: redis, url: redis://host:6379/0, ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StoreConfig {
    /// A Redis 7 standalone server (no Cluster, no Sentinel).
    Redis(RedisConfig),
}

impl StoreConfig {
    /// The Redis settings.
    pub fn redis(&self) -> &RedisConfig {
        match self {
            Self::Redis(r) => r,
        }
    }
}

/// Settings of the Redis tier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]` or `rediss://...` (TLS). Required.
    pub url: String,
    /// ACL user name (overrides the URL's).
    pub username: Option<String>,
    /// Password (overrides the URL's); use `${env:NAME}`. Never printed or serialized.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// Prepended to every key, so several deployments can share one server.
    pub key_prefix: String,
    /// Expiry of every key written (`SET ... PX`).
    #[serde(with = "crate::ids::duration")]
    pub ttl: Duration,
    /// Longest wait for one round trip (and for a connection); beyond it the round trip
    /// counts as a timeout and its lookups as misses.
    #[serde(with = "crate::ids::duration")]
    pub timeout: Duration,
    /// How long queued lookups and writes wait to share a round trip.
    #[serde(with = "crate::ids::duration")]
    pub flush_interval: Duration,
    /// Most commands in one round trip.
    pub max_batch: usize,
    /// Most round trips in flight at once.
    pub max_in_flight: usize,
    /// Most lookups and writes waiting; beyond it new ones are dropped and counted.
    pub max_queued: usize,
    /// A key the store did not have is asked again at most this often.
    #[serde(with = "crate::ids::duration")]
    pub lookup_interval: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            username: None,
            password: None,
            key_prefix: "ppb:".to_owned(),
            ttl: Duration::from_secs(300),
            timeout: Duration::from_millis(500),
            flush_interval: Duration::from_millis(5),
            max_batch: 1000,
            max_in_flight: 2,
            max_queued: 100_000,
            lookup_interval: Duration::from_millis(250),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("flush_interval", &self.flush_interval)
            .field("max_batch", &self.max_batch)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_queued", &self.max_queued)
            .field("lookup_interval", &self.lookup_interval)
            .finish()
    }
}

/// The URL without any password in it (for logs and the status page).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// What is wrong with a [`RedisConfig`]; the path is relative to `ids.store`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct StoreConfigError {
    /// The key at fault (`url`, `ttl`, ...).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn bad(key: &'static str, message: impl Into<String>) -> StoreConfigError {
    StoreConfigError {
        key,
        message: message.into(),
    }
}

fn range(
    key: &'static str,
    d: Duration,
    min: Duration,
    max: Duration,
    errors: &mut Vec<StoreConfigError>,
) {
    if d < min || d > max {
        errors.push(bad(
            key,
            format!(
                "{} is outside {}..={}",
                format_duration(d),
                format_duration(min),
                format_duration(max)
            ),
        ));
    }
}

impl RedisConfig {
    /// Checks every setting; returns all problems at once.
    pub fn validate(&self) -> Vec<StoreConfigError> {
        let mut errors = Vec::new();
        if self.url.is_empty() {
            errors.push(bad(
                "url",
                "missing: e.g. redis://127.0.0.1:6379/0 or rediss://host:6380",
            ));
        } else if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            errors.push(bad(
                "url",
                format!(
                    "{:?} is not a redis:// or rediss:// URL (Redis Cluster and Sentinel are not supported)",
                    redact_url(&self.url)
                ),
            ));
        } else if let Err(e) = redis::Client::open(self.url.as_str()) {
            errors.push(bad("url", format!("cannot be read: {e}")));
        }
        if self.key_prefix.len() > 64 {
            errors.push(bad("key_prefix", "longer than 64 bytes"));
        }
        let ms = Duration::from_millis;
        range(
            "ttl",
            self.ttl,
            Duration::from_secs(1),
            MAX_TTL,
            &mut errors,
        );
        range("timeout", self.timeout, ms(1), ms(60_000), &mut errors);
        range(
            "flush_interval",
            self.flush_interval,
            ms(1),
            ms(1000),
            &mut errors,
        );
        range(
            "lookup_interval",
            self.lookup_interval,
            ms(1),
            ms(60_000),
            &mut errors,
        );
        if !(1..=100_000).contains(&self.max_batch) {
            errors.push(bad("max_batch", "must be 1..=100000"));
        }
        if !(1..=64).contains(&self.max_in_flight) {
            errors.push(bad("max_in_flight", "must be 1..=64"));
        }
        if self.max_queued < self.max_batch || self.max_queued > 10_000_000 {
            errors.push(bad(
                "max_queued",
                format!("must be max_batch ({})..=10000000", self.max_batch),
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_every_bad_value_is_named() {
        let cfg: StoreConfig = serde_json::from_str(
            r#"{"type": "redis", "url": "redis://127.0.0.1:6379/0", "ttl": "10m", "password": "pw"}"#,
        )
        .expect("valid");
        let r = cfg.redis();
        assert_eq!(r.ttl, Duration::from_secs(600));
        assert_eq!(r.key_prefix, "ppb:");
        assert_eq!(r.password.as_deref(), Some("pw"));
        assert!(r.validate().is_empty(), "{:?}", r.validate());
        let shown = format!("{r:?}");
        assert!(!shown.contains("pw\""), "{shown}");
        assert!(
            !serde_json::to_string(&cfg)
                .expect("serializes")
                .contains("pw")
        );

        let unknown = serde_json::from_str::<StoreConfig>(r#"{"type": "redis", "urll": "x"}"#)
            .expect_err("unknown key")
            .to_string();
        assert!(unknown.contains("unknown field `urll`"), "{unknown}");
        let other = serde_json::from_str::<StoreConfig>(r#"{"type": "memcached"}"#)
            .expect_err("unknown type")
            .to_string();
        assert!(other.contains("unknown variant `memcached`"), "{other}");

        let bad = RedisConfig {
            url: "http://x".into(),
            ttl: Duration::ZERO,
            timeout: Duration::from_secs(61),
            flush_interval: Duration::ZERO,
            max_batch: 0,
            max_in_flight: 65,
            max_queued: 10_000_001,
            key_prefix: "x".repeat(65),
            ..RedisConfig::default()
        };
        let keys: Vec<&str> = bad.validate().iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "url",
                "key_prefix",
                "ttl",
                "timeout",
                "flush_interval",
                "max_batch",
                "max_in_flight",
                "max_queued"
            ]
        );
        let missing = RedisConfig::default().validate();
        assert_eq!(
            missing[0].to_string(),
            "url: missing: e.g. redis://127.0.0.1:6379/0 or rediss://host:6380"
        );
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("rediss://:secret@h"), "rediss://:***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
