//! `bulk.Webhooks`, written by hand as generated code would be: prost messages and a
//! `tower::Service` over tonic's `Grpc` codec driver. No protoc is needed.
//!
//! ```proto
//! service Webhooks {
//!   rpc CreateWebhooks(CreateWebhooksRequest) returns (CreateWebhooksResponse);   // at most 5
//!   rpc ListWebhooks(ListWebhooksRequest) returns (ListWebhooksResponse);
//!   rpc WatchWebhooks(ListWebhooksRequest) returns (stream Webhook);
//! }
//! message Webhook { string id = 1; string url = 2; string email = 3; string account_id = 4; }
//! message CreateWebhooksRequest { repeated Webhook webhooks = 1; }
//! message CreateWebhooksResponse { repeated Webhook webhooks = 1; }
//! message ListWebhooksRequest { bool panic = 1; }
//! message ListWebhooksResponse { repeated Webhook webhooks = 1; }
//! ```

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tonic::{
    body::Body,
    server::{Grpc, NamedService},
    Status,
};
use tonic_prost::ProstCodec;
use tower_api_errors::{tonic::RequestExt, ApiError, ErrorCode, FieldError};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Webhook {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(string, tag = "3")]
    pub email: String,
    #[prost(string, tag = "4")]
    pub account_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateWebhooksRequest {
    #[prost(message, repeated, tag = "1")]
    pub webhooks: Vec<Webhook>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateWebhooksResponse {
    #[prost(message, repeated, tag = "1")]
    pub webhooks: Vec<Webhook>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListWebhooksRequest {
    /// Makes `WatchWebhooks` panic after its first message, to show a mid-stream panic.
    #[prost(bool, tag = "1")]
    pub panic: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListWebhooksResponse {
    #[prost(message, repeated, tag = "1")]
    pub webhooks: Vec<Webhook>,
}

pub const CREATE: &str = "/bulk.Webhooks/CreateWebhooks";
pub const LIST: &str = "/bulk.Webhooks/ListWebhooks";
pub const WATCH: &str = "/bulk.Webhooks/WatchWebhooks";

/// The field number of `CreateWebhooksRequest.webhooks`, the repeated field the batch layer counts.
pub const WEBHOOKS_FIELD: u32 = 1;

/// The webhooks of every account, in memory.
#[derive(Clone, Debug, Default)]
pub struct Webhooks {
    store: Arc<Mutex<Vec<Webhook>>>,
}

impl NamedService for Webhooks {
    const NAME: &'static str = "bulk.Webhooks";
}

/// The caller the auth layer found. The handlers fail with `ApiError`s; `?` turns them into
/// `Status`es with the contract's code and rich error details.
fn account_of<T>(request: &tonic::Request<T>) -> Result<String, ApiError> {
    request
        .principal()
        .map(|principal| principal.account_id().to_owned())
        .ok_or_else(ApiError::unauthorized)
}

impl Webhooks {
    /// Stores the webhooks, all or none: a webhook whose `url` is not `https://…` fails the
    /// call with `validation_errors`, naming the item (`_idx`) and the field.
    fn create(
        &self,
        account: &str,
        request: CreateWebhooksRequest,
    ) -> Result<CreateWebhooksResponse, ApiError> {
        if let Some(index) = request
            .webhooks
            .iter()
            .position(|hook| !hook.url.starts_with("https://"))
        {
            return Err(ApiError::new(ErrorCode::ValidationErrors)
                .with_index(index)
                .with_field_error(FieldError::new("url", "invalid_url")));
        }
        let mut store = self.store.lock().unwrap();
        let webhooks = request
            .webhooks
            .into_iter()
            .map(|hook| {
                let hook = Webhook {
                    id: format!("web_{}", store.len() + 1),
                    account_id: account.to_owned(),
                    ..hook
                };
                store.push(hook.clone());
                hook
            })
            .collect();
        Ok(CreateWebhooksResponse { webhooks })
    }

    fn list(&self, account: &str) -> Vec<Webhook> {
        let store = self.store.lock().unwrap();
        store
            .iter()
            .filter(|hook| hook.account_id == account)
            .cloned()
            .collect()
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl tower::Service<http::Request<Body>> for Webhooks {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxFuture {
        let this = self.clone();
        match request.uri().path() {
            CREATE => Box::pin(async move {
                let method =
                    tower::service_fn(move |request: tonic::Request<CreateWebhooksRequest>| {
                        let this = this.clone();
                        async move {
                            let account = account_of(&request)?;
                            let created = this.create(&account, request.into_inner())?;
                            Ok::<_, Status>(tonic::Response::new(created))
                        }
                    });
                let codec = ProstCodec::<CreateWebhooksResponse, CreateWebhooksRequest>::default();
                Ok(Grpc::new(codec).unary(method, request).await)
            }),
            LIST => Box::pin(async move {
                let method =
                    tower::service_fn(move |request: tonic::Request<ListWebhooksRequest>| {
                        let this = this.clone();
                        async move {
                            let account = account_of(&request)?;
                            let webhooks = this.list(&account);
                            Ok::<_, Status>(tonic::Response::new(ListWebhooksResponse { webhooks }))
                        }
                    });
                let codec = ProstCodec::<ListWebhooksResponse, ListWebhooksRequest>::default();
                Ok(Grpc::new(codec).unary(method, request).await)
            }),
            WATCH => Box::pin(async move {
                let method =
                    tower::service_fn(move |request: tonic::Request<ListWebhooksRequest>| {
                        let this = this.clone();
                        async move {
                            let account = account_of(&request)?;
                            let panic = request.get_ref().panic;
                            let mut webhooks = this.list(&account).into_iter();
                            let mut sent = 0usize;
                            let stream = futures_stream(move || {
                                sent += 1;
                                if panic && sent == 2 {
                                    panic!(
                                        "WatchWebhooks panics on purpose after its first message"
                                    );
                                }
                                webhooks.next().map(Ok::<_, Status>)
                            });
                            Ok::<_, Status>(tonic::Response::new(stream))
                        }
                    });
                let codec = ProstCodec::<Webhook, ListWebhooksRequest>::default();
                Ok(Grpc::new(codec).server_streaming(method, request).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) }),
        }
    }
}

/// A stream that calls `next` for each item, yielding to the executor in between so each
/// message leaves on its own.
fn futures_stream<T, F>(next: F) -> impl tokio_stream::Stream<Item = T> + Send + 'static
where
    F: FnMut() -> Option<T> + Send + Unpin + 'static,
    T: Send + 'static,
{
    struct FromFn<F> {
        next: F,
        yielded: bool,
    }
    impl<T, F: FnMut() -> Option<T> + Unpin> tokio_stream::Stream for FromFn<F> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            if !std::mem::replace(&mut self.yielded, true) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.yielded = false;
            Poll::Ready((self.next)())
        }
    }
    FromFn {
        next,
        yielded: false,
    }
}
