//! W3C Trace Context (`traceparent`): a client's valid header is kept, anything else is
//! replaced by a new one, so PHP always sees `HTTP_TRACEPARENT` and the access log can
//! tie a request to the application's own logs and traces.
//!
//! Owns: the header's validation and the making of new ones.
//!
//! Never: keeps `tracestate` in step (it is passed through untouched, as the spec allows
//! a component that does not take part in the trace), or starts spans of its own: Isola
//! passes the caller's parent id on rather than inserting itself as a hop.

use http::HeaderMap;

/// The header's name.
pub const HEADER: &str = "traceparent";

/// The incoming `traceparent` when there is exactly one and it is a valid version-00
/// header (`00-` 32 hex trace id `-` 16 hex parent id `-` 2 hex flags, lowercase, neither
/// id all zeros). Other versions are replaced too: Isola cannot vouch for their format.
pub fn accept(headers: &HeaderMap) -> Option<String> {
    let mut all = headers.get_all(HEADER).iter();
    let v = all.next()?;
    if all.next().is_some() {
        // Two headers are ambiguous; the spec says to treat them as invalid.
        return None;
    }
    valid(v.as_bytes()).then(|| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn valid(v: &[u8]) -> bool {
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |s: &[u8]| s.iter().any(|&b| b != b'0');
    v.len() == 55
        && v.starts_with(b"00-")
        && v[35] == b'-'
        && v[52] == b'-'
        && hex(&v[3..35])
        && nonzero(&v[3..35])
        && hex(&v[36..52])
        && nonzero(&v[36..52])
        && hex(&v[53..55])
}

/// A new header: version 00, a random 16-byte trace id and 8-byte parent id, sampled (the
/// flag tells the application's tracer to record it, which is why a caller asked for one).
pub fn generate() -> String {
    loop {
        let trace = crate::request_id::generate();
        let parent = crate::request_id::generate();
        let v = format!("00-{trace}-{}-01", &parent[..16]);
        // An all-zero id is invalid; with 64 random bits this loop runs once.
        if valid(v.as_bytes()) {
            return v;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn one(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn a_valid_header_is_kept_anything_else_is_not() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(accept(&one(good)).as_deref(), Some(good));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        ] {
            assert_eq!(accept(&one(bad)), None, "{bad:?}");
        }
        assert_eq!(accept(&HeaderMap::new()), None);
        let mut two = one(good);
        two.append(HEADER, HeaderValue::from_str(good).unwrap());
        assert_eq!(accept(&two), None);
    }

    #[test]
    fn generated_headers_are_valid_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(accept(&one(&a)), Some(a.clone()));
        assert!(a.starts_with("00-") && a.ends_with("-01"), "{a}");
        assert_ne!(a[3..35], b[3..35]);
    }
}
