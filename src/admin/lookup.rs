//! The status page's id lookup: a trace id, a Pinpoint transaction id or a traceparent
//! in, both forms out (by `ids.md` section 2), with links to the trace in Pinpoint's
//! web and in Zipkin or Jaeger, built from `admin.links`. Pure.

use serde::Serialize;

use crate::config::LinksConfig;
use crate::ids::mapping::{self, TxidOrigin};
use crate::ids::{AgentId, TraceId, TraceParent, TransactionId};

/// The answer for one id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup {
    /// What the input was read as: `trace_id`, `txid` or `traceparent`.
    pub input: &'static str,
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// `agentId^agentStartTime^sequence`.
    pub txid: String,
    /// `bridge` (OTel-born, lossless under the marker) or `pinpoint` (hashed).
    pub origin: &'static str,
    /// A caveat for the reader, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Links to the configured UIs: `pinpoint`, `zipkin`, `jaeger`.
    pub links: Vec<(&'static str, String)>,
}

/// Reads `input` as a trace id, a txid or a traceparent.
///
/// # Errors
/// A message saying what the input is not.
pub fn lookup(input: &str, marker: AgentId, links: &LinksConfig) -> Result<Lookup, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty: paste a trace id, a transaction id or a traceparent".to_owned());
    }
    let (kind, trace, txid, origin, note) = if s.contains('^') {
        let tx = TransactionId::parse(s).map_err(|e| format!("not a transaction id: {e}"))?;
        let origin = mapping::txid_origin(&tx, marker);
        let trace = mapping::txid_to_trace_id(&tx, marker);
        (
            "txid",
            trace,
            tx,
            origin,
            (origin == TxidOrigin::Pinpoint).then(|| {
                "Pinpoint-born: the trace id is SHA-256 of the txid (ids.md §2)".to_owned()
            }),
        )
    } else if s.len() == 55 && s.as_bytes()[2] == b'-' {
        let tp = TraceParent::parse(s).map_err(|e| format!("not a traceparent: {e}"))?;
        let tx = mapping::trace_id_to_txid(tp.trace_id, marker);
        (
            "traceparent",
            tp.trace_id,
            tx,
            TxidOrigin::Bridge,
            born_note(),
        )
    } else if s.len() == 32 {
        let trace = TraceId::from_hex(&s.to_ascii_lowercase())
            .map_err(|e| format!("not a trace id: {e}"))?;
        if trace.is_zero() {
            return Err("not a trace id: all zeros".to_owned());
        }
        let tx = mapping::trace_id_to_txid(trace, marker);
        ("trace_id", trace, tx, TxidOrigin::Bridge, born_note())
    } else {
        return Err(format!(
            "`{}` is neither a trace id (32 hex digits), a transaction id (agentId^start^sequence) nor a traceparent",
            snippet(s)
        ));
    };
    let trace_id = trace.to_hex();
    let txid_text = txid.to_string();
    Ok(Lookup {
        input: kind,
        links: build_links(links, &trace_id, &txid),
        trace_id,
        txid: txid_text,
        origin: match origin {
            TxidOrigin::Bridge => "bridge",
            TxidOrigin::Pinpoint => "pinpoint",
        },
        note,
    })
}

fn born_note() -> Option<String> {
    Some(
        "if this trace was born in Pinpoint, its original txid travels in tracestate `ppb` instead"
            .to_owned(),
    )
}

fn snippet(s: &str) -> String {
    s.chars().take(80).collect()
}

fn build_links(l: &LinksConfig, trace_id: &str, tx: &TransactionId) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(base) = &l.pinpoint {
        // Pinpoint web's transaction view, opened by txid alone (spanId -1, no focus).
        let info = serde_json::json!({
            "agentId": tx.agent_id.as_str(),
            "spanId": "-1",
            "traceId": tx.to_string(),
            "focusTimestamp": 0,
        });
        out.push((
            "pinpoint",
            format!(
                "{}/transactionDetail?transactionInfo={}",
                base.trim_end_matches('/'),
                percent_encode(&info.to_string())
            ),
        ));
    }
    if let Some(base) = &l.zipkin {
        out.push((
            "zipkin",
            format!("{}/traces/{trace_id}", base.trim_end_matches('/')),
        ));
    }
    if let Some(base) = &l.jaeger {
        out.push((
            "jaeger",
            format!("{}/trace/{trace_id}", base.trim_end_matches('/')),
        ));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> AgentId {
        AgentId::new("otel").expect("marker")
    }

    fn links() -> LinksConfig {
        LinksConfig {
            pinpoint: Some("http://pinpoint-web:8080/".to_owned()),
            zipkin: Some("http://zipkin:9411/zipkin".to_owned()),
            jaeger: Some("http://jaeger:16686".to_owned()),
        }
    }

    #[test]
    fn ids_md_examples_both_ways() {
        let l = lookup("0af7651916cd43dd8448eb211c80319c", marker(), &links()).expect("trace");
        assert_eq!(l.input, "trace_id");
        assert_eq!(l.txid, "otel^790211418057950173^-8914616934935285348");
        assert_eq!(l.origin, "bridge");
        let back = lookup(&l.txid, marker(), &links()).expect("txid");
        assert_eq!(back.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(back.note, None);
        let pp = lookup("agentA^1700000000000^42", marker(), &links()).expect("pinpoint txid");
        assert_eq!(pp.trace_id, "d753c5cba22eb84c93f5d8478fd545f2");
        assert_eq!(pp.origin, "pinpoint");
        let tp = lookup(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            marker(),
            &links(),
        )
        .expect("traceparent");
        assert_eq!(
            (tp.input, tp.txid.as_str()),
            ("traceparent", l.txid.as_str())
        );
        // Upper-case hex is read too (people paste from logs).
        let up = lookup("0AF7651916CD43DD8448EB211C80319C", marker(), &links()).expect("upper");
        assert_eq!(up.txid, l.txid);
    }

    #[test]
    fn links_are_built_from_the_configured_bases() {
        let l = lookup("0af7651916cd43dd8448eb211c80319c", marker(), &links()).expect("trace");
        let get = |k: &str| {
            l.links
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, u)| u.clone())
        };
        assert_eq!(
            get("zipkin").as_deref(),
            Some("http://zipkin:9411/zipkin/traces/0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(
            get("jaeger").as_deref(),
            Some("http://jaeger:16686/trace/0af7651916cd43dd8448eb211c80319c")
        );
        let pinpoint = get("pinpoint").expect("pinpoint link");
        assert!(
            pinpoint.starts_with("http://pinpoint-web:8080/transactionDetail?transactionInfo=%7B")
        );
        assert!(
            pinpoint.contains("otel%5E790211418057950173%5E-8914616934935285348"),
            "{pinpoint}"
        );
        let none = lookup(
            "0af7651916cd43dd8448eb211c80319c",
            marker(),
            &LinksConfig::default(),
        )
        .expect("trace");
        assert!(none.links.is_empty());
    }

    #[test]
    fn bad_input_says_what_it_is_not() {
        for (input, want) in [
            ("", "empty"),
            ("hello", "neither a trace id"),
            ("00000000000000000000000000000000", "all zeros"),
            ("zzf7651916cd43dd8448eb211c80319c", "not a trace id"),
            ("a^b^c", "not a transaction id"),
            (
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                "not a traceparent",
            ),
            ("<script>alert(1)</script>", "neither"),
        ] {
            let e = lookup(input, marker(), &links()).expect_err(input);
            assert!(e.contains(want), "{input}: {e}");
        }
    }
}
