//! Owns the Redis implementation of [`BackingStore`]: one pipelined round trip per batch
//! (`SET key value PX ttl` for writes, `GET key` for lookups) over the `redis` crate's
//! `ConnectionManager` (one multiplexed connection, reconnected with backoff, made
//! lazily so the gateway starts while Redis is down). Redis 7 standalone; `rediss://`
//! uses rustls with the system's roots. Redis Cluster and Sentinel are not supported.
//!
//! Keys are `<key_prefix><map>:<hex of the versioned binary key>` (e.g.
//! `ppb:caller:01<trace id><span id>`); values are the versioned binary values of
//! `store/mod.rs`.

use std::fmt::Write as _;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, Value};

use super::config::{RedisConfig, redact_url};
use super::{BackingStore, MapName, Op, Reply, StoreError};

/// The Redis tier.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    ttl_ms: u64,
    described: String,
}

impl RedisStore {
    /// Prepares the connection (made on first use, so this never waits for Redis).
    ///
    /// # Errors
    /// [`StoreError::Connection`] when the URL cannot be used (validation catches most).
    pub fn new(cfg: &RedisConfig) -> Result<Self, StoreError> {
        let bad = |e: redis::RedisError| StoreError::Connection(e.to_string());
        let mut info = cfg.url.as_str().into_connection_info().map_err(bad)?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &cfg.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &cfg.password {
            settings = settings.set_password(p);
        }
        info = info.set_redis_settings(settings);
        let client = Client::open(info).map_err(bad)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout))
            .set_response_timeout(Some(cfg.timeout))
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client, manager).map_err(bad)?;
        Ok(Self {
            conn,
            prefix: cfg.key_prefix.clone(),
            ttl_ms: u64::try_from(cfg.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            described: format!("redis {}", redact_url(&cfg.url)),
        })
    }

    fn key(&self, map: MapName, key: &[u8]) -> String {
        let mut k = String::with_capacity(self.prefix.len() + 10 + key.len() * 2);
        k.push_str(&self.prefix);
        k.push_str(map.as_str());
        k.push(':');
        for b in key {
            let _ = write!(k, "{b:02x}");
        }
        k
    }
}

impl BackingStore for RedisStore {
    async fn round_trip(&self, ops: &[Op]) -> Result<Vec<Reply>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for op in ops {
            match op {
                Op::Get { map, key } => {
                    pipe.cmd("GET").arg(self.key(*map, key));
                }
                Op::Set {
                    map, key, value, ..
                } => {
                    pipe.cmd("SET")
                        .arg(self.key(*map, key))
                        .arg(&**value)
                        .arg("PX")
                        .arg(self.ttl_ms);
                }
            }
        }
        let mut conn = self.conn.clone();
        let values: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        Ok(values
            .into_iter()
            .map(|v| match v {
                Value::Nil => Reply::NotFound,
                Value::BulkString(b) => Reply::Found(b),
                Value::Okay => Reply::Stored,
                Value::ServerError(e) => Reply::Failed(e.to_string()),
                other => Reply::Failed(format!("unexpected reply {other:?}")),
            })
            .collect())
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_map_and_hex_the_versioned_key() {
        let cfg = RedisConfig {
            url: "redis://127.0.0.1:1/0".to_owned(),
            password: Some("pw".to_owned()),
            ..RedisConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let store = RedisStore::new(&cfg).expect("lazy: no connection yet");
        assert_eq!(store.key(MapName::Caller, &[1, 0xab]), "ppb:caller:01ab");
        assert_eq!(store.describe(), "redis redis://127.0.0.1:1/0");
    }
}
