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
export class MirrorError extends Error {
  constructor(
    readonly tick: number,
    message: string,
  ) {
    super(`tick ${tick}: ${message}`);
    this.name = "MirrorError";
  }
}

const WIRE_MAX = 0xffff_ffff;

/** The entities a client sees. */
export class Mirror {
  /** Entities in view by id. */
  readonly entities = new Map<number, MirroredEntity>();
  /** Tick of the last applied frame (0: none yet). */
  tick = 0;
  /** Seq acknowledged by the last applied frame. */
  ackSeq = 0;
  private readonly schema: Schema;
  private readonly positionScale: number;

  /** `welcome`: the session's schema and position scale (the Welcome itself will do). */
  constructor(welcome: { schema: Schema; positionScale: number }) {
    this.schema = welcome.schema;
    this.positionScale = welcome.positionScale;
  }

  /**
   * Applies one frame: reset, events, removals, spawns, then updates (the order the
   * protocol prescribes). Throws {@link MirrorError} if the frame contradicts the view
   * (an unknown id, a double spawn, a missing component, ticks going backwards); the
   * mirror is then not to be trusted, and the session should end.
   */
  apply(frame: StateFrame): FrameChanges {
    const { tick } = frame;
    if (this.tick !== 0 && tick <= this.tick) {
      throw new MirrorError(tick, `frame after tick ${this.tick}`);
    }
    if (frame.reset) this.entities.clear();
    this.tick = tick;
    this.ackSeq = frame.ackSeq;
    const events = frame.events.map((event) => ({
      kind: event.kind,
      name: this.schema.events[event.kind] ?? `#${event.kind}`,
      bytes: event.bytes,
    }));
    for (const id of frame.removed) {
      if (!this.entities.delete(id)) throw new MirrorError(tick, `removed entity ${id} is not in view`);
    }
    for (const spawn of frame.spawned) {
      if (this.entities.has(spawn.id)) throw new MirrorError(tick, `entity ${spawn.id} spawned twice`);
      const components = new Map<string, Uint8Array>();
      for (const value of spawn.components) components.set(this.componentName(value.kind), value.bytes);
      this.entities.set(spawn.id, { id: spawn.id, x: spawn.x, y: spawn.y, components });
    }
    for (const update of frame.updated) {
      const entity = this.entities.get(update.id);
      if (entity === undefined) throw new MirrorError(tick, `updated entity ${update.id} is not in view`);
      const x = entity.x + update.dx;
      const y = entity.y + update.dy;
      if (x < 0 || y < 0 || x > WIRE_MAX || y > WIRE_MAX) {
        throw new MirrorError(tick, `entity ${update.id} moved out of range`);
      }
      entity.x = x;
      entity.y = y;
      for (const change of update.components) {
        const name = this.componentName(change.kind);
        if (change.type === "set") {
          entity.components.set(name, change.bytes);
        } else if (!entity.components.delete(name)) {
          throw new MirrorError(tick, `entity ${update.id} has no ${name} to remove`);
        }
      }
    }
    return {
      tick,
      ackSeq: frame.ackSeq,
      reset: frame.reset,
      events,
      removed: frame.removed,
      spawned: frame.spawned.map((spawn) => spawn.id),
      updated: frame.updated.map((update) => update.id),
    };
  }

  /** Entity `id`'s position in world units, if it is in view. */
  position(id: number): { x: number; y: number } | undefined {
    const entity = this.entities.get(id);
    if (entity === undefined) return undefined;
    return { x: entity.x / this.positionScale, y: entity.y / this.positionScale };
  }

  /** The value bytes of entity `id`'s component `name`, if it is in view and has it. */
  component(id: number, name: string): Uint8Array | undefined {
    return this.entities.get(id)?.components.get(name);
  }

  /** Whether entity `id` is in view and has component `name`. */
  has(id: number, name: string): boolean {
    return this.entities.get(id)?.components.has(name) ?? false;
  }

  private componentName(kind: number): string {
    return this.schema.components[kind] ?? `#${kind}`;
  }
}
