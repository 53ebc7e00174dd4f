//! The demo's router and its stack of layers.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use axum::{body::Body, routing::get, Router};
use http::{HeaderName, Request, Response};
use tower::Service;
use tower_api_errors::{
    auth::{
        AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeyExtractor, KeySet, Principal,
        RoleTable,
    },
    batch_limit::BatchLimitLayer,
    dialect::{Bulk, Coded, DialectByPath},
    Contract,
};

use crate::{handlers, store::Store};

/// The demo's API keys: (key, account, roles, active).
pub const DEMO_KEYS: [(&str, &str, &[&str], bool); 4] = [
    ("demo_admin", "acct_123", &["read", "write"], true),
    ("demo_reader", "acct_123", &["read"], true),
    ("demo_disabled", "acct_123", &[], false),
    ("demo_other", "acct_456", &["read", "write"], true),
];

#[path = "keys.rs"]
pub mod keys;

/// The demo's key store: the database the server opened from `--db` (see `keys.rs`), else
/// the demo keys in memory.
pub fn key_store() -> keys::DemoKeys {
    keys::installed().unwrap_or_else(|| keys::DemoKeys::Memory(memory_key_store()))
}

/// The demo keys in memory.
pub fn memory_key_store() -> InMemoryKeyStore {
    let mut keys = KeySet::new();
    for (key, account, roles, active) in DEMO_KEYS {
        let principal = Principal::new(account)
            .with_key_id(format!("key_{}", key.trim_start_matches("demo_")))
            .with_roles(roles.iter().copied())
            .with_active(active);
        keys = keys
            .with_key(key, principal)
            .expect("the demo keys are valid");
    }
    InMemoryKeyStore::new(keys)
}

/// `/v1/customer/…` answers in the coded dialect, everything else in the bulk dialect.
pub fn dialect() -> DialectByPath {
    DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new())
}

/// The whole demo: the router under the contract.
pub fn app(
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    app_with(Arc::default())
}

/// The demo over a given store.
pub fn app_with(
    store: Arc<Store>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    routes(store).layer(
        Contract::new(dialect())
            .auth(
                AuthLayer::new(key_store())
                    .keys(KeyExtractor::bearer_or_header(HeaderName::from_static(
                        "x-api-key",
                    )))
                    .route_policy(RoleTable::read_write()),
            )
            .batch_limit(BatchLimitLayer::new())
            .authorize_items(AuthorizeItemsLayer::default()),
    )
}

/// The router without the crate's layers.
pub fn routes(store: Arc<Store>) -> Router {
    Router::new()
        .route(
            "/v1/webhooks",
            get(handlers::get_webhooks)
                .post(handlers::create_webhooks)
                .put(handlers::update_webhooks)
                .delete(handlers::delete_webhooks),
        )
        .route("/v1/debug/panic", get(handlers::panic_on_purpose))
        .route(
            "/v1/customer/courses",
            get(handlers::list_courses).post(handlers::create_course),
        )
        .route("/v1/customer/courses/{id}", get(handlers::get_course))
        .route("/v1/customer/debug/panic", get(handlers::panic_on_purpose))
        .with_state(store)
}

/// What the server prints at start.
pub fn banner(addr: SocketAddr) -> String {
    let mut text = String::from("demo keys (Authorization: Bearer <key> or X-Api-Key: <key>):\n");
    for (key, account, roles, active) in DEMO_KEYS {
        let state = if active {
            roles.join(", ")
        } else {
            "disabled".to_owned()
        };
        text.push_str(&format!("  {key:<14} {account}  {state}\n"));
    }
    text.push_str("try:\n");
    for line in curl_lines(addr) {
        text.push_str("  ");
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// The curl lines the banner and the README show.
pub fn curl_lines(addr: SocketAddr) -> Vec<String> {
    let base = format!("http://{addr}");
    vec![
        format!(r#"curl -s -X POST {base}/v1/webhooks -H 'Authorization: Bearer demo_admin' -d '[{{"url":"https://example.com/hook","email":"ops@example.com"}},{{"url":"ftp://x","email":"nope"}}]'"#),
        format!("curl -s '{base}/v1/webhooks?ids=web_1,web_404' -H 'Authorization: Bearer demo_reader'"),
        format!(r#"curl -s -X POST {base}/v1/webhooks -H 'Authorization: Bearer demo_reader' -d '[{{"url":"https://example.com/hook","email":"a@example.com"}}]'"#),
        format!("curl -s -X POST {base}/v1/webhooks -H 'X-Api-Key: demo_admin' -d '[{{}},{{}},{{}},{{}},{{}},{{}}]'"),
        format!("curl -s '{base}/v1/customer/courses?page=1&page_size=X' -H 'Authorization: Bearer demo_admin'"),
    ]
}
