//! Just enough HTTP/1.1 for the fake: a thread per connection, keep-alive, `Content-Length`
//! or chunked request bodies.
//!
//! Why not tiny_http, already a dev-dependency? Checked against the source of tiny_http 0.12,
//! the verdict still holds, for two reasons:
//! - Its connections outlive the server: dropping a `Server` only stops the accept thread.
//!   Each connection's task keeps reading the socket with no timeout and queues the next
//!   request for a `recv` nobody calls any more, so a client that reuses a kept-alive
//!   connection after shutdown waits for its whole timeout.
//! - Its task pool can queue a new connection behind busy ones: a task serves a whole
//!   keep-alive connection, and a worker still counts as idle between being woken for one
//!   connection and taking it, so a second connection arriving then is queued until some
//!   connection closes, and a delayed answer holds up an unrelated request.
//!
//! Here every connection has its own thread, idle connections close within [`POLL`] of
//! shutdown, and a request that arrives after it is not answered.

use super::RecordedRequest;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Bodies past this are answered 413: the client never sends more than a token.
const MAX_BODY: u64 = 1024 * 1024;

/// Request line plus headers; far above what any client sends.
const MAX_HEAD: u64 = 64 * 1024;

/// A client that stalls mid-request gives up its thread after this.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle keep-alive connection is closed after this: longer than clients keep idle
/// connections (ureq: 15 s), so the fake never closes one a client is about to reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often an idle connection checks for shutdown.
const POLL: Duration = Duration::from_millis(50);

/// Why a request could not be read.
pub(super) enum ReadError {
    /// The peer closed or stalled before a whole request head: nothing to answer.
    Gone,
    /// Not HTTP/1.x: answered 400 without reaching any endpoint.
    Malformed(&'static str),
}

/// What is wrong with a body whose request head was fine: `(status, message)`.
pub(super) type BodyProblem = (u16, &'static str);

/// What a connection hands the fake: a request (with what is wrong with its body, if
/// anything), or why the request could not be read.
pub(super) type Incoming = Result<(RecordedRequest, Option<BodyProblem>), &'static str>;

/// An HTTP answer; `headers` are sent as given, then `Content-Length` and `Connection`.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

/// An answer, and how to send it.
struct Outgoing {
    answer: Answer,
    /// Answering `HEAD`: the head only.
    head_only: bool,
    keep_alive: bool,
}

/// Answers the requests on `stream` with `respond` until the client closes, asks to close,
/// idles for [`IDLE_TIMEOUT`], sends something unreadable, or `is_down()`.
///
/// With `close_idle_after`, a request arriving on a connection that idled that long after an
/// earlier answer is not answered: the connection closes, as when a server's idle timeout
/// fires while the request is on its way.
pub(super) fn serve(
    stream: TcpStream,
    is_down: impl Fn() -> bool,
    close_idle_after: Option<Duration>,
    mut respond: impl FnMut(Incoming) -> Answer,
) {
    // Best effort: a failure here only means the socket has no timeout or waits for Nagle.
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(&stream);
    let mut answered = false;
    while let Some(idled) = wait_for_request(&stream, &mut reader, &is_down) {
        if std::mem::replace(&mut answered, true) && close_idle_after.is_some_and(|l| idled >= l) {
            break;
        }
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let Some(reply) = next_reply(&mut reader, &stream, &mut respond) else {
            return;
        };
        let keep_alive = reply.keep_alive && !is_down();
        if let Err(e) = write_answer(&mut &stream, &reply.answer, reply.head_only, keep_alive) {
            log::debug!("fake controller: the client went away: {e}");
            return;
        }
        if !keep_alive {
            break;
        }
    }
    close(&stream, reader);
}

/// Reads the next request and answers it; `None` when the client went away.
fn next_reply(
    reader: &mut BufReader<&TcpStream>,
    stream: &TcpStream,
    respond: &mut impl FnMut(Incoming) -> Answer,
) -> Option<Outgoing> {
    match read_request(reader, &mut &*stream) {
        Ok((request, problem, keep_alive)) => Some(Outgoing {
            head_only: request.method == "HEAD",
            // After a bad body we no longer know where the next request starts.
            keep_alive: keep_alive && problem.is_none(),
            answer: respond(Ok((request, problem))),
        }),
        Err(ReadError::Malformed(why)) => Some(Outgoing {
            answer: respond(Err(why)),
            head_only: false,
            keep_alive: false,
        }),
        Err(ReadError::Gone) => None,
    }
}

/// Closes the connection after its last answer.
fn close(stream: &TcpStream, reader: BufReader<&TcpStream>) {
    let _ = stream.shutdown(Shutdown::Write);
    // Closing with unread input makes the kernel reset the connection, which can destroy
    // the answer before the client reads it (e.g. after a 413). Drain, within bounds.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = io::copy(&mut reader.take(2 * MAX_BODY), &mut io::sink());
}

/// Waits until the next request starts, and says how long that took; `None` when the
/// connection should close instead. Polls, so an idle connection notices shutdown within
/// [`POLL`].
fn wait_for_request(
    stream: &TcpStream,
    reader: &mut BufReader<&TcpStream>,
    is_down: impl Fn() -> bool,
) -> Option<Duration> {
    let _ = stream.set_read_timeout(Some(POLL));
    let idle_since = Instant::now();
    loop {
        match reader.fill_buf() {
            Ok(buffered) => {
                return (!buffered.is_empty() && !is_down()).then(|| idle_since.elapsed());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if is_down() || idle_since.elapsed() >= IDLE_TIMEOUT {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

/// A request, what is wrong with its body (if anything), and whether the connection may be
/// kept alive after it. `writer` receives the `100 Continue` a client may wait for.
fn read_request(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
) -> Result<(RecordedRequest, Option<BodyProblem>, bool), ReadError> {
    let (mut request, version) = read_head(reader)?;
    let keep_alive = keeps_alive(&version, request.header("connection"));
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let _ = writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| writer.flush());
    }
    match read_body(reader, &request) {
        Ok(body) => {
            request.body = body;
            Ok((request, None, keep_alive))
        }
        Err(problem) => Ok((request, Some(problem), keep_alive)),
    }
}

/// The request line and headers, as a request without a body, and the HTTP version.
fn read_head(reader: &mut impl BufRead) -> Result<(RecordedRequest, String), ReadError> {
    let mut budget = MAX_HEAD;
    let line = read_line(reader, &mut budget)?.ok_or(ReadError::Gone)?;
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(ReadError::Malformed("malformed request line"));
    };
    if !is_token(method) || !is_token(target) || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(ReadError::Malformed("malformed request line"));
    }
    let headers = read_headers(reader, &mut budget)?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    };
    let request = RecordedRequest {
        method: method.to_owned(),
        path,
        query,
        headers,
        body: Vec::new(),
    };
    Ok((request, version.to_owned()))
}

/// Non-empty and printable ASCII without spaces: a method, target or header name.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The header lines up to the empty line, names lowercased, values trimmed.
fn read_headers(
    reader: &mut impl BufRead,
    budget: &mut u64,
) -> Result<Vec<(String, String)>, ReadError> {
    let mut headers = Vec::new();
    loop {
        let line =
            read_line(reader, budget)?.ok_or(ReadError::Malformed("request head cut short"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        let Some((name, value)) = line.split_once(':').filter(|(name, _)| is_token(name)) else {
            return Err(ReadError::Malformed("malformed header"));
        };
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
}

/// Whether the connection stays open after this request: HTTP/1.1 unless the client says
/// `close`, HTTP/1.0 only if it asks for `keep-alive`.
fn keeps_alive(version: &str, connection: Option<&str>) -> bool {
    let connection = connection.map(str::to_ascii_lowercase);
    match (version, connection.as_deref()) {
        (_, Some(c)) if c.contains("close") => false,
        ("HTTP/1.0", c) => c.is_some_and(|c| c.contains("keep-alive")),
        _ => true,
    }
}

/// The body `request`'s head announces.
fn read_body(reader: &mut impl BufRead, request: &RecordedRequest) -> Result<Vec<u8>, BodyProblem> {
    match (
        request.header("transfer-encoding"),
        request.header("content-length"),
    ) {
        (Some(te), _) if te.eq_ignore_ascii_case("chunked") => read_chunked(reader),
        (Some(_), _) => Err((501, "unsupported transfer-encoding")),
        (None, Some(len)) => match len.parse::<u64>() {
            Ok(len) if len > MAX_BODY => Err((413, "request body too large")),
            Ok(len) => read_exact(reader, len),
            Err(_) => Err((400, "malformed content-length")),
        },
        (None, None) => Ok(Vec::new()),
    }
}

/// One CRLF- (or LF-) terminated line, without its terminator; `None` at a clean EOF.
fn read_line(reader: &mut impl BufRead, budget: &mut u64) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let n = reader
        .take(*budget)
        .read_until(b'\n', &mut line)
        .map_err(|_| ReadError::Gone)?;
    *budget -= n as u64;
    match line.pop() {
        None => Ok(None),
        Some(b'\n') => {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            Ok(Some(String::from_utf8_lossy(&line).into_owned()))
        }
        Some(_) if *budget == 0 => Err(ReadError::Malformed("request head too large")),
        Some(_) => Err(ReadError::Gone),
    }
}

fn read_exact(reader: &mut impl BufRead, len: u64) -> Result<Vec<u8>, BodyProblem> {
    let mut body = Vec::new();
    match reader.take(len).read_to_end(&mut body) {
        Ok(n) if n as u64 == len => Ok(body),
        _ => Err((400, "request body cut short")),
    }
}

const MALFORMED_CHUNKED: BodyProblem = (400, "malformed chunked body");

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, BodyProblem> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let size = chunk_size(&chunk_line(reader, &mut budget)?)?;
        if size == 0 {
            // Trailers, up to the empty line that ends the body.
            while !chunk_line(reader, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err((413, "request body too large"));
        }
        body.extend(read_exact(reader, size)?);
        if !chunk_line(reader, &mut budget)?.is_empty() {
            return Err(MALFORMED_CHUNKED);
        }
    }
}

/// A line of a chunked body; a missing one (or one past the budget) makes it malformed.
fn chunk_line(reader: &mut impl BufRead, budget: &mut u64) -> Result<String, BodyProblem> {
    read_line(reader, budget)
        .ok()
        .flatten()
        .ok_or(MALFORMED_CHUNKED)
}

/// The size on a chunk's first line (hex digits, then any `;extension`).
fn chunk_size(line: &str) -> Result<u64, BodyProblem> {
    let size = line.split(';').next().unwrap_or_default().trim();
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MALFORMED_CHUNKED);
    }
    u64::from_str_radix(size, 16).map_err(|_| (413, "request body too large"))
}

fn write_answer(
    writer: &mut impl Write,
    answer: &Answer,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        if !may_send(name, value) {
            log::warn!("fake controller: not sending header {name:?}");
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
        answer.body.len()
    ));
    // One write, so the answer leaves in as few segments as it can.
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&answer.body);
    }
    writer.write_all(&bytes)?;
    writer.flush()
}

/// Whether a header given in an [`Answer`] is sent: framing is the fake's own to write, and
/// a CR or LF would let a header split the answer.
fn may_send(name: &str, value: &str) -> bool {
    let framing = ["content-length", "connection", "transfer-encoding"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f));
    let unsendable =
        name.is_empty() || name.contains([':', '\r', '\n', ' ']) || value.contains(['\r', '\n']);
    !framing && !unsendable
}

/// The reason phrase of `status`, also the `title` of Miso error bodies.
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8]) -> Incoming {
        let mut sink = Vec::new();
        let read = read_request(&mut &raw[..], &mut sink);
        read.map(|(request, problem, _)| (request, problem))
            .map_err(|e| match e {
                ReadError::Gone => "gone",
                ReadError::Malformed(why) => why,
            })
    }

    #[test]
    fn reads_head_query_and_sized_or_chunked_bodies() {
        let (request, problem) =
            read(b"POST /a/b?x=1 HTTP/1.1\r\nX-Thing:  v \r\nContent-Length: 3\r\n\r\nabcEXTRA")
                .ok()
                .unwrap();
        assert!(problem.is_none());
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/a/b")
        );
        assert_eq!(request.query.as_deref(), Some("x=1"));
        assert_eq!(request.header("x-thing"), Some("v"));
        assert_eq!(request.body, b"abc");

        let chunked = b"POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n3;ext\nabc\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
        assert_eq!(read(chunked).ok().unwrap().0.body, b"abcde");
    }

    #[test]
    fn malformed_requests_are_told_apart() {
        assert_eq!(read(b"").err(), Some("gone"));
        assert_eq!(
            read(b"GET / HTTP/1.1\r\nHost: x\r\n").err(),
            Some("request head cut short")
        );
        for junk in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(read(junk).err(), Some("malformed request line"));
        }
        assert_eq!(
            read(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n").err(),
            Some("malformed header")
        );
        let huge = [b"GET /".as_slice(), &[b'a'; 70_000]].concat();
        assert_eq!(read(&huge).err(), Some("request head too large"));

        let problem = |raw: &[u8]| read(raw).ok().unwrap().1.map(|p| p.0);
        assert_eq!(
            problem(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            problem(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab"),
            Some(400)
        );
        assert_eq!(
            problem(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            problem(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Some(501)
        );
        for chunked in [
            &b"+3\r\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3\r\nab",
        ] {
            let raw = [
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                chunked,
            ]
            .concat();
            assert_eq!(
                problem(&raw),
                Some(400),
                "{:?}",
                String::from_utf8_lossy(chunked)
            );
        }
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n";
        assert_eq!(problem(raw), Some(413));
    }

    #[test]
    fn answers_frame_themselves_and_drop_unsendable_headers() {
        let answer = Answer {
            status: 429,
            headers: vec![
                ("Retry-After".into(), "2".into()),
                ("Content-Length".into(), "999".into()),
                ("X-Evil".into(), "a\r\nSet-Cookie: x".into()),
            ],
            body: b"{}".to_vec(),
        };
        let mut out = Vec::new();
        write_answer(&mut out, &answer, false, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }
}
