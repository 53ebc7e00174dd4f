//! Per-route authorization: which roles a method and path need.

use std::{fmt, sync::Arc};

use http::{HeaderMap, Method, Uri};

use super::Principal;
use crate::path_prefix;

/// The parts of a request a [`RoutePolicy`] decides on.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl<'a> Route<'a> {
    /// A route from the parts of a request.
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        Route {
            method,
            uri,
            headers,
        }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request path.
    pub fn path(&self) -> &'a str {
        self.uri.path()
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }
}

/// Decides whether an authenticated, active principal may call a route; a refusal is answered
/// `forbidden` (403).
///
/// Implemented by [`Authenticated`] (the default: every active key may call every route), by
/// [`RoleTable`], and by any `Fn(&Principal, &Route<'_>) -> bool` closure:
///
/// ```
/// use http::Method;
/// use tower_api_errors::auth::{Principal, Route, RoutePolicy};
///
/// let policy = |principal: &Principal, route: &Route<'_>| match *route.method() {
///     Method::GET | Method::HEAD => principal.has_role("read"),
///     _ => principal.has_role("write"),
/// };
/// let reader = Principal::new("acct_123").with_roles(["read"]);
/// let (uri, headers) = ("/v1/webhooks".parse().unwrap(), http::HeaderMap::new());
/// assert!(policy.allows(&reader, &Route::new(&Method::GET, &uri, &headers)));
/// assert!(!policy.allows(&reader, &Route::new(&Method::POST, &uri, &headers)));
/// ```
pub trait RoutePolicy {
    /// Whether `principal` may call `route`.
    fn allows(&self, principal: &Principal, route: &Route<'_>) -> bool;
}

impl<F> RoutePolicy for F
where
    F: Fn(&Principal, &Route<'_>) -> bool,
{
    fn allows(&self, principal: &Principal, route: &Route<'_>) -> bool {
        self(principal, route)
    }
}

/// The default route policy: every active key may call every route (authentication only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Authenticated;

impl RoutePolicy for Authenticated {
    fn allows(&self, _principal: &Principal, _route: &Route<'_>) -> bool {
        true
    }
}

/// A table of rules, method and path prefix → roles required.
///
/// Of the rules whose method matches the request, the one with the longest prefix that
/// matches its path decides (of rules with equal prefixes, the first added): the principal
/// needs every role the rule lists. A request no rule matches is refused, unless
/// [`RoleTable::otherwise`] says which roles it needs. A prefix matches whole path segments:
/// `/v1/customer` matches `/v1/customer` and `/v1/customer/courses`, not `/v1/customers`; `/`
/// matches every path. This is the crate's one prefix rule, the one
/// [`DialectByPath`](crate::dialect::DialectByPath) follows too, so a specific rule can be
/// added after a general one.
///
/// ```
/// use http::Method;
/// use tower_api_errors::auth::{Principal, RoleTable, Route, RoutePolicy};
///
/// let table = RoleTable::new()
///     .rule([Method::POST], "/v1/admin", ["admin"])
///     .rule([Method::GET, Method::HEAD], "/", ["read"])
///     .rule([Method::POST, Method::PUT, Method::PATCH, Method::DELETE], "/", ["write"]);
///
/// let writer = Principal::new("acct_123").with_roles(["read", "write"]);
/// let headers = http::HeaderMap::new();
/// let allows = |method: Method, path: &str| {
///     table.allows(&writer, &Route::new(&method, &path.parse().unwrap(), &headers))
/// };
/// assert!(allows(Method::POST, "/v1/webhooks"));
/// assert!(!allows(Method::POST, "/v1/admin/keys"));
/// assert!(!allows(Method::OPTIONS, "/v1/webhooks")); // no rule matches
/// ```
#[derive(Clone, Default)]
pub struct RoleTable {
    rules: Arc<[Rule]>,
    otherwise: Option<Arc<[Box<str>]>>,
}

#[derive(Clone)]
struct Rule {
    methods: Box<[Method]>,
    prefix: Box<str>,
    // A gRPC method path, matched whole rather than by segments.
    exact: bool,
    roles: Box<[Box<str>]>,
}

impl RoleTable {
    /// An empty table: every request is refused until rules are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// `GET`, `HEAD` and `OPTIONS` need `read`; every other method needs `write`.
    pub fn read_write() -> Self {
        RoleTable::new()
            .rule([Method::GET, Method::HEAD, Method::OPTIONS], "/", ["read"])
            .otherwise(["write"])
    }

    /// Requests with one of `methods` (any method when empty) under `prefix` need all of
    /// `roles` (none: any active key).
    #[must_use]
    pub fn rule<M, R>(self, methods: M, prefix: impl Into<String>, roles: R) -> Self
    where
        M: IntoIterator<Item = Method>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        let mut rules = self.rules.to_vec();
        rules.push(Rule {
            methods: methods.into_iter().collect(),
            prefix: path_prefix::normalize(prefix.into()).into_boxed_str(),
            exact: false,
            roles: boxed_roles(roles),
        });
        RoleTable {
            rules: rules.into(),
            otherwise: self.otherwise,
        }
    }

    /// Calls of the gRPC method `path` (`/pkg.Service/Method`, matched exactly) need all of
    /// `roles`. gRPC calls are all `POST`s, so a method rule says what a method-and-prefix rule
    /// cannot. It matches the path whatever the request's method or `content-type`, so a
    /// request cannot dodge it by not calling itself gRPC.
    ///
    /// ```
    /// use http::{HeaderMap, Method};
    /// use tower_api_errors::auth::{Principal, RoleTable, Route, RoutePolicy};
    ///
    /// let table = RoleTable::new()
    ///     .grpc_method("/webhooks.v1.Webhooks/DeleteWebhooks", ["admin"])
    ///     .rule([], "/webhooks.v1.Webhooks", ["write"]);
    /// let writer = Principal::new("acct_123").with_roles(["write"]);
    /// let headers = HeaderMap::new();
    /// let allows = |method: Method, path: &str| {
    ///     table.allows(&writer, &Route::new(&method, &path.parse().unwrap(), &headers))
    /// };
    /// assert!(allows(Method::POST, "/webhooks.v1.Webhooks/CreateWebhooks"));
    /// assert!(!allows(Method::POST, "/webhooks.v1.Webhooks/DeleteWebhooks"));
    /// // Another method on the same path does not get around the rule.
    /// assert!(!allows(Method::GET, "/webhooks.v1.Webhooks/DeleteWebhooks"));
    /// ```
    #[must_use]
    pub fn grpc_method<R>(self, path: impl Into<String>, roles: R) -> Self
    where
        R: IntoIterator,
        R::Item: Into<String>,
    {
        let mut rules = self.rules.to_vec();
        rules.push(Rule {
            methods: Box::new([]),
            prefix: path.into().into_boxed_str(),
            exact: true,
            roles: boxed_roles(roles),
        });
        RoleTable {
            rules: rules.into(),
            otherwise: self.otherwise,
        }
    }

    /// Requests no rule matches need all of `roles`, instead of being refused.
    #[must_use]
    pub fn otherwise<R>(mut self, roles: R) -> Self
    where
        R: IntoIterator,
        R::Item: Into<String>,
    {
        self.otherwise = Some(boxed_roles(roles).into());
        self
    }
}

fn boxed_roles<R>(roles: R) -> Box<[Box<str>]>
where
    R: IntoIterator,
    R::Item: Into<String>,
{
    roles
        .into_iter()
        .map(|role| role.into().into_boxed_str())
        .collect()
}

impl Rule {
    fn matches_method(&self, method: &Method) -> bool {
        self.methods.is_empty() || self.methods.contains(method)
    }
}

impl RoutePolicy for RoleTable {
    fn allows(&self, principal: &Principal, route: &Route<'_>) -> bool {
        // A gRPC method rule names one path exactly: nothing is more specific.
        let exact = self
            .rules
            .iter()
            .find(|rule| rule.exact && *rule.prefix == *route.path());
        let candidates = self
            .rules
            .iter()
            .filter(|rule| !rule.exact && rule.matches_method(route.method()))
            .map(|rule| (&*rule.prefix, rule));
        let roles = match exact.or_else(|| path_prefix::longest(candidates, route.path())) {
            Some(rule) => &rule.roles[..],
            None => match &self.otherwise {
                Some(roles) => &roles[..],
                None => return false,
            },
        };
        roles.iter().all(|role| principal.has_role(role))
    }
}

impl fmt::Debug for RoleTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for rule in self.rules.iter() {
            if rule.exact {
                list.entry(&format_args!("gRPC {} → {:?}", rule.prefix, rule.roles));
            } else {
                list.entry(&format_args!(
                    "{:?} {} → {:?}",
                    rule.methods, rule.prefix, rule.roles
                ));
            }
        }
        if let Some(roles) = &self.otherwise {
            list.entry(&format_args!("otherwise → {roles:?}"));
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_prefix_decides_whatever_the_order() {
        let admin = Principal::new("a").with_roles(["admin"]);
        let reader = Principal::new("a").with_roles(["read"]);
        let headers = HeaderMap::new();
        let general_first =
            RoleTable::new()
                .rule([], "/", ["read"])
                .rule([], "/v1/admin", ["admin"]);
        let specific_first =
            RoleTable::new()
                .rule([], "/v1/admin", ["admin"])
                .rule([], "/", ["read"]);
        for table in [general_first, specific_first] {
            let allows = |principal: &Principal, method: Method, path: &str| {
                let uri = path.parse().unwrap();
                table.allows(principal, &Route::new(&method, &uri, &headers))
            };
            assert!(!allows(&reader, Method::GET, "/v1/admin/keys"));
            assert!(allows(&admin, Method::GET, "/v1/admin/keys"));
            assert!(allows(&reader, Method::GET, "/v1/administrators"));
            assert!(!allows(&admin, Method::GET, "/v1/administrators"));
        }

        // A rule whose method does not match is no candidate: the next longest decides.
        let table = RoleTable::new()
            .rule([Method::POST], "/v1/admin", ["admin"])
            .rule([], "/v1", ["read"])
            .rule([], "/v1", ["admin"]);
        let uri = "/v1/admin".parse().unwrap();
        assert!(table.allows(&reader, &Route::new(&Method::GET, &uri, &headers)));
        assert!(!table.allows(&reader, &Route::new(&Method::POST, &uri, &headers)));
    }
}
