//! A minimal WebSocket client for the tests, over a real loopback socket: the upgrade
//! request written by hand (so tests can also send wrong ones), masked frames out, the
//! server's frames read with the protocol crate's `WsReader`.

use std::net::SocketAddr;

use throng::protocol::websocket::{self, Opcode, WsFrame, WsReader};
use throng::protocol::{
    ClientMessage, FRAME_HEADER_BYTES, ServerMessage, decode_server_message, frame_bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::HANG_GUARD;

/// The mask every test frame uses (any mask is valid; the server must unmask).
pub const MASK: [u8; 4] = [0x1f, 0x2e, 0x3d, 0x4c];

/// A valid upgrade request for `path` with `extra` header lines (each ending in `\r\n`).
pub fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Sends `request` and reads the HTTP response head (up to the blank line) and what follows
/// it; returns the status code, the head, and the socket.
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String, TcpStream) {
    http_bytes(addr, request.as_bytes()).await
}

/// Like [`http`], with the request (and anything pipelined behind it) as bytes.
pub async fn http_bytes(addr: SocketAddr, request: &[u8]) -> (u16, String, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(HANG_GUARD, stream.read(&mut byte))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n == 1, "connection closed before the response head ended");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("an ASCII head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, head, stream)
}

/// A WebSocket player's socket after a successful upgrade.
pub struct WsClient {
    pub stream: TcpStream,
    reader: WsReader,
}

/// What a WebSocket client read.
#[derive(Debug)]
pub enum WsRead {
    /// A protocol message.
    Message(ServerMessage),
    /// A close frame with its code.
    Close(Option<u16>),
    /// The socket ended without a close frame.
    Eof,
}

impl WsClient {
    /// Upgrades a connection to `addr`'s `/ws`; panics unless answered 101.
    pub async fn upgrade(addr: SocketAddr) -> WsClient {
        Self::upgrade_pipelining(addr, &[]).await
    }

    /// Upgrades, with `behind` (frames) sent in the same write as the upgrade request,
    /// before the answer; panics unless answered 101.
    pub async fn upgrade_pipelining(addr: SocketAddr, behind: &[u8]) -> WsClient {
        let request = [upgrade_request(addr, "/ws", "").as_bytes(), behind].concat();
        let (status, head, stream) = http_bytes(addr, &request).await;
        assert_eq!(status, 101, "{head}");
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "the RFC accept key: {head}"
        );
        WsClient {
            stream,
            reader: WsReader::server_frames(1 << 20),
        }
    }

    /// Upgrades and logs in as `name`: Hello, then the Welcome.
    pub async fn join(addr: SocketAddr, name: &str) -> (WsClient, throng::protocol::Welcome) {
        let mut client = Self::upgrade(addr).await;
        client
            .send(&ClientMessage::Hello(throng::protocol::Hello {
                protocol_version: throng::protocol::PROTOCOL_VERSION,
                name: name.into(),
                secret: super::secret_of(name),
            }))
            .await;
        match client.read().await {
            WsRead::Message(ServerMessage::Welcome(welcome)) => (client, welcome),
            other => panic!("expected a Welcome, got {other:?}"),
        }
    }

    /// Sends one protocol message as one masked binary frame.
    pub async fn send(&mut self, message: &ClientMessage) {
        let frame = frame_bytes(message);
        self.send_frame(Opcode::Binary, &frame[FRAME_HEADER_BYTES..])
            .await;
    }

    /// Sends one masked frame of `opcode`.
    pub async fn send_frame(&mut self, opcode: Opcode, payload: &[u8]) {
        self.send_raw(&websocket::client_frame(opcode, payload, MASK))
            .await;
    }

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads the next protocol message or close (pongs and pings skipped).
    pub async fn read(&mut self) -> WsRead {
        loop {
            match self.reader.next_frame().expect("a valid server frame") {
                Some(WsFrame::Binary(body)) => {
                    return WsRead::Message(decode_server_message(body).expect("a message"));
                }
                Some(WsFrame::Close(code)) => return WsRead::Close(code),
                Some(WsFrame::Ping(_) | WsFrame::Pong) => continue,
                None => {}
            }
            let n = tokio::time::timeout(HANG_GUARD, self.stream.read(self.reader.spare()))
                .await
                .expect("a frame in time")
                .unwrap_or(0);
            if n == 0 {
                return WsRead::Eof;
            }
            self.reader.filled(n);
        }
    }

    /// Reads until a close frame or the end; returns the close code and the protocol's last
    /// message (Reject or Close) if one came first.
    pub async fn read_to_close(&mut self) -> (Option<u16>, Option<ServerMessage>) {
        let mut last = None;
        loop {
            match self.read().await {
                WsRead::Message(message @ (ServerMessage::Close(_) | ServerMessage::Reject(_))) => {
                    last = Some(message);
                }
                WsRead::Message(_) => {}
                WsRead::Close(code) => return (code, last),
                WsRead::Eof => return (None, last),
            }
        }
    }
}
