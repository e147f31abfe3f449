//! An async client over TCP.
//!
//! # Zones
//! A world split across zone servers moves a player between them: the server it plays on
//! sends [`ServerMessage::Transfer`] (an ordinary message of [`Client::recv`], not an error)
//! and closes the socket. [`Client::follow`] opens the session on the destination with the
//! Transfer's ticket ([`Client::resume`]) and keeps numbering inputs where the old session
//! stopped, because the destination acknowledges the seqs the origin processed.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use throng_protocol::framing::{FrameError, FrameReader};
use throng_protocol::{
    Action, ClientMessage, DecodeError, Hello, Input, PROTOCOL_VERSION, Refusal, Resume, Schema,
    ServerMessage, Transfer, Welcome, decode_server_message, encode_frame,
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
    /// The server refused the session (for a [`Client::resume`], the ticket's refusal:
    /// `TicketInvalid`, `TicketExpired`, `TicketUsed`, `TicketWrongZone`, `AlreadyOnline`).
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// The server sent bytes that do not decode.
    #[error("bad frame from server: {0}")]
    Decode(#[from] DecodeError),
    /// The server sent an oversize frame.
    #[error("bad frame from server: {0}")]
    Frame(#[from] FrameError),
    /// The server answered Hello (or Resume) with something other than Welcome or Reject.
    #[error("unexpected answer to Hello or Resume: {0:?}")]
    UnexpectedAnswer(Box<ServerMessage>),
    /// An action named by a name the server's schema does not have.
    #[error("the server has no action named {0:?}")]
    UnknownAction(String),
}

/// Which action kind to send: its name in [`Schema::actions`], or its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionKind<'a> {
    /// The kind registered under this name (looked up in the Welcome's schema).
    Name(&'a str),
    /// The kind with this index, sent as given (even outside the schema: the server then
    /// drops the action and counts it against the client).
    Index(u16),
}

impl<'a> From<&'a str> for ActionKind<'a> {
    fn from(name: &'a str) -> Self {
        ActionKind::Name(name)
    }
}

impl From<u16> for ActionKind<'_> {
    fn from(index: u16) -> Self {
        ActionKind::Index(index)
    }
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
        self.next_frame(decode_server_message)
            .await?
            .map_err(Into::into)
    }

    /// Reads until a whole frame is in and gives its body to `read`.
    async fn next_frame<T>(&mut self, read: impl FnOnce(&[u8]) -> T) -> Result<T, ClientError> {
        loop {
            if let Some(body) = self.reader.next_frame()? {
                return Ok(read(body));
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
///
/// Inputs and actions share one sequence counter (`StateFrame::ack_seq` acknowledges
/// whichever came last): the client remembers the seq of the last one it sent, whoever
/// chose it ([`Client::send_input`] takes the caller's, [`Client::send_action`] and
/// [`Client::send_next_input`] take [`Client::next_seq`]).
pub struct Client {
    wire: Wire,
    /// The session parameters the server sent (with the game's schema).
    pub welcome: Welcome,
    /// The Welcome as received (the frame's body, length prefix excluded).
    welcome_bytes: Vec<u8>,
    last_seq: u32,
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
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            name: name.to_owned(),
            secret: secret.to_owned(),
        };
        Self::open(stream, &ClientMessage::Hello(hello), 0).await
    }

    /// Connects to a zone server and opens the session a [`ServerMessage::Transfer`] handed
    /// over: sends Resume with `ticket` (instead of Hello) and waits for Welcome, exactly as
    /// [`Client::connect`] does. Inputs and actions continue from `next_seq`: the destination
    /// acknowledges (`ack_seq`) the last seq the previous zone processed, so restarting at 1
    /// would make it drop them as old. A refused ticket is [`ClientError::Refused`].
    ///
    /// `addr` is the Transfer's `HOST:PORT` (a name is resolved) or a socket address.
    pub async fn resume(
        addr: impl ToSocketAddrs,
        ticket: &[u8],
        next_seq: u32,
    ) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Self::resume_on(stream, ticket, next_seq).await
    }

    /// Sends Resume with `ticket` on an already connected stream and waits for Welcome (see
    /// [`Client::resume`]).
    pub async fn resume_on(
        stream: TcpStream,
        ticket: &[u8],
        next_seq: u32,
    ) -> Result<Client, ClientError> {
        let resume = Resume {
            protocol_version: PROTOCOL_VERSION,
            ticket: ticket.to_vec(),
        };
        Self::open(
            stream,
            &ClientMessage::Resume(resume),
            next_seq.wrapping_sub(1),
        )
        .await
    }

    /// Follows a [`ServerMessage::Transfer`] this client received: closes this session (the
    /// server closes it anyway right after a Transfer) and opens the one on the destination
    /// ([`Client::resume`] to its `address`), continuing from this client's
    /// [`Client::next_seq`].
    ///
    /// The new client has its own Welcome (a new [`Client::player_id`]) and its frames start
    /// over at the destination's tick: a [`crate::Mirror`] kept for the old session must be
    /// replaced by a fresh one. Its [`Client::bytes_received`] counts from zero.
    pub async fn follow(self, transfer: &Transfer) -> Result<Client, ClientError> {
        let next_seq = self.next_seq();
        drop(self);
        Self::resume(transfer.address.as_str(), &transfer.ticket, next_seq).await
    }

    /// Sends `first` (Hello or Resume) and waits for the Welcome; the session's last seq
    /// starts at `last_seq`.
    async fn open(
        stream: TcpStream,
        first: &ClientMessage,
        last_seq: u32,
    ) -> Result<Client, ClientError> {
        let mut wire = Wire {
            stream,
            reader: FrameReader::new(CLIENT_MAX_FRAME),
            out: Vec::new(),
            bytes_received: 0,
        };
        wire.send(first).await?;
        let (answer, welcome_bytes) = wire
            .next_frame(|body| (decode_server_message(body), body.to_vec()))
            .await?;
        match answer? {
            ServerMessage::Welcome(welcome) => Ok(Client {
                wire,
                welcome,
                welcome_bytes,
                last_seq,
            }),
            ServerMessage::Reject(refusal) | ServerMessage::Close(refusal) => {
                Err(ClientError::Refused(refusal))
            }
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// Sends one message (an input's or action's seq becomes the counter's position).
    /// An error here may only mean that the server has closed after its last message (a
    /// `Close` or `Transfer` crossing this input, docs/PROTOCOL.md): [`Client::recv`] still
    /// returns what it sent before closing.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        match message {
            ClientMessage::Input(Input { seq, .. }) | ClientMessage::Action(Action { seq, .. }) => {
                self.last_seq = *seq;
            }
            _ => {}
        }
        self.wire.send(message).await
    }

    /// Sends a movement input numbered `seq` (the caller's numbering; continue it from
    /// [`Client::next_seq`] once actions are sent too).
    pub async fn send_input(&mut self, seq: u32, dir_x: i8, dir_y: i8) -> Result<(), ClientError> {
        self.send(&ClientMessage::Input(Input { seq, dir_x, dir_y }))
            .await
    }

    /// Sends a movement input numbered [`Client::next_seq`]; returns that seq.
    pub async fn send_next_input(&mut self, dir_x: i8, dir_y: i8) -> Result<u32, ClientError> {
        let seq = self.next_seq();
        self.send_input(seq, dir_x, dir_y).await?;
        Ok(seq)
    }

    /// Sends an action of `kind` (a name in the schema, or an index) whose value is `bytes`
    /// (postcard-encoded as the game's type for that kind), numbered [`Client::next_seq`];
    /// returns that seq. Fails without sending if the name is not in the schema.
    pub async fn send_action<'k>(
        &mut self,
        kind: impl Into<ActionKind<'k>>,
        bytes: &[u8],
    ) -> Result<u32, ClientError> {
        let kind = match kind.into() {
            ActionKind::Index(index) => index,
            ActionKind::Name(name) => self
                .action_kind(name)
                .ok_or_else(|| ClientError::UnknownAction(name.to_owned()))?,
        };
        let seq = self.next_seq();
        let action = Action {
            seq,
            kind,
            bytes: bytes.to_vec(),
        };
        self.send(&ClientMessage::Action(action)).await?;
        Ok(seq)
    }

    /// Seq of the last input or action sent (0: none yet).
    pub fn last_seq(&self) -> u32 {
        self.last_seq
    }

    /// The seq the next input or action should carry: one after [`Client::last_seq`].
    pub fn next_seq(&self) -> u32 {
        self.last_seq.wrapping_add(1)
    }

    /// The game's schema, from the Welcome: component, action and event names by kind.
    pub fn schema(&self) -> &Schema {
        &self.welcome.schema
    }

    /// Kind index of the action named `name`.
    pub fn action_kind(&self, name: &str) -> Option<u16> {
        self.welcome.schema.action_kind(name)
    }

    /// Kind index of the event named `name`.
    pub fn event_kind(&self, name: &str) -> Option<u16> {
        self.welcome.schema.event_kind(name)
    }

    /// Kind index of the replicated component named `name`.
    pub fn component_kind(&self, name: &str) -> Option<u16> {
        self.welcome.schema.component_kind(name)
    }

    /// Receives the next message. A [`ServerMessage::Transfer`] is returned like any other
    /// (the session then ends: the server closes the socket after it); pass it to
    /// [`Client::follow`] to continue on the destination zone.
    pub async fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        self.wire.recv().await
    }

    /// Receives the next message as its bytes (the frame's body, length prefix excluded):
    /// what a test compares byte for byte with what a replay produced.
    pub async fn recv_bytes(&mut self) -> Result<Vec<u8>, ClientError> {
        self.wire.next_frame(<[u8]>::to_vec).await
    }

    /// The Welcome as received (the frame's body, length prefix excluded).
    pub fn welcome_bytes(&self) -> &[u8] {
        &self.welcome_bytes
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

#[cfg(test)]
mod tests {
    use super::*;
    use throng_protocol::{decode_client_message, frame_bytes};
    use tokio::net::TcpListener;

    fn welcome() -> Welcome {
        Welcome {
            player_id: 3,
            tick_hz: 20,
            world_size: 1000.0,
            interest_radius: 50.0,
            cell_size: 50.0,
            view_cells: 1,
            position_scale: 8.0,
            max_frame_bytes: 1 << 20,
            schema: Schema {
                components: vec!["npc".into(), "snowball".into(), "score".into()],
                actions: vec!["throw".into()],
                events: vec!["hit".into()],
            },
            idle_timeout_ms: 10_000,
            max_inputs_per_s: 60,
        }
    }

    /// Reads `count` client messages after answering Hello with [`welcome`].
    async fn fake_server(listener: TcpListener, count: usize) -> Vec<ClientMessage> {
        let mut messages =
            fake_zone(listener, vec![ServerMessage::Welcome(welcome())], count).await;
        assert!(matches!(messages[0], ClientMessage::Hello(_)));
        messages.split_off(1)
    }

    /// Answers the first client message with `answers`, then reads `count` more (fewer if
    /// the client closes); returns them all, the first included.
    async fn fake_zone(
        listener: TcpListener,
        answers: Vec<ServerMessage>,
        count: usize,
    ) -> Vec<ClientMessage> {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut reader = FrameReader::new(512);
        let mut messages = Vec::new();
        loop {
            while let Some(body) = reader.next_frame().unwrap() {
                messages.push(decode_client_message(body).unwrap());
                if messages.len() == 1 {
                    for answer in &answers {
                        stream.write_all(&frame_bytes(answer)).await.unwrap();
                    }
                }
            }
            if messages.len() > count {
                break;
            }
            let n = stream.read(reader.spare()).await.unwrap();
            if n == 0 {
                break;
            }
            reader.filled(n);
        }
        messages
    }

    #[tokio::test]
    async fn inputs_and_actions_share_one_seq_counter() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(fake_server(listener, 5));
        let mut client = Client::connect(addr, "ann", "s3cret-token").await.unwrap();
        assert_eq!(client.schema(), &welcome().schema);
        assert_eq!(client.action_kind("throw"), Some(0));
        assert_eq!(client.event_kind("hit"), Some(0));
        assert_eq!(client.component_kind("score"), Some(2));
        assert_eq!(client.next_seq(), 1);

        client.send_input(1, 127, 0).await.unwrap();
        assert_eq!(client.send_action("throw", &[127, 0]).await.unwrap(), 2);
        assert_eq!(client.send_next_input(0, 127).await.unwrap(), 3);
        assert_eq!(client.send_action(7u16, &[]).await.unwrap(), 4);
        assert!(matches!(
            client.send_action("jump", &[]).await,
            Err(ClientError::UnknownAction(name)) if name == "jump"
        ));
        client
            .send(&ClientMessage::Ping { nonce: 9 })
            .await
            .unwrap();
        assert_eq!(client.last_seq(), 4);

        let sent = server.await.unwrap();
        assert_eq!(
            sent,
            [
                ClientMessage::Input(Input {
                    seq: 1,
                    dir_x: 127,
                    dir_y: 0
                }),
                ClientMessage::Action(Action {
                    seq: 2,
                    kind: 0,
                    bytes: vec![127, 0]
                }),
                ClientMessage::Input(Input {
                    seq: 3,
                    dir_x: 0,
                    dir_y: 127
                }),
                ClientMessage::Action(Action {
                    seq: 4,
                    kind: 7,
                    bytes: vec![]
                }),
                ClientMessage::Ping { nonce: 9 },
            ]
        );
    }

    fn transfer(address: String) -> Transfer {
        Transfer {
            zone: "east".into(),
            address,
            websocket: String::new(),
            ticket: vec![7, 0, 255, 3],
        }
    }

    /// A Transfer is an ordinary message; following it sends Resume with the ticket to the
    /// destination and keeps the seq counter going.
    #[tokio::test]
    async fn following_a_transfer_resumes_with_the_ticket_and_keeps_the_seq() {
        let destination = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let transfer = transfer(destination.local_addr().unwrap().to_string());
        let east = tokio::spawn(fake_zone(
            destination,
            vec![ServerMessage::Welcome(Welcome {
                player_id: 42,
                ..welcome()
            })],
            1,
        ));
        let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin_addr = origin.local_addr().unwrap();
        let west = tokio::spawn(fake_zone(
            origin,
            vec![
                ServerMessage::Welcome(welcome()),
                ServerMessage::Transfer(transfer.clone()),
            ],
            2,
        ));

        let mut client = Client::connect(origin_addr, "ann", "s3cret-token")
            .await
            .unwrap();
        assert_eq!(client.send_next_input(127, 0).await.unwrap(), 1);
        assert_eq!(client.send_next_input(127, 0).await.unwrap(), 2);
        let message = client.recv().await.unwrap();
        assert_eq!(message, ServerMessage::Transfer(transfer.clone()));
        let mut client = client.follow(&transfer).await.unwrap();
        assert_eq!(client.player_id(), 42);
        assert_eq!(client.last_seq(), 2);
        assert_eq!(client.send_next_input(0, 127).await.unwrap(), 3);

        assert_eq!(west.await.unwrap().len(), 3, "Hello and two inputs");
        let sent = east.await.unwrap();
        assert_eq!(
            sent,
            [
                ClientMessage::Resume(Resume {
                    protocol_version: PROTOCOL_VERSION,
                    ticket: vec![7, 0, 255, 3]
                }),
                ClientMessage::Input(Input {
                    seq: 3,
                    dir_x: 0,
                    dir_y: 127
                }),
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_ticket_is_a_refusal() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refusal = Refusal {
            reason: throng_protocol::CloseReason::TicketUsed,
            detail: "used".into(),
        };
        let server = tokio::spawn(fake_zone(
            listener,
            vec![ServerMessage::Reject(refusal.clone())],
            0,
        ));
        let result = Client::resume(addr, &[1, 2, 3], 1).await;
        assert!(matches!(result, Err(ClientError::Refused(r)) if r == refusal));
        assert!(matches!(
            server.await.unwrap()[..],
            [ClientMessage::Resume(Resume { ref ticket, .. })] if ticket == &[1, 2, 3]
        ));
    }
}
