//! A minimal HTTP/1.1 client for health probes, load sources and webhooks: one request per
//! connection (`Connection: close`), answers bounded in size. Callers bound it in time.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer read when the body matters.
const MAX_ANSWER: usize = 1 << 20;
/// The most header bytes read when only the status matters.
const MAX_HEAD: usize = 16 * 1024;

/// An `http://host[:port]/path` URL, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host:port` to connect to (port 80 when none is given).
    pub connect: String,
    /// The `Host` header value, as written in the URL.
    pub host: String,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !host.ends_with(']');
    let connect = if has_port { host.to_string() } else { format!("{host}:80") };
    Ok(Url { connect, host: host.to_string(), path: path.to_string() })
}

/// Connects to `url`'s host.
pub async fn connect(url: &Url) -> Result<TcpStream, String> {
    TcpStream::connect(url.connect.as_str()).await.map_err(|e| format!("connect {}: {e}", url.host))
}

/// Sends `request` (head and body) and reads the answer: its status, and its body when
/// `want_body` (otherwise it returns as soon as the status line is in).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
    want_body: bool,
) -> Result<(u16, Option<Vec<u8>>), String> {
    s.write_all(request).await.map_err(|e| format!("send: {e}"))?;
    let limit = if want_body { MAX_ANSWER } else { MAX_HEAD };
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| format!("receive: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        if !want_body && let Some(code) = status_line(&buf) {
            return Ok((code, None));
        }
        if n == 0 {
            break;
        }
        if buf.len() > limit {
            return Err(if want_body {
                "answer over 1 MiB".into()
            } else {
                "response headers too large".into()
            });
        }
    }
    if buf.is_empty() {
        return Err("connection closed before a status line".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err("invalid HTTP answer".into()),
    };
    let code = resp.code.unwrap_or(0);
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value).contains("chunked")
    });
    let body = &buf[head..];
    Ok((code, Some(if chunked { dechunk(body)? } else { body.to_vec() })))
}

/// The status code, once a whole status line has arrived.
fn status_line(buf: &[u8]) -> Option<u16> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..end]).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunked body")?;
        let size_text = String::from_utf8_lossy(&b[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or("truncated chunk")?);
        b = b.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_status_lines_and_chunks() {
        let u = parse_url("http://127.0.0.1:9090/api/v1/query?query=up").unwrap();
        assert_eq!(
            (u.connect.as_str(), u.host.as_str(), u.path.as_str()),
            ("127.0.0.1:9090", "127.0.0.1:9090", "/api/v1/query?query=up")
        );
        assert_eq!(parse_url("http://app.example.com").unwrap().connect, "app.example.com:80");
        assert!(parse_url("https://x/").is_err());
        assert_eq!(status_line(b"HTTP/1.1 503 Busy\r\n"), Some(503));
        assert_eq!(status_line(b"HTTP/1.1 503"), None);
        assert_eq!(status_line(b"SSH-2.0\r\n"), None);
        assert_eq!(dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").unwrap(), b"Wikipedia");
    }
}
