//! The README's promises about the demo server, checked: every curl line it shows gives the
//! output it shows, and the built example binary starts, prints its address and stops on
//! SIGTERM.
#![cfg(feature = "axum")]
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bulk_api/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bulk_api/handlers.rs"]
mod handlers;
#[allow(dead_code)]
#[path = "../examples/bulk_api/store.rs"]
mod store;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;
use tokio::net::TcpListener;

/// Splits a shell line into words, honouring single quotes (all the README uses).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// A curl command line as curl would send it.
struct Curl {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

fn parse_curl(line: &str) -> Curl {
    let mut words = shell_words(line).into_iter();
    assert_eq!(words.next().as_deref(), Some("curl"));
    let mut curl = Curl {
        method: Method::GET,
        url: String::new(),
        headers: Vec::new(),
        body: None,
    };
    let mut explicit_method = false;
    while let Some(word) = words.next() {
        match word.as_str() {
            "-s" => {}
            "-X" => {
                curl.method = words.next().unwrap().parse().unwrap();
                explicit_method = true;
            }
            "-H" => {
                let header = words.next().unwrap();
                let (name, value) = header.split_once(':').unwrap();
                curl.headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-d" => curl.body = words.next(),
            url => curl.url = url.to_owned(),
        }
    }
    if curl.body.is_some() && !explicit_method {
        curl.method = Method::POST;
    }
    curl
}

async fn run(curl: &Curl, addr: SocketAddr) -> Bytes {
    let url = curl
        .url
        .replace("localhost:3000", &format!("http://{addr}"));
    let mut request = Request::builder().method(curl.method.clone()).uri(url);
    for (name, value) in &curl.headers {
        request = request.header(name, value);
    }
    if curl.body.is_some() {
        // What curl sends with `-d` and no Content-Type of its own.
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let request = request
        .body(Full::from(curl.body.clone().unwrap_or_default()))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.unwrap();
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn every_curl_line_of_the_readme_prints_what_the_readme_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let pairs: Vec<(&str, &str)> = lines
        .windows(2)
        .filter(|pair| pair[0].starts_with("curl ") && pair[1].starts_with("# "))
        .map(|pair| (pair[0], &pair[1][2..]))
        .collect();
    let curl_lines = lines
        .iter()
        .filter(|line| line.starts_with("curl "))
        .count();
    assert!(
        pairs.len() >= 5,
        "the README shows at least five curl lines with their output"
    );
    assert_eq!(
        pairs.len(),
        curl_lines,
        "every curl line in the README shows its output"
    );

    // The lines build on each other (the second reads what the first created): one fresh server.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::ServiceExt::into_make_service(app::app()))
            .await
            .unwrap()
    });
    for (line, expected) in pairs {
        let body = run(&parse_curl(line), addr).await;
        let got: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{line}\nprinted {}", String::from_utf8_lossy(&body)));
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(got, expected, "{line}");
    }
}

/// `target/<profile>/examples/bulk_api`, built by `cargo test` with the other targets.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join("bulk_api")
}

#[tokio::test]
async fn the_demo_binary_binds_the_address_asked_for_and_stops_on_sigterm() {
    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} is built by cargo test",
        binary.display()
    );
    let mut child = Command::new(&binary)
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);
    let mut banner = String::new();
    for _ in 0..6 {
        stdout.read_line(&mut banner).unwrap();
    }
    assert!(
        banner.contains("demo_admin") && banner.contains("demo_disabled"),
        "{banner}"
    );

    let curl =
        parse_curl("curl -s 'localhost:3000/v1/webhooks?ids=web_9' -H 'X-Api-Key: demo_reader'");
    let body = run(&curl, addr).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({"data": [], "error": [{"error": "object_not_found", "account_id": "acct_123", "id": "web_9"}]})
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // A hang guard, not a speed check: a server that ignores SIGTERM fails here.
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the demo stops on SIGTERM");
    assert!(status.success(), "{status}");

    // With the environment variable instead of the flag.
    let mut child = Command::new(&binary)
        .env("BULK_API_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
