//! Short HTML pages for the statuses Isola answers itself.
use crate::body::ResponseBody;
use http::{header, HeaderValue, Response, StatusCode};

/// A small HTML error page with `status`.
pub fn page(status: StatusCode) -> Response<ResponseBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = status.as_u16();
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1></body></html>\n"
    );
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// 503 with `Retry-After`, for overload.
pub fn unavailable(retry_after_secs: u64) -> Response<ResponseBody> {
    let mut resp = page(StatusCode::SERVICE_UNAVAILABLE);
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    resp
}
