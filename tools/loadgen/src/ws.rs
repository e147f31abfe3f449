//! The WebSocket transport's client side, sans I/O (docs/PROTOCOL.md, "WebSocket"): the
//! upgrade request and the check of its response, and masked frames built in place in the
//! bot's out buffer (one protocol message per binary message, its payload the TCP frame
//! body). Reading the server's frames is the protocol crate's `WsReader`.

use clap::ValueEnum;
use throng_protocol::websocket::{CLOSE_REASON_BASE, Opcode, accept_key, frame_header, unmask};

/// Longest upgrade response head a bot accepts (the server's is ~130 bytes).
pub const MAX_RESPONSE_HEAD: usize = 1024;

/// How bots reach the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Length-prefixed frames on the game listener.
    #[default]
    Tcp,
    /// One binary WebSocket message per protocol message, on the web listener's `/ws`.
    Ws,
}

impl Transport {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        }
    }
}

/// A `Sec-WebSocket-Key`: the standard base64 of 16 random bytes.
pub fn key_of(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut key = String::with_capacity(24);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |group, (i, &b)| group | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                key.push(char::from(ALPHABET[(group >> (18 - 6 * i)) as usize & 63]));
            } else {
                key.push('=');
            }
        }
    }
    key
}

/// The upgrade request for `path` (`/ws` on the server's web listener, or the path of a
/// zone Transfer's WebSocket URL) on `host` (no `Origin`: not a browser).
pub fn upgrade_request(host: &str, path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
}

/// Checks the upgrade response at the start of `head`: `Ok(None)` while its head is not
/// complete, `Ok(Some(n))` once it is a valid `101` for `key` (`n`: bytes of the head; any
/// after it are already WebSocket frames), an error otherwise.
pub fn check_upgrade_response(head: &[u8], key: &str) -> Result<Option<usize>, String> {
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if head.len() >= MAX_RESPONSE_HEAD {
            Err(format!(
                "upgrade response head over {MAX_RESPONSE_HEAD} bytes"
            ))
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&head[..end])
        .map_err(|_| "upgrade response head is not text".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let (version, status) = (parts.next().unwrap_or_default(), parts.next());
    let Some(status) = status
        .filter(|_| version.starts_with("HTTP/1."))
        .and_then(|code| code.parse::<u16>().ok())
    else {
        return Err(format!("bad upgrade status line {status_line:?}"));
    };
    if status != 101 {
        return Err(format!("upgrade refused: HTTP {status}"));
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad upgrade response header {line:?}"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions")
            || name.eq_ignore_ascii_case("sec-websocket-protocol")
        {
            return Err(format!(
                "upgrade response names what was not asked: {line:?}"
            ));
        }
    }
    if !upgrade || !connection {
        return Err("101 without Upgrade: websocket and Connection: Upgrade".into());
    }
    match accept {
        Some(accept) if accept == accept_key(key) => Ok(Some(end + 4)),
        Some(accept) => Err(format!("wrong Sec-WebSocket-Accept {accept:?}")),
        None => Err("101 without Sec-WebSocket-Accept".into()),
    }
}

/// Turns the message at the end of `out`, from `start` (its payload begins `room` bytes
/// further, e.g. after a TCP length prefix), into one masked final frame of `opcode`, in
/// place: the payload moves to fit the header, then is XORed with `mask`. Allocation-free
/// once `out` has reached its working capacity.
pub fn frame_in_place(out: &mut Vec<u8>, start: usize, room: usize, opcode: Opcode, mask: [u8; 4]) {
    let old_len = out.len();
    let payload = old_len - start - room;
    let (header, size) = frame_header(opcode, payload, Some(mask));
    if size > room {
        out.resize(old_len + size - room, 0);
    }
    out.copy_within(start + room..old_len, start + size);
    out.truncate(start + size + payload);
    out[start..start + size].copy_from_slice(&header[..size]);
    unmask(&mut out[start + size..], mask);
}

/// The reason recorded when the server's close frame (with `code`, if any) ends a session,
/// after the protocol's own last message (`Close`/`Reject` with `reason`) if one came.
pub fn close_reason(reason: Option<&str>, code: Option<u16>) -> String {
    let code_number = code;
    let code = code.map_or("no code".to_owned(), |code| code.to_string());
    match reason {
        Some(reason) => format!("server closed: {reason} (ws close {code})"),
        None => match code_number.and_then(reason_of_code) {
            Some(reason) => format!("ws close {code} ({reason})"),
            None => format!("ws close {code}"),
        },
    }
}

/// The close reason's name a `4000 + index` close code carries, if it is one.
pub fn reason_of_code(code: u16) -> Option<&'static str> {
    let index = usize::from(code.checked_sub(CLOSE_REASON_BASE)?);
    throng_protocol::CloseReason::ALL
        .get(index)
        .map(|reason| reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_protocol::FRAME_HEADER_BYTES;
    use throng_protocol::websocket::{self, WsFrame, WsReader, valid_key};
    use throng_protocol::{ClientMessage, Input, frame_bytes};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn response(lines: &str) -> String {
        format!("HTTP/1.1 101 Switching Protocols\r\n{lines}\r\n")
    }

    fn good() -> String {
        response(
            "upgrade: websocket\r\nconnection: upgrade\r\n\
             sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\ndate: now\r\n",
        )
    }

    #[test]
    fn keys_are_the_base64_of_sixteen_bytes() {
        // RFC 6455's example key is the base64 of "the sample nonce".
        assert_eq!(key_of(*b"the sample nonce"), KEY);
        for bytes in [[0u8; 16], [0xFF; 16], *b"0123456789abcdef"] {
            assert!(valid_key(&key_of(bytes)));
        }
    }

    #[test]
    fn the_request_is_a_plain_upgrade_without_origin() {
        let request = upgrade_request("127.0.0.1:7080", "/ws", KEY);
        assert!(request.starts_with("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:7080\r\n"));
        for header in [
            "Upgrade: websocket\r\n",
            "Connection: Upgrade\r\n",
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        ] {
            assert!(request.contains(header), "{header}");
        }
        assert!(request.ends_with("\r\n\r\n"));
        assert!(!request.to_ascii_lowercase().contains("origin"));
    }

    #[test]
    fn a_valid_response_is_accepted_once_its_head_is_complete() {
        let head = good();
        for cut in 0..head.len() {
            assert_eq!(
                check_upgrade_response(&head.as_bytes()[..cut], KEY),
                Ok(None)
            );
        }
        let mut with_frame = head.clone().into_bytes();
        with_frame.extend_from_slice(&websocket::server_frame(Opcode::Binary, b"x"));
        assert_eq!(
            check_upgrade_response(&with_frame, KEY),
            Ok(Some(head.len()))
        );
        let multi = response(
            "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
        );
        assert!(check_upgrade_response(multi.as_bytes(), KEY).is_ok());
    }

    #[test]
    fn bad_responses_are_refused_with_their_reason() {
        let refused = "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            check_upgrade_response(refused.as_bytes(), KEY),
            Err("upgrade refused: HTTP 403".into())
        );
        let wrong_key = good().replace("s3pP", "AAAA");
        assert!(
            check_upgrade_response(wrong_key.as_bytes(), KEY)
                .unwrap_err()
                .contains("wrong Sec-WebSocket-Accept")
        );
        let no_accept = response("upgrade: websocket\r\nconnection: upgrade\r\n");
        assert!(check_upgrade_response(no_accept.as_bytes(), KEY).is_err());
        let no_upgrade = good().replace("upgrade: websocket\r\n", "");
        assert!(check_upgrade_response(no_upgrade.as_bytes(), KEY).is_err());
        let extension = good().replace("date: now", "sec-websocket-extensions: x");
        assert!(check_upgrade_response(extension.as_bytes(), KEY).is_err());
        assert!(check_upgrade_response(b"garbage\r\n\r\n", KEY).is_err());
        assert!(check_upgrade_response(&[b'a'; MAX_RESPONSE_HEAD], KEY).is_err());
    }

    /// A whole TCP frame (prefix and body) at the end of `out`, from `start`, as a masked
    /// binary WebSocket frame carrying the same body.
    fn tcp_frame_to_ws(out: &mut Vec<u8>, start: usize, mask: [u8; 4]) {
        frame_in_place(out, start, FRAME_HEADER_BYTES, Opcode::Binary, mask);
    }

    #[test]
    fn frames_built_in_place_are_what_the_codec_builds_and_the_server_reads() {
        for length in [
            0, 1, 5, 119, 120, 121, 125, 126, 300, 65_535, 65_536, 70_000,
        ] {
            let body: Vec<u8> = (0..length).map(|i| (i * 7) as u8).collect();
            let mut out = vec![0xAA; 3]; // appends after what is there
            out.extend_from_slice(&(length as u32).to_le_bytes());
            out.extend_from_slice(&body);
            tcp_frame_to_ws(&mut out, 3, MASK);
            let expected = websocket::client_frame(Opcode::Binary, &body, MASK);
            assert_eq!(out[..3], [0xAA; 3]);
            assert!(out[3..] == expected[..], "length {length}");
            let mut reader = WsReader::client_frames(70_000);
            reader.spare()[..expected.len()].copy_from_slice(&expected);
            reader.filled(expected.len());
            assert_eq!(reader.next_frame(), Ok(Some(WsFrame::Binary(&body[..]))));
        }
        let input = frame_bytes(&ClientMessage::Input(Input {
            seq: 9,
            dir_x: -3,
            dir_y: 4,
        }));
        let mut out = input.clone();
        tcp_frame_to_ws(&mut out, 0, MASK);
        assert_eq!(
            out,
            websocket::client_frame(Opcode::Binary, &input[FRAME_HEADER_BYTES..], MASK)
        );
        let mut pong = b"ping payload".to_vec();
        frame_in_place(&mut pong, 0, 0, Opcode::Pong, MASK);
        assert_eq!(
            pong,
            websocket::client_frame(Opcode::Pong, b"ping payload", MASK)
        );
    }

    #[test]
    fn building_in_place_does_not_allocate_once_warm() {
        let mut out = Vec::with_capacity(64);
        let pointer = out.as_ptr();
        for seq in 0..1_000 {
            out.clear();
            throng_protocol::encode_frame(
                &ClientMessage::Input(Input {
                    seq,
                    dir_x: 1,
                    dir_y: 1,
                }),
                &mut out,
            );
            tcp_frame_to_ws(&mut out, 0, MASK);
        }
        assert_eq!(out.as_ptr(), pointer);
        assert_eq!(out.capacity(), 64);
    }

    #[test]
    fn close_codes_name_their_reason() {
        assert_eq!(reason_of_code(4011), Some("idle_timeout"));
        assert_eq!(reason_of_code(4000), Some("server_full"));
        assert_eq!(reason_of_code(1000), None);
        assert_eq!(reason_of_code(4999), None);
        assert_eq!(
            close_reason(Some("idle_timeout"), Some(4011)),
            "server closed: idle_timeout (ws close 4011)"
        );
        assert_eq!(close_reason(None, Some(1002)), "ws close 1002");
        assert_eq!(close_reason(None, None), "ws close no code");
        assert_eq!(
            close_reason(None, Some(4013)),
            "ws close 4013 (slow_reader)"
        );
    }
}
