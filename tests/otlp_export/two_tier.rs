//! The standard scalable layout: each service's own bridge (a sidecar) forwards with
//! trace-id affinity to two gateway bridges, which assemble and export to the stand-in
//! Pinpoint collector. Five services with the real SDK at its defaults; every trace must
//! arrive whole, with no shared store (no Redis): each trace is assembled on one gateway.

use std::time::Duration;

use crate::common;
use crate::common::whole::{self, Endpoints, SERVICES, StandIn, Traffic};
use crate::metric;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_with_trace_affinity_to_two_gateways_keep_every_trace_whole() {
    let standin = StandIn::start("3.1");
    let gw1 = common::start(&whole::gateway_yaml(standin.port)).await;
    let gw2 = common::start(&whole::gateway_yaml(standin.port)).await;
    let gateways = [gw1.grpc_addr, gw2.grpc_addr]
        .iter()
        .map(|a| format!("http://{}", a.expect("grpc")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sidecars = Vec::new();
    let mut per_service = Vec::new();
    for service in SERVICES {
        // Everything at its defaults but the endpoints.
        let sidecar = common::start(&format!(
            "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n\
             exporters:\n  tier2_{service}:\n    type: otlp\n    endpoints: [{gateways}]\n\
             admin: {{ endpoint: 127.0.0.1:0 }}\n"
        ))
        .await;
        per_service.push((
            service.to_owned(),
            format!("http://{}", sidecar.grpc_addr.expect("grpc")),
        ));
        sidecars.push(sidecar);
    }
    let endpoints = Endpoints::PerService(per_service);
    let sent =
        tokio::task::spawn_blocking(move || whole::five_services(&endpoints, Traffic::default()))
            .await
            .expect("python");
    let w = whole::wait_whole(&standin, &sent, Duration::from_secs(20)).await;
    // Both gateways took part (the ring spreads traces), and no sidecar gave up spans.
    for gw in [&gw1, &gw2] {
        let sent = metric(
            gw,
            "bridge_exporter_spans_sent_total",
            &[("exporter", "pinpoint")],
        )
        .await;
        assert!(sent > 0.0, "a gateway got no traces");
    }
    for (sidecar, service) in sidecars.iter().zip(SERVICES) {
        let failed = metric(
            sidecar,
            "bridge_exporter_spans_failed_total",
            &[("exporter", &format!("tier2_{service}"))],
        )
        .await;
        assert_eq!(failed, 0.0, "sidecar of {service} gave up spans");
    }
    for s in sidecars {
        s.shutdown().await;
    }
    gw1.shutdown().await;
    gw2.shutdown().await;
    w.assert_all_whole();
}
