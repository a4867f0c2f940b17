//! Static file responses: the file as it is, with its type and validators, streamed.
use crate::body::ResponseBody;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use std::path::Path;
use tokio::io::AsyncReadExt;

/// Files up to this size are read in one go; larger ones are streamed in chunks of it.
const CHUNK: usize = 64 * 1024;

/// Answers `path` for `method` (GET or HEAD).
pub async fn serve(path: &Path, method: &Method) -> std::io::Result<Response<ResponseBody>> {
    let mut file = tokio::fs::File::open(path).await?;
    let meta = file.metadata().await?;
    let len = meta.len();
    let mut resp = Response::new(ResponseBody::Empty);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type(path));
    if let Ok(modified) = meta.modified() {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if method == Method::HEAD {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(resp);
    }
    *resp.body_mut() = if len as usize <= CHUNK {
        let mut buf = Vec::with_capacity(len as usize);
        file.read_to_end(&mut buf).await?;
        ResponseBody::full(Bytes::from(buf))
    } else {
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK);
        ResponseBody::File(Box::pin(stream), len)
    };
    Ok(resp)
}

/// The type from the extension; text types say they are UTF-8, as nginx's `charset utf-8`
/// users expect.
fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml")
        || mime.suffix().is_some_and(|s| s == "xml" || s == "json");
    let value = if text && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(content_type(Path::new("a.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("a.js")), "text/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(content_type(Path::new("a.svg")), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
