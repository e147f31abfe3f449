// Walks one player east across a zone border with the real TypeScript client over
// WebSocket, and prints what happened as one JSON line: run by the server's zone tests
// (tests/it/zones.rs) against real zone servers; not a `*.test.mjs` (it needs them).
//
//   node --experimental-websocket zone-walk.mjs WS_URL NAME SECRET
import { connect } from "../../dist/index.js";

const [url, name, secret] = process.argv.slice(2);
const guard = setTimeout(() => {
  console.log(JSON.stringify({ error: "no transfer within 60 s" }));
  process.exit(1);
}, 60_000);

const client = await connect(url, name, secret);
const own = () => {
  const entity = client.mirror.entities.get(client.playerId);
  const scale = client.welcome.positionScale;
  return entity === undefined ? undefined : [entity.x / scale, entity.y / scale];
};
let before;
let transferred;
client.on("frame", () => {
  if (transferred === undefined) before = own() ?? before;
  client.sendInput(127, 0);
});
client.on("transfer", (to) => {
  transferred = to.zone;
});
client.on("welcome", ({ zone, previousPlayerId }) => {
  // The destination's first frame with our own entity in it.
  const off = client.on("frame", () => {
    const after = own();
    if (after === undefined) return;
    off();
    clearTimeout(guard);
    console.log(
      JSON.stringify({ zone, transferred, previousPlayerId, playerId: client.playerId, before, after, ackSeq: client.mirror.ackSeq }),
    );
    client.close();
    process.exit(0);
  });
});
client.on("close", (info) => {
  if (info.transfer === undefined && transferred === undefined) {
    console.log(JSON.stringify({ error: `closed: ${info.reason} ${info.detail ?? ""}` }));
    process.exit(1);
  }
});
