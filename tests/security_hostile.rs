//! Hostile input against the demo stack on 127.0.0.1, mostly over raw TCP so that nothing
//! tidies the bytes on the way: header bytes that are not UTF-8, huge and repeated
//! `Authorization` headers, keys one character off a real one (and what the key store keeps),
//! deeply nested JSON, 10 MB bodies, strings and headers, bytes that are not UTF-8 inside JSON
//! strings, `Content-Length` that lies either way, and percent-encoding tricks in GET ids.
//!
//! Each test states the guarantee it shows; `SECURITY.md` lists them. Where hyper itself
//! refuses a request before any layer sees it (a malformed or oversized head), the test says
//! so and checks that no handler ran.
#![cfg(feature = "axum")]
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bulk_api/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bulk_api/handlers.rs"]
mod handlers;
mod reliability_support;
#[allow(dead_code)]
#[path = "../examples/bulk_api/store.rs"]
mod store;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::body::Body;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use reliability_support::{
    closed_by_server, raw, raw_exchange, read_answer, serve, stack, RawAnswer, Stack,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_api_errors::auth::{
    ApiKey, AuthLayer, InMemoryKeyStore, KeyDigest, KeySet, KeyStore, Lookup, Principal,
};

struct Demo {
    addr: SocketAddr,
    layers: Stack,
    data: Arc<store::Store>,
}

async fn demo() -> Demo {
    let layers = Stack::default();
    let data = Arc::new(store::Store::default());
    let addr = serve(stack(&layers, app::key_store(), app::routes(data.clone()))).await;
    Demo { addr, layers, data }
}

impl Demo {
    /// Whether any webhook was stored for either account.
    fn stored_nothing(&self) -> bool {
        let ids: Vec<String> = (0..100).map(|n| format!("web_{n}")).collect();
        ["acct_123", "acct_456"]
            .iter()
            .all(|account| self.data.get_webhooks(account, &ids).data().is_empty())
    }
}

/// A request in raw bytes: the request line, `headers` as given, `Connection: close`, a
/// `Content-Length` for `body` unless one is among `headers`.
fn http1(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
        .into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    let has_length = headers.iter().any(|(name, _)| {
        name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
    });
    if !has_length {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    bytes
}

const ADMIN: (&str, &[u8]) = ("Authorization", b"Bearer demo_admin");
const JSON: (&str, &[u8]) = ("Content-Type", b"application/json");

fn one_item(email: &str) -> Vec<u8> {
    json!([{"url": "https://hooks.example/in", "email": email}])
        .to_string()
        .into_bytes()
}

/// The `invalid_token` challenge of a refused key (RFC 6750 §3.1).
fn assert_invalid_token(answer: &RawAnswer) {
    answer.assert_error(401, "unauthorized");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
}

/// Header bytes that are not UTF-8 (obs-text, which HTTP/1.1 allows in values) are read as
/// bytes: a key with them is refused as malformed, and they are harmless elsewhere.
#[tokio::test]
async fn header_bytes_that_are_not_utf8() {
    let demo = demo().await;
    for value in [
        &b"Bearer \xff\xfe"[..],
        b"Bearer demo_adm\xc3\xadn",
        b"Bearer demo_admin\x80",
    ] {
        let request = http1(
            "GET",
            "/v1/webhooks?ids=web_1",
            &[("Authorization", value)],
            b"",
        );
        assert_invalid_token(&raw_exchange(demo.addr, &request).await);
    }
    let request = http1(
        "GET",
        "/v1/webhooks?ids=web_1",
        &[("X-Api-Key", b"demo\xa0admin")],
        b"",
    );
    assert_invalid_token(&raw_exchange(demo.addr, &request).await);
    // Not the Bearer scheme at all: no key was presented.
    let request = http1(
        "GET",
        "/v1/webhooks?ids=web_1",
        &[("Authorization", b"\xffBearer demo_admin")],
        b"",
    );
    let answer = raw_exchange(demo.addr, &request).await;
    answer.assert_error(401, "unauthorized");
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    assert_eq!(demo.layers.inner.calls(), 0);

    // Elsewhere they change nothing.
    let request = http1(
        "POST",
        "/v1/webhooks",
        &[
            ADMIN,
            JSON,
            ("X-Trace", b"\xff\xfe\xfd"),
            ("User-Agent", b"caf\xe9"),
        ],
        &one_item("utf8@b.example"),
    );
    let answer = raw_exchange(demo.addr, &request).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()[0]["email"], "utf8@b.example");
}

/// An `Authorization` header longer than the extractor's limit (1 KiB) or sent more than once
/// is refused unread; two key headers that disagree are refused. Heads too large or with too
/// many fields for hyper are refused by hyper (431) before any layer: no handler runs.
#[tokio::test]
async fn huge_and_repeated_authorization_headers() {
    let demo = demo().await;
    let get = |headers: &[(&str, &[u8])]| http1("GET", "/v1/webhooks?ids=web_1", headers, b"");

    for size in [1_100, 64 * 1024] {
        let value = format!("Bearer {}", "k".repeat(size));
        let answer = raw_exchange(demo.addr, &get(&[("Authorization", value.as_bytes())])).await;
        assert_invalid_token(&answer);
    }
    // The real key, sent twice, and ninety times.
    let twice = [ADMIN, ADMIN];
    assert_invalid_token(&raw_exchange(demo.addr, &get(&twice)).await);
    let many = vec![ADMIN; 90];
    assert_invalid_token(&raw_exchange(demo.addr, &get(&many)).await);
    // The real key with another one (a real one, or one character off) in `X-Api-Key`.
    for other in [&b"demo_reader"[..], b"demo_admim"] {
        let answer = raw_exchange(demo.addr, &get(&[ADMIN, ("X-Api-Key", other)])).await;
        assert_invalid_token(&answer);
    }
    // The same key in both: fine.
    let answer = raw_exchange(demo.addr, &get(&[ADMIN, ("X-Api-Key", b"demo_admin")])).await;
    assert_eq!(answer.status, 200);
    assert_eq!(demo.layers.inner.calls(), 1);

    // Beyond hyper's limits (a head of about 400 KB, 100 fields): hyper answers alone.
    let huge = format!("Bearer {}", "k".repeat(1024 * 1024));
    let answer = raw_exchange(demo.addr, &get(&[("Authorization", huge.as_bytes())])).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    let fields = vec![ADMIN; 150];
    let answer = raw_exchange(demo.addr, &get(&fields)).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(demo.layers.inner.calls(), 1);
    assert_eq!(
        demo.layers.outer.calls(),
        7,
        "hyper refused the last two itself"
    );
}

/// Every key one edit away from `demo_admin`.
fn near_misses(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut keys = Vec::new();
    for i in 0..chars.len() {
        for replacement in ['a', 'z', '0', '_', '.', 'A', '~'] {
            if chars[i] != replacement {
                let mut near = chars.clone();
                near[i] = replacement;
                keys.push(near.iter().collect());
            }
        }
        let mut near = chars.clone();
        near[i] = chars[i].to_ascii_uppercase();
        if near != chars {
            keys.push(near.iter().collect());
        }
        let mut near = chars.clone();
        near.remove(i);
        keys.push(near.iter().collect());
        let mut near = chars.clone();
        near.insert(i, 'x');
        keys.push(near.iter().collect());
    }
    keys.push(format!("{key}x"));
    keys
}

/// A key one character off a real one is just an unknown key: 401 `invalid_token`, nothing
/// reaches the handler. (Surrounding blanks are not part of a key: `" demo_admin "` is the key.)
#[tokio::test]
async fn keys_one_character_off_are_unknown_keys() {
    let data = Arc::new(store::Store::default());
    let app = app::app_with(data.clone());
    let near = near_misses("demo_admin");
    assert!(near.len() > 80);
    for key in &near {
        for (name, value) in [
            ("authorization", format!("Bearer {key}")),
            ("x-api-key", key.clone()),
        ] {
            let request = Request::post("/v1/webhooks")
                .header(name, value)
                .body(Body::from(one_item("near@b.example")))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 401, "{key:?}");
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                r#"Bearer error="invalid_token""#
            );
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, r#"{"error":"unauthorized"}"#);
        }
    }
    for padded in [" demo_admin ", "\tdemo_admin"] {
        let request = Request::get("/v1/webhooks?ids=web_1")
            .header("x-api-key", padded)
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 200);
    }
    let ids: Vec<String> = (0..10).map(|n| format!("web_{n}")).collect();
    assert!(data.get_webhooks("acct_123", &ids).data().is_empty());
}

/// The in-memory store keeps SHA-256 digests only: built from a digest, it finds the key it
/// never saw, so a lookup can only be "hash the presented key, find the digest" — no clear key
/// is compared with anything, and a near miss has an unrelated digest. Nothing prints a key.
#[tokio::test]
async fn the_key_store_holds_and_compares_digests_only() {
    const SECRET: &str = "sk_live_51HqLyjWDarjtT1zdp7dcXpHs";
    let digest = KeyDigest::of(SECRET);
    let principal = Principal::new("acct_123").with_roles(["read", "write"]);
    let from_digest = InMemoryKeyStore::new(KeySet::new().with_digest(digest, principal).unwrap());
    let found = from_digest.lookup(&ApiKey::new(SECRET)).await.unwrap();
    assert!(matches!(found, Lookup::Found(p) if p.account_id() == "acct_123"));
    for near in near_misses(SECRET) {
        let key = ApiKey::new(&near);
        assert_ne!(key.digest(), &digest);
        assert_eq!(
            from_digest.lookup_now(&key).unwrap().unwrap(),
            Lookup::NotFound
        );
    }

    // A set loaded with the clear key (the development format) keeps only its digest too.
    let file = format!(r#"{{"keys": [{{"key": "{SECRET}", "account_id": "acct_123"}}]}}"#);
    let from_clear = InMemoryKeyStore::new(KeySet::from_json(file.as_bytes()).unwrap());
    let principal = from_clear.get(&digest).expect("found by digest");
    assert_eq!(principal.key_id(), format!("sha256:{}", digest.short()));
    let printed = [
        format!("{:?}", KeySet::from_json(file.as_bytes()).unwrap()),
        format!("{from_clear:?}"),
        format!("{principal:?}"),
        format!("{:?}", ApiKey::new(SECRET)),
        format!("{digest:?}"),
        format!("{:?}", AuthLayer::new(from_clear.clone())),
    ];
    for text in printed {
        assert!(
            !text.contains(SECRET) && !text.contains(&SECRET[..12]),
            "{text}"
        );
        assert!(
            !text.contains(&digest.to_hex()),
            "the full digest is not printed: {text}"
        );
    }
}

/// A `Write` that appends to a shared buffer, for capturing log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// With every log line on (trace level), no presented key, right or wrong, reaches a log line
/// or a response: refusals name the key id or the first 8 hex digits of the digest.
#[test]
fn no_key_reaches_a_log_line_or_a_response() {
    // A global subscriber, installed once for this test binary: a per-thread one races with
    // tests on other threads that register the layers' call sites first (`tracing` caches that
    // nobody was interested). Other tests' lines land in the buffer too, which only widens the
    // check that no key is ever logged.
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        captured
    });
    let keys = [
        "demo_admin",
        "demo_reader",
        "demo_disabled",
        "sk_test_wrong_0123456789",
        "demo_admin_",
    ];
    let mut bodies = Vec::new();
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let app = app::app_with(Arc::default());
            for key in keys {
                for (method, body) in [
                    (Method::POST, one_item("log@b.example")),
                    (Method::GET, Vec::new()),
                ] {
                    let request = Request::builder()
                        .method(method)
                        .uri("/v1/webhooks?ids=web_1")
                        .header("authorization", format!("Bearer {key}"))
                        .body(Body::from(body))
                        .unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    let headers = format!("{:?}", response.headers());
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    bodies.push(format!("{headers} {}", String::from_utf8_lossy(&body)));
                }
            }
        });
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("unknown key") && logs.contains("key_disabled"),
        "the refusals were logged: {logs}"
    );
    assert!(logs.contains(
        &KeyDigest::of("sk_test_wrong_0123456789")
            .short()
            .to_string()
    ));
    for key in keys {
        assert!(!logs.contains(key), "{key} in the logs");
        for body in &bodies {
            assert!(!body.contains(key), "{key} in a response: {body}");
        }
    }
}

/// The counter never recurses: nesting costs it a bit per level, and more than `MAX_DEPTH`
/// (128) levels is `invalid_json`, at any size up to the byte cap. Documents within the cap
/// pass to the handler, whose own parser decides.
#[tokio::test]
async fn deeply_nested_json_is_refused_without_recursion() {
    let demo = demo().await;
    let post = |body: &[u8]| http1("POST", "/v1/webhooks", &[ADMIN, JSON], body);
    for body in [
        "[".repeat(1_000_000),
        format!("{}{}", "[".repeat(129), "]".repeat(129)),
        format!("[{{\"a\":{}{}}}]", "[".repeat(200), "]".repeat(200)),
        format!("[1, {}", "{\"a\":".repeat(200_000)),
    ] {
        raw_exchange(demo.addr, &post(body.as_bytes()))
            .await
            .assert_error(400, "invalid_json");
    }
    assert_eq!(demo.layers.inner.calls(), 0);

    // 127 levels: through every layer, and the item is answered on its own.
    let body = format!("[{}{}]", "[".repeat(126), "]".repeat(126));
    let answer = raw_exchange(demo.addr, &post(body.as_bytes())).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.json()[0]["validation_errors"][0]["error"],
        "must_be_object"
    );
    assert_eq!(demo.layers.inner.calls(), 1);
    assert!(demo.stored_nothing());
}

/// 10 MB: a declared body over the 1 MiB cap is refused before a byte of it is read; an
/// undeclared one when it passes the cap; a string just under the cap is an ordinary string.
/// A 10 MB query or header never reaches a layer: hyper refuses the head (431).
#[tokio::test]
async fn ten_megabyte_bodies_strings_and_headers() {
    let demo = demo().await;
    const TEN_MB: usize = 10 * 1024 * 1024;

    // Declared: refused at once, and the connection released without reading the body.
    let head = http1(
        "POST",
        "/v1/webhooks",
        &[
            ADMIN,
            JSON,
            ("Content-Length", TEN_MB.to_string().as_bytes()),
        ],
        b"",
    );
    let mut stream = raw(demo.addr, &head).await;
    read_answer(&mut stream)
        .await
        .assert_error(413, "payload_too_large");
    assert!(closed_by_server(&mut stream).await);

    // Undeclared (chunked): one 10 MB string, refused once 1 MiB has arrived.
    let mut request = http1(
        "POST",
        "/v1/webhooks",
        &[ADMIN, JSON, ("Transfer-Encoding", b"chunked")],
        b"",
    );
    let string = format!("[\"{}\"]", "x".repeat(TEN_MB));
    for chunk in string.as_bytes().chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    raw_exchange(demo.addr, &request)
        .await
        .assert_error(413, "payload_too_large");

    // Just under the cap: one item with a 1,000,000-byte URL, answered like any other item.
    let url = format!("ftp://{}", "a".repeat(1_000_000));
    let body = json!([{"url": url, "email": "big@b.example"}]).to_string();
    let answer = raw_exchange(
        demo.addr,
        &http1("POST", "/v1/webhooks", &[ADMIN, JSON], body.as_bytes()),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json()[0]["validation_errors"][0]["error"],
        "invalid_url"
    );
    assert_eq!(demo.layers.inner.calls(), 1);

    // A 60 KB id is an id; 60 KB of commas are too many ids.
    let long = format!("/v1/webhooks?ids={}", "a".repeat(60_000));
    let answer = raw_exchange(demo.addr, &http1("GET", &long, &[ADMIN], b"")).await;
    assert_eq!(answer.status, 200);
    let commas = format!("/v1/webhooks?ids={}", ",".repeat(60_000));
    raw_exchange(demo.addr, &http1("GET", &commas, &[ADMIN], b""))
        .await
        .assert_error(400, "too_many_items");
    assert_eq!(demo.layers.inner.calls(), 2);

    // A 10 MB query or header: hyper refuses the head.
    let query = format!("/v1/webhooks?ids={}", "a".repeat(TEN_MB));
    let answer = raw_exchange(demo.addr, &http1("GET", &query, &[ADMIN], b"")).await;
    assert!(answer.status == 431 || answer.status == 414, "{answer:?}");
    let header = "h".repeat(TEN_MB);
    let answer = raw_exchange(
        demo.addr,
        &http1(
            "GET",
            "/v1/webhooks",
            &[ADMIN, ("X-Big", header.as_bytes())],
            b"",
        ),
    )
    .await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(demo.layers.inner.calls(), 2);
    assert!(demo.stored_nothing());
}

/// Bytes that are not UTF-8 inside JSON strings do not change the count (the counter does not
/// decode strings; the handler's parser does). Where the per-item authorization has to read a
/// value (`account_id`, or any key), a value it cannot decode is refused, never trusted.
#[tokio::test]
async fn invalid_utf8_inside_json_strings() {
    let demo = demo().await;
    let post = |body: &[u8]| http1("POST", "/v1/webhooks", &[ADMIN, JSON], body);

    // `<ff>` and `<fe>` stand for those bytes.
    let bytes = |text: &str| -> Vec<u8> {
        text.replace("<ff>", "\u{1}")
            .replace("<fe>", "\u{2}")
            .bytes()
            .map(|b| match b {
                1 => 0xff,
                2 => 0xfe,
                b => b,
            })
            .collect()
    };

    // Not readable as the owning account: the whole request is refused.
    for body in [
        r#"[{"url":"https://a.example","email":"a@b.example","account_id":"acct_123<ff>"}]"#,
        r#"[{"url":"https://a.example","email":"a@b.example","account_id":"\ud800acct_123"}]"#,
        r#"[{"url":"https://a.example","email":"a@b.example","acc<ff>ount_id":"acct_456"}]"#,
        r#"[{"url":"https://a.example","email":"a@b.example","account_id":"acct_\u0034\u0035\u0036"}]"#,
    ] {
        raw_exchange(demo.addr, &post(&bytes(body)))
            .await
            .assert_error(403, "forbidden");
    }
    assert_eq!(demo.layers.inner.calls(), 0);

    // Elsewhere they pass the layers (six of them are still too many items)…
    let six = [r#"{"email":"<ff>"}"#; 6].join(",");
    raw_exchange(demo.addr, &post(&bytes(&format!("[{six}]"))))
        .await
        .assert_error(400, "too_many_items");
    // …and the handler's parser refuses them: nothing is stored. (The demo's handler answers
    // a body its parser refuses with an empty result list; a `Json` extractor would answer
    // 400, which the normalize layer writes as `invalid_json`.)
    let body = bytes(r#"[{"url":"https://a.example","email":"<ff><fe>@b.example"}]"#);
    let answer = raw_exchange(demo.addr, &post(&body)).await;
    assert!(answer.status < 500, "{answer:?}");
    assert_eq!(demo.layers.inner.calls(), 1);
    assert!(demo.stored_nothing());
}

/// `Content-Length` that lies: a body shorter than declared never reaches a handler (400
/// `bad_request` when the client gives up, `request_timeout` with a timeout, see the faults
/// tests); bytes past the declared length are not body — hyper reads them as the next
/// request, which goes through every layer on its own. Contradictory framing is hyper's to
/// refuse (400) before any layer.
#[tokio::test]
async fn content_length_that_lies() {
    let demo = demo().await;

    // Longer than sent, then the client closes its side.
    let body = one_item("short@b.example");
    let mut request = http1(
        "POST",
        "/v1/webhooks",
        &[
            ADMIN,
            JSON,
            ("Content-Length", (body.len() + 10).to_string().as_bytes()),
        ],
        b"",
    );
    request.extend_from_slice(&body);
    let mut stream = raw(demo.addr, &request).await;
    stream.shutdown().await.unwrap();
    read_answer(&mut stream)
        .await
        .assert_error(400, "bad_request");

    // Over the cap but with a tiny body: refused on the declaration.
    let request = http1(
        "POST",
        "/v1/webhooks",
        &[ADMIN, JSON, ("Content-Length", b"2000000")],
        b"[]",
    );
    raw_exchange(demo.addr, &request)
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(demo.layers.inner.calls(), 0);

    // Shorter than sent: the declared bytes are the body, the rest is a request of its own,
    // without a key here, so refused.
    let smuggled = http1(
        "POST",
        "/v1/webhooks",
        &[JSON],
        &one_item("smuggled@b.example"),
    );
    let mut request =
        b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo_admin\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
            .to_vec();
    request.extend_from_slice(&smuggled);
    let mut stream = raw(demo.addr, &request).await;
    let mut bytes = Vec::new();
    reliability_support::guarded(
        "two responses",
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut bytes),
    )
    .await
    .unwrap();
    let first = reliability_support::parse_answer(&bytes).expect("the first response");
    assert_eq!(first.status, 200);
    assert_eq!(first.json(), json!([]));
    let second_at = bytes
        .windows(9)
        .skip(1)
        .position(|w| w == b"HTTP/1.1 ")
        .expect("a second response")
        + 1;
    let second =
        reliability_support::parse_answer(&bytes[second_at..]).expect("the second response");
    second.assert_error(401, "unauthorized");
    assert_eq!(second.header("www-authenticate"), Some("Bearer"));
    // Shorter than sent, and what follows is not a request: hyper drops the connection.
    let mut request = http1(
        "POST",
        "/v1/webhooks",
        &[ADMIN, JSON, ("Content-Length", b"2")],
        b"",
    );
    request.extend_from_slice(b"[][{\"url\":\"https://a.example\",\"email\":\"x@b.example\"}]");
    let answer = raw_exchange(demo.addr, &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(demo.layers.inner.calls(), 2);

    // Framing that contradicts itself: hyper refuses it before any layer.
    let body = one_item("framing@b.example");
    for framing in [
        vec![
            ("Content-Length", b"5".as_slice()),
            ("Content-Length", b"6".as_slice()),
        ],
        vec![("Content-Length", b"five".as_slice())],
        vec![("Content-Length", b"-1".as_slice())],
    ] {
        let mut headers = vec![ADMIN, JSON];
        headers.extend(framing);
        let answer = raw_exchange(demo.addr, &http1("POST", "/v1/webhooks", &headers, &body)).await;
        assert_eq!(answer.status, 400, "{answer:?}");
    }
    assert_eq!(demo.layers.inner.calls(), 2);
    assert!(demo.stored_nothing());
}

/// How many ids the batch layer counts in a query, by its documented rule: the values of
/// `ids` (name and values percent-decoded, `+` a space), one id more than commas per
/// non-empty value, empty ids included.
fn counted_ids(query: &str) -> usize {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "ids")
        .map(|(_, value)| {
            if value.is_empty() {
                0
            } else {
                value.split(',').count()
            }
        })
        .sum()
}

async fn get_ids(
    app: &(impl tower::Service<
        Request<Body>,
        Response = http::Response<Body>,
        Error = std::convert::Infallible,
    > + Clone),
    query: &str,
) -> (StatusCode, Value) {
    let request = Request::get(format!("/v1/webhooks?{query}"))
        .header("authorization", "Bearer demo_reader")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Percent-encoding cannot smuggle ids past the limit: the layer decodes the query as the
/// handler does, so every id the handler sees was counted. It counts empty ids the handler
/// drops, so it may refuse a query the handler would find under the limit (`ids=,,,,,,,,,,,`),
/// never the reverse.
#[tokio::test]
async fn percent_encoded_ids() {
    let app = app::app_with(Arc::default());
    let not_found = |ids: &[&str]| -> Value {
        json!(ids
            .iter()
            .map(|id| json!({"error": "object_not_found", "account_id": "acct_123", "id": id}))
            .collect::<Vec<_>>())
    };
    for (query, ids) in [
        ("ids=a%2Cb", &["a", "b"][..]),
        ("ids=a%2cb&ids=c", &["a", "b", "c"]),
        ("ids=%61", &["a"]),
        ("i%64s=a,b", &["a", "b"]),
        ("ids=a%252Cb", &["a%2Cb"]),
        ("ids=a+b", &["a b"]),
        ("ids=%zz", &["%zz"]),
        ("ids=", &[]),
        ("ids=,,,", &[]),
        ("ids[]=a", &[]),
    ] {
        let (status, body) = get_ids(&app, query).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(
            body,
            json!({"data": [], "error": not_found(ids)}),
            "{query}"
        );
    }
    let ten: Vec<String> = (0..10).map(|n| format!("w{n}")).collect();
    for query in [
        format!("ids={}%2Cw10", ten.join(",")),
        format!("ids={}&i%64s=w10", ten.join(",")),
        format!("ids={}&ids=%2C", ten.join("%2C")),
        format!("ids={}", ",".repeat(10)),
    ] {
        let (status, body) = get_ids(&app, &query).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body, json!({"error": "too_many_items"}));
    }

    // Random queries from the tricky pieces: whatever passes holds at most ten ids for the
    // handler, and whatever is refused had more than ten by the layer's count.
    let pieces = [
        "ids=", "i%64s=", "ids", "a", "%2C", "%2c", ",", "&", "=", "+", "%", "%252C", "%zz", "b%2",
        "ids%3D",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..400 {
        let mut query = String::new();
        for _ in 0..(seed % 40) as usize {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            query.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        let (status, body) = get_ids(&app, &query).await;
        let seen = handlers::ids_from_query(Some(&query)).len();
        match status.as_u16() {
            200 => {
                assert!(seen <= 10, "{query}: the handler saw {seen} ids");
                assert_eq!(body["error"].as_array().unwrap().len(), seen, "{query}");
            }
            400 => {
                assert_eq!(body, json!({"error": "too_many_items"}));
                assert!(counted_ids(&query) > 10, "{query}");
            }
            other => panic!("{query}: {other}"),
        }
    }
}
