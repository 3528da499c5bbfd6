//! HTTP/1.1 requests written byte for byte over a plain TCP connection, for what no HTTP client
//! would send: invalid UTF-8 in the path, control characters in headers, lying or absurd
//! `Content-Length`, malformed chunking.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long an answer may take before the request counts as hanging the server. Generous: it
/// only tells a hang from an answer, under a loaded machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// One request as sent on the wire.
#[derive(Clone)]
pub struct Request {
    pub method: String,
    pub target: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Written as given instead of the body's length; `Some(None)` sends no `Content-Length`.
    pub content_length: Option<Option<Vec<u8>>>,
}

impl Request {
    pub fn new(method: &str, target: impl Into<Vec<u8>>) -> Self {
        Self {
            method: method.to_owned(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
            content_length: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Replaces every header named `name` (case-insensitively) with one of `value`.
    pub fn set_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.header(name, value)
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn content_length(mut self, value: Option<&[u8]>) -> Self {
        self.content_length = Some(value.map(<[u8]>::to_vec));
        self
    }

    fn bytes(&self, host: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\nConnection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let length = match &self.content_length {
            None => (!self.body.is_empty()).then(|| self.body.len().to_string().into_bytes()),
            Some(given) => given.clone(),
        };
        if let Some(length) = length {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(&length);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// What came back: the status and the whole response as read until the server closed.
pub struct Reply {
    pub status: u16,
    pub bytes: Vec<u8>,
}

impl Reply {
    /// The response head, lossily as text.
    pub fn head(&self) -> String {
        let end = find(&self.bytes, b"\r\n\r\n").unwrap_or(self.bytes.len());
        String::from_utf8_lossy(&self.bytes[..end]).into_owned()
    }

    pub fn body(&self) -> String {
        let start = find(&self.bytes, b"\r\n\r\n").map_or(self.bytes.len(), |i| i + 4);
        String::from_utf8_lossy(&self.bytes[start..]).into_owned()
    }

    /// The values of the `name` headers.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head()
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` to `address` (`host:port`) and reads the answer while still writing (a
/// server may answer an oversized body before reading it). `Err` says why there was no
/// answer: a dropped connection (as a panicking handler leaves it) or none in time.
pub async fn send(address: &str, request: &Request) -> Result<Reply, String> {
    exchange(address, request, true).await
}

/// Sends `request` like [`send`] but keeps the connection open, as a client waiting for its
/// answer does, and reads until the answer's `Content-Length` is in: what it proves is that the
/// server answers without waiting for the client to hang up.
pub async fn send_holding_open(address: &str, request: &Request) -> Result<Reply, String> {
    exchange(address, request, false).await
}

/// Whether `answer` holds a whole response head and as many body bytes as it declares.
fn complete(answer: &[u8]) -> bool {
    let Some(end) = find(answer, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    length.is_some_and(|length| answer.len() >= end + 4 + length)
}

async fn exchange(address: &str, request: &Request, half_close: bool) -> Result<Reply, String> {
    let exchange = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut reader, mut writer) = stream.into_split();
        let bytes = request.bytes(address);
        // The server may stop reading once it has answered: a failed write is not a failure.
        let write = async move {
            let _ = writer.write_all(&bytes).await;
            // Then says it has sent everything (half-close): a server still reading a body that
            // has no declared end, or a longer one than was sent, sees the end instead of
            // waiting for bytes that will never come.
            if half_close {
                let _ = writer.shutdown().await;
            }
            writer
        };
        let read = async {
            let mut answer = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
                if !half_close && complete(&answer) {
                    break;
                }
            }
            answer
        };
        let (_writer, answer) = tokio::join!(write, read);
        Ok::<_, String>(answer)
    };
    let answer = tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .map_err(|_| format!("no answer within {} s", ANSWER_WITHIN.as_secs()))??;
    let status = answer
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "connection dropped without an answer ({} bytes: {:?})",
                answer.len(),
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            )
        })?;
    Ok(Reply {
        status,
        bytes: answer,
    })
}
