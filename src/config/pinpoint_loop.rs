//! `receivers.pinpoint` with an `upstream`: refuses routes that would send the spans the
//! receiver converted to a Pinpoint exporter pointing at that same collector (the
//! collector would get every transaction twice, and the bridge would read it back).
//!
//! Routes are first-match. A route whose `match: scope:` excludes the receiver's scope
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
                     exclude them with `match: {{ scope: {{ ne: {SCOPE_NAME} }} }}` on an earlier route",
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
