//! On-the-fly response compression: choosing a content coding from Accept-Encoding, deciding
//! whether a response may be transformed, and encoding its body (brotli, zstd or gzip).
//!
//! Owns: content-coding negotiation (RFC 9110 12.5.3), the eligibility rules (status, type,
//! `Cache-Control: no-transform`, size, an existing Content-Encoding or Content-Range), the
//! header changes a transformation implies (Content-Encoding, Content-Length dropped,
//! `Vary: Accept-Encoding`, strong ETags made weak, Accept-Ranges dropped), and
//! [`Encoded`], the body that compresses another body as it streams.
//!
//! Never: holds output back. A PHP script that echoes, `flush()`es and sleeps must reach the
//! client chunk by chunk, so the encoder is flushed (a sync flush in gzip, a brotli FLUSH, a
//! zstd block end) after every chunk of the source; the compressed prefix sent so far always
//! decompresses to exactly the source bytes seen so far. Never turns a body that broke
//! midway into a clean end: the source's error is passed on and the stream is not finished,
//! so hyper aborts the response instead of framing a truncated one as complete. Never keeps
//! more than one source chunk in memory.
//!
//! Compression runs inline in `poll_frame` on the connection's task: at most
//! [`SLICE`] (64 KiB) of input is encoded per poll, a few milliseconds at the levels chosen
//! here, and a body bigger than that yields to the runtime between slices.
use crate::body::{BoxError, ResponseBody};
use bytes::buf::Writer;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bodies known to be shorter than this are sent as they are: the coding's framing and the
/// client's decoding cost more than the bytes saved (nginx's `gzip_min_length` is 20; most
/// CDNs use about 1 KiB).
pub(crate) const MIN_SIZE: u64 = 1024;
/// Whole bodies up to this size are compressed in one go into a whole body with an exact
/// length; larger ones are encoded as a stream, slice by slice, so one response cannot hold
/// a runtime thread for long.
pub(crate) const WHOLE_LIMIT: usize = 256 * 1024;
/// Most input encoded in one poll.
pub(crate) const SLICE: usize = 64 * 1024;
/// Brotli quality: 4-5 is the usual on-the-fly setting (11 is for precompressing).
const BROTLI_QUALITY: u32 = 5;
/// Brotli window (2^19 = 512 KiB): bounds the encoder's memory per response.
const BROTLI_LGWIN: u32 = 19;
/// gzip level: 6 is zlib's default; higher levels cost much more CPU for little gain.
const GZIP_LEVEL: u32 = 6;
/// zstd level 3 (its default): faster than gzip 6 and smaller.
const ZSTD_LEVEL: i32 = 3;
/// zstd window (2^20 = 1 MiB): bounds the encoder's memory per response, well under the
/// 8 MiB a client of the `zstd` content coding must support (RFC 9659).
const ZSTD_WINDOW_LOG: u32 = 20;

/// A content coding Isola can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `br` (RFC 7932).
    Brotli,
    /// `zstd` (RFC 8878, RFC 9659).
    Zstd,
    /// `gzip` (RFC 1952).
    Gzip,
}

impl Coding {
    /// Default server preference order, used when the client weighs several codings alike.
    const PREFERENCE: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

    /// The coding named by a Content-Encoding token Isola produces.
    pub(crate) fn from_token(token: &str) -> Option<Coding> {
        Self::PREFERENCE.into_iter().find(|c| c.token() == token)
    }

    /// Its slot in [`negotiate`]'s weight table.
    fn slot(self) -> usize {
        match self {
            Coding::Brotli => 0,
            Coding::Zstd => 1,
            Coding::Gzip => 2,
        }
    }

    /// The Content-Encoding token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }
}

/// What the configuration allows: which codings, in which order, above which size.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Codings offered, in server preference order (a subset of br, zstd, gzip).
    pub(crate) order: Vec<Coding>,
    /// Bodies known to be shorter are sent as they are.
    pub(crate) min_size: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            order: Coding::PREFERENCE.to_vec(),
            min_size: MIN_SIZE,
        }
    }
}

impl Policy {
    /// Offers the codings named by `tokens` (`br`, `zstd`, `gzip`; others are ignored), in
    /// that order, for bodies of `min_size` bytes or more.
    pub fn new<S: AsRef<str>>(tokens: &[S], min_size: u64) -> Self {
        let mut order = Vec::new();
        for c in tokens.iter().filter_map(|t| Coding::from_token(t.as_ref())) {
            if !order.contains(&c) {
                order.push(c);
            }
        }
        Policy { order, min_size }
    }
}

/// Compresses `resp` for a request with `req_headers` and `method` when the client accepts a
/// coding `policy` offers and the response may be transformed; otherwise returns it unchanged
/// except, when its type is one Isola would compress, for `Vary: Accept-Encoding` (so caches
/// key it by Accept-Encoding whichever representation this client got).
///
/// Call it once the response is complete, before headers that do not describe the
/// representation (the request id) are added.
pub(crate) fn compress(
    policy: &Policy,
    req_headers: &HeaderMap,
    method: &Method,
    mut resp: Response<ResponseBody>,
) -> Response<ResponseBody> {
    if !transformable(&resp) {
        return resp;
    }
    add_vary(resp.headers_mut());
    if method == Method::HEAD {
        // A HEAD response has no body to encode; it keeps the identity metadata.
        return resp;
    }
    let Some(coding) = negotiate(req_headers, &policy.order) else {
        return resp;
    };
    if known_length(&resp).is_some_and(|n| n < policy.min_size) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let body = match body {
        ResponseBody::Full(Some(b)) if b.len() <= WHOLE_LIMIT => match encode_whole(coding, &b) {
            Ok(z) if z.len() < b.len() => ResponseBody::Full(Some(z)),
            Ok(_) => return Response::from_parts(parts, ResponseBody::Full(Some(b))),
            Err(e) => {
                tracing::debug!("{} compression failed: {e}", coding.token());
                return Response::from_parts(parts, ResponseBody::Full(Some(b)));
            }
        },
        body @ (ResponseBody::Full(Some(_)) | ResponseBody::Stream(_) | ResponseBody::File(..)) => {
            match Encoded::new(coding, body) {
                Ok(e) => ResponseBody::Encoded(Box::new(e)),
                Err((body, e)) => {
                    tracing::debug!("{} encoder failed to start: {e}", coding.token());
                    return Response::from_parts(parts, body);
                }
            }
        }
        // Nothing to encode (and an already encoded body is never encoded twice).
        body => return Response::from_parts(parts, body),
    };
    mark_encoded(&mut parts.headers, coding);
    Response::from_parts(parts, body)
}

/// Whether the response's status, type and headers allow a content coding to be applied.
fn transformable(resp: &Response<ResponseBody>) -> bool {
    let status = resp.status();
    if !status.is_success()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
    {
        return false;
    }
    // Tracked bodies are final: compression comes before tracking.
    if matches!(
        resp.body(),
        ResponseBody::Encoded(_) | ResponseBody::Tracked(_)
    ) {
        return false;
    }
    let h = resp.headers();
    if h.contains_key(header::CONTENT_ENCODING) || h.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    if tokens(h, header::CACHE_CONTROL).any(|t| {
        let name = t.split('=').next().unwrap_or("").trim();
        name.eq_ignore_ascii_case("no-transform")
    }) {
        return false;
    }
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compressible_type)
}

/// Media types worth compressing: text and the structured text formats (JSON, XML, their
/// `+json`/`+xml` suffixes, SVG, JavaScript). Images, audio, video, fonts in WOFF, archives
/// and wasm are left alone: already compressed, or rarely worth it.
pub(crate) fn compressible_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    if ty == "text" {
        return true;
    }
    if sub.ends_with("+json") || sub.ends_with("+xml") {
        return true;
    }
    ty == "application"
        && matches!(
            sub,
            "json"
                | "javascript"
                | "x-javascript"
                | "ecmascript"
                | "xml"
                | "x-ndjson"
                | "graphql-response+json"
        )
}

/// The body's length when it is known: exact for whole and file bodies, the declared
/// Content-Length for a stream whose producer promised one.
fn known_length(resp: &Response<ResponseBody>) -> Option<u64> {
    match resp.body() {
        ResponseBody::Empty => Some(0),
        ResponseBody::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
        ResponseBody::File(_, remaining) => Some(*remaining),
        ResponseBody::Stream(_) => resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok()),
        ResponseBody::Encoded(_) | ResponseBody::Tracked(_) => None,
    }
}

/// The comma-separated elements of every `name` field line, trimmed, empty ones skipped.
fn tokens(h: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    h.get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Adds `Accept-Encoding` to Vary unless it is already there (or Vary is `*`), merging all
/// Vary field lines into one.
fn add_vary(h: &mut HeaderMap) {
    let existing: Vec<String> = tokens(h, header::VARY).map(str::to_owned).collect();
    if existing
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case("accept-encoding"))
    {
        return;
    }
    let mut merged = existing.join(", ");
    if !merged.is_empty() {
        merged.push_str(", ");
    }
    merged.push_str("Accept-Encoding");
    if let Ok(v) = HeaderValue::from_str(&merged) {
        h.insert(header::VARY, v);
    }
}

/// Header changes for a body that is now encoded with `coding`.
fn mark_encoded(h: &mut HeaderMap, coding: Coding) {
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.token()),
    );
    // The new length is the body's own (exact for a whole body, hyper frames it), or unknown.
    h.remove(header::CONTENT_LENGTH);
    // Byte ranges would address the identity bytes, not these (nginx's gzip does the same).
    h.remove(header::ACCEPT_RANGES);
    // The bytes changed, so a strong validator no longer holds (RFC 9110 8.8.1); a weak one
    // still matches If-None-Match, so revalidation keeps working.
    let etags: Vec<HeaderValue> = h
        .get_all(header::ETAG)
        .iter()
        .map(|v| {
            if v.as_bytes().starts_with(b"\"") {
                let mut w = b"W/".to_vec();
                w.extend_from_slice(v.as_bytes());
                HeaderValue::from_bytes(&w).unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            }
        })
        .collect();
    if !etags.is_empty() {
        h.remove(header::ETAG);
        for e in etags {
            h.append(header::ETAG, e);
        }
    }
}

/// The coding to use for a request with `req_headers`, or `None` for identity.
///
/// RFC 9110 12.5.3: without Accept-Encoding nothing is encoded (every coding would be
/// acceptable, but old clients that send none often cannot decode); a coding is acceptable
/// when listed, or matched by `*`, with a non-zero weight; tokens are case-insensitive;
/// `x-gzip` means `gzip`. The highest weight wins, ties go to the server's order (br, zstd,
/// gzip); an explicit `identity` weighed above every acceptable coding means identity. An
/// element with a malformed weight is ignored.
pub(crate) fn negotiate(req_headers: &HeaderMap, offered: &[Coding]) -> Option<Coding> {
    // Weights in thousandths, per coding in PREFERENCE order, then identity, then `*`.
    let mut listed: [Option<u16>; 5] = [None; 5];
    for element in tokens(req_headers, header::ACCEPT_ENCODING) {
        let mut params = element.split(';');
        let name = params.next().unwrap_or("").trim();
        let mut weight = Some(1000);
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    weight = parse_qvalue(v.trim());
                }
            }
        }
        let Some(weight) = weight else { continue };
        let slot = if name.eq_ignore_ascii_case("br") {
            0
        } else if name.eq_ignore_ascii_case("zstd") {
            1
        } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            2
        } else if name.eq_ignore_ascii_case("identity") {
            3
        } else if name == "*" {
            4
        } else {
            continue;
        };
        // A coding listed twice: its best weight counts.
        listed[slot] = Some(listed[slot].map_or(weight, |w| w.max(weight)));
    }
    let star = listed[4];
    let mut best: Option<(Coding, u16)> = None;
    for &coding in offered {
        let w = listed[coding.slot()].or(star).unwrap_or(0);
        if w > 0 && best.is_none_or(|(_, b)| w > b) {
            best = Some((coding, w));
        }
    }
    let (coding, w) = best?;
    if listed[3].is_some_and(|identity| identity > w) {
        return None;
    }
    Some(coding)
}

/// A qvalue (RFC 9110 12.4.2) in thousandths: `0`, `0.5`, `0.123`, `1`, `1.000`.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Compresses a whole buffer in one go.
fn encode_whole(coding: Coding, data: &[u8]) -> std::io::Result<Bytes> {
    let mut engine = Engine::new(coding, Some(data.len()))?;
    engine.write(data)?;
    engine.finish()
}

/// One encoder writing into a buffer that is drained after every step.
enum Engine {
    Gzip(flate2::write::GzEncoder<Writer<BytesMut>>),
    Brotli(Box<brotli::CompressorWriter<Writer<BytesMut>>>),
    Zstd(zstd::stream::write::Encoder<'static, Writer<BytesMut>>),
}

impl Engine {
    /// A new encoder; `size` is the whole input's length when it is known.
    fn new(coding: Coding, size: Option<usize>) -> std::io::Result<Self> {
        let out = BytesMut::new().writer();
        Ok(match coding {
            Coding::Gzip => Engine::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Coding::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY as i32,
                    lgwin: BROTLI_LGWIN as i32,
                    size_hint: size.unwrap_or(0),
                    ..Default::default()
                };
                Engine::Brotli(Box::new(brotli::CompressorWriter::with_params(
                    out, 8192, &params,
                )))
            }
            Coding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                e.window_log(ZSTD_WINDOW_LOG)?;
                // A known size lets zstd shrink its window and record the size in the frame.
                e.set_pledged_src_size(size.map(|n| n as u64))?;
                Engine::Zstd(e)
            }
        })
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Engine::Gzip(e) => e.write_all(data),
            Engine::Brotli(e) => e.write_all(data),
            Engine::Zstd(e) => e.write_all(data),
        }
    }

    /// Makes everything written so far decodable by the client.
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Engine::Gzip(e) => e.flush(),
            Engine::Brotli(e) => e.flush(),
            Engine::Zstd(e) => e.flush(),
        }
    }

    /// The output produced so far and not yet taken.
    fn take(&mut self) -> Bytes {
        let out = match self {
            Engine::Gzip(e) => e.get_mut(),
            Engine::Brotli(e) => e.get_mut(),
            Engine::Zstd(e) => e.get_mut(),
        };
        out.get_mut().split().freeze()
    }

    /// Ends the stream (trailer, checksum, last block) and returns the output not yet taken.
    fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Engine::Gzip(e) => e.finish()?,
            Engine::Brotli(e) => e.into_inner(),
            Engine::Zstd(e) => e.finish()?,
        };
        Ok(out.into_inner().freeze())
    }
}

/// A body compressed as it streams: pulls frames from the source body, encodes each, flushes
/// after each source chunk so nothing is held back, finishes the coding at the source's
/// end, and passes the source's error on unfinished.
pub struct Encoded {
    source: ResponseBody,
    /// `None` once the coding is finished or abandoned.
    engine: Option<Engine>,
    /// The part of the current source chunk not encoded yet (a chunk over [`SLICE`]).
    pending: Bytes,
    /// Source trailers, sent after the coding is finished.
    trailers: Option<HeaderMap>,
}

impl Encoded {
    /// Wraps `source`; on failure the source comes back untouched.
    fn new(coding: Coding, source: ResponseBody) -> Result<Self, (ResponseBody, std::io::Error)> {
        match Engine::new(coding, None) {
            Ok(engine) => Ok(Encoded {
                source,
                engine: Some(engine),
                pending: Bytes::new(),
                trailers: None,
            }),
            Err(e) => Err((source, e)),
        }
    }

    /// Encodes the next slice of the pending chunk, flushing when it is the chunk's last.
    fn step(&mut self) -> Result<Bytes, BoxError> {
        let Some(engine) = self.engine.as_mut() else {
            return Ok(Bytes::new());
        };
        let slice = self.pending.split_to(self.pending.len().min(SLICE));
        let result = engine.write(&slice).and_then(|()| {
            if self.pending.is_empty() {
                engine.flush()?;
            }
            Ok(engine.take())
        });
        result.map_err(|e| {
            self.abandon();
            e.into()
        })
    }

    fn finish(&mut self) -> Result<Bytes, BoxError> {
        match self.engine.take() {
            Some(engine) => engine.finish().map_err(Into::into),
            None => Ok(Bytes::new()),
        }
    }

    /// Drops the coding unfinished: the response must not look complete.
    fn abandon(&mut self) {
        self.engine = None;
        self.pending = Bytes::new();
        self.trailers = None;
    }
}

impl Body for Encoded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.engine.is_none() {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            if !this.pending.is_empty() {
                let out = match this.step() {
                    Ok(out) => out,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                };
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                if !this.pending.is_empty() {
                    // A slice produced nothing yet: let other tasks run before the next.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            match Pin::new(&mut this.source).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        match this.finish() {
                            Ok(out) if !out.is_empty() => {
                                return Poll::Ready(Some(Ok(Frame::data(out))))
                            }
                            Ok(_) => {}
                            Err(e) => {
                                this.abandon();
                                return Poll::Ready(Some(Err(e)));
                            }
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    // Cut short: what was sent stays a valid prefix, but the coding is not
                    // finished and the error reaches hyper, which aborts the response.
                    this.abandon();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => match this.finish() {
                    Ok(out) if !out.is_empty() => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Ok(_) => {}
                    Err(e) => {
                        this.abandon();
                        return Poll::Ready(Some(Err(e)));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.engine.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::body::StreamChunk;
    use http_body_util::BodyExt;
    use std::io::Read;
    use std::time::Duration;
    use tokio::sync::mpsc;

    fn compress(h: &HeaderMap, m: &Method, r: Response<ResponseBody>) -> Response<ResponseBody> {
        super::compress(&Policy::default(), h, m, r)
    }

    fn negotiate(h: &HeaderMap) -> Option<Coding> {
        super::negotiate(h, &Coding::PREFERENCE)
    }

    #[test]
    fn policy_limits_codings_and_sets_their_order() {
        let p = Policy::new(&["gzip", "br", "lzma", "gzip"], 10);
        assert_eq!(p.order, [Coding::Gzip, Coding::Brotli]);
        let h = accept("br, gzip, zstd");
        assert_eq!(super::negotiate(&h, &p.order), Some(Coding::Gzip));
        assert_eq!(super::negotiate(&accept("zstd"), &p.order), None);
        assert_eq!(
            super::negotiate(&accept("br;q=0.5, gzip;q=0.4"), &p.order),
            Some(Coding::Brotli)
        );
        let small = Response::builder()
            .header(header::CONTENT_TYPE, "text/html")
            .body(ResponseBody::full("x".repeat(200)))
            .unwrap();
        let r = super::compress(&p, &accept("gzip"), &Method::GET, small);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    }

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        h
    }

    /// Text that compresses, but not to nothing (so flushes and slices produce output).
    fn text(len: usize) -> Bytes {
        let mut s = String::new();
        let mut i = 0u64;
        while s.len() < len {
            s.push_str(&format!(
                "<li id=\"item-{i}\">row {} of the list</li>\n",
                i * 7919 % 1000
            ));
            i += 1;
        }
        s.truncate(len);
        Bytes::from(s)
    }

    fn response(ct: &str, body: ResponseBody) -> Response<ResponseBody> {
        let mut r = Response::new(body);
        r.headers_mut()
            .insert(header::CONTENT_TYPE, ct.parse().unwrap());
        r
    }

    fn html(body: ResponseBody) -> Response<ResponseBody> {
        response("text/html; charset=utf-8", body)
    }

    fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            "gzip" => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            "br" => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            "zstd" => out = zstd::stream::decode_all(data).unwrap(),
            other => panic!("unexpected coding {other}"),
        }
        out
    }

    /// Everything a client can decode from `data`, a prefix of a compressed stream: read
    /// until the decoder reports the end or the truncation.
    fn decode_prefix(coding: &str, data: &[u8]) -> Vec<u8> {
        let mut reader: Box<dyn Read> = match coding {
            "gzip" => Box::new(flate2::read::GzDecoder::new(data)),
            "br" => Box::new(brotli::Decompressor::new(data, 4096)),
            "zstd" => Box::new(zstd::stream::read::Decoder::new(data).unwrap()),
            other => panic!("unexpected coding {other}"),
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    async fn collect(body: ResponseBody) -> Bytes {
        tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes()
    }

    async fn next_frame(body: &mut ResponseBody) -> Option<Result<Frame<Bytes>, BoxError>> {
        tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the encoder held its output back")
    }

    #[test]
    fn negotiation_table() {
        let cases: &[(&str, Option<Coding>)] = &[
            ("gzip, deflate, br, zstd", Some(Coding::Brotli)),
            ("gzip, deflate, zstd", Some(Coding::Zstd)),
            ("gzip, deflate", Some(Coding::Gzip)),
            ("GZIP", Some(Coding::Gzip)),
            ("x-gzip", Some(Coding::Gzip)),
            ("Br;Q=0.5", Some(Coding::Brotli)),
            ("deflate", None),
            ("compress, unknown", None),
            ("", None),
            ("identity", None),
            ("*", Some(Coding::Brotli)),
            ("*;q=0", None),
            ("br;q=0, *", Some(Coding::Zstd)),
            ("br;q=0, zstd;q=0, *;q=0.1", Some(Coding::Gzip)),
            ("br;q=0, zstd;q=0, gzip;q=0", None),
            ("gzip;q=1.0, br;q=0.5", Some(Coding::Gzip)),
            ("gzip;q=0.8, br;q=0.8", Some(Coding::Brotli)),
            ("gzip;q=0.001", Some(Coding::Gzip)),
            ("gzip;q=0.000", None),
            ("gzip ; q=0.7 , br ; q = 0.6", Some(Coding::Gzip)),
            ("identity;q=0, gzip", Some(Coding::Gzip)),
            ("identity;q=0", None),
            ("identity;q=1, gzip;q=0.5", None),
            ("identity;q=0.5, gzip", Some(Coding::Gzip)),
            ("gzip, gzip;q=0", Some(Coding::Gzip)),
            // Malformed weights make the element void, not a full-weight one.
            ("br;q=2, gzip", Some(Coding::Gzip)),
            ("br;q=0.5x, gzip;q=0.1", Some(Coding::Gzip)),
            ("br;q=0.1234, gzip;q=0.1", Some(Coding::Gzip)),
            ("br;q=1.5", None),
            ("br;q=", None),
            (",, ,gzip,,", Some(Coding::Gzip)),
            ("br;level=5", Some(Coding::Brotli)),
        ];
        for (value, want) in cases {
            assert_eq!(negotiate(&accept(value)), *want, "Accept-Encoding: {value}");
        }
        assert_eq!(negotiate(&HeaderMap::new()), None, "no Accept-Encoding");
        let mut two = HeaderMap::new();
        two.append(header::ACCEPT_ENCODING, "gzip;q=0.5".parse().unwrap());
        two.append(header::ACCEPT_ENCODING, "zstd".parse().unwrap());
        assert_eq!(negotiate(&two), Some(Coding::Zstd), "two field lines");
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("0.123"), Some(123));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.001"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue(".5"), None);
        assert_eq!(parse_qvalue("-0"), None);
        assert_eq!(parse_qvalue(""), None);
    }

    #[test]
    fn compressible_types() {
        for t in [
            "text/html",
            "text/html; charset=utf-8",
            "TEXT/CSS",
            "text/plain",
            "text/event-stream",
            "application/json",
            "application/json; charset=utf-8",
            "application/javascript",
            "application/xml",
            "application/ld+json",
            "application/problem+json",
            "application/rss+xml",
            "application/xhtml+xml",
            "image/svg+xml",
        ] {
            assert!(compressible_type(t), "{t}");
        }
        for t in [
            "image/png",
            "image/jpeg",
            "application/octet-stream",
            "application/wasm",
            "application/zip",
            "font/woff2",
            "video/mp4",
            "",
            "text",
            "jsonish",
        ] {
            assert!(!compressible_type(t), "{t}");
        }
    }

    #[tokio::test]
    async fn whole_bodies_round_trip_in_every_coding_with_exact_length() {
        let original = text(20_000);
        for (accepted, token) in [("br", "br"), ("zstd", "zstd"), ("gzip", "gzip")] {
            let mut resp = html(ResponseBody::full(original.clone()));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(original.len()));
            resp.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            let resp = compress(&accept(accepted), &Method::GET, resp);
            let h = resp.headers();
            assert_eq!(h[header::CONTENT_ENCODING], token);
            assert_eq!(h[header::VARY], "Accept-Encoding");
            assert!(!h.contains_key(header::CONTENT_LENGTH));
            assert!(!h.contains_key(header::ACCEPT_RANGES));
            let ResponseBody::Full(Some(z)) = resp.body() else {
                panic!("{token}: a whole body stays whole");
            };
            let exact = resp.body().size_hint().exact().unwrap();
            assert_eq!(exact, z.len() as u64);
            assert!(z.len() < original.len() / 3, "{token}: {} bytes", z.len());
            assert_eq!(decode(token, z), original, "{token}");
        }
    }

    #[tokio::test]
    async fn streamed_and_file_bodies_round_trip_in_every_coding() {
        let chunks: Vec<Bytes> = (0..5).map(|i| text(3000 + i * 1000)).collect();
        let whole: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        for token in ["br", "zstd", "gzip"] {
            let (tx, rx) = mpsc::channel(16);
            for c in &chunks {
                tx.send(StreamChunk::Data(c.clone())).await.unwrap();
            }
            tx.send(StreamChunk::End).await.unwrap();
            let resp = compress(
                &accept(token),
                &Method::GET,
                html(ResponseBody::Stream(Some(rx))),
            );
            assert_eq!(resp.headers()[header::CONTENT_ENCODING], token);
            assert!(matches!(resp.body(), ResponseBody::Encoded(_)));
            assert_eq!(resp.body().size_hint().exact(), None);
            let z = collect(resp.into_body()).await;
            assert_eq!(decode(token, &z), whole, "stream {token}");

            let items: Vec<std::io::Result<Bytes>> = chunks.iter().cloned().map(Ok).collect();
            let file = ResponseBody::File(
                Box::pin(futures_util::stream::iter(items)),
                whole.len() as u64,
            );
            let resp = compress(&accept(token), &Method::GET, response("text/css", file));
            assert_eq!(resp.headers()[header::CONTENT_ENCODING], token);
            let z = collect(resp.into_body()).await;
            assert_eq!(decode(token, &z), whole, "file {token}");
        }
    }

    #[tokio::test]
    async fn a_whole_body_over_the_limit_is_encoded_in_slices() {
        // Highly repetitive input: some slices produce no output until a flush, which
        // exercises the yield between slices.
        let mut big = text(WHOLE_LIMIT + 3 * SLICE + 17).to_vec();
        big.extend(std::iter::repeat_n(b'a', 4 * SLICE));
        let big = Bytes::from(big);
        for token in ["br", "zstd", "gzip"] {
            let resp = compress(
                &accept(token),
                &Method::GET,
                html(ResponseBody::full(big.clone())),
            );
            assert!(matches!(resp.body(), ResponseBody::Encoded(_)), "{token}");
            assert_eq!(resp.headers()[header::CONTENT_ENCODING], token);
            let z = collect(resp.into_body()).await;
            assert_eq!(decode(token, &z), big, "{token}");
        }
    }

    #[tokio::test]
    async fn each_streamed_chunk_is_decodable_as_soon_as_it_is_sent() {
        for token in ["br", "zstd", "gzip"] {
            let (tx, rx) = mpsc::channel(16);
            let resp = compress(
                &accept(token),
                &Method::GET,
                html(ResponseBody::Stream(Some(rx))),
            );
            let mut body = resp.into_body();
            let mut received = Vec::new();
            let mut sent = Vec::new();
            // Small chunks too: a progress line of a few bytes must not wait for more.
            for (i, chunk) in [
                Bytes::from_static(b"<p>step 1</p>\n"),
                text(5000),
                Bytes::from_static(b"."),
                text(70_000),
            ]
            .into_iter()
            .enumerate()
            {
                tx.send(StreamChunk::Data(chunk.clone())).await.unwrap();
                sent.extend_from_slice(&chunk);
                // One frame per source chunk (a chunk over SLICE may take several): read
                // until the prefix decodes to what was sent. An encoder that held output
                // back would make the next read wait for the producer, and time out.
                loop {
                    let frame = next_frame(&mut body).await.unwrap().unwrap();
                    received.extend_from_slice(&frame.into_data().unwrap());
                    let decoded = decode_prefix(token, &received);
                    assert!(sent.starts_with(&decoded), "{token}: chunk {i}");
                    if decoded.len() == sent.len() {
                        break;
                    }
                }
            }
            tx.send(StreamChunk::End).await.unwrap();
            while let Some(frame) = next_frame(&mut body).await {
                received.extend_from_slice(&frame.unwrap().into_data().unwrap());
            }
            assert!(body.is_end_stream());
            assert_eq!(decode(token, &received), sent, "{token}: end");
        }
    }

    #[tokio::test]
    async fn a_stream_cut_short_ends_in_an_error_after_its_compressed_data() {
        for token in ["br", "zstd", "gzip"] {
            let (tx, rx) = mpsc::channel(16);
            let resp = compress(
                &accept(token),
                &Method::GET,
                html(ResponseBody::Stream(Some(rx))),
            );
            let mut body = resp.into_body();
            let chunk = text(4000);
            tx.send(StreamChunk::Data(chunk.clone())).await.unwrap();
            drop(tx);
            let frame = next_frame(&mut body).await.unwrap().unwrap();
            let prefix = frame.into_data().unwrap();
            assert_eq!(decode_prefix(token, &prefix), chunk, "{token}");
            let err = next_frame(&mut body).await.unwrap().unwrap_err();
            assert!(err.to_string().contains("cut short"), "{token}: {err}");
            assert!(next_frame(&mut body).await.is_none(), "{token}");
        }
    }

    #[tokio::test]
    async fn a_file_read_error_is_passed_on() {
        let items: Vec<std::io::Result<Bytes>> =
            vec![Ok(text(3000)), Err(std::io::Error::other("disk went away"))];
        let file = ResponseBody::File(Box::pin(futures_util::stream::iter(items)), 6000);
        let resp = compress(&accept("gzip"), &Method::GET, html(file));
        let err = collect_err(resp.into_body()).await;
        assert!(err.contains("disk went away"), "{err}");
    }

    async fn collect_err(body: ResponseBody) -> String {
        tokio::time::timeout(Duration::from_secs(5), body.collect())
            .await
            .unwrap()
            .expect_err("an error")
            .to_string()
    }

    fn assert_untouched(resp: &Response<ResponseBody>) {
        assert!(!resp.headers().contains_key(header::CONTENT_ENCODING));
        assert!(!matches!(resp.body(), ResponseBody::Encoded(_)));
    }

    #[tokio::test]
    async fn tiny_bodies_are_sent_as_they_are_but_vary() {
        let small = text(MIN_SIZE as usize - 1);
        let resp = compress(
            &accept("br, gzip"),
            &Method::GET,
            html(ResponseBody::full(small.clone())),
        );
        assert_untouched(&resp);
        assert_eq!(resp.headers()[header::VARY], "Accept-Encoding");
        assert_eq!(collect(resp.into_body()).await, small);

        let file = ResponseBody::File(
            Box::pin(futures_util::stream::iter(vec![Ok(small.clone())])),
            small.len() as u64,
        );
        let resp = compress(&accept("br"), &Method::GET, html(file));
        assert_untouched(&resp);

        let (_tx, rx) = mpsc::channel(1);
        let mut resp = html(ResponseBody::Stream(Some(rx)));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(10));
        let resp = compress(&accept("br"), &Method::GET, resp);
        assert_untouched(&resp);
        assert_eq!(resp.headers()[header::CONTENT_LENGTH], "10");

        let resp = compress(&accept("br"), &Method::GET, html(ResponseBody::Empty));
        assert_untouched(&resp);
    }

    #[tokio::test]
    async fn incompressible_whole_bodies_are_sent_as_they_are() {
        // Pseudo-random bytes labelled as text: compression would only add framing.
        let mut x: u32 = 0x9e37_79b9;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut resp = html(ResponseBody::full(noise.clone()));
        resp.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("\"abc\""));
        let resp = compress(&accept("gzip"), &Method::GET, resp);
        assert_untouched(&resp);
        assert_eq!(resp.headers()[header::ETAG], "\"abc\"");
        assert_eq!(resp.headers()[header::VARY], "Accept-Encoding");
        assert_eq!(collect(resp.into_body()).await, noise);
    }

    #[test]
    fn responses_that_must_not_be_transformed_are_untouched() {
        let body = || ResponseBody::full(text(5000));
        let ae = accept("gzip, br");

        let mut r = html(body());
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let r = compress(&ae, &Method::GET, r);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(!r.headers().contains_key(header::VARY), "already encoded");

        for ct in ["image/png", "application/octet-stream", "video/mp4"] {
            let r = compress(&ae, &Method::GET, response(ct, body()));
            assert_untouched(&r);
            assert!(!r.headers().contains_key(header::VARY), "{ct}");
        }

        let r = compress(&ae, &Method::GET, Response::new(body()));
        assert_untouched(&r);

        for cc in [
            "no-transform",
            "public, No-Transform",
            "max-age=60,no-transform",
        ] {
            let mut r = html(body());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, cc.parse().unwrap());
            let r = compress(&ae, &Method::GET, r);
            assert_untouched(&r);
            assert!(!r.headers().contains_key(header::VARY), "{cc}");
        }

        for status in [
            StatusCode::NO_CONTENT,
            StatusCode::PARTIAL_CONTENT,
            StatusCode::NOT_MODIFIED,
            StatusCode::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::MOVED_PERMANENTLY,
        ] {
            let mut r = html(body());
            *r.status_mut() = status;
            let r = compress(&ae, &Method::GET, r);
            assert_untouched(&r);
        }

        let mut r = html(body());
        r.headers_mut()
            .insert(header::CONTENT_RANGE, "bytes 0-4999/9000".parse().unwrap());
        assert_untouched(&compress(&ae, &Method::GET, r));

        // Other 2xx statuses are compressed.
        let mut r = html(body());
        *r.status_mut() = StatusCode::CREATED;
        let r = compress(&ae, &Method::POST, r);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "br");
    }

    #[test]
    fn head_responses_are_not_encoded_but_vary() {
        let mut r = html(ResponseBody::Empty);
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(50_000));
        r.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        let r = compress(&accept("br, gzip"), &Method::HEAD, r);
        assert_untouched(&r);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "50000");
        assert_eq!(r.headers()[header::ETAG], "\"v1\"");
        assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
    }

    #[test]
    fn vary_is_added_when_the_client_accepts_no_coding() {
        for ae in [None, Some("identity"), Some("deflate"), Some("*;q=0")] {
            let h = ae.map_or_else(HeaderMap::new, accept);
            let r = compress(&h, &Method::GET, html(ResponseBody::full(text(5000))));
            assert_untouched(&r);
            assert_eq!(r.headers()[header::VARY], "Accept-Encoding", "{ae:?}");
        }
    }

    #[test]
    fn vary_is_merged_not_duplicated() {
        let cases: &[(&[&str], &str)] = &[
            (&["Cookie"], "Cookie, Accept-Encoding"),
            (&["Cookie", "Origin"], "Cookie, Origin, Accept-Encoding"),
            (&["Cookie, accept-encoding"], "Cookie, accept-encoding"),
            (&["Accept-Encoding"], "Accept-Encoding"),
            (&["*"], "*"),
            (&[" , Origin ,"], "Origin, Accept-Encoding"),
        ];
        for (existing, want) in cases {
            let mut r = html(ResponseBody::full(text(5000)));
            for v in *existing {
                r.headers_mut().append(header::VARY, v.parse().unwrap());
            }
            let r = compress(&accept("gzip"), &Method::GET, r);
            assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
            let all: Vec<_> = r.headers().get_all(header::VARY).iter().collect();
            assert_eq!(all.len(), 1, "{existing:?}");
            assert_eq!(all[0], *want, "{existing:?}");
        }
    }

    #[test]
    fn strong_etags_become_weak_when_the_body_is_encoded() {
        for (etag, want) in [
            ("\"5f3a-1c2\"", "W/\"5f3a-1c2\""),
            ("W/\"already-weak\"", "W/\"already-weak\""),
        ] {
            let mut r = html(ResponseBody::full(text(5000)));
            r.headers_mut().insert(header::ETAG, etag.parse().unwrap());
            let r = compress(&accept("br"), &Method::GET, r);
            assert_eq!(r.headers()[header::CONTENT_ENCODING], "br");
            assert_eq!(r.headers()[header::ETAG], want);
        }
        // Streams too.
        let (_tx, rx) = mpsc::channel(1);
        let mut r = html(ResponseBody::Stream(Some(rx)));
        r.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("\"s\""));
        let r = compress(&accept("zstd"), &Method::GET, r);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "zstd");
        assert_eq!(r.headers()[header::ETAG], "W/\"s\"");
    }

    #[test]
    fn an_encoded_response_is_not_encoded_twice() {
        let (_tx, rx) = mpsc::channel(1);
        let once = compress(
            &accept("gzip"),
            &Method::GET,
            html(ResponseBody::Stream(Some(rx))),
        );
        let mut again = once;
        again.headers_mut().remove(header::CONTENT_ENCODING);
        let again = compress(&accept("gzip"), &Method::GET, again);
        assert!(!again.headers().contains_key(header::CONTENT_ENCODING));
    }
}
