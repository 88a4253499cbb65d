//! A Loki push receiver for the data-path tests. No Loki server can be installed on the test
//! machine (no container runtime, not in Debian or PyPI), so this implements the part of
//! Loki's API that Vector's `loki` sink uses: `GET /ready` (the healthcheck) and
//! `POST /loki/api/v1/push` with a snappy-compressed protobuf `PushRequest` (Loki's
//! `logproto`, fields as in `pkg/push/push.proto`), decoded here field by field. Every push is
//! kept with its tenant and authorization headers, so tests assert on what Vector really sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    /// Prometheus-style label set, e.g. `{namespace="ws", pod="api"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<prost_types_timestamp::Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPair>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`, declared here to avoid a dependency for two fields.
pub mod prost_types_timestamp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// One log line as received.
#[derive(Debug, Clone)]
pub struct Line {
    pub tenant: Option<String>,
    pub authorization: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub line: String,
}

/// The receiver on a loopback port; `lines()` is everything pushed so far.
pub struct Loki {
    pub port: u16,
    received: Arc<Mutex<Vec<Line>>>,
}

impl Loki {
    /// Listen on `port` (0: any free port).
    pub fn start(port: u16) -> Loki {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve(conn, &sink));
            }
        });
        Loki { port, received }
    }

    pub fn lines(&self) -> Vec<Line> {
        self.received.lock().unwrap().clone()
    }
}

fn serve(conn: std::net::TcpStream, sink: &Mutex<Vec<Line>>) {
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = std::collections::BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let status = if request_line.starts_with("GET /ready") {
            "200 OK"
        } else if request_line.starts_with("POST /loki/api/v1/push") {
            match decode(&body) {
                Ok(req) => {
                    let mut lines = sink.lock().unwrap();
                    for s in req.streams {
                        let labels = parse_labels(&s.labels);
                        for e in s.entries {
                            lines.push(Line {
                                tenant: headers.get("x-scope-orgid").cloned(),
                                authorization: headers.get("authorization").cloned(),
                                labels: labels.clone(),
                                metadata: e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect(),
                                line: e.line,
                            });
                        }
                    }
                    "204 No Content"
                }
                Err(_) => "400 Bad Request",
            }
        } else {
            "404 Not Found"
        };
        if write!(out, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

fn decode(body: &[u8]) -> Result<PushRequest, String> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| e.to_string())?;
    PushRequest::decode(raw.as_slice()).map_err(|e| e.to_string())
}

/// `{a="b", c="d"}` (or without the spaces) into a map (values without escaped quotes, enough for the tests).
fn parse_labels(s: &str) -> std::collections::BTreeMap<String, String> {
    s.trim_start_matches('{')
        .trim_end_matches('}')
        .split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}
