//! The admin API's client, for the CLI (`baton drain`, `baton migrate`,
//! `baton status --admin`): one request, one connection, the status and the
//! body back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::AdminError;

/// How long the client waits to connect, and for each read or write. A drain
/// answers once it has started, so this is generous.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer the client accepts (a `/metrics` of a big box is tens of
/// KiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Sends `method path` to the admin API at `addr` with the bearer `token`;
/// returns the status code and the body. Any status is `Ok`: the caller
/// decides what a 401 or a 409 means to its user.
pub fn request(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
) -> Result<(u16, String), AdminError> {
    if !path.starts_with('/')
        || method.is_empty()
        || [method, path, token]
            .iter()
            .any(|s| s.contains(['\r', '\n', ' ']))
    {
        return Err(AdminError::BadRequest(format!("{method} {path}")));
    }
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|source| AdminError::Connect { addr, source })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    // RFC 9110 §8.6: a POST without a body should still say Content-Length: 0.
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nUser-Agent: baton\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE as u64 + 1).read_to_end(&mut raw)?;
    if raw.len() > MAX_RESPONSE {
        return Err(AdminError::TooLarge);
    }
    parse_response(&raw)
}

/// Status and body of a whole `Connection: close` response.
fn parse_response(raw: &[u8]) -> Result<(u16, String), AdminError> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut fields);
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(AdminError::Truncated),
        Err(err) => return Err(AdminError::BadResponse(err.to_string())),
    };
    let status = resp
        .code
        .ok_or_else(|| AdminError::BadResponse("no status code".into()))?;
    let body = raw.get(head_len..).unwrap_or_default();
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| AdminError::BadResponse("bad Content-Length".into()))
        })
        .transpose()?;
    let body = match length {
        Some(n) => body.get(..n).ok_or(AdminError::Truncated)?,
        None => body,
    };
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}
