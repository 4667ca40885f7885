//! `receivers.pinpoint` with an `upstream`: refuses routes that would send the spans the
//! receiver converted to a Pinpoint exporter pointing at that same collector (the
//! collector would get every transaction twice, and the bridge would read it back).
//!
//! Routes are first-match. A route whose `match: { scope: { name: ... } }` excludes the receiver's scope
//! (`otel-pinpoint-bridge/pinpoint-receiver`) never takes converted spans; a route
//! without conditions other than a matching scope takes them all (later routes and the
//! default never see them); any other route may take some. Every exporter that may get
//! converted spans is checked.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;

use super::{
    ConfigError, Destination, ExporterConfig, ExporterKind, RouteAction, RoutingConfig, err,
};
use crate::receiver::pinpoint::PinpointReceiverConfig;
use crate::receiver::pinpoint::convert::SCOPE_NAME;

fn looping(e: &ExporterConfig, p: &PinpointReceiverConfig) -> bool {
    let (Some(up), ExporterKind::Pinpoint(x)) = (&p.upstream, &e.kind) else {
        return false;
    };
    same_host(&x.host, &up.host) && (x.agent_port == up.agent_port || x.span_port == up.span_port)
}

fn same_host(a: &str, b: &str) -> bool {
    let norm = |h: &str| {
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        match h.as_str() {
            "localhost" | "127.0.0.1" | "::1" | "[::1]" => "localhost".to_owned(),
            _ => h,
        }
    };
    norm(a) == norm(b)
}

fn check_action(
    action: &RouteAction,
    path: &str,
    exporters: &[ExporterConfig],
    p: &PinpointReceiverConfig,
    errors: &mut Vec<ConfigError>,
) {
    let Destination::Exporters(refs) = &action.destination else {
        return;
    };
    for r in refs {
        if let Some(e) = exporters.iter().find(|e| e.name == r.exporter)
            && looping(e, p)
        {
            errors.push(err(
                path,
                format!(
                    "sends the spans of receivers.pinpoint to exporter `{}`, which writes to the \
                     collector receivers.pinpoint.upstream already gets them from (a loop); \
                     send them elsewhere first with a route `match: {{ scope: {{ name: {SCOPE_NAME} }} }}`",
                    e.name
                ),
            ));
        }
    }
}

/// Pushes an error for every route that would loop converted spans to the upstream.
pub(super) fn check(
    p: &PinpointReceiverConfig,
    exporters: &[ExporterConfig],
    routing: &RoutingConfig,
    errors: &mut Vec<ConfigError>,
) {
    if p.upstream.is_none() || !exporters.iter().any(|e| looping(e, p)) {
        return;
    }
    let scope = InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    };
    for (i, route) in routing.routes.iter().enumerate() {
        let m = &route.matcher;
        if !m.scope_matches(Some(&scope)) {
            continue;
        }
        check_action(
            &route.action,
            &format!("routes[{i}].to"),
            exporters,
            p,
            errors,
        );
        if m.resource.is_empty() && !m.is_span_level() {
            return;
        }
    }
    match &routing.default {
        Some(action) => check_action(action, "default_route.to", exporters, p, errors),
        None => {
            for e in exporters.iter().filter(|e| looping(e, p)) {
                errors.push(err(
                    &format!("exporters.{}", e.name),
                    "without routes every exporter gets the spans of receivers.pinpoint, and this \
                     one writes to the collector receivers.pinpoint.upstream already gets them \
                     from (a loop); add routes that keep them away from it",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    const HEAD: &str = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\n  pinpoint:\n    upstream: { host: collector.local }\n\
        exporters:\n  pp:\n    type: pinpoint\n    host: collector.local\n  other:\n    type: pinpoint\n    host: other.local\n  z:\n    type: null\n";

    fn errors(extra: &str) -> Vec<(String, String)> {
        match parse(&format!("{HEAD}{extra}"), &|_| None) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn a_route_back_into_the_teed_collector_is_refused_with_its_path() {
        // No routes: every exporter gets everything, `pp` included.
        let e = errors("");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "exporters.pp");
        // A catch-all route to it.
        let e = errors("routes:\n  - name: all\n    to: [z, pp]\n");
        assert_eq!(e[0].0, "routes[0].to", "{e:?}");
        assert!(e[0].1.contains("a loop"), "{e:?}");
        // The default route to it, behind a route that takes only some spans.
        let e = errors(
            "routes:\n  - name: some\n    match: { resource: { service.name: a } }\n    to: [z]\ndefault_route: { to: [pp] }\n",
        );
        assert_eq!(e[0].0, "default_route.to", "{e:?}");
    }

    #[test]
    fn routes_that_keep_converted_spans_away_are_accepted() {
        // Converted spans go to Zipkin first; only OTel-born spans reach `pp`.
        let ok = errors(
            "routes:\n  - name: from-pinpoint\n    match: { scope: { name: otel-pinpoint-bridge/pinpoint-receiver } }\n    to: [z]\n  - name: rest\n    to: [pp]\n",
        );
        assert_eq!(ok, Vec::<(String, String)>::new());
        // A route that excludes the receiver's scope never takes its spans.
        let ok = errors(
            "routes:\n  - name: otel-only\n    match: { scope: { name: { ne: otel-pinpoint-bridge/pinpoint-receiver } } }\n    to: [pp]\ndefault_route: { to: [z] }\n",
        );
        assert_eq!(ok, Vec::<(String, String)>::new());
        // Another collector is no loop.
        let ok = errors("routes:\n  - name: all\n    to: [other]\n");
        assert_eq!(ok, Vec::<(String, String)>::new());
    }
}
