//! A CPU stratum client, for the quick-start demo and the integration
//! tests: one connection with the state a miner keeps. Its shares are built
//! and hashed by [`ndas_core::client`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec};

pub use ndas_core::client::{
    grind, hash_share, hash_share_rolled, parse_notify, submit_params, Rolling, Share, Work,
};

/// A stratum connection with the state a miner keeps.
pub struct Client {
    lines: FramedRead<Reader, LinesCodec>,
    writer: Writer,
    next_id: u64,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    pub difficulty: f64,
    pub version_mask: u32,
    /// Jobs received and not yet taken, oldest first.
    pub jobs: VecDeque<Work>,
    /// Other notifications received (e.g. `client.reconnect`).
    pub notifications: Vec<Value>,
}

type Io<T> = std::io::Result<T>;
/// The transport's halves: a TCP socket's, or any other's (a TLS client
/// process's output and input, in the tests of TLS ports).
type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

fn invalid(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Io<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Client::over(Box::new(reader), Box::new(writer)))
    }

    /// A client speaking through `reader` and `writer`.
    pub fn over(reader: Reader, writer: Writer) -> Client {
        Client {
            lines: FramedRead::new(reader, LinesCodec::new_with_max_length(1 << 20)),
            writer,
            next_id: 1,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            difficulty: 1.0,
            version_mask: 0,
            jobs: VecDeque::new(),
            notifications: Vec::new(),
        }
    }

    /// Sends raw bytes (for tests of bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Io<()> {
        self.writer.write_all(bytes).await
    }

    /// Reads one line; `None` when the server closed the connection.
    pub async fn read_message(&mut self) -> Io<Option<Value>> {
        let Some(line) = self.lines.next().await else {
            return Ok(None);
        };
        let line = line.map_err(|e| invalid(e.to_string()))?;
        let message: Value =
            serde_json::from_str(&line).map_err(|e| invalid(format!("{e}: {line}")))?;
        match message["method"].as_str() {
            Some("mining.notify") => self.jobs.push_back(parse_notify(&message["params"])?),
            Some("mining.set_difficulty") => {
                self.difficulty = message["params"][0]
                    .as_f64()
                    .ok_or_else(|| invalid("bad difficulty"))?
            }
            Some("mining.set_version_mask") => {
                self.version_mask =
                    u32::from_str_radix(message["params"][0].as_str().unwrap_or(""), 16)
                        .map_err(|_| invalid("bad mask"))?
            }
            Some(_) => self.notifications.push(message.clone()),
            None => {}
        }
        Ok(Some(message))
    }

    /// Sends a request and returns the whole response (`result` and `error`).
    pub async fn request(&mut self, method: &str, params: Value) -> Io<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "method": method, "params": params}).to_string() + "\n";
        self.writer.write_all(line.as_bytes()).await?;
        loop {
            let message = self
                .read_message()
                .await?
                .ok_or_else(|| invalid("connection closed"))?;
            if message["id"] == json!(id) && message.get("method").is_none() {
                return Ok(message);
            }
        }
    }

    pub async fn subscribe(&mut self, agent: &str) -> Io<Value> {
        let answer = self.request("mining.subscribe", json!([agent])).await?;
        let result = &answer["result"];
        self.extranonce1 = hex::decode(result[1].as_str().unwrap_or(""))
            .map_err(|_| invalid("bad extranonce1"))?;
        self.extranonce2_size = result[2]
            .as_u64()
            .ok_or_else(|| invalid("bad extranonce2 size"))?
            as usize;
        Ok(answer)
    }

    pub async fn configure_version_rolling(&mut self, mask: u32) -> Io<Value> {
        let params = json!([["version-rolling"], {"version-rolling.mask": format!("{mask:08x}"), "version-rolling.min-bit-count": 2}]);
        let answer = self.request("mining.configure", params).await?;
        if let Some(mask) = answer["result"]["version-rolling.mask"].as_str() {
            self.version_mask = u32::from_str_radix(mask, 16).map_err(|_| invalid("bad mask"))?;
        }
        Ok(answer)
    }

    pub async fn authorize(&mut self, user: &str) -> Io<Value> {
        self.request("mining.authorize", json!([user, "x"])).await
    }

    /// Waits for the next job; `None` if none arrives within `timeout`.
    pub async fn next_job(&mut self, timeout: Duration) -> Io<Option<Work>> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.jobs.is_empty() {
            match tokio::time::timeout_at(deadline, self.read_message()).await {
                Err(_) => return Ok(None),
                Ok(message) => {
                    message?.ok_or_else(|| invalid("connection closed"))?;
                }
            }
        }
        Ok(self.jobs.pop_front())
    }

    /// The newest job received so far, reading what has arrived.
    pub fn latest_job(&mut self) -> Option<Work> {
        let latest = self.jobs.pop_back();
        self.jobs.clear();
        latest
    }

    /// Submits a share; returns the whole response.
    pub async fn submit(&mut self, worker: &str, share: &Share) -> Io<Value> {
        self.request("mining.submit", submit_params(worker, share))
            .await
    }
}
