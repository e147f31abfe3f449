//! Player actions: typed requests a client sends (throw, pick up, chat, open a door...),
//! declared by gameplay with a stable wire name and read by systems as messages.
//!
//! `app.add_action::<Throw>("throw")` registers the kind; the engine checks each action
//! on the network side (known kind, size, rate, decodes as `Throw`) and delivers it in the
//! tick after it arrived as a [`PlayerAction<Throw>`], in arrival order.

use bevy_ecs::message::Message;
use bevy_ecs::prelude::*;
use serde::de::DeserializeOwned;

/// An action a player sent, as gameplay reads it (`MessageReader<PlayerAction<Throw>>`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerAction<A> {
    /// The sending player's entity.
    pub player: Entity,
    /// The client's sequence number for it (shared with inputs; acknowledged by `ack_seq`).
    pub seq: u32,
    /// The action.
    pub action: A,
}

impl<A: Send + Sync + 'static> Message for PlayerAction<A> {}

/// What one player may send of one action kind; beyond it actions are dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionLimits {
    /// Largest encoded value accepted, bytes.
    pub max_bytes: u16,
    /// Actions per second per player (token bucket refill).
    pub per_second: u32,
    /// Actions a player may send at once above the rate (token bucket size).
    pub burst: u32,
}

impl Default for ActionLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64,
            per_second: 10,
            burst: 10,
        }
    }
}

/// One registered action kind: its wire name, limits, and how to check and deliver it.
#[derive(Clone)]
pub struct ActionKind {
    /// Stable wire name (the client finds the kind's index by it in the Welcome schema).
    pub name: String,
    /// Size and rate limits.
    pub limits: ActionLimits,
    /// Whether `bytes` are exactly one value of the kind's type (network side).
    pub decodes: fn(&[u8]) -> bool,
    /// Decodes `bytes` and writes the [`PlayerAction`] message (tick side); false if the
    /// bytes do not decode.
    pub deliver: fn(&mut World, Entity, u32, &[u8]) -> bool,
}

/// The registered action kinds; a kind's wire number is its index.
#[derive(Resource, Default, Clone)]
pub struct ActionRegistry {
    /// By wire number.
    pub kinds: Vec<ActionKind>,
}

impl ActionRegistry {
    /// Registers `A` under `name`; returns its wire number.
    pub fn register<A: DeserializeOwned + Send + Sync + 'static>(
        &mut self,
        name: &str,
        limits: ActionLimits,
    ) -> u16 {
        assert!(
            !self.kinds.iter().any(|kind| kind.name == name),
            "action {name:?} registered twice"
        );
        self.kinds.push(ActionKind {
            name: name.to_owned(),
            limits,
            decodes: decodes::<A>,
            deliver: deliver::<A>,
        });
        (self.kinds.len() - 1) as u16
    }

    /// The wire names, by wire number.
    pub fn names(&self) -> Vec<String> {
        self.kinds.iter().map(|kind| kind.name.clone()).collect()
    }
}

fn decodes<A: DeserializeOwned>(bytes: &[u8]) -> bool {
    matches!(postcard::take_from_bytes::<A>(bytes), Ok((_, rest)) if rest.is_empty())
}

fn deliver<A: DeserializeOwned + Send + Sync + 'static>(
    world: &mut World,
    player: Entity,
    seq: u32,
    bytes: &[u8],
) -> bool {
    match postcard::take_from_bytes::<A>(bytes) {
        Ok((action, [])) => {
            world.write_message(PlayerAction {
                player,
                seq,
                action,
            });
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Throw {
        dir_x: i8,
        dir_y: i8,
    }

    #[test]
    fn an_action_is_checked_and_delivered_with_its_player_and_seq() {
        let mut registry = ActionRegistry::default();
        let kind = registry.register::<Throw>("throw", ActionLimits::default());
        let mut world = World::new();
        bevy_ecs::message::MessageRegistry::register_message::<PlayerAction<Throw>>(&mut world);
        let player = world.spawn_empty().id();
        let bytes = postcard::to_stdvec(&Throw {
            dir_x: 1,
            dir_y: -1,
        })
        .unwrap();
        let kind = &registry.kinds[kind as usize];
        assert!((kind.decodes)(&bytes));
        assert!(!(kind.decodes)(&bytes[..1]), "truncated");
        assert!(!(kind.decodes)(&[1, 2, 3]), "trailing bytes");
        assert!((kind.deliver)(&mut world, player, 7, &bytes));
        let messages = world.resource::<Messages<PlayerAction<Throw>>>();
        let delivered: Vec<_> = messages.iter_current_update_messages().collect();
        assert_eq!(
            delivered,
            [&PlayerAction {
                player,
                seq: 7,
                action: Throw {
                    dir_x: 1,
                    dir_y: -1
                }
            }]
        );
    }
}
