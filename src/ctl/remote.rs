//! The HTTP client of the remote commands (`vfolder`, `bgtask`; SPEC §11): the server's
//! base URL and key, requests carrying `Authorization: Bearer KEY`, the server's error
//! body (`{"error": {"code", "message"}}`) turned into one line, transport failures that
//! name the server, and a reader of Server-Sent Events.
//!
//! Nothing here opens the store. Transfers are streamed: no body is held in memory whole.

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, RequestBuilder, Response, Url};
use std::time::Duration;

use super::{CtlError, RemoteArgs};
use crate::agent::client::ErrorBody;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server and the key to use with it.
#[derive(Debug, Clone)]
pub(super) struct Remote {
    client: reqwest::Client,
    base: Url,
    key: String,
    /// The base URL as messages show it (without a password).
    shown: String,
    /// `--json`: print the server's JSON.
    pub(super) json: bool,
}

impl Remote {
    /// The server of `--server` with the key of `--key`; a URL that is not `http(s)`
    /// or a missing key is a usage error.
    pub(super) fn new(args: &RemoteArgs) -> Result<Self, CtlError> {
        let shown = crate::store::redact_url(&args.server);
        let base = Url::parse(&args.server)
            .map_err(|e| CtlError::Usage(format!("--server {shown}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CtlError::Usage(format!(
                "--server {shown}: expected an http:// or https:// URL"
            )));
        }
        let key = match args.key.as_deref().map(str::trim) {
            Some(k) if !k.is_empty() => k.to_string(),
            _ => {
                return Err(CtlError::Usage(
                    "no API key: pass --key KEY or set SESSIOND_KEY".into(),
                ))
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sessionctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CtlError::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            client,
            shown: shown.trim_end_matches('/').to_string(),
            base,
            key,
            json: args.json,
        })
    }

    /// The server as messages name it.
    pub(super) fn server(&self) -> &str {
        &self.shown
    }

    /// The URL of `segments` under the server's base URL, each segment percent-encoded
    /// (a `/` inside one included). `.` and `..` are refused: a URL cannot carry them
    /// (they would silently be resolved away).
    pub(super) fn url<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a str>,
    ) -> Result<Url, CtlError> {
        let segments: Vec<&str> = segments.into_iter().collect();
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "." | "..")) {
            return Err(CtlError::Usage(format!(
                "'{bad}' cannot be used as a name or a path component"
            )));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| CtlError::Usage(format!("--server {}: not a base URL", self.shown)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A request to `url` with the key.
    pub(super) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url).bearer_auth(&self.key)
    }

    /// Sends a request: a 2xx response is returned, any other is the server's error.
    pub(super) async fn send(&self, request: RequestBuilder) -> Result<Response, CtlError> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.refused(response).await)
        }
    }

    /// Sends a request and reads its JSON answer.
    pub(super) async fn json(
        &self,
        request: RequestBuilder,
    ) -> Result<serde_json::Value, CtlError> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| CtlError::Broken {
            server: self.shown.clone(),
            reason: format!("the answer is not JSON ({e})"),
        })
    }

    /// The error of a non-2xx response: the server's code and message, or the status.
    async fn refused(&self, response: Response) -> CtlError {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => CtlError::Http {
                code: b.error.code,
                message: first_line(&b.error.message),
            },
            Err(_) => CtlError::Http {
                code: format!("http_{}", status.as_u16()),
                message: status
                    .canonical_reason()
                    .unwrap_or("unexpected answer")
                    .to_string(),
            },
        }
    }

    /// A transport failure: the server cannot be reached (connecting failed) or the
    /// exchange broke, with the innermost cause (`Connection refused`, ...).
    pub(super) fn transport(&self, e: &reqwest::Error) -> CtlError {
        let reason = innermost(e);
        if e.is_connect() {
            CtlError::Unreachable {
                server: self.shown.clone(),
                reason,
            }
        } else if e.is_builder() {
            CtlError::Usage(format!("cannot build the request: {reason}"))
        } else {
            CtlError::Broken {
                server: self.shown.clone(),
                reason,
            }
        }
    }
}

/// The first line of a message (error lines stay one line).
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_string()
}

/// The first line of the innermost cause of an error.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    first_line(&crate::agent::client::innermost(e))
}

/// A progress bar in bytes on stderr (not drawn when stderr is not a terminal).
pub(super) fn byte_bar(total: u64) -> Result<ProgressBar, CtlError> {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "[{bar:40}] {bytes}/{total_bytes}  {bytes_per_sec}  ETA {eta}  {wide_msg}",
        )
        .map_err(|e| CtlError::Other(e.to_string()))?
        .progress_chars("=> "),
    );
    Ok(bar)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SseFrame {
    /// `event:` (`message` when the frame names none).
    pub(super) event: String,
    /// `data:` lines, joined with `\n`.
    pub(super) data: String,
    /// The last `id:` seen on the stream so far (it carries over to later frames).
    pub(super) id: Option<String>,
}

/// An incremental parser of `text/event-stream`: bytes in, complete frames out.
#[derive(Debug, Default)]
pub(super) struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Option<String>,
    id: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns the frames they complete (a frame ends with a blank line;
    /// one cut off by the end of the stream is never returned, as the SSE standard says).
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            if let Some(frame) = self.line(line.trim_end_matches(['\n', '\r'])) {
                frames.push(frame);
            }
        }
        frames
    }

    /// One line: a field, a comment, or the blank line that ends a frame.
    fn line(&mut self, line: &str) -> Option<SseFrame> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = self.data.take();
            if event.is_empty() && data.is_none() {
                return None;
            }
            return Some(SseFrame {
                event: if event.is_empty() {
                    "message".into()
                } else {
                    event
                },
                data: data.unwrap_or_default(),
                id: self.id.clone(),
            });
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

/// Frames of an event-stream response, read as they arrive.
#[derive(Debug)]
pub(super) struct SseReader {
    response: Response,
    parser: SseParser,
    ready: std::collections::VecDeque<SseFrame>,
    idle: Duration,
}

impl SseReader {
    /// Reads `response`; a stream silent for longer than `idle` (the server sends a
    /// keep-alive comment every 15 s) counts as broken.
    pub(super) fn new(response: Response, idle: Duration) -> Self {
        Self {
            response,
            parser: SseParser::default(),
            ready: Default::default(),
            idle,
        }
    }

    /// The next frame; `None` when the stream has ended.
    pub(super) async fn next(&mut self, remote: &Remote) -> Result<Option<SseFrame>, CtlError> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            let chunk = tokio::time::timeout(self.idle, self.response.chunk())
                .await
                .map_err(|_| CtlError::Broken {
                    server: remote.server().to_string(),
                    reason: format!("nothing received for {} s", self.idle.as_secs()),
                })?
                .map_err(|e| remote.transport(&e))?;
            match chunk {
                Some(bytes) => self.ready.extend(self.parser.feed(&bytes)),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[&str]) -> Vec<SseFrame> {
        let mut p = SseParser::default();
        input
            .iter()
            .flat_map(|chunk| p.feed(chunk.as_bytes()))
            .collect()
    }

    fn frame(event: &str, data: &str, id: Option<&str>) -> SseFrame {
        SseFrame {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let got = frames(&[
            "id: 7\nevent: bgtask_upd",
            "ated\ndata: {\"a\":1}\n",
            "\n: keep-alive\n\nevent: server_close\r\ndata: {}\r\n\r\n",
        ]);
        assert_eq!(
            got,
            vec![
                frame("bgtask_updated", "{\"a\":1}", Some("7")),
                frame("server_close", "{}", Some("7")),
            ]
        );
    }

    #[test]
    fn data_lines_are_joined_and_a_frame_cut_off_is_dropped() {
        let got = frames(&["data: one\ndata:two\n\nevent: bgtask_done\ndata: {}"]);
        assert_eq!(got, vec![frame("message", "one\ntwo", None)]);
    }

    #[test]
    fn a_url_never_carries_dot_segments() {
        let remote = Remote::new(&RemoteArgs {
            server: "http://127.0.0.1:8080/base/".into(),
            key: Some("k".into()),
            json: false,
        });
        let Ok(remote) = remote else {
            panic!("a valid server URL was refused")
        };
        let url = remote.url(["v1", "vfolders", "a b", "files", "x/y"]);
        assert_eq!(
            url.ok().map(String::from).as_deref(),
            Some("http://127.0.0.1:8080/base/v1/vfolders/a%20b/files/x%2Fy")
        );
        assert!(matches!(
            remote.url(["v1", "vfolders", ".."]),
            Err(CtlError::Usage(_))
        ));
    }
}
