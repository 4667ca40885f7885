//! Protobuf encoding of a `PSpanMessage` by hand, byte for byte what prost writes
//! (`wire_tests.rs` compares the two over generated traffic and a proptest). The
//! buffer is filled back to front: a nested message's length is known when its key is
//! written, so each message is measured once, where prost computes the length of every
//! nested message again at each level above it. Field order, skipped defaults (proto3:
//! zero numbers, empty strings and `false` are left out, except inside a `oneof`) and
//! the `google.protobuf.StringValue` wrappers follow prost. The rare annotation and
//! attribute kinds the converter never makes are encoded by prost into the buffer.

use bytes::Bytes;
use prost::Message;

use super::proto::{
    PAcceptEvent, PAnnotation, PAnnotationValue, PAttribute, PAttributeValue, PIntStringValue,
    PMessageEvent, PParentInfo, PSpan, PSpanChunk, PSpanEvent, PSpanMessage, PTransactionId,
    p_annotation_value, p_attribute_value, p_next_event, p_span_message,
};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

/// Writes `v` as a varint at the start of `out` (at least 10 bytes); returns its length.
pub fn varint_into(mut v: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// A reusable back-to-front buffer: the bytes written so far are `buf[start..]`.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
    start: usize,
}

impl Writer {
    /// Encodes `m` and returns its bytes (one allocation of their exact size). The
    /// buffer is kept for the next message.
    pub fn encode(&mut self, m: &PSpanMessage) -> Bytes {
        self.start = self.buf.len();
        self.span_message(m);
        let out = Bytes::copy_from_slice(&self.buf[self.start..]);
        self.start = self.buf.len();
        out
    }

    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    #[cold]
    fn grow(&mut self, need: usize) {
        let used = self.len();
        let size = (self.buf.len() * 2).max(used + need).max(16 << 10);
        let mut bigger = vec![0u8; size];
        bigger[size - used..].copy_from_slice(&self.buf[self.start..]);
        self.buf = bigger;
        self.start = size - used;
    }

    #[inline]
    fn put(&mut self, b: &[u8]) {
        if self.start < b.len() {
            self.grow(b.len());
        }
        let s = self.start - b.len();
        self.buf[s..self.start].copy_from_slice(b);
        self.start = s;
    }

    /// A varint, written in place (no temporary, no `memcpy` call).
    #[inline]
    fn varint(&mut self, mut v: u64) {
        if self.start < 10 {
            self.grow(10);
        }
        if v < 0x80 {
            self.start -= 1;
            self.buf[self.start] = v as u8;
            return;
        }
        // Its length in bytes: 7 bits each.
        let n = ((63 - (v | 1).leading_zeros()) / 7 + 1) as usize;
        let s = self.start - n;
        let out = &mut self.buf[s..self.start];
        for b in out.iter_mut() {
            *b = (v as u8) | 0x80;
            v >>= 7;
        }
        // The last byte has no continuation bit.
        if let Some(last) = out.last_mut() {
            *last &= 0x7f;
        }
        self.start = s;
    }

    #[inline]
    fn key(&mut self, tag: u32, wire_type: u32) {
        self.varint(u64::from((tag << 3) | wire_type));
    }

    /// `int32` and `int64` (negative numbers take ten bytes, as the varint of the
    /// sign-extended value).
    #[inline]
    fn int(&mut self, tag: u32, v: i64) {
        if v != 0 {
            self.varint(v as u64);
            self.key(tag, VARINT);
        }
    }

    #[inline]
    fn sint32(&mut self, tag: u32, v: i32) {
        if v != 0 {
            self.varint(u64::from(((v << 1) ^ (v >> 31)) as u32));
            self.key(tag, VARINT);
        }
    }

    #[inline]
    fn sfixed64(&mut self, tag: u32, v: i64) {
        if v != 0 {
            self.put(&v.to_le_bytes());
            self.key(tag, FIXED64);
        }
    }

    /// A length-delimited field, even when empty (a `oneof` member).
    #[inline]
    fn bytes_always(&mut self, tag: u32, b: &[u8]) {
        self.put(b);
        self.varint(b.len() as u64);
        self.key(tag, LEN);
    }

    #[inline]
    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.bytes_always(tag, s.as_bytes());
        }
    }

    /// Finishes a nested message whose fields were written since `end` was taken.
    #[inline]
    fn close(&mut self, tag: u32, end: usize) {
        self.varint((self.len() - end) as u64);
        self.key(tag, LEN);
    }

    /// A `google.protobuf.StringValue` (present even when empty).
    fn wrapped(&mut self, tag: u32, s: Option<&String>) {
        if let Some(s) = s {
            let end = self.len();
            self.string(1, s);
            self.close(tag, end);
        }
    }

    /// A message prost encodes (kinds the converter does not make).
    fn by_prost<M: Message>(&mut self, tag: u32, m: &M) {
        self.put(&m.encode_to_vec());
        self.varint(m.encoded_len() as u64);
        self.key(tag, LEN);
    }

    fn span_message(&mut self, m: &PSpanMessage) {
        match &m.field {
            Some(p_span_message::Field::Span(s)) => {
                let end = self.len();
                self.span(s);
                self.close(1, end);
            }
            Some(p_span_message::Field::SpanChunk(c)) => {
                let end = self.len();
                self.chunk(c);
                self.close(2, end);
            }
            None => {}
        }
    }

    fn span(&mut self, s: &PSpan) {
        self.attributes(17, &s.attribute);
        self.int(16, i64::from(s.logging_transaction_info));
        self.int(15, i64::from(s.application_service_type));
        self.int_string(14, s.exception_info.as_ref());
        for e in s.span_event.iter().rev() {
            let end = self.len();
            self.event(e);
            self.close(13, end);
        }
        self.sint32(12, s.err);
        self.int(11, i64::from(s.flag));
        self.annotations(10, &s.annotation);
        if let Some(a) = &s.accept_event {
            let end = self.len();
            self.accept_event(a);
            self.close(9, end);
        }
        self.int(8, i64::from(s.service_type));
        self.int(7, i64::from(s.api_id));
        self.int(6, i64::from(s.elapsed));
        self.int(5, s.start_time);
        self.sfixed64(4, s.parent_span_id);
        self.sfixed64(3, s.span_id);
        self.txid(2, s.transaction_id.as_ref());
        self.int(1, i64::from(s.version));
    }

    fn chunk(&mut self, c: &PSpanChunk) {
        if let Some(a) = &c.local_async_id {
            let end = self.len();
            self.int(2, i64::from(a.sequence));
            self.int(1, i64::from(a.async_id));
            self.close(8, end);
        }
        self.int(7, c.key_time);
        self.int(6, i64::from(c.application_service_type));
        for e in c.span_event.iter().rev() {
            let end = self.len();
            self.event(e);
            self.close(5, end);
        }
        self.string(4, &c.end_point);
        self.sfixed64(3, c.span_id);
        self.txid(2, c.transaction_id.as_ref());
        self.int(1, i64::from(c.version));
    }

    fn txid(&mut self, tag: u32, t: Option<&PTransactionId>) {
        if let Some(t) = t {
            let end = self.len();
            self.int(3, t.sequence);
            self.int(2, t.agent_start_time);
            self.string(1, &t.agent_id);
            self.close(tag, end);
        }
    }

    fn accept_event(&mut self, a: &PAcceptEvent) {
        if let Some(p) = &a.parent_info {
            let end = self.len();
            self.parent_info(p);
            self.close(4, end);
        }
        self.string(3, &a.remote_addr);
        self.string(2, &a.end_point);
        self.string(1, &a.rpc);
    }

    fn parent_info(&mut self, p: &PParentInfo) {
        self.string(4, &p.parent_service_name);
        self.string(3, &p.acceptor_host);
        self.int(2, i64::from(p.parent_application_type));
        self.string(1, &p.parent_application_name);
    }

    fn event(&mut self, e: &PSpanEvent) {
        self.attributes(14, &e.attribute);
        self.int(13, i64::from(e.async_event));
        if let Some(n) = &e.next_event {
            let end = self.len();
            if let Some(p_next_event::Field::MessageEvent(m)) = &n.field {
                let inner = self.len();
                self.message_event(m);
                self.close(1, inner);
            }
            self.close(12, end);
        }
        self.int_string(11, e.exception_info.as_ref());
        self.sint32(10, e.api_id);
        self.annotations(6, &e.annotation);
        self.sint32(5, e.service_type);
        self.int(4, i64::from(e.end_elapsed));
        self.int(3, i64::from(e.start_elapsed));
        self.int(2, i64::from(e.depth));
        self.int(1, i64::from(e.sequence));
    }

    fn message_event(&mut self, m: &PMessageEvent) {
        self.string(3, &m.destination_id);
        self.string(2, &m.end_point);
        self.sfixed64(1, m.next_span_id);
    }

    fn int_string(&mut self, tag: u32, v: Option<&PIntStringValue>) {
        if let Some(v) = v {
            let end = self.len();
            self.wrapped(2, v.string_value.as_ref());
            self.int(1, i64::from(v.int_value));
            self.close(tag, end);
        }
    }

    fn annotations(&mut self, tag: u32, list: &[PAnnotation]) {
        for a in list.iter().rev() {
            let end = self.len();
            if let Some(v) = &a.value {
                let inner = self.len();
                self.annotation_value(v);
                self.close(2, inner);
            }
            self.int(1, i64::from(a.key));
            self.close(tag, end);
        }
    }

    fn annotation_value(&mut self, v: &PAnnotationValue) {
        use p_annotation_value::Field as F;
        let Some(f) = &v.field else { return };
        match f {
            F::StringValue(s) => self.bytes_always(1, s.as_bytes()),
            F::BoolValue(b) => {
                self.varint(u64::from(*b));
                self.key(2, VARINT);
            }
            F::IntValue(i) => {
                self.varint(i64::from(*i) as u64);
                self.key(3, VARINT);
            }
            F::LongValue(i) => {
                self.varint(*i as u64);
                self.key(4, VARINT);
            }
            F::ShortValue(i) => {
                self.varint(u64::from(((i << 1) ^ (i >> 31)) as u32));
                self.key(5, VARINT);
            }
            F::DoubleValue(d) => {
                self.put(&d.to_le_bytes());
                self.key(6, FIXED64);
            }
            F::BinaryValue(b) => self.bytes_always(7, b),
            F::ByteValue(i) => {
                self.varint(u64::from(((i << 1) ^ (i >> 31)) as u32));
                self.key(8, VARINT);
            }
            F::IntStringValue(m) => {
                let end = self.len();
                self.wrapped(2, m.string_value.as_ref());
                self.int(1, i64::from(m.int_value));
                self.close(9, end);
            }
            F::StringStringValue(m) => self.by_prost(10, m),
            F::IntStringStringValue(m) => self.by_prost(11, m),
            F::LongIntIntByteByteStringValue(m) => self.by_prost(12, m),
            F::IntBooleanIntBooleanValue(m) => self.by_prost(13, m),
            F::BytesStringStringValue(m) => self.by_prost(14, m),
        }
    }

    fn attributes(&mut self, tag: u32, list: &[PAttribute]) {
        for a in list.iter().rev() {
            let end = self.len();
            if let Some(v) = &a.value {
                let inner = self.len();
                self.attribute_value(v);
                self.close(2, inner);
            }
            self.string(1, &a.key);
            self.close(tag, end);
        }
    }

    fn attribute_value(&mut self, v: &PAttributeValue) {
        use p_attribute_value::Field as F;
        let Some(f) = &v.field else { return };
        match f {
            F::StringValue(s) => self.bytes_always(1, s.as_bytes()),
            F::BoolValue(b) => {
                self.varint(u64::from(*b));
                self.key(2, VARINT);
            }
            F::LongValue(i) => {
                self.varint(*i as u64);
                self.key(3, VARINT);
            }
            F::DoubleValue(d) => {
                self.put(&d.to_le_bytes());
                self.key(4, FIXED64);
            }
            F::BinaryValue(b) => self.bytes_always(5, b),
            F::ArrayValue(m) => self.by_prost(6, m),
            F::KvlistValue(m) => self.by_prost(7, m),
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
