//! Replays a recording without sockets: the simulation is rebuilt from the recorded
//! configuration with the same gameplay, each recorded tick's joins, leaves, inputs and
//! actions go into the real inbound queues, the tick runs, and every recorded digest is
//! compared with the replayed state. Frames come out of the real outboxes, so a replay
//! produces, byte for byte, what each client was sent.

use std::path::{Path, PathBuf};

use ahash::AHashMap;
use bevy_app::App;
use bevy_ecs::prelude::*;
use components::persistent::PersistRegistry;
use components::replicated::ReplicationRegistry;
use components::{NetId, PlayerName};

use super::digest::{Difference, DigestState, first_difference};
use super::format::{CHUNK_TICKS, Damage, DamageAt, Entry, Header, SegmentReader, entries};
use crate::bridge::{ConnectionId, PlayerMessage};
use crate::config::{Config, ConfigLayer};
use crate::harness::Harness;
use crate::persistence::store::SavedPlayer;
use crate::protocol::{Action, CloseReason, Input};

/// Where a segment's header chunk starts (after the magic and the version).
const HEADER_OFFSET: usize = super::format::PREAMBLE_BYTES;

/// Why a replay cannot start or cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file is not (or no longer) a readable recording from this offset on.
    #[error("{} at byte {offset}: {damage}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: usize,
        /// What it is.
        damage: Damage,
    },
    /// The recording was made with other gameplay (other registered names) than this build.
    #[error("{} at byte {HEADER_OFFSET} (its header): recorded with different gameplay: {what}", path.display())]
    Gameplay {
        /// The file.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// The recorded configuration does not resolve in this build.
    #[error("{} at byte {HEADER_OFFSET} (its header): the recorded configuration is not valid here: {why}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The segments do not follow each other (one missing, another session's, a gap in
    /// the ticks).
    #[error("{}: {why}", path.display())]
    Sequence {
        /// The file.
        path: PathBuf,
        /// What is out of sequence.
        why: String,
    },
}

/// A join or a leave, as recorded.
enum Lifecycle {
    Join {
        connection: ConnectionId,
        name: String,
        saved: SavedPlayer,
        ack_seq: u32,
    },
    Leave(ConnectionId),
}

/// One recorded tick, decoded.
struct RecordedTick {
    tick: u64,
    /// Console kicks between the previous tick and this one: (name key, detail).
    kicks: Vec<(String, String)>,
    /// Connections whose frame the live tick dropped (full outbox).
    dropped: Vec<ConnectionId>,
    /// The server asked every client to close before this tick (its reason's index).
    close_all: Option<u8>,
    lifecycle: Vec<Lifecycle>,
    messages: Vec<(ConnectionId, PlayerMessage)>,
    digest: Option<Vec<u8>>,
}

/// What replaying one tick found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestCheck {
    /// No digest was recorded for this tick.
    NotRecorded,
    /// The replayed state equals the recorded one.
    Matched,
    /// It does not.
    Diverged(Divergence),
}

/// Where a replay first differs from its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The tick whose digest differs.
    pub tick: u64,
    /// The entity, as a reader can find it: its wire id, and its player's name if any.
    pub entity: String,
    /// What differs: `position`, a replicated component's registered name, or the entity's
    /// presence.
    pub component: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tick {}, entity {}, {}",
            self.tick, self.entity, self.component
        )
    }
}

/// A recording being replayed, tick by tick.
pub struct Replay {
    harness: Harness,
    header: Header,
    segments: Vec<PathBuf>,
    /// The first segment missing before later ones of the session (the replay stops there).
    missing: Option<u32>,
    /// Index into `segments` of the one being read, its bytes and the next chunk's offset.
    segment: usize,
    bytes: Vec<u8>,
    offset: usize,
    /// Ticks decoded from the current chunk, not yet run (in reverse order).
    ready: Vec<RecordedTick>,
    names: AHashMap<ConnectionId, String>,
    digest: DigestState,
    digest_bytes: Vec<u8>,
    plots: crate::profiling::TickPlots,
}

impl Replay {
    /// Opens the recording `path` belongs to (from its first segment, whichever segment
    /// `path` is) and builds its simulation with the gameplay `game` registers.
    pub fn open(path: &Path, game: impl FnOnce(&mut App)) -> Result<Replay, ReplayError> {
        let (segments, missing) = session_segments(path)?;
        let first = &segments[0];
        let bytes = read(first)?;
        let (header, reader) = SegmentReader::open(&bytes).map_err(|at| damaged(first, at))?;
        if header.segment != 0 {
            return Err(ReplayError::Sequence {
                path: first.clone(),
                why: format!(
                    "this is segment {} of session {}; a replay starts from segment 0",
                    header.segment, header.session
                ),
            });
        }
        let offset = reader.offset();
        let config = recorded_config(first, &header)?;
        let mut harness =
            Harness::unbounded(&config, game).map_err(|error| ReplayError::Config {
                path: first.clone(),
                why: error.to_string(),
            })?;
        check_gameplay(first, &header, &harness.simulation.world)?;
        let digest = DigestState::new(&mut harness.simulation.world);
        Ok(Replay {
            harness,
            header,
            segments,
            missing,
            segment: 0,
            bytes,
            offset,
            ready: Vec::new(),
            names: AHashMap::default(),
            digest,
            digest_bytes: Vec::new(),
            plots: Default::default(),
        })
    }

    /// The first segment's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The segment files of the recording, in order.
    pub fn segments(&self) -> &[PathBuf] {
        &self.segments
    }

    /// Ticks per second the recording ran at.
    pub fn tick_hz(&self) -> f64 {
        let clock = self
            .harness
            .simulation
            .world
            .resource::<components::TickClock>();
        1.0 / f64::from(clock.seconds_per_tick)
    }

    /// Players in the replayed world after the last tick.
    pub fn players(&self) -> u64 {
        self.harness
            .stats
            .players_connected
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes of the recording's segment files.
    pub fn recorded_bytes(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|metadata| metadata.len())
            .sum()
    }

    /// The last tick run (0 before the first).
    pub fn tick(&self) -> u64 {
        self.harness.simulation.current_tick()
    }

    /// The replayed simulation's world.
    pub fn world(&mut self) -> &mut World {
        &mut self.harness.simulation.world
    }

    /// Runs the next recorded tick and checks its digest if one was recorded; `None` at the
    /// clean end of the recording. Take the tick's frames after each call
    /// ([`Replay::drain_frames`] or [`Replay::discard_frames`]), as the network does: frames
    /// left in an outbox fill it, and the replay would then drop frames the server sent.
    pub fn next_tick(&mut self) -> Result<Option<DigestCheck>, ReplayError> {
        let Some(recorded) = self.next_recorded()? else {
            return Ok(None);
        };
        let expected = self.tick() + 1;
        if recorded.tick != expected {
            return Err(ReplayError::Sequence {
                path: self.segments[self.segment].clone(),
                why: format!(
                    "tick {} follows tick {}: ticks are missing",
                    recorded.tick,
                    expected - 1
                ),
            });
        }
        if let Some(reason) = recorded.close_all {
            let reason = CloseReason::ALL
                .get(usize::from(reason))
                .copied()
                .unwrap_or(CloseReason::Shutdown);
            crate::replication::welcome::close_all_clients(
                &mut self.harness.simulation.world,
                reason,
            );
        }
        for (player, detail) in recorded.kicks {
            crate::replication::welcome::kick_client(
                &mut self.harness.simulation.world,
                &player,
                detail,
            );
        }
        for event in recorded.lifecycle {
            match event {
                Lifecycle::Join {
                    connection,
                    name,
                    saved,
                    ack_seq,
                } => {
                    self.names.insert(connection, name.clone());
                    self.harness.join_as(connection, name, saved, ack_seq);
                }
                Lifecycle::Leave(connection) => self.harness.leave(connection),
            }
        }
        for (connection, message) in recorded.messages {
            self.harness.send(connection, message);
        }
        for connection in recorded.dropped {
            self.harness.refuse_next_frame(connection);
        }
        {
            // The same frame and zones as a live tick, so a replay profiles like the server.
            let started = std::time::Instant::now();
            {
                let _zone = crate::profiling::tick_zone();
                self.harness.tick();
            }
            self.plots.tick_finished(
                &self.harness.stats,
                started.elapsed(),
                &self.harness.simulation,
            );
        }
        let Some(recorded_digest) = recorded.digest else {
            return Ok(Some(DigestCheck::NotRecorded));
        };
        self.digest_bytes.clear();
        self.digest
            .write(&self.harness.simulation.world, &mut self.digest_bytes);
        Ok(Some(
            match first_difference(&recorded_digest, &self.digest_bytes) {
                None => DigestCheck::Matched,
                Some(difference) => DigestCheck::Diverged(self.describe(expected, difference)),
            },
        ))
    }

    /// Takes the frames the last ticks produced: for each, the connection, its player's
    /// name and the message bytes a client received (length prefix excluded).
    pub fn drain_frames(&mut self, mut each: impl FnMut(ConnectionId, &str, &[u8])) {
        let names = &self.names;
        self.harness.drain_frames(|connection, frame| {
            let name = names.get(&connection).map_or("", String::as_str);
            each(connection, name, frame)
        });
    }

    /// Drops the frames the last ticks produced (what a replay that checks only the state
    /// does after every tick, so that outboxes never fill).
    pub fn discard_frames(&mut self) {
        self.harness.write_all_frames();
    }

    fn describe(&mut self, tick: u64, difference: Difference) -> Divergence {
        let world = &mut self.harness.simulation.world;
        let entity = |id: u32, world: &mut World| {
            let mut players = world.query::<(&NetId, Option<&PlayerName>)>();
            let name = players
                .iter(world)
                .find(|(net_id, _)| net_id.0 == id)
                .and_then(|(_, name)| name.map(|name| name.0.clone()));
            match name {
                Some(name) => format!("{id} (player {name:?})"),
                None => format!("{id}"),
            }
        };
        let component_name = |kind: u16, world: &World| {
            world
                .resource::<ReplicationRegistry>()
                .names
                .get(usize::from(kind))
                .map_or_else(|| format!("component kind {kind}"), |n| format!("{n:?}"))
        };
        let (entity, component) = match difference {
            Difference::Unreadable => ("?".into(), "the recorded digest does not read".into()),
            Difference::Missing(id) => (
                format!("{id}"),
                "exists in the recording, not in the replay".into(),
            ),
            Difference::Extra(id) => (
                entity(id, world),
                "exists in the replay, not in the recording".into(),
            ),
            Difference::Position(id) => (entity(id, world), "position differs".into()),
            Difference::Component(id, kind) => (
                entity(id, world),
                format!("{} differs", component_name(kind, world)),
            ),
        };
        Divergence {
            tick,
            entity,
            component,
        }
    }

    /// The next recorded tick, reading the next chunk (or segment) when needed.
    fn next_recorded(&mut self) -> Result<Option<RecordedTick>, ReplayError> {
        loop {
            if let Some(tick) = self.ready.pop() {
                return Ok(Some(tick));
            }
            let path = &self.segments[self.segment];
            let mut reader = SegmentReader::at(&self.bytes, self.offset);
            match reader.next_chunk() {
                Some(Ok((CHUNK_TICKS, payload))) => {
                    let chunk_offset = self.offset;
                    let mut ticks = decode_ticks(payload).map_err(|damage| {
                        damaged(
                            path,
                            DamageAt {
                                offset: chunk_offset,
                                damage,
                            },
                        )
                    })?;
                    ticks.reverse();
                    self.ready = ticks;
                    self.offset = reader.offset();
                }
                Some(Ok((kind, _))) => {
                    return Err(damaged(
                        path,
                        DamageAt {
                            offset: self.offset,
                            damage: Damage::UnknownChunk(kind),
                        },
                    ));
                }
                Some(Err(at)) => return Err(damaged(path, at)),
                None if self.segment + 1 < self.segments.len() => self.open_next_segment()?,
                None => {
                    return match self.missing {
                        None => Ok(None),
                        Some(index) => Err(ReplayError::Sequence {
                            path: super::writer::segment_path(
                                self.segments[0].parent().unwrap_or(Path::new(".")),
                                &self.header.session,
                                index,
                            ),
                            why: format!(
                                "segment {index} is missing, and later segments of the session \
                                 exist"
                            ),
                        }),
                    };
                }
            }
        }
    }

    fn open_next_segment(&mut self) -> Result<(), ReplayError> {
        self.segment += 1;
        let path = &self.segments[self.segment];
        self.bytes = read(path)?;
        let (header, reader) = SegmentReader::open(&self.bytes).map_err(|at| damaged(path, at))?;
        let expected_tick = self.tick() + 1;
        if header.session != self.header.session
            || header.segment as usize != self.segment
            || header.first_tick != expected_tick
        {
            return Err(ReplayError::Sequence {
                path: path.clone(),
                why: format!(
                    "expected segment {} of session {} starting at tick {expected_tick}, found \
                     segment {} of session {} starting at tick {}",
                    self.segment,
                    self.header.session,
                    header.segment,
                    header.session,
                    header.first_tick
                ),
            });
        }
        self.offset = reader.offset();
        Ok(())
    }
}

/// Decodes a ticks chunk into its ticks.
fn decode_ticks(payload: &[u8]) -> Result<Vec<RecordedTick>, Damage> {
    let mut ticks: Vec<RecordedTick> = Vec::new();
    for entry in entries(payload) {
        let entry = entry?;
        if let Entry::Tick(tick) = entry {
            ticks.push(RecordedTick {
                tick,
                kicks: Vec::new(),
                dropped: Vec::new(),
                close_all: None,
                lifecycle: Vec::new(),
                messages: Vec::new(),
                digest: None,
            });
            continue;
        }
        let Some(current) = ticks.last_mut() else {
            return Err(Damage::Entry("a chunk must start with a tick".into()));
        };
        match entry {
            Entry::Tick(_) => unreachable!("handled above"),
            Entry::Join {
                connection,
                name,
                account,
                position,
                components,
                ack_seq,
            } => current.lifecycle.push(Lifecycle::Join {
                ack_seq,
                connection,
                name: name.to_owned(),
                saved: SavedPlayer {
                    account,
                    position,
                    components: components
                        .into_iter()
                        .map(|(name, bytes)| (name.to_owned(), bytes.to_vec()))
                        .collect(),
                },
            }),
            Entry::Leave { connection } => current.lifecycle.push(Lifecycle::Leave(connection)),
            Entry::Input {
                connection,
                seq,
                dir_x,
                dir_y,
            } => current.messages.push((
                connection,
                PlayerMessage::Input(Input { seq, dir_x, dir_y }),
            )),
            Entry::Action {
                connection,
                seq,
                kind,
                bytes,
            } => current.messages.push((
                connection,
                PlayerMessage::Action(Action {
                    seq,
                    kind,
                    bytes: bytes.to_vec(),
                }),
            )),
            Entry::Digest(bytes) => current.digest = Some(bytes.to_vec()),
            Entry::Kick { player, detail } => {
                current.kicks.push((player.to_owned(), detail.to_owned()))
            }
            Entry::FrameDropped { connection } => current.dropped.push(connection),
            Entry::CloseAll { reason } => current.close_all = Some(reason),
        }
    }
    Ok(ticks)
}

fn read(path: &Path) -> Result<Vec<u8>, ReplayError> {
    std::fs::read(path).map_err(|source| ReplayError::Io {
        path: path.to_owned(),
        source,
    })
}

fn damaged(path: &Path, at: DamageAt) -> ReplayError {
    ReplayError::Damaged {
        path: path.to_owned(),
        offset: at.offset,
        damage: at.damage,
    }
}

/// The segment files of the session `path` belongs to, from segment 0, contiguous. A file
/// not named like a segment is taken as a whole recording by itself.
fn session_segments(path: &Path) -> Result<(Vec<PathBuf>, Option<u32>), ReplayError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((session, _)) = segment_name(name) else {
        return Ok((vec![path.to_owned()], None));
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut segments = Vec::new();
    loop {
        let segment = super::writer::segment_path(dir, session, segments.len() as u32);
        if !segment.exists() {
            break;
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(ReplayError::Sequence {
            path: path.to_owned(),
            why: format!(
                "segment 0 of session {session} is not in {}: a replay starts from it",
                dir.display()
            ),
        });
    }
    if !segments
        .iter()
        .any(|segment| segment.file_name() == path.file_name())
    {
        return Err(ReplayError::Sequence {
            path: path.to_owned(),
            why: format!(
                "a segment of session {session} before this one is missing (found {} from 0)",
                segments.len()
            ),
        });
    }
    // A later segment beyond a missing one: the replay stops where the gap is.
    let contiguous = segments.len() as u32;
    let beyond_a_gap = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(segment_name)
                    .is_some_and(|(s, index)| s == session && index > contiguous)
            })
        })
        .unwrap_or(false);
    Ok((segments, beyond_a_gap.then_some(contiguous)))
}

/// A segment file's session and index (`SESSION-NNNN.rec`).
fn segment_name(name: &str) -> Option<(&str, u32)> {
    let (session, index) = name.strip_suffix(".rec")?.rsplit_once('-')?;
    if index.len() != 4 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((session, index.parse().ok()?))
}

/// The configuration the recording was made with, not recording itself.
fn recorded_config(path: &Path, header: &Header) -> Result<Config, ReplayError> {
    let invalid = |why: String| ReplayError::Config {
        path: path.to_owned(),
        why,
    };
    let layer: ConfigLayer = toml::from_str(&header.config).map_err(|e| invalid(e.to_string()))?;
    let mut config = layer.resolve().map_err(|e| invalid(e.to_string()))?;
    config.record = PathBuf::new();
    Ok(config)
}

/// Refuses a replay whose gameplay registers other names than the recording's.
fn check_gameplay(path: &Path, header: &Header, world: &World) -> Result<(), ReplayError> {
    let schema = crate::game::schema(world);
    let persisted = world.resource::<PersistRegistry>().names();
    let mut differences = Vec::new();
    for (what, recorded, here) in [
        ("components", &header.schema.components, &schema.components),
        ("actions", &header.schema.actions, &schema.actions),
        ("events", &header.schema.events, &schema.events),
        ("persisted components", &header.persisted, &persisted),
    ] {
        if recorded != here {
            differences.push(format!("{what} {recorded:?} recorded, {here:?} here"));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(ReplayError::Gameplay {
            path: path.to_owned(),
            what: differences.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLayer;

    #[test]
    fn a_kick_between_two_ticks_is_replayed_between_the_same_two_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigLayer {
            record: Some(dir.path().to_owned()),
            record_digest_every: Some(1),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let mut live = Harness::new(&config);
        let victim = live.join("victim");
        live.join("other");
        let mut received = AHashMap::<ConnectionId, usize>::default();
        for tick in 1..=20 {
            live.tick();
            live.drain_frames(|connection, _| *received.entry(connection).or_default() += 1);
            if tick == 10 {
                // What the console's kick does between ticks; the player stays joined (no
                // leave comes), so only the kick stops its frames.
                let world = &mut live.simulation.world;
                assert!(super::super::capture::kick(world, "victim", "x".into()).is_some());
            }
        }
        drop(live);
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut replay = Replay::open(&path, |app| {
            app.add_plugins(systems::GamePlugins);
        })
        .unwrap();
        let mut produced = AHashMap::<String, usize>::default();
        while let Some(check) = replay.next_tick().unwrap() {
            assert_eq!(check, DigestCheck::Matched);
            replay.drain_frames(|_, name, _| *produced.entry(name.to_owned()).or_default() += 1);
        }
        assert_eq!(
            received[&victim], 11,
            "the Welcome and frames of ticks 1-10"
        );
        assert_eq!(produced["victim"], received[&victim]);
        assert_eq!(produced["other"], 21);
    }
}
