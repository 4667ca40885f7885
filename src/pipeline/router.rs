//! Routing: which exporters receive which spans.
//!
//! The routes of the config are tried in order for every span, and the first whose
//! `match:` holds decides: send to its exporters (keeping only a fraction of traces when
//! it samples), or drop. A span no route takes follows the default route (without
//! `default_route:` in the config, every exporter gets it).
//!
//! Cost model, so that routing stays well under a microsecond per span:
//! - resource conditions are evaluated once per `ResourceSpans`, scope conditions once
//!   per `ScopeSpans`; only the routes that survive both are tried on each span, and a
//!   surviving route without span conditions ends the list. When that leaves one route
//!   that needs no sampling, the whole scope is decided at once, with no per-span work;
//! - the span attribute keys any route looks at are found in one pass over the span's
//!   attributes (bucketed by key length), the first time a route needs one; a route that
//!   needs an attribute the span lacks is rejected by one mask test; globs and regexes
//!   were compiled at load, and exporter names resolved to queue indices;
//! - spans are moved, not cloned. When every span of a block goes the same way (the
//!   common case), the block itself is the part, shared as one `Arc` by all the
//!   exporters it goes to. Otherwise the block is split into one part per destination,
//!   rebuilding only the `ResourceSpans`/`ScopeSpans` that are divided. The one
//!   exception is an exporter with its own sample (`{ exporter, sample }`, a debug
//!   copy): it gets clones of the spans its sample keeps, so that the other exporters'
//!   part stays whole.
//!
//! Routes with the same exporters and the same Pinpoint overrides share a destination,
//! so their spans travel in one part.

mod split;

use split::{copy_out, empty_parts, split, uniform};

use std::sync::Arc;

use metrics::Counter;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::rules::{CodeSet, Condition, Match, Sampler, Val};
use super::{Block, SharedBlock};
use crate::config::{Destination, ExporterConfig, ExporterRef, RouteAction, RoutingConfig};
use crate::selfmetrics as m;

/// What a route sets for the Pinpoint exporter on the spans it sends (`pinpoint:` in a
/// route). Carried on the routed [`Block`]; other exporters ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOverrides {
    /// Pinpoint service type code (e.g. 1000 for a standalone Java application).
    pub service_type: Option<i16>,
    /// Pinpoint application name.
    pub application_name: Option<String>,
}

/// The metric label of the default route.
pub const DEFAULT_ROUTE: &str = "default";

/// Decides, span by span, the exporters (by index, in config order) for each block.
#[derive(Debug)]
pub struct Router {
    /// The configured routes in order, then the default route (always last, matches all).
    rules: Box<[Rule]>,
    destinations: Box<[Dest]>,
    /// The span attribute keys any route looks at; a route refers to them by index.
    span_keys: KeyIndex,
}

/// Span attribute keys by index, with the indices bucketed by key length so that
/// finding them among a span's attributes costs about one comparison per attribute.
#[derive(Debug, Default)]
struct KeyIndex {
    keys: Box<[Box<str>]>,
    by_len: Box<[Box<[usize]>]>,
}

impl KeyIndex {
    fn new(keys: Vec<Box<str>>) -> Self {
        let longest = keys.iter().map(|k| k.len()).max().unwrap_or(0);
        let by_len = (0..=longest)
            .map(|len| (0..keys.len()).filter(|i| keys[*i].len() == len).collect())
            .collect();
        Self {
            keys: keys.into(),
            by_len,
        }
    }

    /// The index of `key`, if a route looks at it.
    #[inline]
    fn find(&self, key: &str) -> Option<usize> {
        let k = key.as_bytes();
        self.by_len.get(k.len())?.iter().copied().find(|i| {
            let want = self.keys[*i].as_bytes();
            want.first() == k.first() && want.last() == k.last() && want == k
        })
    }
}

#[derive(Debug)]
struct Rule {
    matcher: Match,
    /// `matcher.span` with keys resolved to indices into `Router::span_keys`.
    span_attrs: Box<[(usize, Condition)]>,
    /// Bit `i`: span attribute key `i` (below 64) must be present for a match.
    required: u64,
    span_level: bool,
    /// The route's own `sample`: spans of the other traces are dropped.
    sampler: Option<Sampler>,
    targets: Targets,
    counted: Counted,
}

/// Where a rule's spans go (destinations are indices into `Router::destinations`).
#[derive(Debug)]
enum Targets {
    Drop,
    /// Every span to `main`, and to the exporters with their own sample (`copies`) when
    /// they keep its trace. Without `main` (every exporter samples), the copies' pick is
    /// where the span goes.
    Send {
        main: Option<u32>,
        copies: Option<Copies>,
    },
}

/// The exporters of one route that sample on their own: bit `i` of the index into
/// `variants` says whether `samplers[i]` keeps the trace; `None` is "none of them".
#[derive(Debug)]
struct Copies {
    samplers: Box<[Sampler]>,
    variants: Box<[Option<u32>]>,
}

impl Copies {
    fn pick(&self, trace_id: &[u8]) -> Option<u32> {
        let mask = self
            .samplers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.keeps(trace_id))
            .fold(0usize, |m, (bit, _)| m | 1 << bit);
        self.variants.get(mask).copied().flatten()
    }
}

impl Targets {
    /// Where a span of trace `trace_id` goes: its destination (the span itself moves
    /// there) and the destination of a sampled copy (the span is cloned for it).
    fn pick(&self, trace_id: &[u8]) -> (Option<u32>, Option<u32>) {
        match self {
            Self::Drop => (None, None),
            Self::Send {
                main: Some(d),
                copies,
            } => (Some(*d), copies.as_ref().and_then(|c| c.pick(trace_id))),
            Self::Send { main: None, copies } => {
                (copies.as_ref().and_then(|c| c.pick(trace_id)), None)
            }
        }
    }
}

/// What [`Router::decide`] found for one block.
struct Decisions {
    /// Per span, in block order: its destination, or `DROPPED`.
    main: Vec<u32>,
    /// `(span position, destination)` of the sampled copies, in block order.
    copies: Vec<(usize, u32)>,
    /// Spans per destination, copies included.
    spans: Vec<usize>,
    /// Per rule: `[export, drop, sampled_out]`.
    tally: Vec<[u64; 3]>,
}

#[derive(Debug)]
struct Counted {
    export: Counter,
    drop: Counter,
    sampled_out: Counter,
}

impl Counted {
    fn new(route: &str) -> Self {
        let c = |action: &'static str| metrics::counter!(m::ROUTE_SPANS, "route" => route.to_owned(), "action" => action);
        Self {
            export: c("export"),
            drop: c("drop"),
            sampled_out: c("sampled_out"),
        }
    }
}

/// Exporters that receive the same part, with what the part carries for them.
#[derive(Debug)]
struct Dest {
    exporters: Box<[usize]>,
    overrides: Option<Arc<RouteOverrides>>,
}

/// The decision for one span: a destination index, or `DROPPED`.
const DROPPED: u32 = u32::MAX;

impl Router {
    /// Every exporter gets every span, as one shared block (no routes configured).
    #[must_use]
    pub fn all(exporters: usize) -> Self {
        Self::build(&[], None, &(0..exporters).collect::<Vec<_>>(), |_| None)
    }

    /// The router `routing` describes; exporter names are resolved against `exporters`
    /// (the pipeline's queues, in the same order). The config was validated at load, so
    /// every name resolves.
    #[must_use]
    pub fn new(routing: &RoutingConfig, exporters: &[ExporterConfig]) -> Self {
        let all: Vec<usize> = (0..exporters.len()).collect();
        let routes: Vec<(&str, &Match, &RouteAction)> = routing
            .routes
            .iter()
            .map(|r| (r.name.as_str(), &r.matcher, &r.action))
            .collect();
        Self::build(&routes, routing.default.as_ref(), &all, |name| {
            exporters.iter().position(|e| e.name == name)
        })
    }

    fn build(
        routes: &[(&str, &Match, &RouteAction)],
        default: Option<&RouteAction>,
        all: &[usize],
        index_of: impl Fn(&str) -> Option<usize>,
    ) -> Self {
        let mut span_keys: Vec<Box<str>> = Vec::new();
        let mut destinations: Vec<Dest> = Vec::new();
        // The destination for exactly these exporters and overrides (`None`: no exporter).
        let mut dest_of = |mut exporters: Vec<usize>, overrides: Option<&RouteOverrides>| {
            exporters.sort_unstable();
            exporters.dedup();
            if exporters.is_empty() {
                return None;
            }
            let found = destinations
                .iter()
                .position(|d| *d.exporters == *exporters && d.overrides.as_deref() == overrides);
            let i = found.unwrap_or_else(|| {
                destinations.push(Dest {
                    exporters: exporters.into(),
                    overrides: overrides.cloned().map(Arc::new),
                });
                destinations.len() - 1
            });
            u32::try_from(i).ok()
        };
        let mut targets = |action: Option<&RouteAction>| -> Targets {
            let Some(action) = action else {
                return Targets::Send {
                    main: dest_of(all.to_vec(), None),
                    copies: None,
                };
            };
            let Destination::Exporters(refs) = &action.destination else {
                return Targets::Drop;
            };
            let resolve = |r: &ExporterRef| index_of(&r.exporter);
            let always: Vec<usize> = refs
                .iter()
                .filter(|r| r.sample.is_none())
                .filter_map(resolve)
                .collect();
            let sampled: Vec<(usize, Sampler)> = refs
                .iter()
                .filter_map(|r| Some((resolve(r)?, Sampler::new(r.sample?))))
                .collect();
            let overrides = action.pinpoint.as_ref();
            // One destination per combination of sampled exporters that keep a trace.
            let copies = (!sampled.is_empty()).then(|| Copies {
                samplers: sampled.iter().map(|(_, s)| *s).collect(),
                variants: (0..1usize << sampled.len())
                    .map(|mask| {
                        let exporters = sampled
                            .iter()
                            .enumerate()
                            .filter(|(bit, _)| mask & (1 << bit) != 0)
                            .map(|(_, (e, _))| *e)
                            .collect();
                        dest_of(exporters, overrides)
                    })
                    .collect(),
            });
            Targets::Send {
                main: dest_of(always, overrides),
                copies,
            }
        };
        let mut rules = Vec::with_capacity(routes.len() + 1);
        for (name, matcher, action) in routes {
            let span_attrs: Box<[(usize, Condition)]> = matcher
                .span
                .iter()
                .map(|(k, c)| {
                    let slot = span_keys.iter().position(|x| x == k).unwrap_or_else(|| {
                        span_keys.push(k.clone());
                        span_keys.len() - 1
                    });
                    (slot, c.clone())
                })
                .collect();
            let required = required_keys(&span_attrs);
            rules.push(Rule {
                matcher: (*matcher).clone(),
                span_attrs,
                required,
                span_level: matcher.is_span_level(),
                sampler: action.sample.map(Sampler::new),
                targets: targets(Some(*action)),
                counted: Counted::new(name),
            });
        }
        rules.push(Rule {
            matcher: Match::default(),
            span_attrs: Box::new([]),
            required: 0,
            span_level: false,
            sampler: default.and_then(|d| d.sample).map(Sampler::new),
            targets: targets(default),
            counted: Counted::new(DEFAULT_ROUTE),
        });
        Self {
            rules: rules.into(),
            destinations: destinations.into(),
            span_keys: KeyIndex::new(span_keys),
        }
    }

    /// The exporters every span goes to, when that does not depend on the spans (one
    /// route, the default, without sampling or copies); `None` otherwise. Lets a receiver
    /// see a full destination queue before decoding a request.
    #[must_use]
    pub fn fixed_exporters(&self) -> Option<&[usize]> {
        let [rule] = &*self.rules else {
            return None;
        };
        match (&rule.sampler, &rule.targets) {
            (
                None,
                Targets::Send {
                    main: Some(d),
                    copies: None,
                },
            ) => self.destinations.get(*d as usize).map(|d| &*d.exporters),
            _ => None,
        }
    }

    /// Returns `(exporter index, the part of the block for it)` pairs. An exporter may
    /// appear more than once (parts with different Pinpoint overrides); a block whose
    /// spans are all dropped yields nothing.
    #[must_use]
    pub fn route(&self, block: Block) -> Vec<(usize, SharedBlock)> {
        let found = self.decide(&block);
        for (rule, t) in self.rules.iter().zip(&found.tally) {
            let counters = [
                &rule.counted.export,
                &rule.counted.drop,
                &rule.counted.sampled_out,
            ];
            for (counter, n) in counters.into_iter().zip(t) {
                if *n > 0 {
                    counter.increment(*n);
                }
            }
        }
        let n = self.destinations.len();
        // Copies first, while the block is still whole.
        let copies = (!found.copies.is_empty()).then(|| copy_out(&block, &found.copies, n));
        let mut parts = match uniform(&found.main) {
            // Every span goes the same way: the block itself is the part, not a copy.
            Some(d) if d != DROPPED => {
                let mut parts = empty_parts(n);
                if let Some(p) = parts.get_mut(d as usize) {
                    *p = block.resource_spans;
                }
                parts
            }
            Some(_) => empty_parts(n),
            None if found.main.is_empty() => empty_parts(n),
            None => split(block, &found.main, n),
        };
        for (part, extra) in parts.iter_mut().zip(copies.into_iter().flatten()) {
            part.extend(extra);
        }
        let mut out = Vec::new();
        for ((resource_spans, dest), span_count) in parts
            .into_iter()
            .zip(self.destinations.iter())
            .zip(found.spans)
        {
            if resource_spans.is_empty() {
                continue;
            }
            let shared = Arc::new(Block {
                resource_spans,
                span_count,
                overrides: dest.overrides.clone(),
            });
            out.extend(dest.exporters.iter().map(|e| (*e, Arc::clone(&shared))));
        }
        out
    }

    /// Decides every span of `block`, and counts.
    fn decide(&self, block: &Block) -> Decisions {
        let mut found = Decisions {
            main: Vec::with_capacity(block.span_count),
            copies: Vec::new(),
            spans: vec![0; self.destinations.len()],
            tally: vec![[0; 3]; self.rules.len()],
        };
        let mut resource_ok = vec![false; self.rules.len()];
        let mut candidates: Vec<usize> = Vec::with_capacity(self.rules.len());
        let mut attrs = SpanAttrs::new(&self.span_keys);
        for rs in &block.resource_spans {
            let resource = rs.resource.as_ref();
            for (ok, rule) in resource_ok.iter_mut().zip(self.rules.iter()) {
                *ok = rule.matcher.resource_matches(resource);
            }
            for ss in &rs.scope_spans {
                // The routes this scope can reach, up to the first that takes every span.
                candidates.clear();
                for (i, rule) in self.rules.iter().enumerate() {
                    if resource_ok[i] && rule.matcher.scope_matches(ss.scope.as_ref()) {
                        candidates.push(i);
                        if !rule.span_level {
                            break;
                        }
                    }
                }
                // One route takes the whole scope the same way: no per-span work.
                if let [only] = candidates[..]
                    && let Some((main, outcome)) = self.rules[only].fixed()
                {
                    let n = ss.spans.len();
                    found
                        .main
                        .extend(std::iter::repeat_n(main.unwrap_or(DROPPED), n));
                    found.tally[only][outcome] += n as u64;
                    add(&mut found.spans, main, n);
                    continue;
                }
                for span in &ss.spans {
                    attrs.reset();
                    let chosen = candidates
                        .iter()
                        .copied()
                        .find(|i| self.rules[*i].span_matches(span, &mut attrs))
                        // The default route ends every list; this is never reached.
                        .unwrap_or(self.rules.len() - 1);
                    let rule = &self.rules[chosen];
                    let (main, copy) = if rule.sampler.is_none_or(|s| s.keeps(&span.trace_id)) {
                        rule.targets.pick(&span.trace_id)
                    } else {
                        (None, None)
                    };
                    let outcome = match (&rule.targets, main) {
                        (_, Some(_)) => 0,
                        (Targets::Drop, None) => 1,
                        (Targets::Send { .. }, None) => 2,
                    };
                    found.tally[chosen][outcome] += 1;
                    add(&mut found.spans, main, 1);
                    add(&mut found.spans, copy, 1);
                    if let Some(c) = copy {
                        found.copies.push((found.main.len(), c));
                    }
                    found.main.push(main.unwrap_or(DROPPED));
                }
            }
        }
        found
    }
}

/// The keys whose conditions fail on a missing attribute, as a bit mask (keys below 64).
fn required_keys(span_attrs: &[(usize, Condition)]) -> u64 {
    span_attrs
        .iter()
        .filter(|(slot, c)| *slot < 64 && !c.matches(None))
        .fold(0, |mask, (slot, _)| mask | 1 << slot)
}

/// Adds `n` spans to destination `d`'s count.
fn add(spans: &mut [usize], d: Option<u32>, n: usize) {
    if let Some(c) = d.and_then(|d| spans.get_mut(d as usize)) {
        *c += n;
    }
}

impl Rule {
    /// When every span this rule takes goes the same way whatever its trace (no
    /// sampling): that destination (`None`: dropped) and the tally column.
    fn fixed(&self) -> Option<(Option<u32>, usize)> {
        match &self.targets {
            _ if self.sampler.is_some() => None,
            Targets::Drop => Some((None, 1)),
            Targets::Send {
                main: Some(d),
                copies: None,
            } => Some((Some(*d), 0)),
            Targets::Send { .. } => None,
        }
    }

    fn span_matches<'a>(&self, span: &'a Span, attrs: &mut SpanAttrs<'_, 'a>) -> bool {
        if !self.span_level {
            return true;
        }
        let m = &self.matcher;
        m.kinds.is_none_or(|k: CodeSet| k.contains(span.kind))
            && m.statuses
                .is_none_or(|s| s.contains(span.status.as_ref().map_or(0, |s| s.code)))
            // One mask test rejects the rules that need an attribute the span lacks.
            && (self.required == 0 || attrs.present(span) & self.required == self.required)
            && m.span_name.as_ref().is_none_or(|c| {
                c.matches(
                    Some(span.name.as_str())
                        .filter(|n| !n.is_empty())
                        .map(Val::Str),
                )
            })
            && self
                .span_attrs
                .iter()
                .all(|(slot, c)| c.matches(attrs.get(*slot, span)))
    }
}

/// The values of the span attributes routes look at, found in one pass on first use.
struct SpanAttrs<'k, 'a> {
    keys: &'k KeyIndex,
    values: Vec<Option<Val<'a>>>,
    /// Bit `i`: key `i` (below 64) is present.
    present: u64,
    filled: bool,
}

impl<'k, 'a> SpanAttrs<'k, 'a> {
    fn new(keys: &'k KeyIndex) -> Self {
        Self {
            keys,
            values: vec![None; keys.keys.len()],
            present: 0,
            filled: false,
        }
    }

    fn reset(&mut self) {
        self.filled = false;
    }

    fn fill(&mut self, span: &'a Span) {
        self.values.fill(None);
        self.present = 0;
        for kv in &span.attributes {
            if let Some(i) = self.keys.find(&kv.key)
                && self.values[i].is_none()
            {
                self.values[i] = Some(Val::of(kv.value.as_ref()));
                if i < 64 {
                    self.present |= 1 << i;
                }
            }
        }
        self.filled = true;
    }

    fn present(&mut self, span: &'a Span) -> u64 {
        if !self.filled {
            self.fill(span);
        }
        self.present
    }

    fn get(&mut self, slot: usize, span: &'a Span) -> Option<Val<'a>> {
        if !self.filled {
            self.fill(span);
        }
        self.values.get(slot).copied().flatten()
    }
}

#[cfg(test)]
mod tests;
