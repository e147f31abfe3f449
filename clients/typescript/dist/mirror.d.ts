/**
 * The client's copy of the entities in its view, kept by applying state frames in order:
 * the TypeScript twin of the Rust client's `Mirror` (clients/rust/src/mirror.rs), with the
 * same rules and the same checks.
 *
 * Sans I/O: it is fed decoded frames by whoever received them (the {@link ThrongClient},
 * a test, a replay), so it runs the same in a browser and under `node --test`.
 *
 * Components are kept by their schema **name** (the Welcome's `schema.components`), not by
 * kind index: indices may differ between servers, names do not. A kind beyond the schema
 * (a server newer than its Welcome? never expected) is kept under `#<kind>`.
 */
import type { StateFrame, Schema } from "./messages.js";
/** One entity as the client knows it. */
export interface MirroredEntity {
    readonly id: number;
    /** Wire position: world units times `positionScale` (exact integers, nothing drifts). */
    x: number;
    y: number;
    /** Latest value bytes of each replicated component it has, by schema name. */
    readonly components: Map<string, Uint8Array>;
}
/** A server event of a frame, with its kind's schema name. */
export interface NamedEvent {
    kind: number;
    /** `schema.events[kind]`, or `#<kind>` for a kind the schema does not name. */
    name: string;
    /** The event value's postcard bytes, for the game to decode. */
    bytes: Uint8Array;
}
/** What one applied frame did, for the caller to react to. */
export interface FrameChanges {
    tick: number;
    ackSeq: number;
    reset: boolean;
    /** The frame's events, in delivery order. */
    events: NamedEvent[];
    /** Ids that left the view (an id both removed and spawned: the client's own jump). */
    removed: number[];
    /** Ids that entered the view. */
    spawned: number[];
    /** Ids that moved or whose components changed. */
    updated: number[];
}
/** A frame that does not fit the mirror: the server (or the wire) broke a promise. */
export declare class MirrorError extends Error {
    readonly tick: number;
    constructor(tick: number, message: string);
}
/** The entities a client sees. */
export declare class Mirror {
    /** Entities in view by id. */
    readonly entities: Map<number, MirroredEntity>;
    /** Tick of the last applied frame (0: none yet). */
    tick: number;
    /** Seq acknowledged by the last applied frame. */
    ackSeq: number;
    private readonly schema;
    private readonly positionScale;
    /** `welcome`: the session's schema and position scale (the Welcome itself will do). */
    constructor(welcome: {
        schema: Schema;
        positionScale: number;
    });
    /**
     * Applies one frame: reset, events, removals, spawns, then updates (the order the
     * protocol prescribes). Throws {@link MirrorError} if the frame contradicts the view
     * (an unknown id, a double spawn, a missing component, ticks going backwards); the
     * mirror is then not to be trusted, and the session should end.
     */
    apply(frame: StateFrame): FrameChanges;
    /** Entity `id`'s position in world units, if it is in view. */
    position(id: number): {
        x: number;
        y: number;
    } | undefined;
    /** The value bytes of entity `id`'s component `name`, if it is in view and has it. */
    component(id: number, name: string): Uint8Array | undefined;
    /** Whether entity `id` is in view and has component `name`. */
    has(id: number, name: string): boolean;
    private componentName;
}
