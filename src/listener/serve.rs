//! The accept loop: one task per connection, HTTP/1.1 and HTTP/2 (`hyper-util`'s auto
//! builder, so gRPC and plain HTTP clients share the code), TLS when configured,
//! connection limit with eviction, header/idle timeouts, a body timeout per request.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Options;
use super::auth::AuthLayer;
use super::body::TimedBody;
use super::conns::{Admission, Conn, Conns};
use crate::selfmetrics as m;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a connection told to close (idle or shutting down) may take to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves `service` on `listener` with `options` until `shutdown` completes, then
/// closes idle connections and waits for in-flight requests.
///
/// The service sees request bodies as [`TimedBody`]: reading one fails once the
/// listener's `body_read_timeout` has passed since the request head.
///
/// # Errors
/// None today; the type leaves room for fatal listener errors.
pub async fn serve<S, B>(
    listener: TcpListener,
    options: Options,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: tower::Service<Request<TimedBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match options.auth.clone() {
        Some(auth) => {
            let layer = AuthLayer::new(auth, options.name);
            accept_loop(
                listener,
                options,
                tower::Layer::layer(&layer, service),
                shutdown,
            )
            .await
        }
        None => accept_loop(listener, options, service, shutdown).await,
    }
}

struct Shared {
    options: Options,
    conns: Conns,
    builder: auto::Builder<TokioExecutor>,
}

async fn accept_loop<S, B>(
    listener: TcpListener,
    options: Options,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: tower::Service<Request<TimedBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let limits = options.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own HTTP/1.1 header timer would also run while a kept-alive connection
    // waits for its next request, cutting `idle_timeout` short; the watchdog in `drive`
    // does both jobs instead.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams);
    let name = options.name;
    let shared = Arc::new(Shared {
        options,
        conns: Conns::default(),
        builder,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted:
                // pause briefly rather than spin.
                tracing::debug!(listener = name, error = %e, "accept failed");
                metrics::counter!(m::LISTENER_CONNECTIONS_REFUSED, "listener" => name, "reason" => "accept_error")
                    .increment(1);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (id, conn) = match shared.conns.admit(limits.max_connections) {
            Admission::Admitted { id, conn, evicted } => {
                if evicted {
                    metrics::counter!(m::LISTENER_CONNECTIONS_CLOSED, "listener" => name, "reason" => "evicted")
                        .increment(1);
                }
                (id, conn)
            }
            Admission::Refused => {
                metrics::counter!(m::LISTENER_CONNECTIONS_REFUSED, "listener" => name, "reason" => "limit")
                    .increment(1);
                drop(stream);
                continue;
            }
        };
        metrics::counter!(m::LISTENER_CONNECTIONS_ACCEPTED, "listener" => name).increment(1);
        metrics::gauge!(m::LISTENER_CONNECTIONS, "listener" => name).set(shared.conns.len() as f64);
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let service = service.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            let reason = connection(stream, &shared, &conn, service, stop).await;
            shared.conns.remove(id);
            if let Some(reason) = reason {
                metrics::counter!(m::LISTENER_CONNECTIONS_CLOSED, "listener" => name, "reason" => reason)
                    .increment(1);
            }
            metrics::gauge!(m::LISTENER_CONNECTIONS, "listener" => name)
                .set(shared.conns.len() as f64);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Runs one connection; returns why the listener closed it (a metric label), or `None`
/// when the client closed it or the listener shut down.
async fn connection<S, B>(
    stream: TcpStream,
    shared: &Shared,
    conn: &Arc<Conn>,
    service: S,
    mut stop: watch::Receiver<bool>,
) -> Option<&'static str>
where
    S: tower::Service<Request<TimedBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let limits = shared.options.limits;
    let Some(tls) = &shared.options.tls else {
        return drive(stream, shared, conn, service, stop).await;
    };
    // The handshake counts against the header-read timeout.
    let deadline = conn.accepted + limits.header_read_timeout;
    let stream = tokio::select! {
        r = tokio::time::timeout_at(deadline, tls.accept(stream)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(listener = shared.options.name, error = %e, "TLS handshake failed");
                return Some("tls_error");
            }
            Err(_) => return Some("header_timeout"),
        },
        () = conn.kill.notified() => return None,
        _ = stop.wait_for(|s| *s) => return None,
    };
    drive(stream, shared, conn, service, stop).await
}

async fn drive<I, S, B>(
    io: I,
    shared: &Shared,
    conn: &Arc<Conn>,
    service: S,
    mut stop: watch::Receiver<bool>,
) -> Option<&'static str>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<TimedBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let limits = shared.options.limits;
    let hyper_service = Adapter {
        inner: service,
        conn: Arc::clone(conn),
        body_timeout: limits.body_read_timeout,
        listener: shared.options.name,
    };
    let mut c = pin!(
        shared
            .builder
            .serve_connection(TokioIo::new(io), hyper_service)
    );
    let mut closing: Option<(tokio::time::Instant, Option<&'static str>)> = None;
    loop {
        let next = match closing {
            Some((at, _)) => Some(at),
            None => conn
                .idle_deadline(limits.header_read_timeout, limits.idle_timeout)
                .map(|(at, _)| at),
        };
        // While a request is in flight, look again after the shortest timeout.
        let wake = next.unwrap_or_else(|| tokio::time::Instant::now() + limits.header_read_timeout);
        tokio::select! {
            r = c.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(listener = shared.options.name, error = %e, "connection ended with an error");
                }
                return closing.and_then(|(_, why)| why);
            }
            () = conn.kill.notified() => return None,
            _ = stop.wait_for(|s| *s), if closing.is_none() => {
                c.as_mut().graceful_shutdown();
                closing = Some((tokio::time::Instant::now() + CLOSE_GRACE, None));
            }
            () = tokio::time::sleep_until(wake) => {
                if let Some((_, why)) = closing {
                    return why;
                }
                if let Some((at, why)) = conn.idle_deadline(limits.header_read_timeout, limits.idle_timeout)
                    && at <= tokio::time::Instant::now()
                {
                    c.as_mut().graceful_shutdown();
                    closing = Some((tokio::time::Instant::now() + Duration::from_secs(1), Some(why)));
                }
            }
        }
    }
}

/// hyper's service: counts the request as in flight on its connection, gives the inner
/// tower service a [`TimedBody`].
struct Adapter<S> {
    inner: S,
    conn: Arc<Conn>,
    body_timeout: Duration,
    listener: &'static str,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Adapter<S>
where
    S: tower::Service<Request<TimedBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = self.conn.start_request();
        let request = request.map(|b| TimedBody::new(b, self.body_timeout, self.listener));
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let _in_flight = guard;
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(request).await.map_err(Into::into)
        })
    }
}
