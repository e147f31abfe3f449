//! The stand-in server: the SDK's services over the generated tonic server traits, one shared
//! record of what was received, and a version channel that wakes whoever waits for a call.

// The handlers' helpers return tonic's `Status`, large as it is, because that is what a
// handler answers with (the generated traits fix it).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tonic::{Request, Response, Status, Streaming};

/// The SDK's messages and server traits, generated (build.rs) from the vendored protos.
pub mod proto {
    /// `agones.dev.sdk`: the stable SDK (lifecycle, health, metadata).
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod sdk {
        tonic::include_proto!("agones.dev.sdk");
    }

    /// `agones.dev.sdk.beta`: Counters and Lists.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod beta {
        tonic::include_proto!("agones.dev.sdk.beta");
    }
}

use proto::beta::sdk_server::{Sdk as BetaSdk, SdkServer as BetaSdkServer};
use proto::sdk::sdk_server::{Sdk, SdkServer};
use proto::sdk::{Empty, GameServer, KeyValue, game_server};

/// One call the stand-in received, in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `GetGameServer` (the SDK's connection check polls it).
    GetGameServer,
    /// `Ready`: the game server accepts players.
    Ready,
    /// `Allocate`.
    Allocate,
    /// `Shutdown`: the game server is going away.
    Shutdown,
    /// One message on a `Health` stream.
    Health,
    /// `SetLabel`.
    SetLabel {
        /// The label's key (the real sidecar prefixes it with `agones.dev/sdk-`).
        key: String,
        /// Its value.
        value: String,
    },
    /// `SetAnnotation`.
    SetAnnotation {
        /// The annotation's key.
        key: String,
        /// Its value.
        value: String,
    },
    /// `Reserve`.
    Reserve {
        /// For how long.
        seconds: i64,
    },
    /// `GetCounter` (beta).
    GetCounter {
        /// The Counter.
        name: String,
    },
    /// `UpdateCounter` (beta), as requested (whether it was accepted shows in the Counter).
    UpdateCounter {
        /// The Counter.
        name: String,
        /// A new count, if set.
        count: Option<i64>,
        /// A new capacity, if set.
        capacity: Option<i64>,
        /// An increment (positive) or decrement (negative), 0 for a set.
        count_diff: i64,
    },
}

/// A Counter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// The current count.
    pub count: i64,
    /// The most the count may be.
    pub capacity: i64,
}

/// What the stand-in has seen so far.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every call, in the order received.
    pub calls: Vec<Call>,
    /// The GameServer's state as the calls left it: "Scheduled" (no Ready yet), "Ready",
    /// "Allocated", "Reserved" or "Shutdown".
    pub state: String,
    /// Every declared Counter as the calls left it.
    pub counters: BTreeMap<String, Counter>,
    /// Labels set through the SDK.
    pub labels: BTreeMap<String, String>,
}

impl Snapshot {
    /// How many calls were `call`.
    pub fn count(&self, call: &Call) -> usize {
        self.calls.iter().filter(|c| *c == call).count()
    }

    /// Health pings received.
    pub fn health_pings(&self) -> usize {
        self.count(&Call::Health)
    }

    /// Where `call` first appears in the calls, if it does.
    pub fn position(&self, call: &Call) -> Option<usize> {
        self.calls.iter().position(|c| c == call)
    }
}

/// The record every handler writes into.
#[derive(Debug)]
struct Shared {
    record: Mutex<Snapshot>,
    /// Bumped after every recorded call: waiters wake on it instead of polling.
    version: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // A handler that panicked mid-update leaves a record still worth reading.
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `call`, applies `effect` to the state under the same lock, wakes waiters.
    fn record<R>(&self, call: Call, effect: impl FnOnce(&mut Snapshot) -> R) -> R {
        let result = {
            let mut record = self.lock();
            record.calls.push(call);
            effect(&mut record)
        };
        self.version.send_modify(|v| *v += 1);
        result
    }
}

/// A running stand-in sidecar on `127.0.0.1`; stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl StandIn {
    /// Starts one on an ephemeral loopback port, on the current tokio runtime, with these
    /// Counters declared (as a GameServer spec's `counters` would).
    pub async fn start(counters: &[(&str, Counter)]) -> std::io::Result<StandIn> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), counters).await
    }

    /// Like [`StandIn::start`], on `addr` (the real sidecar's is `localhost:9357`).
    pub async fn start_on(
        addr: SocketAddr,
        counters: &[(&str, Counter)],
    ) -> std::io::Result<StandIn> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            record: Mutex::new(Snapshot {
                calls: Vec::new(),
                state: "Scheduled".to_owned(),
                counters: counters
                    .iter()
                    .map(|(name, counter)| ((*name).to_owned(), *counter))
                    .collect(),
                labels: BTreeMap::new(),
            }),
            version,
        });
        let incoming = tonic::transport::server::TcpIncoming::from_listener(listener, true, None)
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .add_service(SdkServer::new(Service(shared.clone())))
            .add_service(BetaSdkServer::new(Service(shared.clone())));
        let server = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(error) = router.serve_with_incoming_shutdown(incoming, stopped).await {
                eprintln!("agones stand-in sidecar: {error}");
            }
        });
        Ok(StandIn {
            addr,
            shared,
            stop: Some(stop),
            server,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port: what `AGONES_SDK_GRPC_PORT` is set to for the game server.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What it has seen so far.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.lock().clone()
    }

    /// Waits until `condition` holds for what it has seen and returns that; `None` if
    /// `patience` ran out first. Woken by each call, never polling.
    pub async fn until(
        &self,
        patience: Duration,
        condition: impl Fn(&Snapshot) -> bool,
    ) -> Option<Snapshot> {
        let mut version = self.shared.version.subscribe();
        tokio::time::timeout(patience, async {
            loop {
                version.borrow_and_update();
                let snapshot = self.snapshot();
                if condition(&snapshot) {
                    return snapshot;
                }
                // The sender lives in `self.shared`: `changed` cannot fail while we hold self.
                let _ = version.changed().await;
            }
        })
        .await
        .ok()
    }

    /// Stops serving (open streams end) and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.abort();
    }
}

/// The services' handlers, all over one record.
#[derive(Clone)]
struct Service(Arc<Shared>);

impl Service {
    fn game_server(&self) -> GameServer {
        let record = self.0.lock();
        GameServer {
            object_meta: Some(game_server::ObjectMeta {
                name: "stand-in".to_owned(),
                namespace: "default".to_owned(),
                labels: record
                    .labels
                    .iter()
                    .map(|(k, v)| (format!("agones.dev/sdk-{k}"), v.clone()))
                    .collect(),
                ..Default::default()
            }),
            spec: None,
            status: Some(game_server::Status {
                state: record.state.clone(),
                counters: record
                    .counters
                    .iter()
                    .map(|(name, c)| {
                        let status = game_server::status::CounterStatus {
                            count: c.count,
                            capacity: c.capacity,
                        };
                        (name.clone(), status)
                    })
                    .collect(),
                ..Default::default()
            }),
        }
    }

    fn lifecycle(&self, call: Call, state: &str) -> Result<Response<Empty>, Status> {
        self.0.record(call, |record| {
            // As on a cluster: a GameServer that is shutting down stays shut down.
            if record.state != "Shutdown" {
                record.state = state.to_owned();
            }
        });
        Ok(Response::new(Empty {}))
    }
}

#[tonic::async_trait]
impl Sdk for Service {
    async fn ready(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.lifecycle(Call::Ready, "Ready")
    }

    async fn allocate(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.lifecycle(Call::Allocate, "Allocated")
    }

    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.lifecycle(Call::Shutdown, "Shutdown")
    }

    async fn health(&self, request: Request<Streaming<Empty>>) -> Result<Response<Empty>, Status> {
        let mut pings = request.into_inner();
        // Each message is one ping; the stream stays open for the game server's lifetime.
        while pings.message().await?.is_some() {
            self.0.record(Call::Health, |_| ());
        }
        Ok(Response::new(Empty {}))
    }

    async fn get_game_server(&self, _: Request<Empty>) -> Result<Response<GameServer>, Status> {
        self.0.record(Call::GetGameServer, |_| ());
        Ok(Response::new(self.game_server()))
    }

    type WatchGameServerStream = tonic::codegen::BoxStream<GameServer>;

    async fn watch_game_server(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::WatchGameServerStream>, Status> {
        Err(Status::unimplemented(
            "the stand-in sidecar does not stream GameServer updates",
        ))
    }

    async fn set_label(&self, request: Request<KeyValue>) -> Result<Response<Empty>, Status> {
        let KeyValue { key, value } = request.into_inner();
        let call = Call::SetLabel {
            key: key.clone(),
            value: value.clone(),
        };
        self.0
            .record(call, |record| record.labels.insert(key, value));
        Ok(Response::new(Empty {}))
    }

    async fn set_annotation(&self, request: Request<KeyValue>) -> Result<Response<Empty>, Status> {
        let KeyValue { key, value } = request.into_inner();
        self.0.record(Call::SetAnnotation { key, value }, |_| ());
        Ok(Response::new(Empty {}))
    }

    async fn reserve(
        &self,
        request: Request<proto::sdk::Duration>,
    ) -> Result<Response<Empty>, Status> {
        let seconds = request.into_inner().seconds;
        self.lifecycle(Call::Reserve { seconds }, "Reserved")
    }
}

#[tonic::async_trait]
impl BetaSdk for Service {
    async fn get_counter(
        &self,
        request: Request<proto::beta::GetCounterRequest>,
    ) -> Result<Response<proto::beta::Counter>, Status> {
        let name = request.into_inner().name;
        let call = Call::GetCounter { name: name.clone() };
        let counter = self
            .0
            .record(call, |record| record.counters.get(&name).copied());
        let counter = counter.ok_or_else(|| undeclared(&name))?;
        Ok(Response::new(proto::beta::Counter {
            name,
            count: counter.count,
            capacity: counter.capacity,
        }))
    }

    async fn update_counter(
        &self,
        request: Request<proto::beta::UpdateCounterRequest>,
    ) -> Result<Response<proto::beta::Counter>, Status> {
        let update = request
            .into_inner()
            .counter_update_request
            .ok_or_else(|| Status::invalid_argument("counterUpdateRequest is required"))?;
        let call = Call::UpdateCounter {
            name: update.name.clone(),
            count: update.count,
            capacity: update.capacity,
            count_diff: update.count_diff,
        };
        let name = update.name.clone();
        let updated = self.0.record(call, |record| {
            let counter = record
                .counters
                .get_mut(&update.name)
                .ok_or_else(|| undeclared(&update.name))?;
            apply(*counter, &update).inspect(|new| *counter = *new)
        })?;
        Ok(Response::new(proto::beta::Counter {
            name,
            count: updated.count,
            capacity: updated.capacity,
        }))
    }

    async fn get_list(
        &self,
        _: Request<proto::beta::GetListRequest>,
    ) -> Result<Response<proto::beta::List>, Status> {
        Err(Status::unimplemented("the stand-in sidecar has no Lists"))
    }

    async fn update_list(
        &self,
        _: Request<proto::beta::UpdateListRequest>,
    ) -> Result<Response<proto::beta::List>, Status> {
        Err(Status::unimplemented("the stand-in sidecar has no Lists"))
    }

    async fn add_list_value(
        &self,
        _: Request<proto::beta::AddListValueRequest>,
    ) -> Result<Response<proto::beta::List>, Status> {
        Err(Status::unimplemented("the stand-in sidecar has no Lists"))
    }

    async fn remove_list_value(
        &self,
        _: Request<proto::beta::RemoveListValueRequest>,
    ) -> Result<Response<proto::beta::List>, Status> {
        Err(Status::unimplemented("the stand-in sidecar has no Lists"))
    }
}

/// The real sidecar's answer for a Counter the GameServer spec did not declare.
fn undeclared(name: &str) -> Status {
    Status::not_found(format!("counter not found: {name}"))
}

/// One Counter update, checked as the real sidecar checks it: a capacity at least 0, then a
/// count (set, or moved by the diff) within `[0, capacity]`.
fn apply(counter: Counter, update: &proto::beta::CounterUpdateRequest) -> Result<Counter, Status> {
    let mut new = counter;
    if let Some(capacity) = update.capacity {
        if capacity < 0 {
            return Err(Status::invalid_argument(format!(
                "capacity must be at least 0, got {capacity}"
            )));
        }
        new.capacity = capacity;
    }
    if let Some(count) = update.count {
        new.count = count;
    }
    new.count = new.count.saturating_add(update.count_diff);
    if !(0..=new.capacity).contains(&new.count) {
        return Err(Status::out_of_range(format!(
            "count {} is outside [0, {}]",
            new.count, new.capacity
        )));
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(
        count: Option<i64>,
        capacity: Option<i64>,
        diff: i64,
    ) -> proto::beta::CounterUpdateRequest {
        proto::beta::CounterUpdateRequest {
            name: "players".into(),
            count,
            capacity,
            count_diff: diff,
        }
    }

    #[test]
    fn counter_updates_stay_within_capacity() {
        let c = Counter {
            count: 2,
            capacity: 10,
        };
        assert_eq!(apply(c, &update(Some(7), None, 0)).unwrap().count, 7);
        assert_eq!(apply(c, &update(None, None, 3)).unwrap().count, 5);
        assert_eq!(
            apply(c, &update(None, Some(4), 0)).unwrap(),
            Counter {
                count: 2,
                capacity: 4
            }
        );
        assert_eq!(
            apply(c, &update(Some(11), None, 0)).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            apply(c, &update(None, None, -3)).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            apply(c, &update(None, Some(1), 0)).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            apply(c, &update(None, Some(-1), 0)).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
