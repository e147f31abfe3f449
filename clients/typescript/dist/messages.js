/**
 * The messages of the throng wire protocol, version 3 (docs/PROTOCOL.md), as TypeScript
 * types. Field names are the protocol's, in camelCase; every `u32`/`u16`/`i32`/`i8` is a
 * `number` (exact in a double), the one `u64` (a ping's nonce) a `bigint`.
 *
 * Messages are tagged unions on `type` so that a `switch` over a decoded message is checked
 * for exhaustiveness by the compiler.
 */
/** The version a client announces in Hello; the server refuses any other. */
export const PROTOCOL_VERSION = 3;
/**
 * Why a session was refused or closed, by wire index (also the WebSocket close code minus
 * 4000). New reasons may be added at the end: an unknown index is a generic close.
 */
export const CLOSE_REASONS = [
    "server_full",
    "version_mismatch",
    "expected_hello",
    "duplicate_hello",
    "frame_too_large",
    "malformed",
    "unknown_message_type",
    "invalid_name",
    "handshake_timeout",
    "shutdown",
    "view_too_large",
    "idle_timeout",
    "input_flood",
    "slow_reader",
    "internal_error",
    "bad_credentials",
    "already_online",
    "event_backlog",
    "invalid_actions",
    "too_many_failed_logins",
    "handshakes_full",
    "address_limit",
    "kicked",
    "ticket_invalid",
    "ticket_expired",
    "ticket_used",
    "ticket_wrong_zone",
];
/** The name of close reason `index`, or `unknown_N` for one newer than this client. */
export function closeReasonName(index) {
    return CLOSE_REASONS[index] ?? `unknown_${index}`;
}
/** The wire index of a close reason. */
export function closeReasonIndex(reason) {
    return CLOSE_REASONS.indexOf(reason);
}
