//! One intake shared by the runs of a fuzz target: a null exporter whose queue drops
//! what does not fit (so admission never refuses for a full queue), and a pyroscope
//! exporter that takes profiles.

use std::sync::{Arc, OnceLock};

use otel_pinpoint_bridge::config;
use otel_pinpoint_bridge::memory::MemoryGuard;
use otel_pinpoint_bridge::pipeline::Pipeline;
use otel_pinpoint_bridge::pipeline::router::Router;
use otel_pinpoint_bridge::receiver::Intake;

const CONFIG: &str = "
receivers: { otlp: { http: { endpoint: 127.0.0.1:0 } } }
exporters:
  sink: { type: null, queue: { on_full: drop } }
  pyroscope: { type: pyroscope, endpoint: http://127.0.0.1:1, queue: { on_full: drop } }
";

pub fn get() -> &'static Intake {
    static INTAKE: OnceLock<Intake> = OnceLock::new();
    INTAKE.get_or_init(|| {
        let c = config::parse(CONFIG, &|_| None).expect("fuzz config");
        let router = Router::new(&c.routing, &c.exporters);
        let (pipeline, queues) = Pipeline::new(&c.exporters, router);
        // Nothing consumes the queues: they fill, and `drop` then skips.
        std::mem::forget(queues);
        Intake::new(pipeline, "fuzz")
            .with_memory(Arc::new(MemoryGuard::new(None, 16 << 20)))
    })
}

/// Runs an intake call to its end. With in-memory queues (as here) it never waits, so
/// polling with a no-op waker is enough (`receive` is async for persistent queues).
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
