//! Owns every header name and tracestate key the identity layer reads or writes, and
//! [`HeaderBuf`], the reusable output buffer that lets the translators emit headers
//! without allocating once it has warmed up.
//!
//! Names are given in their usual spelling; matching is always ASCII case-insensitive.

/// W3C Trace Context: `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context: `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// B3 single header.
pub const B3: &str = "b3";
/// B3 multi headers.
pub const X_B3_TRACE_ID: &str = "X-B3-TraceId";
/// B3 multi: the caller's span id.
pub const X_B3_SPAN_ID: &str = "X-B3-SpanId";
/// B3 multi: the caller's parent span id.
pub const X_B3_PARENT_SPAN_ID: &str = "X-B3-ParentSpanId";
/// B3 multi: `1` / `0`.
pub const X_B3_SAMPLED: &str = "X-B3-Sampled";
/// B3 multi: `1` means debug.
pub const X_B3_FLAGS: &str = "X-B3-Flags";

/// Pinpoint: `agentId^start^seq`.
pub const PINPOINT_TRACE_ID: &str = "Pinpoint-TraceID";
/// Pinpoint: the callee's spanId (the caller event's nextSpanId).
pub const PINPOINT_SPAN_ID: &str = "Pinpoint-SpanID";
/// Pinpoint: the caller span's spanId (the callee's parentSpanId).
pub const PINPOINT_PARENT_SPAN_ID: &str = "Pinpoint-pSpanID";
/// Pinpoint: `s0` when not sampled (absent means sampled).
pub const PINPOINT_SAMPLED: &str = "Pinpoint-Sampled";
/// Pinpoint: a short, normally `0`.
pub const PINPOINT_FLAGS: &str = "Pinpoint-Flags";
/// Pinpoint: the caller's application name.
pub const PINPOINT_PARENT_APP_NAME: &str = "Pinpoint-pAppName";
/// Pinpoint: the caller's application service type code.
pub const PINPOINT_PARENT_APP_TYPE: &str = "Pinpoint-pAppType";
/// Pinpoint: the caller's application namespace.
pub const PINPOINT_PARENT_APP_NAMESPACE: &str = "Pinpoint-pAppNamespace";
/// Pinpoint (3.1+): the caller's service name.
pub const PINPOINT_PARENT_SERVICE_NAME: &str = "Pinpoint-pServiceName";
/// Pinpoint: the host:port the caller targeted (the callee's acceptorHost).
pub const PINPOINT_HOST: &str = "Pinpoint-Host";

/// Pinpoint's own tracestate key: `pp=svc:<service>;app:<application>;type:<code>`.
pub const TRACESTATE_PP: &str = "pp";
/// The bridge's own tracestate key: `ppb=tx:<txid>;ps:<i64>;sp:<i64>`.
pub const TRACESTATE_PPB: &str = "ppb";

/// Pinpoint-Sampled value for "not sampled".
pub const PINPOINT_NOT_SAMPLED: &str = "s0";
/// Pinpoint-Sampled value for "sampled" (agents normally omit the header instead).
pub const PINPOINT_SAMPLED_YES: &str = "s1";

/// An ordered list of output headers kept in one reusable byte buffer.
///
/// [`HeaderBuf::clear`] keeps both allocations, so a buffer reused across requests stops
/// allocating after the first few. Values are stored as bytes (what an HTTP library takes,
/// see [`HeaderBuf::iter_bytes`]); the translators write only ASCII into it.
#[derive(Debug, Default, Clone)]
pub struct HeaderBuf {
    bytes: Vec<u8>,
    entries: Vec<(&'static str, usize, usize)>,
}

impl HeaderBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all headers, keeping the capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    /// Appends a header whose value `write` appends to the byte buffer.
    pub fn push_with(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        self.entries.push((name, start, self.bytes.len()));
    }

    /// Appends a header with a ready value.
    pub fn push(&mut self, name: &'static str, value: &str) {
        self.push_with(name, |out| out.extend_from_slice(value.as_bytes()));
    }

    /// The headers in the order they were pushed, values as bytes (no validation).
    pub fn iter_bytes(&self) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        self.entries
            .iter()
            .map(|&(name, start, end)| (name, self.bytes.get(start..end).unwrap_or_default()))
    }

    /// The headers in the order they were pushed, values as text. A value that is not
    /// UTF-8 (only possible through a custom [`HeaderBuf::push_with`]) reads as empty.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.iter_bytes()
            .map(|(name, v)| (name, std::str::from_utf8(v).unwrap_or_default()))
    }

    /// The value of the first header with this name (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no header was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Owned copies, for callers that keep the headers.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_buf_keeps_order_and_reuses_storage() {
        let mut buf = HeaderBuf::new();
        buf.push(PINPOINT_TRACE_ID, "a^1^2");
        buf.push_with(PINPOINT_SPAN_ID, |s| s.push(b'7'));
        assert_eq!(
            buf.iter().collect::<Vec<_>>(),
            vec![(PINPOINT_TRACE_ID, "a^1^2"), (PINPOINT_SPAN_ID, "7")]
        );
        assert_eq!(buf.get("pinpoint-spanid"), Some("7"));
        buf.clear();
        assert!(buf.is_empty());
        buf.push(TRACEPARENT, "x");
        assert_eq!(
            buf.to_pairs(),
            vec![("traceparent".to_owned(), "x".to_owned())]
        );
    }
}
