//! One listener: accepts connections (at most `max_connections` open), serves HTTP/1.1
//! and HTTP/2 (prior knowledge, h2c) with upgrades on each through hyper, and hands
//! every request to the layered service; an error becomes the status it names.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::{Service, ServiceExt};

use super::forward::{Body, ProxyError};
use super::layers::Side;
use crate::selfmetrics as m;

/// Connection settings of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    pub side: Side,
    pub max_connections: usize,
    pub max_header_bytes: usize,
}

fn error_response(e: &ProxyError) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(format!("proxy: {e}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = e.status();
    resp
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.is_ok();
}

/// Serves `listener` until `stop` turns true; open connections then finish their
/// in-flight requests (graceful shutdown).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    cfg: ServeConfig,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(cfg.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let listener_label = cfg.side.label();
    let gauge = metrics::gauge!(m::PROXY_CONNECTIONS, "listener" => listener_label);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(listener = listener_label, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let _ = stream.set_nodelay(true);
        let svc = service.clone();
        let builder = Arc::clone(&builder);
        let mut stop = stop.clone();
        let gauge = gauge.clone();
        tokio::spawn(async move {
            gauge.increment(1.0);
            let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let svc = svc.clone();
                async move {
                    let req = req.map(BodyExt::boxed);
                    Ok::<_, Infallible>(match svc.oneshot(req).await {
                        Ok(resp) => resp,
                        Err(e) => {
                            tracing::debug!(listener = listener_label, error = %e, "request not forwarded");
                            error_response(&e)
                        }
                    })
                }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_svc);
            tokio::pin!(conn);
            let stopped = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = stopped(&mut stop) => None,
            };
            let result = match stopped {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(listener = listener_label, error = %e, "connection ended with an error");
            }
            gauge.decrement(1.0);
            drop(permit);
        });
    }
}
