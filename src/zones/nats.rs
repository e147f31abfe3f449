//! The network side of border strips: publishes this zone's strip each tick on
//! `throng.strip.<zone>` and hands the other zones' strips, decoded, to the tick. Runs on
//! the network runtime; the tick only meets it through the bounded channels of
//! [`super::ghosts::GhostLink`].
//!
//! NATS is a plain pub/sub hop here (at most once: a lost strip is replaced by the next one
//! a tick later). If the NATS server is down the zones keep running without ghosts; the
//! client reconnects by itself and `throng_nats_connected` says which it is.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;

use super::ghosts::GhostNet;
use super::strip;
use crate::stats::Stats;

/// The subject a zone's strips are published on.
fn subject(zone: &str) -> String {
    format!("throng.strip.{zone}")
}

/// Connects to `url` and moves strips until the runtime stops.
pub(crate) async fn run(
    url: String,
    zone: String,
    zone_index: u16,
    net: GhostNet,
    stats: Arc<Stats>,
) {
    let events = stats.clone();
    let options = async_nats::ConnectOptions::new()
        .name(format!("throng zone {zone}"))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let stats = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        stats.nats_connected.store(1, Ordering::Relaxed);
                        tracing::info!("NATS connected");
                    }
                    async_nats::Event::Disconnected => {
                        stats.nats_connected.store(0, Ordering::Relaxed);
                        tracing::warn!("NATS disconnected; ghosts pause until it is back");
                    }
                    other => tracing::debug!(event = %other, "NATS"),
                }
            }
        });
    let client = match async_nats::connect_with_options(url.as_str(), options).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, %url, "cannot use NATS; this zone shows no ghosts");
            return;
        }
    };
    stats.nats_connected.store(1, Ordering::Relaxed);
    let subscriber = match client.subscribe("throng.strip.*").await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            tracing::error!(%error, "cannot subscribe to the neighbours' strips");
            return;
        }
    };
    let GhostNet {
        mut outgoing,
        spare,
        incoming,
    } = net;
    // Built once: cloning a Subject shares its bytes, so publishing allocates no name.
    let own = async_nats::Subject::from(subject(&zone));
    let receiving = tokio::spawn(receive(
        subscriber,
        own.clone(),
        zone_index,
        incoming,
        stats.clone(),
    ));
    while let Some(buffer) = outgoing.recv().await {
        let payload = bytes::Bytes::copy_from_slice(&buffer);
        let _ = spare.try_send(buffer);
        if let Err(error) = client.publish(own.clone(), payload).await {
            Stats::bump(&stats.ghost_strips_dropped);
            tracing::debug!(%error, "strip not published");
        }
    }
    receiving.abort();
}

/// Decodes the other zones' strips and hands them to the tick (dropping, counted, what it
/// has not taken yet).
async fn receive(
    mut subscriber: async_nats::Subscriber,
    own: async_nats::Subject,
    me: u16,
    incoming: crossbeam_channel::Sender<strip::Strip>,
    stats: Arc<Stats>,
) {
    while let Some(message) = subscriber.next().await {
        // Our own strips come back on the wildcard: dropped before decoding.
        if message.subject == own {
            continue;
        }
        match strip::read(&message.payload) {
            Ok(strip) if strip.zone == me => {}
            Ok(strip) => {
                if incoming.try_send(strip).is_err() {
                    Stats::bump(&stats.ghost_strips_refused);
                }
            }
            Err(error) => {
                Stats::bump(&stats.ghost_strips_refused);
                tracing::warn!(%error, subject = %message.subject, "an undecodable strip; dropped");
            }
        }
    }
}
