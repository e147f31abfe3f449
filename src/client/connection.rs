//! An async client over TCP.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::framing::{FrameError, FrameReader};
use crate::protocol::{
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

/// A connected, welcomed client.
pub struct Client {
    stream: TcpStream,
    reader: FrameReader,
    out: Vec<u8>,
    /// The session parameters the server sent.
    pub welcome: Welcome,
}

impl Client {
    /// Connects, sends Hello with `name`, and waits for Welcome.
    pub async fn connect(addr: SocketAddr, name: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Self::handshake(stream, name).await
    }

    /// Sends Hello on an already connected stream and waits for Welcome.
    pub async fn handshake(stream: TcpStream, name: &str) -> Result<Client, ClientError> {
        let mut client = Client {
            stream,
            reader: FrameReader::new(CLIENT_MAX_FRAME),
            out: Vec::new(),
            welcome: placeholder(),
        };
        client
            .send(&ClientMessage::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                name: name.to_owned(),
            }))
            .await?;
        match client.recv().await? {
            ServerMessage::Welcome(welcome) => {
                client.welcome = welcome;
                Ok(client)
            }
            ServerMessage::Reject(refusal) | ServerMessage::Close(refusal) => {
                Err(ClientError::Refused(refusal))
            }
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        self.out.clear();
        encode_frame(message, &mut self.out);
        self.stream.write_all(&self.out).await?;
        Ok(())
    }

    /// Sends a movement input.
    pub async fn send_input(&mut self, seq: u32, dir_x: i8, dir_y: i8) -> Result<(), ClientError> {
        self.send(&ClientMessage::Input(Input { seq, dir_x, dir_y }))
            .await
    }

    /// Receives the next message.
    pub async fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            if let Some(body) = self.reader.next_frame()? {
                return Ok(decode_server_message(body)?);
            }
            let n = self.stream.read(self.reader.spare()).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.reader.filled(n);
        }
    }

    /// Says Goodbye and closes.
    pub async fn goodbye(mut self) -> Result<(), ClientError> {
        self.send(&ClientMessage::Goodbye).await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    /// This client's own entity id.
    pub fn player_id(&self) -> u32 {
        self.welcome.player_id
    }
}

fn placeholder() -> Welcome {
    Welcome {
        player_id: 0,
        tick_hz: 0,
        world_size: 0.0,
        interest_radius: 0.0,
        cell_size: 0.0,
        view_cells: 0,
        position_scale: 0.0,
        max_frame_bytes: 0,
        components: Vec::new(),
    }
}
