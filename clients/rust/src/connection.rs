//! An async client over TCP.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use throng_protocol::framing::{FrameError, FrameReader};
use throng_protocol::{
    ClientMessage, DecodeError, Hello, Input, PROTOCOL_VERSION, Refusal, ServerMessage, Welcome,
    decode_server_message, encode_frame,
};

/// Largest frame a client accepts (the server announces its own limit in Welcome).
const CLIENT_MAX_FRAME: u32 = 16 << 20;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The server refused the session.
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// The server sent bytes that do not decode.
    #[error("bad frame from server: {0}")]
    Decode(#[from] DecodeError),
    /// The server sent an oversize frame.
    #[error("bad frame from server: {0}")]
    Frame(#[from] FrameError),
    /// The server answered Hello with something other than Welcome or Reject.
    #[error("unexpected answer to Hello: {0:?}")]
    UnexpectedAnswer(Box<ServerMessage>),
}

/// The byte stream of a session: frames out, frames in.
struct Wire {
    stream: TcpStream,
    reader: FrameReader,
    out: Vec<u8>,
    bytes_received: u64,
}

impl Wire {
    async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        self.out.clear();
        encode_frame(message, &mut self.out);
        self.stream.write_all(&self.out).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            if let Some(body) = self.reader.next_frame()? {
                return Ok(decode_server_message(body)?);
            }
            let n = self.stream.read(self.reader.spare()).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.bytes_received += n as u64;
            self.reader.filled(n);
        }
    }
}

/// A connected, welcomed client.
pub struct Client {
    wire: Wire,
    /// The session parameters the server sent.
    pub welcome: Welcome,
}

impl Client {
    /// Connects, logs in as `name` with `secret` (the first login of a name claims it), and
    /// waits for Welcome.
    pub async fn connect(
        addr: SocketAddr,
        name: &str,
        secret: &str,
    ) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Self::handshake(stream, name, secret).await
    }

    /// Sends Hello on an already connected stream and waits for Welcome.
    pub async fn handshake(
        stream: TcpStream,
        name: &str,
        secret: &str,
    ) -> Result<Client, ClientError> {
        let mut wire = Wire {
            stream,
            reader: FrameReader::new(CLIENT_MAX_FRAME),
            out: Vec::new(),
            bytes_received: 0,
        };
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            name: name.to_owned(),
            secret: secret.to_owned(),
        };
        wire.send(&ClientMessage::Hello(hello)).await?;
        match wire.recv().await? {
            ServerMessage::Welcome(welcome) => Ok(Client { wire, welcome }),
            ServerMessage::Reject(refusal) | ServerMessage::Close(refusal) => {
                Err(ClientError::Refused(refusal))
            }
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        self.wire.send(message).await
    }

    /// Sends a movement input.
    pub async fn send_input(&mut self, seq: u32, dir_x: i8, dir_y: i8) -> Result<(), ClientError> {
        self.send(&ClientMessage::Input(Input { seq, dir_x, dir_y }))
            .await
    }

    /// Receives the next message.
    pub async fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        self.wire.recv().await
    }

    /// Bytes received from the server so far (frame prefixes included).
    pub fn bytes_received(&self) -> u64 {
        self.wire.bytes_received
    }

    /// Says Goodbye and closes.
    pub async fn goodbye(mut self) -> Result<(), ClientError> {
        self.send(&ClientMessage::Goodbye).await?;
        self.wire.stream.shutdown().await?;
        Ok(())
    }

    /// This client's own entity id.
    pub fn player_id(&self) -> u32 {
        self.welcome.player_id
    }
}
