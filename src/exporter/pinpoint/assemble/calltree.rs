//! A compact checker of the Pinpoint web's call-tree rules (the same rules as
//! tests/peers/pinpoint-collector/calltree.js), for tests: chunks join their span by
//! (application, spanId); events sort by sequence, which must run 0,1,2… with depth 1
//! first and at most one deeper than the previous event, else the rest is CORRUPTED; a
//! span whose (parentSpanId, spanId) matches no (caller spanId, event nextSpanId) and
//! whose parentSpanId is not -1 hangs under UNKNOWN.

use std::collections::HashMap;
use std::fmt::Write;

use super::super::codes as c;
use super::super::proto::{PSpanEvent, p_annotation_value, p_next_event, p_span_message};
use super::Output;

/// What the web would show.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub roots: usize,
    pub unknown: usize,
    pub corrupted: usize,
    pub orphan_chunks: usize,
    /// Every root's tree as text: segments, their events in order, linked callees.
    pub text: String,
}

struct Seg {
    app: String,
    span_id: i64,
    parent: i64,
    api: String,
    events: Vec<PSpanEvent>,
}

fn api_of(annotations: &[super::super::proto::PAnnotation]) -> String {
    annotations
        .iter()
        .find(|a| a.key == c::ANNO_API)
        .and_then(|a| match a.value.as_ref()?.field.as_ref()? {
            p_annotation_value::Field::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn next_span(e: &PSpanEvent) -> Option<i64> {
    match e.next_event.as_ref()?.field.as_ref()? {
        p_next_event::Field::MessageEvent(m) => Some(m.next_span_id).filter(|&n| n != -1),
    }
}

/// Builds the call trees of `out` (one transaction).
#[must_use]
pub fn check(out: &[Output]) -> Tree {
    let mut tree = Tree::default();
    let mut segs: Vec<Seg> = Vec::new();
    let mut chunks = Vec::new();
    for o in out {
        let app = o.agent.application_name.clone();
        match &o.message.field {
            Some(p_span_message::Field::Span(s)) => segs.push(Seg {
                app,
                span_id: s.span_id,
                parent: s.parent_span_id,
                api: api_of(&s.annotation),
                events: s.span_event.clone(),
            }),
            Some(p_span_message::Field::SpanChunk(ch)) => chunks.push((app, ch)),
            _ => {}
        }
    }
    for (app, ch) in chunks {
        match segs
            .iter_mut()
            .find(|s| s.app == app && s.span_id == ch.span_id)
        {
            Some(s) => s.events.extend(ch.span_event.iter().cloned()),
            None => tree.orphan_chunks += 1,
        }
    }
    for s in &mut segs {
        s.events.sort_by_key(|e| e.sequence);
        let mut prev = 0;
        for (i, e) in s.events.iter().enumerate() {
            let bad = e.sequence != i as i32
                || (i == 0 && e.depth != 1)
                || (i > 0 && (e.depth < 1 || e.depth > prev + 1));
            if bad {
                tree.corrupted += 1;
                s.events.truncate(i);
                break;
            }
            prev = e.depth;
        }
    }
    // (caller spanId, nextSpanId) -> callee segment indexes.
    let mut linked: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    let callers: HashMap<(i64, i64), ()> = segs
        .iter()
        .flat_map(|s| {
            s.events
                .iter()
                .filter_map(|e| Some(((s.span_id, next_span(e)?), ())))
        })
        .collect();
    let mut tops = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        if callers.contains_key(&(s.parent, s.span_id)) {
            linked.entry((s.parent, s.span_id)).or_default().push(i);
        } else if s.parent == -1 {
            tree.roots += 1;
            tops.push(i);
        } else {
            tree.unknown += 1;
            tops.push(i);
        }
    }
    tops.sort_by_key(|&i| (segs[i].parent != -1, segs[i].app.clone(), segs[i].span_id));
    for i in tops {
        render(&segs, &linked, i, 0, &mut tree.text);
    }
    tree
}

fn render(
    segs: &[Seg],
    linked: &HashMap<(i64, i64), Vec<usize>>,
    i: usize,
    indent: usize,
    out: &mut String,
) {
    let s = &segs[i];
    let pad = "  ".repeat(indent);
    let _ = writeln!(out, "{pad}{} {} (parent {})", s.app, s.api, s.parent);
    for e in &s.events {
        let _ = writeln!(
            out,
            "{pad}  [{}] d{} {} +{} {}ms",
            e.sequence,
            e.depth,
            api_of(&e.annotation),
            e.start_elapsed,
            e.end_elapsed
        );
        if let Some(next) = next_span(e) {
            for &k in linked.get(&(s.span_id, next)).into_iter().flatten() {
                render(segs, linked, k, indent + 2, out);
            }
        }
    }
}
