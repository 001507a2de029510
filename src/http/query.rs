//! Reading a request's query string: one value, decoded; a page's offset
//! and limit, bounded.

use super::MAX_WORKERS_PAGE;

/// The decoded value of `key` in a query string (`+` and `%xx` decoded).
pub(super) fn query_value(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, value)| value.into_owned())
}

/// `offset` and `limit` from a query string; bad values fall back to defaults.
pub(super) fn page(query: &str) -> (usize, usize) {
    let mut offset = 0;
    let mut limit = 100;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("offset", value)) => offset = value.parse().unwrap_or(0),
            Some(("limit", value)) => limit = value.parse().unwrap_or(100),
            _ => {}
        }
    }
    (offset, limit.clamp(1, MAX_WORKERS_PAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_capped_and_bad_values_default() {
        assert_eq!(page(""), (0, 100));
        assert_eq!(page("offset=20&limit=5"), (20, 5));
        assert_eq!(page("limit=1000000"), (0, MAX_WORKERS_PAGE));
        assert_eq!(page("offset=-1&limit=abc"), (0, 100));
    }
}
