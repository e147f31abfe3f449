/**
 * throng's browser client library: everything a game's web client needs to play on a
 * throng server (protocol 3 over WebSocket), with no runtime dependencies.
 *
 * - `wire`: postcard values (Reader/Writer), for the game's own action, component and
 *   event values;
 * - `messages` and `codec`: every protocol message, typed, to and from bytes;
 * - `mirror`: the entities in view, kept by applying frames;
 * - `client`: a WebSocket session (connect, inputs, actions, pings, close reasons,
 *   transfers between zone servers);
 * - `interpolation`: remote entities drawn smoothly a little in the past;
 * - `prediction`: the player's own movement predicted and reconciled.
 */
export * from "./wire.js";
export * from "./messages.js";
export * from "./codec.js";
export * from "./mirror.js";
export * from "./client.js";
export * from "./interpolation.js";
export * from "./prediction.js";
