//! Server events: typed news gameplay sends to clients ("you were hit", "door opened"),
//! declared with a stable wire name: `app.add_event::<Hit>("hit")`.
//!
//! A system sends with the [`ServerEvents`] parameter, to one player, to every client that
//! currently sees an entity, or to everyone. The engine encodes each event once and puts it
//! in the frames of that tick (see docs/PROTOCOL.md for the delivery promise).

use bevy_ecs::message::Message;
use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemParam;
use serde::Serialize;

/// Who receives an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTarget {
    /// The client playing this entity (nobody, if it is not a connected player).
    Player(Entity),
    /// Every client whose view contains this entity (nobody, if it is not replicated).
    ViewersOf(Entity),
    /// Every client.
    Everyone,
}

/// An event on its way to the engine (written by [`ServerEvents`], drained by the engine).
#[derive(Debug, Clone)]
pub struct OutgoingEvent<E> {
    /// Who receives it.
    pub target: EventTarget,
    /// The event.
    pub event: E,
}

impl<E: Send + Sync + 'static> Message for OutgoingEvent<E> {}

/// Sends server events of type `E` (registered with `add_event::<E>(name)`).
#[derive(SystemParam)]
pub struct ServerEvents<'w, E: Send + Sync + 'static> {
    outgoing: MessageWriter<'w, OutgoingEvent<E>>,
}

impl<E: Send + Sync + 'static> ServerEvents<'_, E> {
    /// Sends `event` to the client playing `player`. Harmless if that player just left.
    pub fn to_player(&mut self, player: Entity, event: E) {
        self.send(EventTarget::Player(player), event);
    }

    /// Sends `event` to every client that sees `entity` this tick (within the interest
    /// radius of it).
    pub fn to_viewers_of(&mut self, entity: Entity, event: E) {
        self.send(EventTarget::ViewersOf(entity), event);
    }

    /// Sends `event` to every client.
    pub fn to_everyone(&mut self, event: E) {
        self.send(EventTarget::Everyone, event);
    }

    /// Sends `event` to `target`.
    pub fn send(&mut self, target: EventTarget, event: E) {
        self.outgoing.write(OutgoingEvent { target, event });
    }
}

/// One encoded event of this tick: its target, kind and bytes (a range of
/// [`EncodedEvents::bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedEvent {
    /// Who receives it.
    pub target: EventTarget,
    /// Wire number of its kind.
    pub kind: u16,
    /// Start of its value in [`EncodedEvents::bytes`].
    pub start: u32,
    /// End of its value in [`EncodedEvents::bytes`].
    pub end: u32,
}

/// This tick's events, encoded once each; buffers are reused from tick to tick.
#[derive(Debug, Default)]
pub struct EncodedEvents {
    /// In kind order, and in the order sent within a kind.
    pub records: Vec<EncodedEvent>,
    /// The values, postcard-encoded.
    pub bytes: Vec<u8>,
}

impl EncodedEvents {
    /// Empties both buffers, keeping their memory.
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes.clear();
    }

    /// The value bytes of `event`.
    pub fn value(&self, event: &EncodedEvent) -> &[u8] {
        &self.bytes[event.start as usize..event.end as usize]
    }
}

/// One registered event kind.
#[derive(Clone)]
pub struct EventKind {
    /// Stable wire name.
    pub name: String,
    /// Moves this tick's events of the kind (wire number given) out of the world, encoded.
    pub drain: fn(&mut World, u16, &mut EncodedEvents),
}

/// The registered event kinds; a kind's wire number is its index.
#[derive(Resource, Default, Clone)]
pub struct EventRegistry {
    /// By wire number.
    pub kinds: Vec<EventKind>,
}

impl EventRegistry {
    /// Registers `E` under `name`; returns its wire number.
    pub fn register<E: Serialize + Send + Sync + 'static>(&mut self, name: &str) -> u16 {
        assert!(
            !self.kinds.iter().any(|kind| kind.name == name),
            "event {name:?} registered twice"
        );
        self.kinds.push(EventKind {
            name: name.to_owned(),
            drain: drain::<E>,
        });
        (self.kinds.len() - 1) as u16
    }

    /// The wire names, by wire number.
    pub fn names(&self) -> Vec<String> {
        self.kinds.iter().map(|kind| kind.name.clone()).collect()
    }
}

fn drain<E: Serialize + Send + Sync + 'static>(
    world: &mut World,
    kind: u16,
    out: &mut EncodedEvents,
) {
    let Some(mut outgoing) = world.get_resource_mut::<Messages<OutgoingEvent<E>>>() else {
        return;
    };
    if outgoing.is_empty() {
        return;
    }
    for OutgoingEvent { target, event } in outgoing.drain() {
        let start = out.bytes.len() as u32;
        let bytes = std::mem::take(&mut out.bytes);
        // Serializing a serde-derived value into a Vec cannot fail.
        out.bytes = postcard::to_extend(&event, bytes).expect("encode an event");
        out.records.push(EncodedEvent {
            target,
            kind,
            start,
            end: out.bytes.len() as u32,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy_ecs::system::RunSystemOnce;
    use serde::Serialize;

    #[derive(Serialize, Debug, Clone, Copy)]
    struct Hit {
        target: u32,
    }

    #[test]
    fn events_are_encoded_once_each_in_the_order_sent() {
        let mut registry = EventRegistry::default();
        let kind = registry.register::<Hit>("hit");
        let mut world = World::new();
        bevy_ecs::message::MessageRegistry::register_message::<OutgoingEvent<Hit>>(&mut world);
        let someone = world.spawn_empty().id();
        world
            .run_system_once(move |mut hits: ServerEvents<Hit>| {
                hits.to_player(someone, Hit { target: 1 });
                hits.to_viewers_of(someone, Hit { target: 300 });
                hits.to_everyone(Hit { target: 2 });
            })
            .unwrap();
        let mut encoded = EncodedEvents::default();
        (registry.kinds[kind as usize].drain)(&mut world, kind, &mut encoded);
        let targets: Vec<_> = encoded.records.iter().map(|e| e.target).collect();
        assert_eq!(
            targets,
            [
                EventTarget::Player(someone),
                EventTarget::ViewersOf(someone),
                EventTarget::Everyone
            ]
        );
        let values: Vec<&[u8]> = encoded.records.iter().map(|e| encoded.value(e)).collect();
        assert_eq!(values, [&[1][..], &[0xac, 0x02][..], &[2][..]]);
        assert!(world.resource::<Messages<OutgoingEvent<Hit>>>().is_empty());
    }
}
