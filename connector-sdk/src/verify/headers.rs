//! Read-only access to request headers, without tying the SDK to an HTTP crate.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Request headers, looked up by name without regard to ASCII case.
///
/// Implemented for slices, arrays and `Vec`s of `(name, value)` pairs, for
/// `BTreeMap`/`HashMap<String, String>`, and, with the `http` feature, for
/// `http::HeaderMap` (what axum hands a handler). Without the feature a
/// connector adapts its own map with a newtype:
///
/// ```
/// # mod http {
/// #     pub struct HeaderValue(String);
/// #     impl HeaderValue {
/// #         pub fn to_str(&self) -> Result<&str, ()> { Ok(&self.0) }
/// #     }
/// #     pub struct HeaderMap(pub Vec<(String, HeaderValue)>);
/// #     impl HeaderMap {
/// #         pub fn get(&self, n: &str) -> Option<&HeaderValue> {
/// #             self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v)
/// #         }
/// #     }
/// # }
/// struct Req<'a>(&'a http::HeaderMap);
///
/// impl connector_sdk::verify::Headers for Req<'_> {
///     fn get(&self, name: &str) -> Option<&str> {
///         self.0.get(name)?.to_str().ok()
///     }
/// }
/// ```
pub trait Headers {
    /// The value of header `name` (ASCII case-insensitive); the first one if it is repeated.
    fn get(&self, name: &str) -> Option<&str>;
}

impl<H: Headers + ?Sized> Headers for &H {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        Headers::get(self.as_slice(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        Headers::get(self.as_slice(), name)
    }
}

impl Headers for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name)
            .or_else(|| {
                self.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
    }
}

impl<S: BuildHasher> Headers for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name)
            .or_else(|| {
                self.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
    }
}

/// A value that is not visible ASCII reads as absent.
#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        http::HeaderMap::get(self, name)?.to_str().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookups(h: &(impl Headers + ?Sized)) {
        assert_eq!(h.get("x-hub-signature-256"), Some("a"));
        assert_eq!(h.get("X-HUB-SIGNATURE-256"), Some("a"));
        assert_eq!(h.get("webhook-id"), None);
    }

    #[test]
    fn verify_headers_lookup_ignores_case_in_every_impl() {
        let pairs = [("X-Hub-Signature-256", "a")];
        lookups(&pairs);
        lookups(pairs.as_slice());
        lookups(&vec![("X-Hub-Signature-256".to_string(), "a".to_string())]);
        let owned = || ("X-Hub-Signature-256".to_string(), "a".to_string());
        lookups(&BTreeMap::from([owned()]));
        lookups(&HashMap::<_, _>::from([owned()]));
    }

    #[test]
    fn verify_headers_repeated_name_gives_the_first() {
        let pairs = [("a", "1"), ("A", "2")];
        assert_eq!(Headers::get(&pairs, "a"), Some("1"));
    }

    #[cfg(feature = "http")]
    #[test]
    fn verify_headers_http_header_map() {
        let mut map = http::HeaderMap::new();
        map.insert("x-hub-signature-256", http::HeaderValue::from_static("a"));
        lookups(&map);
        map.insert("x-bin", http::HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(Headers::get(&map, "x-bin"), None);
    }
}
