//! The crate's one path-prefix rule, used by [`RoleTable`](crate::auth::RoleTable) and
//! [`DialectByPath`](crate::dialect::DialectByPath).
//!
//! A prefix matches whole path segments: `/v1/customer` matches `/v1/customer` and
//! `/v1/customer/courses`, not `/v1/customers`; `/` matches every path; a trailing `/` on a
//! prefix is ignored. Where several prefixes match, the longest wins, whatever the order they
//! were added in; of equal prefixes, the first added.

/// `prefix` with its trailing `/`s dropped (`/` itself stays).
pub(crate) fn normalize(mut prefix: String) -> String {
    while prefix.len() > 1 && prefix.ends_with('/') {
        prefix.pop();
    }
    prefix
}

/// Whether the normalized `prefix` matches `path` on a segment boundary.
pub(crate) fn matches(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'))
}

/// The value of the longest normalized prefix among `candidates` that matches `path`; of equal
/// prefixes, the first.
pub(crate) fn longest<'a, T>(
    candidates: impl IntoIterator<Item = (&'a str, T)>,
    path: &str,
) -> Option<T> {
    let mut best: Option<(usize, T)> = None;
    for (prefix, value) in candidates {
        let longer = best
            .as_ref()
            .is_none_or(|(length, _)| prefix.len() > *length);
        if longer && matches(prefix, path) {
            best = Some((prefix.len(), value));
        }
    }
    best.map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        let customer = normalize("/v1/customer/".to_owned());
        assert_eq!(customer, "/v1/customer");
        assert!(matches(&customer, "/v1/customer"));
        assert!(matches(&customer, "/v1/customer/courses"));
        assert!(!matches(&customer, "/v1/customers"));
        assert!(!matches(&customer, "/v1"));
        assert_eq!(normalize("/".to_owned()), "/");
        assert!(matches("/", "/"));
        assert!(matches("/", "/anything/at/all"));
    }

    #[test]
    fn the_longest_prefix_wins_then_the_first() {
        let candidates = [
            ("/", 1),
            ("/v1/customer", 2),
            ("/v1", 3),
            ("/v1/customer", 4),
        ];
        let pick = |path| longest(candidates.iter().map(|&(p, v)| (p, v)), path);
        assert_eq!(pick("/v1/customer/courses"), Some(2));
        assert_eq!(pick("/v1/customers"), Some(3));
        assert_eq!(pick("/v2"), Some(1));
        assert_eq!(longest([("/v1", 1)], "/v2"), None);
    }
}
