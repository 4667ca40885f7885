//! What agents registered: API, string, SQL and SQL-UID metadata and their AgentInfo,
//! per agent (agent id + start time, as the collector keys it). Bounded: at most
//! `max_agents` agents (least recently used forgotten, idle ones expire) and at most
//! `max_entries_per_agent` ids of each kind per agent (further ones are refused and
//! counted).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use moka::sync::Cache;

use crate::exporter::pinpoint::proto::PAgentInfo;

/// Who an agent is: the collector keys metadata by agent id and start time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentKey {
    pub agent_id: String,
    pub start_time: i64,
}

/// What one agent said about itself (PAgentInfo, without the bulky parts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSummary {
    pub hostname: String,
    pub ip: String,
    pub pid: i32,
    pub service_type: i32,
    pub agent_version: String,
    pub vm_version: String,
}

impl From<&PAgentInfo> for AgentSummary {
    fn from(i: &PAgentInfo) -> Self {
        Self {
            hostname: i.hostname.clone(),
            ip: i.ip.clone(),
            pid: i.pid,
            service_type: i.service_type,
            agent_version: i.agent_version.clone(),
            vm_version: i.vm_version.clone(),
        }
    }
}

/// One agent's registered metadata. Plain data: conversion reads it without I/O.
#[derive(Debug, Clone, Default)]
pub struct AgentMeta {
    pub info: Option<AgentSummary>,
    pub api: HashMap<i32, Arc<str>>,
    pub strings: HashMap<i32, Arc<str>>,
    pub sql: HashMap<i32, Arc<str>>,
    pub sql_uid: HashMap<Vec<u8>, Arc<str>>,
}

/// A kind of metadata, for limits and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    Api,
    String,
    Sql,
    SqlUid,
}

impl MetaKind {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::String => "string",
            Self::Sql => "sql",
            Self::SqlUid => "sql_uid",
        }
    }
}

/// The shared, bounded metadata store.
pub struct MetadataStore {
    agents: Cache<AgentKey, Arc<RwLock<AgentMeta>>>,
    max_entries: usize,
}

impl MetadataStore {
    #[must_use]
    pub fn new(max_agents: u64, max_entries_per_agent: usize, idle: Duration) -> Self {
        Self {
            agents: Cache::builder()
                .max_capacity(max_agents)
                .time_to_idle(idle)
                .build(),
            max_entries: max_entries_per_agent,
        }
    }

    fn agent(&self, key: &AgentKey) -> Arc<RwLock<AgentMeta>> {
        self.agents
            .get_with(key.clone(), || Arc::new(RwLock::new(AgentMeta::default())))
    }

    /// Runs `f` on a read view of the agent's metadata (empty when unknown).
    pub fn read<R>(&self, key: &AgentKey, f: impl FnOnce(&AgentMeta) -> R) -> R {
        let agent = self.agent(key);
        let guard = agent
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&guard)
    }

    /// Records AgentInfo.
    pub fn set_info(&self, key: &AgentKey, info: AgentSummary) {
        let agent = self.agent(key);
        agent
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .info = Some(info);
    }

    /// Records one id → text. Returns false when the agent already holds the maximum
    /// of this kind (the entry is not stored).
    pub fn put(&self, key: &AgentKey, kind: MetaKind, id: i32, text: &str) -> bool {
        let agent = self.agent(key);
        let mut g = agent
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = match kind {
            MetaKind::Api => &mut g.api,
            MetaKind::String => &mut g.strings,
            MetaKind::Sql | MetaKind::SqlUid => &mut g.sql,
        };
        if map.len() >= self.max_entries && !map.contains_key(&id) {
            return false;
        }
        map.insert(id, Arc::from(text));
        true
    }

    /// Records one SQL-UID → SQL text (same limit as [`Self::put`]).
    pub fn put_sql_uid(&self, key: &AgentKey, uid: &[u8], text: &str) -> bool {
        let agent = self.agent(key);
        let mut g = agent
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.sql_uid.len() >= self.max_entries && !g.sql_uid.contains_key(uid) {
            return false;
        }
        g.sql_uid.insert(uid.to_vec(), Arc::from(text));
        true
    }

    /// Agents currently known.
    #[must_use]
    pub fn agent_count(&self) -> u64 {
        self.agents.run_pending_tasks();
        self.agents.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_by_agent_and_start_time_and_bounded_per_agent() {
        let s = MetadataStore::new(10, 2, Duration::from_secs(60));
        let a = AgentKey {
            agent_id: "a".into(),
            start_time: 1,
        };
        let a2 = AgentKey {
            agent_id: "a".into(),
            start_time: 2,
        };
        assert!(s.put(&a, MetaKind::Api, 1, "one"));
        assert!(s.put(&a, MetaKind::Api, 2, "two"));
        assert!(!s.put(&a, MetaKind::Api, 3, "three"));
        assert!(s.put(&a, MetaKind::Api, 2, "two again"));
        assert_eq!(
            s.read(&a, |m| m.api.get(&2).map(|t| t.to_string()))
                .as_deref(),
            Some("two again")
        );
        assert!(s.read(&a2, |m| m.api.is_empty()));
        assert!(s.put_sql_uid(&a, b"u", "select 1"));
        assert_eq!(s.read(&a, |m| m.sql_uid.len()), 1);
    }
}
