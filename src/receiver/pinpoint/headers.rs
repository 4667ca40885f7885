//! The agent's gRPC headers, checked in the collector's order with its messages.

use tonic::metadata::MetadataMap;

use super::metadata::AgentKey;

const ID_MAX: usize = 24;
const AGENT_NAME_MAX: usize = 255;

/// What every call says about its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHeaders {
    pub agent_id: String,
    pub application_name: String,
    pub start_time: i64,
    pub agent_name: Option<String>,
    pub service_type: Option<i32>,
}

impl AgentHeaders {
    /// The metadata key (agent id + start time).
    #[must_use]
    pub fn key(&self) -> AgentKey {
        AgentKey {
            agent_id: self.agent_id.clone(),
            start_time: self.start_time,
        }
    }
}

fn id_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn get<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

fn check_id(md: &MetadataMap, key: &str, max: usize) -> Result<String, String> {
    let Some(v) = md.get(key) else {
        return Err(format!("{key} header is missing"));
    };
    match v.to_str() {
        Ok(s) if id_chars(s) && s.len() <= max => Ok(s.to_owned()),
        _ => Err(format!("Invalid {key}")),
    }
}

/// Checks `agentid`, `agentname`, `applicationname` and `starttime` as the collector
/// does (same order, same messages, all INVALID_ARGUMENT).
///
/// # Errors
/// The collector's description of the first problem.
pub fn validate_headers(md: &MetadataMap, max_app_name_len: usize) -> Result<AgentHeaders, String> {
    let agent_id = check_id(md, "agentid", ID_MAX)?;
    let agent_name = match md.get("agentname") {
        None => None,
        Some(v) => {
            let s = v.to_str().map_err(|_| "Invalid agentname".to_owned())?;
            if s.is_empty() {
                None
            } else if !id_chars(s) {
                return Err("Invalid agentname".to_owned());
            } else if s.len() > AGENT_NAME_MAX {
                return Err("Invalid agentname.length".to_owned());
            } else {
                Some(s.to_owned())
            }
        }
    };
    let application_name = check_id(md, "applicationname", max_app_name_len)?;
    let Some(start) = md.get("starttime") else {
        return Err("starttime header is missing".to_owned());
    };
    let start_time = start
        .to_str()
        .ok()
        .and_then(|s| s.strip_prefix('+').unwrap_or(s).parse::<i64>().ok())
        .ok_or_else(|| "unsupported format".to_owned())?;
    let service_type = get(md, "servicetype").and_then(|s| s.parse::<i32>().ok());
    Ok(AgentHeaders {
        agent_id,
        application_name,
        start_time,
        agent_name,
        service_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().expect("ascii"));
        }
        m
    }

    #[test]
    fn collector_order_and_messages() {
        let ok = [
            ("agentid", "a-1"),
            ("applicationname", "app"),
            ("starttime", "1700000000000"),
        ];
        let h = validate_headers(&md(&ok), 24).expect("valid");
        assert_eq!(
            (h.agent_id.as_str(), h.start_time),
            ("a-1", 1_700_000_000_000)
        );
        let cases: &[(&[(&'static str, &str)], &str)] = &[
            (
                &[("applicationname", "app"), ("starttime", "1")],
                "agentid header is missing",
            ),
            (
                &[
                    ("agentid", "a b"),
                    ("applicationname", "app"),
                    ("starttime", "1"),
                ],
                "Invalid agentid",
            ),
            (
                &[
                    ("agentid", "aaaaaaaaaaaaaaaaaaaaaaaaa"),
                    ("applicationname", "app"),
                    ("starttime", "1"),
                ],
                "Invalid agentid",
            ),
            (
                &[
                    ("agentid", "a"),
                    ("agentname", "x y"),
                    ("applicationname", "app"),
                    ("starttime", "1"),
                ],
                "Invalid agentname",
            ),
            (
                &[("agentid", "a"), ("starttime", "1")],
                "applicationname header is missing",
            ),
            (
                &[
                    ("agentid", "a"),
                    ("applicationname", "app!"),
                    ("starttime", "1"),
                ],
                "Invalid applicationname",
            ),
            (
                &[("agentid", "a"), ("applicationname", "app")],
                "starttime header is missing",
            ),
            (
                &[
                    ("agentid", "a"),
                    ("applicationname", "app"),
                    ("starttime", "12x"),
                ],
                "unsupported format",
            ),
            (
                &[
                    ("agentid", "a"),
                    ("applicationname", "app"),
                    ("starttime", "99999999999999999999"),
                ],
                "unsupported format",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                validate_headers(&md(pairs), 24).err().as_deref(),
                Some(*want),
                "{pairs:?}"
            );
        }
        let long_app = "a".repeat(30);
        assert!(
            validate_headers(
                &md(&[
                    ("agentid", "a"),
                    ("applicationname", &long_app),
                    ("starttime", "1")
                ]),
                254
            )
            .is_ok()
        );
    }
}
