//! The demo's HTTP server: hyper-util's HTTP/1 + HTTP/2 server with a bound on every resource
//! a client can hold without sending a key. `axum::serve` has none of them: a connection that
//! never finishes its head is kept forever.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use axum::body::Body;
use http::{Request, Response};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::{Instant, Sleep},
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How long a client may take to send a request head (10 s), counted from when the
/// connection starts waiting for one, so on HTTP/1 it also ends a kept-alive connection that
/// sends no next request.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may go without a byte read or written before it is closed (60 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request body may pause between two chunks (30 s); then `request_timeout` (408).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many connections are served at once (10,000); further ones wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The server's limits, each a named setting (see the README's table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`DEFAULT_BODY_TIMEOUT`].
    pub body_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` with `settings` until `shutdown` resolves, then lets the open
/// connections finish their requests.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    // The body timeout goes around the whole stack, so the layers that read a body (batch
    // limit, per-item authorization) see its error and answer `request_timeout` (408).
    let app = ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(settings.body_timeout))
        .map_request(|request: Request<_>| request.map(Body::new))
        .service(app);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // A peer that stops answering pings is gone; idle ones are closed by the watchdog.
        .keep_alive_interval(settings.idle_timeout / 2)
        .keep_alive_timeout(settings.idle_timeout / 2);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A permit before `accept`: over the limit, new connections wait in the kernel's
        // backlog instead of taking memory here.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = Watchdog::new(TokioIo::new(stream), settings.idle_timeout);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            app.clone().oneshot(request.map(Body::new))
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(io, service);
            // Closed by a timeout or by the client: nothing to answer any more.
            let _ = watcher.watch(connection.into_owned()).await;
            drop(permit);
        });
    }
    graceful.shutdown().await;
}

/// Binds `addr` and serves the demo with `settings`; what `main` runs.
pub async fn run(
    addr: SocketAddr,
    settings: ServerSettings,
    keys: &str,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    println!("listening on http://{bound}");
    println!("{settings:?}");
    println!("{}", crate::app::banner(bound));
    println!("{keys}");
    serve(listener, crate::app::app(), settings, shutdown).await;
    Ok(())
}

/// Closes a connection on which nothing was read or written for `idle`: a kept-alive
/// connection nobody uses, or a client that stopped mid-request, holds a slot for that long at
/// most. Any byte moving either way starts the wait again.
struct Watchdog {
    io: TokioIo<TcpStream>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Watchdog {
    fn new(io: TokioIo<TcpStream>, idle: Duration) -> Self {
        Watchdog {
            io,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "connection idle for too long",
        ))
    }

    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.moved();
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }
}

impl Read for Watchdog {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        self.watch(cx, polled)
    }
}

impl Write for Watchdog {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }
}
