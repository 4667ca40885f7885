//! Splitting a block into one part per destination, moving spans and rebuilding only
//! the `ResourceSpans`/`ScopeSpans` that are divided.

use super::*;

/// The one value of `decisions` when they are all equal (`None` when mixed or empty).
pub(super) fn uniform(decisions: &[u32]) -> Option<u32> {
    let (first, rest) = decisions.split_first()?;
    rest.iter().all(|d| d == first).then_some(*first)
}

pub(super) fn empty_parts(destinations: usize) -> Vec<Vec<ResourceSpans>> {
    (0..destinations).map(|_| Vec::new()).collect()
}

/// Clones the spans listed in `copies` (`(span position, destination)`, in block
/// order) into per-destination parts, with their resource and scope.
pub(super) fn copy_out(
    block: &Block,
    copies: &[(usize, u32)],
    destinations: usize,
) -> Vec<Vec<ResourceSpans>> {
    let mut parts = empty_parts(destinations);
    let mut next = copies.iter().peekable();
    let mut position = 0;
    for rs in &block.resource_spans {
        let n: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        let end = position + n;
        if next.peek().is_none_or(|(p, _)| *p >= end) {
            position = end;
            continue;
        }
        let mut scopes: Vec<Vec<ScopeSpans>> = empty_scopes(destinations);
        for ss in &rs.scope_spans {
            let mut divided: Vec<Option<ScopeSpans>> = (0..destinations).map(|_| None).collect();
            for span in &ss.spans {
                if let Some((_, d)) = next.next_if(|(p, _)| *p == position)
                    && let Some(slot) = divided.get_mut(*d as usize)
                {
                    slot.get_or_insert_with(|| ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: Vec::new(),
                        schema_url: ss.schema_url.clone(),
                    })
                    .spans
                    .push(span.clone());
                }
                position += 1;
            }
            for (s, part) in scopes.iter_mut().zip(divided) {
                s.extend(part);
            }
        }
        for (part, scope_spans) in parts.iter_mut().zip(scopes) {
            if !scope_spans.is_empty() {
                part.push(ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans,
                    schema_url: rs.schema_url.clone(),
                });
            }
        }
    }
    parts
}

pub(super) fn empty_scopes(destinations: usize) -> Vec<Vec<ScopeSpans>> {
    (0..destinations).map(|_| Vec::new()).collect()
}

/// Moves every span to its destination's part; rebuilds the `ResourceSpans` and
/// `ScopeSpans` whose spans go different ways (their headers are cloned for all but one
/// destination, which takes the originals).
pub(super) fn split(
    block: Block,
    decisions: &[u32],
    destinations: usize,
) -> Vec<Vec<ResourceSpans>> {
    let mut parts = empty_parts(destinations);
    // Buffers reused for every divided resource and scope.
    let mut scopes = empty_scopes(destinations);
    let mut divided: Vec<Option<ScopeSpans>> = (0..destinations).map(|_| None).collect();
    let mut counts = vec![0usize; destinations];
    let mut at = 0;
    for rs in block.resource_spans {
        let n: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        let here = decisions.get(at..at + n).unwrap_or_default();
        at += n;
        match uniform(here) {
            Some(DROPPED) => continue,
            Some(d) => {
                if let Some(p) = parts.get_mut(d as usize) {
                    p.push(rs);
                }
                continue;
            }
            None if n == 0 => continue,
            None => {}
        }
        let ResourceSpans {
            mut resource,
            scope_spans,
            mut schema_url,
        } = rs;
        let mut at_scope = 0;
        for ss in scope_spans {
            let n = ss.spans.len();
            let here_scope = here.get(at_scope..at_scope + n).unwrap_or_default();
            at_scope += n;
            match uniform(here_scope) {
                Some(DROPPED) => continue,
                Some(d) => {
                    if let Some(s) = scopes.get_mut(d as usize) {
                        s.push(ss);
                    }
                    continue;
                }
                None if n == 0 => continue,
                None => {}
            }
            let ScopeSpans {
                mut scope,
                spans,
                schema_url: mut scope_schema,
            } = ss;
            counts.fill(0);
            for d in here_scope {
                if let Some(c) = counts.get_mut(*d as usize) {
                    *c += 1;
                }
            }
            let last = counts.iter().rposition(|c| *c > 0);
            for (d, slot) in divided.iter_mut().enumerate() {
                if counts[d] > 0 {
                    let is_last = Some(d) == last;
                    *slot = Some(ScopeSpans {
                        scope: copy_or_take(&mut scope, is_last),
                        spans: Vec::with_capacity(counts[d]),
                        schema_url: copy_or_take(&mut scope_schema, is_last),
                    });
                }
            }
            for (span, d) in spans.into_iter().zip(here_scope) {
                if let Some(Some(part)) = divided.get_mut(*d as usize) {
                    part.spans.push(span);
                }
            }
            for (s, part) in scopes.iter_mut().zip(divided.iter_mut()) {
                s.extend(part.take());
            }
        }
        let last = scopes.iter().rposition(|s| !s.is_empty());
        for (d, s) in scopes.iter_mut().enumerate() {
            if !s.is_empty() {
                let is_last = Some(d) == last;
                parts[d].push(ResourceSpans {
                    resource: copy_or_take(&mut resource, is_last),
                    scope_spans: std::mem::take(s),
                    schema_url: copy_or_take(&mut schema_url, is_last),
                });
            }
        }
    }
    parts
}

/// The last user of `value` takes it; the others get copies.
pub(super) fn copy_or_take<T: Clone + Default>(value: &mut T, last: bool) -> T {
    if last {
        std::mem::take(value)
    } else {
        value.clone()
    }
}
