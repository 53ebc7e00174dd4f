//! The normalize layer's cost on the path that matters most: a success with a streaming body.
//!
//! One run compares a bare service, the same service behind tower-http's `CatchPanicLayer`
//! (the cheapest layer there is, and the baseline) and behind `NormalizeLayer`, each answering
//! 200 with a 16 KiB body in 16 frames, polled to the end.

use std::{
    convert::Infallible,
    future::{ready, Future, Ready},
    hint::black_box,
    pin::{pin, Pin},
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{header, HeaderMap, HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame};
use tower::{service_fn, Layer, Service};
use tower_api_errors::normalize::NormalizeLayer;
use tower_http::catch_panic::CatchPanicLayer;

const FRAMES: usize = 16;
static CHUNK: [u8; 1024] = [b'x'; 1024];

/// 16 frames of 1 KiB, each ready at once, with no declared length: a streaming body.
struct Stream {
    left: usize,
}

impl Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

fn handler(_: Request<()>) -> Ready<Result<Response<Stream>, Infallible>> {
    ready(Ok(Response::new(Stream { left: FRAMES })))
}

/// The head of an ordinary JSON API request, as a server would hand it on.
fn request(uri: &Uri, headers: &HeaderMap) -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}

/// One request through `service`, its body polled to the end; returns the bytes seen.
fn drive<S, B>(service: &mut S, request: Request<()>) -> usize
where
    S: Service<Request<()>, Response = Response<B>>,
    B: Body<Data = Bytes>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(())) = service.poll_ready(&mut cx) else {
        unreachable!("the services are always ready")
    };
    let mut future = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        unreachable!("the services answer at once")
    };
    let mut body = pin!(response.into_body());
    let mut seen = 0;
    while let Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut cx) {
        seen += frame.data_ref().map_or(0, Bytes::len);
    }
    seen
}

/// The request every variant answers, and the three variants.
struct Setup {
    uri: Uri,
    headers: HeaderMap,
}

impl Setup {
    fn new() -> Self {
        let uri: Uri = "/v1/webhooks?page=1&page_size=10".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("api.example.com"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static("bench/1.0"));
        Setup { uri, headers }
    }

    fn request(&self) -> Request<()> {
        request(&self.uri, &self.headers)
    }
}

fn success_with_streaming_body(c: &mut Criterion) {
    let setup = Setup::new();
    let mut bare = service_fn(handler);
    let mut catch_panic = CatchPanicLayer::new().layer(service_fn(handler));
    let mut normalize = NormalizeLayer::new().layer(service_fn(handler));
    for seen in [
        drive(&mut bare, setup.request()),
        drive(&mut catch_panic, setup.request()),
        drive(&mut normalize, setup.request()),
    ] {
        assert_eq!(seen, FRAMES * CHUNK.len());
    }

    let mut group = c.benchmark_group("normalize/200_stream_16KiB");
    group.bench_function("bare", |b| {
        b.iter(|| drive(&mut bare, black_box(setup.request())))
    });
    group.bench_function("catch_panic", |b| {
        b.iter(|| drive(&mut catch_panic, black_box(setup.request())))
    });
    group.bench_function("normalize", |b| {
        b.iter(|| drive(&mut normalize, black_box(setup.request())))
    });
    group.finish();
}

/// `--count <bare|catch_panic|normalize> <n>`: `n` requests through one variant, without
/// criterion, for an instruction counter (`valgrind --tool=cachegrind`), whose figures do not
/// depend on what else the machine is doing.
fn count(variant: &str, n: usize) {
    let setup = Setup::new();
    let mut seen = 0;
    match variant {
        "bare" => {
            let mut service = service_fn(handler);
            for _ in 0..n {
                seen += drive(&mut service, black_box(setup.request()));
            }
        }
        "catch_panic" => {
            let mut service = CatchPanicLayer::new().layer(service_fn(handler));
            for _ in 0..n {
                seen += drive(&mut service, black_box(setup.request()));
            }
        }
        "normalize" => {
            let mut service = NormalizeLayer::new().layer(service_fn(handler));
            for _ in 0..n {
                seen += drive(&mut service, black_box(setup.request()));
            }
        }
        other => panic!("unknown variant {other}"),
    }
    assert_eq!(seen, n * FRAMES * CHUNK.len());
}

criterion_group!(benches, success_with_streaming_body);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, variant, n] = args.as_slice() {
        if flag == "--count" {
            return count(variant, n.parse().expect("a number of requests"));
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
