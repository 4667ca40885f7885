//! The local structure of one trace's held spans: which span is whose local child
//! (same agent, parent held, not an entry), and the roots of the resulting forest.
//! A root is a segment's entry (remote parent or none), or an *orphan* whose local
//! parent is not held (not arrived yet, already sent, or never coming).

use std::sync::Arc;

use super::Map;
use super::held::Pending;
use crate::ids::{SpanId, TraceId};

pub(super) struct Forest {
    pub index: Map<SpanId, usize>,
    /// Per span, its local children (indexed like the spans: no hashing).
    pub children: Vec<Vec<usize>>,
    pub roots: Vec<usize>,
}

impl Forest {
    pub fn build(spans: &[Pending]) -> Self {
        let index: Map<SpanId, usize> = spans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.id?, i)))
            .collect();
        let same_agent = |a: usize, b: usize| {
            Arc::ptr_eq(&spans[a].agent, &spans[b].agent) || spans[a].agent == spans[b].agent
        };
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, p) in spans.iter().enumerate() {
            let local = p
                .parent
                .and_then(|id| index.get(&id).copied())
                .filter(|&pi| pi != i && !p.remote && same_agent(pi, i));
            match local {
                Some(pi) => children[pi].push(i),
                None => roots.push(i),
            }
        }
        for list in children.iter_mut().filter(|l| l.len() > 1) {
            list.sort_by_key(|&c| spans[c].span.start_time_unix_nano);
        }
        let mut f = Self {
            index,
            children,
            roots,
        };
        f.break_cycles(spans.len());
        f
    }

    /// Spans on a parent cycle (hostile input) reach no root: the first of each
    /// becomes one, so every span is emitted.
    fn break_cycles(&mut self, n: usize) {
        let mut reached = vec![false; n];
        let mut count = 0;
        for &r in &self.roots {
            count += self.mark(r, &mut reached);
        }
        if count == n {
            return;
        }
        for i in 0..n {
            if !reached[i] {
                self.roots.push(i);
                self.mark(i, &mut reached);
            }
        }
    }

    fn mark(&self, i: usize, reached: &mut [bool]) -> usize {
        let mut stack = vec![i];
        let mut count = 0;
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut reached[n], true) {
                continue;
            }
            count += 1;
            if let Some(kids) = self.children.get(n) {
                stack.extend(kids.iter().copied());
            }
        }
        count
    }

    /// Depth-first order from `i`, children by start time, with depths from `depth`.
    pub fn descend(&self, i: usize, depth: i32) -> Vec<(usize, i32)> {
        let mut out = Vec::new();
        // Iterative, so a deep input cannot overflow the stack; `seen` guards cycles.
        let mut stack = vec![(i, depth)];
        let mut seen = vec![false; self.children.len()];
        while let Some((n, d)) = stack.pop() {
            if seen.get(n).is_none_or(|s| *s) {
                continue;
            }
            seen[n] = true;
            out.push((n, d));
            if let Some(kids) = self.children.get(n) {
                for &k in kids.iter().rev() {
                    stack.push((k, d + 1));
                }
            }
        }
        out
    }
}

/// The segment being built: one root of one trace's forest and what it needs.
pub(super) struct Build<'a> {
    pub trace: TraceId,
    pub spans: &'a [Pending],
    pub forest: &'a Forest,
    pub root: usize,
}
