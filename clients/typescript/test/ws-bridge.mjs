// Test-only: a minimal WebSocket server (RFC 6455, node:http + node:crypto) that carries
// each binary message to a throng TCP listener as one length-prefixed frame and back, and
// ends like the server's own WebSocket listener is documented to: the server's last
// message (Reject or Close), then close code 4000 + reason; a client's close is answered
// with 1000. It lets the end-to-end test run against a server without a web listener.
import { createServer } from "node:http";
import { connect as tcpConnect } from "node:net";
import { createHash } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Starts a bridge on 127.0.0.1 (a free port) to the throng listener at `target`. */
export function startBridge(target) {
  const [host, port] = splitAddr(target);
  const sockets = new Set();
  const server = createServer((_, response) => response.writeHead(426).end());
  server.on("upgrade", (request, socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const key = request.headers["sec-websocket-key"];
    if (request.url !== "/ws" || typeof key !== "string") return socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    const accept = createHash("sha1").update(key + GUID).digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    carry(socket, tcpConnect(port, host));
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        url: `ws://127.0.0.1:${port}/ws`,
        close: () => {
          for (const socket of sockets) socket.destroy();
          return new Promise((done) => server.close(done));
        },
      });
    });
  });
}

function splitAddr(addr) {
  const at = addr.lastIndexOf(":");
  return [addr.slice(0, at).replace(/^\[|\]$/g, ""), Number(addr.slice(at + 1))];
}

/** Carries messages between the WebSocket `ws` and the TCP connection `tcp`. */
function carry(ws, tcp) {
  let fromClient = Buffer.alloc(0);
  let fromServer = Buffer.alloc(0);
  let lastServerMessage;
  let closed = false;
  const closeWs = (code) => {
    if (closed) return;
    closed = true;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    ws.end(wsFrame(0x8, payload));
  };
  ws.on("data", (chunk) => {
    fromClient = Buffer.concat([fromClient, chunk]);
    for (;;) {
      const frame = readClientFrame(fromClient);
      if (frame === undefined) return;
      fromClient = fromClient.subarray(frame.size);
      if (frame.opcode === 0x2) {
        const prefix = Buffer.alloc(4);
        prefix.writeUInt32LE(frame.payload.length);
        tcp.write(Buffer.concat([prefix, frame.payload]));
      } else if (frame.opcode === 0x8) {
        tcp.end(); // the server removes the player, as for a Goodbye
        closeWs(1000);
      } else if (frame.opcode === 0x9) {
        ws.write(wsFrame(0xa, frame.payload));
      }
    }
  });
  tcp.on("data", (chunk) => {
    fromServer = Buffer.concat([fromServer, chunk]);
    while (fromServer.length >= 4 && fromServer.length >= 4 + fromServer.readUInt32LE(0)) {
      const body = fromServer.subarray(4, 4 + fromServer.readUInt32LE(0));
      fromServer = fromServer.subarray(4 + body.length);
      lastServerMessage = body;
      if (!closed) ws.write(wsFrame(0x2, body));
    }
  });
  tcp.on("close", () => {
    // Reject (1) or Close (4): its reason's index is the varint after the message type.
    const last = lastServerMessage;
    const ended = last !== undefined && (last[0] === 1 || last[0] === 4) && last[1] < 0x80;
    closeWs(ended ? 4000 + last[1] : 1000);
  });
  tcp.on("error", () => closeWs(1011));
  ws.on("error", () => tcp.destroy());
  ws.on("close", () => tcp.destroy());
}

/** A masked client frame from the front of `buffer`, or undefined if incomplete. */
function readClientFrame(buffer) {
  if (buffer.length < 2) return undefined;
  const opcode = buffer[0] & 0x0f;
  let length = buffer[1] & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = (buffer[1] & 0x80) !== 0;
  const mask = masked ? buffer.subarray(offset, offset + 4) : undefined;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return undefined;
  const payload = Buffer.from(buffer.subarray(offset, offset + length));
  if (mask !== undefined) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
  return { opcode, payload, size: offset + length };
}

/** An unmasked server frame (FIN set). */
function wsFrame(opcode, payload) {
  let header;
  if (payload.length < 126) {
    header = Buffer.from([0x80 | opcode, payload.length]);
  } else if (payload.length <= 0xffff) {
    header = Buffer.from([0x80 | opcode, 126, 0, 0]);
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.from([0x80 | opcode, 127, 0, 0, 0, 0, 0, 0, 0, 0]);
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}
