//! The CGI/1.1 environment (RFC 3875) a PHP script sees, shaped like nginx's
//! `fastcgi_params` + `SCRIPT_FILENAME` so applications find what they are used to.
use http::HeaderMap;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What the environment is built from.
pub struct CgiRequest<'a> {
    pub method: &'a str,
    /// The request target's path and query exactly as received.
    pub request_uri: &'a str,
    /// The raw query, without `?`.
    pub query: &'a str,
    pub protocol: &'a str,
    pub headers: &'a HeaderMap,
    pub content_length: Option<u64>,
    pub script_filename: &'a Path,
    pub script_name: &'a str,
    pub path_info: &'a str,
    pub docroot: &'a Path,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
    pub request_id: &'a str,
    pub server_software: &'a str,
    /// Set by Isola for internal requests (`ISOLA_JOB_ID`...); after the request headers,
    /// so no client header can shadow them.
    pub extra: &'a [(&'static str, String)],
}

type Pair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

fn b(s: &str) -> Cow<'_, [u8]> {
    Cow::Borrowed(s.as_bytes())
}

fn owned(s: String) -> Cow<'static, [u8]> {
    Cow::Owned(s.into_bytes())
}

/// The name-value pairs, in a stable order.
pub fn build<'a>(r: &'a CgiRequest<'a>) -> Vec<Pair<'a>> {
    let mut env: Vec<Pair<'a>> = Vec::with_capacity(32 + r.headers.len());
    let docroot = r.docroot.as_os_str().as_bytes();
    env.push((b("GATEWAY_INTERFACE"), b("CGI/1.1")));
    env.push((b("SERVER_SOFTWARE"), b(r.server_software)));
    env.push((b("QUERY_STRING"), b(r.query)));
    env.push((b("REQUEST_METHOD"), b(r.method)));
    let content_type = r
        .headers
        .get(http::header::CONTENT_TYPE)
        .map_or(&b""[..], |v| v.as_bytes());
    env.push((b("CONTENT_TYPE"), Cow::Borrowed(content_type)));
    env.push((
        b("CONTENT_LENGTH"),
        r.content_length.map_or(b(""), |n| owned(n.to_string())),
    ));
    env.push((
        b("SCRIPT_FILENAME"),
        Cow::Borrowed(r.script_filename.as_os_str().as_bytes()),
    ));
    env.push((b("SCRIPT_NAME"), b(r.script_name)));
    env.push((b("PATH_INFO"), b(r.path_info)));
    if !r.path_info.is_empty() {
        // RFC 3875 4.1.6; php-cgi only uses it to pick a script when SCRIPT_FILENAME is
        // missing, and Isola always sends SCRIPT_FILENAME with cgi.fix_pathinfo=1.
        let mut t = docroot.to_vec();
        t.extend_from_slice(r.path_info.as_bytes());
        env.push((b("PATH_TRANSLATED"), Cow::Owned(t)));
    }
    env.push((b("REQUEST_URI"), b(r.request_uri)));
    env.push((
        b("DOCUMENT_URI"),
        owned(format!("{}{}", r.script_name, r.path_info)),
    ));
    env.push((b("DOCUMENT_ROOT"), Cow::Borrowed(docroot)));
    env.push((b("SERVER_PROTOCOL"), b(r.protocol)));
    env.push((
        b("REQUEST_SCHEME"),
        b(if r.https { "https" } else { "http" }),
    ));
    if r.https {
        env.push((b("HTTPS"), b("on")));
    }
    env.push((
        b("REMOTE_ADDR"),
        owned(r.remote.ip().to_canonical().to_string()),
    ));
    env.push((b("REMOTE_PORT"), owned(r.remote.port().to_string())));
    env.push((
        b("SERVER_ADDR"),
        owned(r.local.ip().to_canonical().to_string()),
    ));
    env.push((b("SERVER_PORT"), owned(r.local.port().to_string())));
    env.push((b("SERVER_NAME"), owned(server_name(r))));
    env.push((b("REDIRECT_STATUS"), b("200")));
    env.push((b("ISOLA_REQUEST_ID"), b(r.request_id)));
    env.push((b("HTTP_X_REQUEST_ID"), b(r.request_id)));
    push_headers(&mut env, r.headers);
    for (k, v) in r.extra {
        env.push((b(k), b(v)));
    }
    env
}

/// The Host header without its port, else the local address.
fn server_name(r: &CgiRequest<'_>) -> String {
    r.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(strip_port)
        .filter(|h| !h.is_empty())
        // Host names are case-insensitive; nginx's $host is lowercased too.
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| r.local.ip().to_canonical().to_string())
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Every request header as HTTP_*, except:
/// - names with `_` (they would be indistinguishable from `-`, a header-spoofing hole;
///   nginx drops them too),
/// - `Proxy` (HTTP_PROXY would be read as a proxy setting by PHP HTTP clients: "httpoxy"),
/// - Content-Type/Content-Length (already CONTENT_TYPE/CONTENT_LENGTH),
/// - X-Request-Id (replaced by Isola's id).
///
/// Repeated headers become one value: Cookie lines joined with `; `, others with `, `.
fn push_headers<'a>(env: &mut Vec<Pair<'a>>, headers: &'a HeaderMap) {
    for name in headers.keys() {
        let n = name.as_str();
        if n.contains('_')
            || n == "proxy"
            || n == "content-type"
            || n == "content-length"
            || n == "x-request-id"
        {
            continue;
        }
        let mut key = Vec::with_capacity(5 + n.len());
        key.extend_from_slice(b"HTTP_");
        key.extend(n.bytes().map(|c| match c {
            b'-' => b'_',
            c => c.to_ascii_uppercase(),
        }));
        let mut values = headers.get_all(name).iter();
        let first = match values.next() {
            Some(v) => v.as_bytes(),
            None => continue,
        };
        let value = match values.next() {
            None => Cow::Borrowed(first),
            Some(second) => {
                let sep: &[u8] = if n == "cookie" { b"; " } else { b", " };
                let mut v = first.to_vec();
                for more in std::iter::once(second).chain(values) {
                    v.extend_from_slice(sep);
                    v.extend_from_slice(more.as_bytes());
                }
                Cow::Owned(v)
            }
        };
        env.push((Cow::Owned(key), value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env_of(headers: &HeaderMap) -> Vec<(String, String)> {
        let r = CgiRequest {
            method: "GET",
            request_uri: "/a%20b/x.php/p?q=1",
            query: "q=1",
            protocol: "HTTP/1.1",
            headers,
            content_length: None,
            script_filename: Path::new("/srv/www/a b/x.php"),
            script_name: "/a b/x.php",
            path_info: "/p",
            docroot: Path::new("/srv/www"),
            remote: "127.0.0.1:5555".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            https: false,
            request_id: "rid",
            server_software: "isola",
            extra: &[],
        };
        build(&r)
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.into_owned()).unwrap(),
                    String::from_utf8(v.into_owned()).unwrap(),
                )
            })
            .collect()
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn core_variables() {
        let mut h = HeaderMap::new();
        h.insert("host", "Example.COM:8080".parse().unwrap());
        let env = env_of(&h);
        assert_eq!(get(&env, "SCRIPT_FILENAME"), Some("/srv/www/a b/x.php"));
        assert_eq!(get(&env, "PATH_TRANSLATED"), Some("/srv/www/p"));
        assert_eq!(get(&env, "REQUEST_URI"), Some("/a%20b/x.php/p?q=1"));
        assert_eq!(get(&env, "DOCUMENT_URI"), Some("/a b/x.php/p"));
        assert_eq!(get(&env, "SERVER_NAME"), Some("example.com"));
        assert_eq!(get(&env, "HTTP_HOST"), Some("Example.COM:8080"));
        assert_eq!(get(&env, "CONTENT_LENGTH"), Some(""));
        assert_eq!(get(&env, "HTTP_X_REQUEST_ID"), Some("rid"));
        assert_eq!(get(&env, "HTTPS"), None);
    }

    #[test]
    fn hostile_and_repeated_headers() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        h.append("accept", "text/html".parse().unwrap());
        h.append("accept", "*/*".parse().unwrap());
        h.append("x_forwarded_for", "1.2.3.4".parse().unwrap());
        h.append("proxy", "http://evil".parse().unwrap());
        h.append("x-request-id", "spoofed".parse().unwrap());
        let env = env_of(&h);
        assert_eq!(get(&env, "HTTP_COOKIE"), Some("a=1; b=2"));
        assert_eq!(get(&env, "HTTP_ACCEPT"), Some("text/html, */*"));
        assert_eq!(get(&env, "HTTP_X_FORWARDED_FOR"), None);
        assert_eq!(get(&env, "HTTP_PROXY"), None);
        assert_eq!(get(&env, "HTTP_X_REQUEST_ID"), Some("rid"));
        assert_eq!(
            env.iter().filter(|(k, _)| k == "HTTP_X_REQUEST_ID").count(),
            1
        );
    }

    #[test]
    fn ports_are_stripped_from_server_name() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("a.example"), "a.example");
    }
}
