//! The persistence thread: the only user of the [`Store`]. It answers logins (from
//! connection tasks, before their join reaches the world) and writes the batches the tick
//! hands off, one transaction per batch.
//!
//! The tick never wakes it: batches go into a lock-free queue that the thread polls every
//! 20 ms (or right after a login). When it falls behind, the batches waiting for it are merged into one (the latest record
//! per player wins) and written in one transaction: the more it lags, the larger and fewer
//! its transactions, which is what SQLite is fast at. The lag (from the tick's hand-off to
//! the commit) is a metric. Names of players who left are released only once their final
//! record is committed (the claims on their names are dropped here), so a player who logs straight
//! back in always loads their latest state.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use crossbeam_queue::ArrayQueue;

use super::store::{AccountId, LoginError, PlayerRecord, RedeemError, Release, SavedPlayer, Store};
use crate::bridge::Held;
use crate::stats::Stats;
use std::sync::Arc;

/// Batches that may wait for the thread before the tick merges new ones into its own.
const BATCH_QUEUE: usize = 4;

/// A login waiting for the store's answer.
pub struct LoginRequest {
    /// Player name (validated).
    pub name: String,
    /// The secret it presented.
    pub secret: String,
    /// What to do with them.
    pub kind: LoginKind,
}

/// What a [`LoginRequest`] asks for, and where the answer goes.
pub enum LoginKind {
    /// Log in (claim a new name, or check the secret and load the player).
    LogIn(tokio::sync::oneshot::Sender<Result<SavedPlayer, LoginError>>),
    /// Only check the secret (for a name that is online: its state must not be loaded).
    Verify(tokio::sync::oneshot::Sender<Result<bool, LoginError>>),
    /// Admit a player handed off by another zone: redeem its ticket's nonce (the request's
    /// secret is unused; the ticket's signature was checked already).
    Redeem {
        /// The player's account.
        account: AccountId,
        /// The ticket's single-use nonce.
        nonce: u64,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Result<SavedPlayer, RedeemError>>,
    },
}

/// A player's new position (most of what the tick hands off: kept compact).
pub type PositionUpdate = (AccountId, [f32; 2]);

/// A player's changed persistent component: (account, kind, start, end of its value in
/// [`Batch::component_bytes`]). Kept compact like positions, so collecting allocates nothing.
pub type ComponentUpdate = (AccountId, u16, u32, u32);

/// Records handed off by the tick at one moment.
#[derive(Default)]
pub struct Batch {
    /// Players whose position changed (and nothing else).
    pub positions: Vec<PositionUpdate>,
    /// Players' persistent components that changed, in the order collected.
    pub components: Vec<ComponentUpdate>,
    /// The values of `components`, postcard-encoded.
    pub component_bytes: Vec<u8>,
    /// Fuller records: changed persistent components, leaving players' final state.
    pub records: Vec<PlayerRecord>,
    /// Names to release once these records are committed (players who left).
    pub released: Vec<Held>,
    /// Players this server stops holding online (left, handed off, or at shutdown), written
    /// with these records.
    pub releases: Vec<Release>,
    /// Told whether these records were committed (`true`) by their first transaction or not
    /// (`false`; they are still retried): a player handed off to another zone is given its
    /// ticket only once its state is saved, and is closed if that did not happen at once.
    pub committed: Vec<tokio::sync::oneshot::Sender<bool>>,
    /// When the tick handed this off (for the lag metric).
    pub handed_off: Option<Instant>,
}

/// What the tick does with a batch it hands off.
pub enum HandOff {
    /// Queued for the thread.
    Sent,
    /// The thread is behind (or gone): the batch comes back to be merged with the next one.
    Busy(Batch),
}

/// The tick's and the network's handles on the persistence thread.
#[derive(Clone)]
pub struct PersistenceHandle {
    logins: Sender<LoginRequest>,
    /// Polled by the thread, never signalled: handing a batch off is a lock-free push, with
    /// no wake-up syscall on the tick (a wake-up measured 10-40 us here).
    batches: Arc<ArrayQueue<Message>>,
    /// Position buffers the thread is done with, for the tick to fill again (their pages
    /// are mapped already: a fresh 160 KB buffer per interval costs page faults).
    spare: Receiver<Batch>,
}

enum Message {
    Batch(Batch),
    /// Write everything queued, then answer and stop.
    Finish(Sender<()>),
}

impl PersistenceHandle {
    /// Asks for a login; the answer arrives on the request's reply channel. `false` if the
    /// thread is gone or `max_players` logins are already waiting.
    pub fn login(&self, request: LoginRequest) -> bool {
        self.logins.try_send(request).is_ok()
    }

    /// An emptied batch (its buffers keep their memory) to fill, if the thread has returned
    /// one.
    pub fn spare_batch(&self) -> Option<Batch> {
        self.spare.try_recv().ok()
    }

    /// Hands a batch to the thread without waiting (it picks it up within `POLL`).
    pub fn hand_off(&self, batch: Batch) -> HandOff {
        match self.batches.push(Message::Batch(batch)) {
            Ok(()) => HandOff::Sent,
            Err(Message::Batch(batch)) => HandOff::Busy(batch),
            Err(Message::Finish(_)) => unreachable!("a batch was pushed"),
        }
    }

    /// Hands a batch to the thread, waiting up to `patience` for room (at shutdown only).
    pub fn hand_off_waiting(&self, batch: Batch, patience: Duration) -> bool {
        self.push_waiting(Message::Batch(batch), patience)
    }

    /// Waits until everything handed off so far is committed, then stops the thread (at
    /// shutdown, after the tick's last hand-off). Gives up after `patience`.
    pub fn finish(&self, patience: Duration) -> bool {
        let (done, finished) = bounded(1);
        self.push_waiting(Message::Finish(done), patience)
            && finished.recv_timeout(patience).is_ok()
    }

    fn push_waiting(&self, mut message: Message, patience: Duration) -> bool {
        let started = Instant::now();
        loop {
            match self.batches.push(message) {
                Ok(()) => return true,
                Err(_) if started.elapsed() >= patience => return false,
                Err(back) => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// Starts the thread over `store`; `kinds` are the persistent components' names and
/// `max_logins` bounds the logins waiting.
pub fn spawn(
    store: Box<dyn Store>,
    kinds: Vec<String>,
    max_logins: usize,
    stats: Arc<Stats>,
) -> std::io::Result<(PersistenceHandle, JoinHandle<()>)> {
    let (logins, login_rx) = bounded(max_logins.max(1));
    let batches = Arc::new(ArrayQueue::new(BATCH_QUEUE));
    let batch_rx = batches.clone();
    let (spare_tx, spare) = bounded(BATCH_QUEUE);
    let thread = std::thread::Builder::new()
        .name("throng-persist".into())
        .spawn(move || {
            crate::tick::yield_to_the_tick();
            run(store, kinds, login_rx, batch_rx, spare_tx, stats)
        })?;
    Ok((
        PersistenceHandle {
            logins,
            batches,
            spare,
        },
        thread,
    ))
}

/// How often the thread looks for batches when no login wakes it.
const POLL: Duration = Duration::from_millis(20);

/// How long after a failed transaction the next one is tried (meanwhile batches merge).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Failed attempts (about one a second) after which unsaved records are given up: a store
/// down for longer than this loses what was pending, as SQLite's would on a full disk.
const MAX_ATTEMPTS: u32 = 60;

/// Extra tries of the last records at shutdown.
const FINAL_RETRIES: u32 = 3;

/// Releases the hold of a login or ticket nobody is waiting for any more (its connection
/// gave up on the store's answer).
fn release_unplayed(store: &mut dyn Store, kinds: &[String], account: AccountId) {
    let release = Release {
        account,
        handoff: None,
    };
    if let Err(error) = store.save_releasing(&[], kinds, &[release]) {
        tracing::warn!(%error, account, "could not release an abandoned login; it holds until its lease ends");
    }
}

fn run(
    mut store: Box<dyn Store>,
    kinds: Vec<String>,
    logins: Receiver<LoginRequest>,
    batches: Arc<ArrayQueue<Message>>,
    spare: Sender<Batch>,
    stats: Arc<Stats>,
) {
    let mut logins_open = true;
    // Records of a transaction that failed: the next one writes them (with anything newer),
    // no sooner than RETRY_AFTER later.
    let mut unsaved = Merged::default();
    let mut failed_at: Option<Instant> = None;
    loop {
        if logins_open {
            match logins.recv_timeout(POLL) {
                Ok(request) => match request.kind {
                    // The connection gave up waiting (a store that stalled leaves a backlog of
                    // these): no transaction for an answer nobody reads.
                    LoginKind::LogIn(reply) if reply.is_closed() => {}
                    LoginKind::Redeem { reply, .. } if reply.is_closed() => {}
                    LoginKind::LogIn(reply) => {
                        let answer = store.login(&request.name, &request.secret);
                        if let Err(Ok(saved)) = reply.send(answer) {
                            // The connection gave up while the store worked: nobody will
                            // play this login, so the store must not hold it online.
                            release_unplayed(store.as_mut(), &kinds, saved.account);
                        }
                    }
                    LoginKind::Verify(reply) => {
                        let answer = store.verify(&request.name, &request.secret);
                        let _ = reply.send(answer.map_err(LoginError::from));
                    }
                    LoginKind::Redeem {
                        account,
                        nonce,
                        reply,
                    } => {
                        if let Err(Ok(saved)) = reply.send(store.redeem(account, nonce)) {
                            release_unplayed(store.as_mut(), &kinds, saved.account);
                        }
                    }
                },
                Err(RecvTimeoutError::Timeout) => {}
                // The network side is gone (shutdown): batches only, until Finish.
                Err(RecvTimeoutError::Disconnected) => logins_open = false,
            }
        } else {
            std::thread::sleep(POLL);
        }
        if let Err(error) = store.renew_holds() {
            tracing::warn!(%error, "could not renew the online holds; retrying");
        }
        let at_risk = store.holds_at_risk();
        if stats
            .store_holds_at_risk
            .swap(u64::from(at_risk), std::sync::atomic::Ordering::Relaxed)
            != u64::from(at_risk)
        {
            if at_risk {
                tracing::error!(
                    "the store has not renewed this server's holds for most of a lease: closing its players before other servers may admit them"
                );
            } else {
                tracing::info!("the store renews this server's holds again");
            }
        }
        // Everything waiting joins one transaction.
        let mut merged = std::mem::take(&mut unsaved);
        let mut finish = None;
        while finish.is_none() {
            match batches.pop() {
                Some(Message::Batch(batch)) => merged.add(batch),
                Some(Message::Finish(done)) => finish = Some(done),
                None => break,
            }
        }
        if finish.is_none() && failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            unsaved = merged; // the store failed just now: merge, and try again later
            continue;
        }
        let (buffers, mut failed) = merged.commit(store.as_mut(), &kinds, &stats);
        for buffer in buffers {
            let _ = spare.try_send(buffer);
        }
        // At shutdown the last records get a few more tries before the thread gives up.
        let mut last_tries = 0;
        while finish.is_some() && failed.is_pending() && last_tries < FINAL_RETRIES {
            std::thread::sleep(RETRY_AFTER);
            last_tries += 1;
            failed = failed.commit(store.as_mut(), &kinds, &stats).1;
        }
        if failed.attempts >= MAX_ATTEMPTS {
            // Not a store that is restarting but records it refuses (a constraint, a row
            // deleted by hand): written off, so the rest can be saved again.
            Stats::add(&stats.persist_rows_dropped, failed.records.len() as u64);
            tracing::error!(
                rows = failed.records.len(),
                attempts = failed.attempts,
                "the store kept refusing these players' records; they are dropped"
            );
            failed = Merged::default();
        }
        failed_at = failed.is_pending().then(Instant::now);
        unsaved = failed;
        if let Some(done) = finish {
            let _ = done.send(());
            return;
        }
    }
}

/// Batches merged into one transaction: the latest record per player.
#[derive(Default)]
struct Merged {
    batches: u64,
    records: AHashMap<AccountId, PlayerRecord>,
    released: Vec<Held>,
    releases: Vec<Release>,
    committed: Vec<tokio::sync::oneshot::Sender<bool>>,
    oldest: Option<Instant>,
    /// Failed attempts to write these records so far.
    attempts: u32,
    /// The emptied batches, to give back with their buffers.
    buffers: Vec<Batch>,
}

impl Merged {
    /// The merged record of `account`, empty if it has none yet.
    fn record_of(&mut self, account: AccountId) -> &mut PlayerRecord {
        self.records.entry(account).or_insert_with(|| PlayerRecord {
            account,
            position: None,
            components: Vec::new(),
        })
    }

    fn add(&mut self, mut batch: Batch) {
        self.batches += 1;
        for (account, position) in batch.positions.drain(..) {
            self.record_of(account).position = Some(position);
        }
        for (account, kind, start, end) in batch.components.drain(..) {
            let bytes = batch.component_bytes[start as usize..end as usize].to_vec();
            self.record_of(account).absorb(PlayerRecord {
                account,
                position: None,
                components: vec![(kind, bytes)],
            });
        }
        batch.component_bytes.clear();
        for record in std::mem::take(&mut batch.records) {
            match self.records.get_mut(&record.account) {
                Some(earlier) => earlier.absorb(record),
                None => {
                    self.records.insert(record.account, record);
                }
            }
        }
        self.released.append(&mut batch.released);
        self.releases.append(&mut batch.releases);
        self.committed.append(&mut batch.committed);
        self.oldest = match (self.oldest, batch.handed_off.take()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.buffers.push(batch);
    }

    /// Whether anything is waiting to be written.
    fn is_pending(&self) -> bool {
        !(self.records.is_empty() && self.released.is_empty() && self.releases.is_empty())
    }

    /// Writes the merged records; returns the emptied batches, and what is still to write
    /// if the store failed (empty if it did not): the next transaction writes it, so a
    /// store that is down for a while (PostgreSQL restarting) loses nothing, and the names
    /// of players who left stay claimed until their final state is saved.
    fn commit(
        self,
        store: &mut dyn Store,
        kinds: &[String],
        stats: &Stats,
    ) -> (Vec<Batch>, Merged) {
        if !self.is_pending() {
            return (self.buffers, Merged::default());
        }
        let records: Vec<PlayerRecord> = self.records.into_values().collect();
        let started = Instant::now();
        let saved = store.save_releasing(&records, kinds, &self.releases);
        for committed in self.committed {
            let _ = committed.send(saved.is_ok());
        }
        match saved {
            Ok(()) => {
                Stats::add(&stats.persist_batches, self.batches);
                Stats::bump(&stats.persist_transactions);
                Stats::add(&stats.persist_rows, records.len() as u64);
                stats.persist_commit_duration.record(started.elapsed());
                if let Some(oldest) = self.oldest {
                    stats.persist_lag_us.store(
                        oldest.elapsed().as_micros() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
            Err(error) => {
                Stats::bump(&stats.persist_failures);
                tracing::error!(%error, rows = records.len(), "cannot save players; retrying with the next transaction");
                let unsaved = Merged {
                    records: records
                        .into_iter()
                        .map(|record| (record.account, record))
                        .collect(),
                    released: self.released,
                    releases: self.releases,
                    oldest: self.oldest,
                    attempts: self.attempts + 1,
                    ..Merged::default()
                };
                return (self.buffers, unsaved);
            }
        }
        // Now (and only now) the names of players who left may log in again.
        drop(self.released);
        (self.buffers, Merged::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// What a store committed: each transaction's records and releases.
    type Committed = Arc<Mutex<Vec<(Vec<PlayerRecord>, Vec<Release>)>>>;

    /// A store whose first `failures` saves fail; keeps what it saved.
    struct FlakyStore {
        failures: usize,
        saved: Committed,
    }

    impl Store for FlakyStore {
        fn login(&mut self, _: &str, _: &str) -> Result<SavedPlayer, LoginError> {
            unreachable!("no logins here")
        }
        fn verify(&mut self, _: &str, _: &str) -> Result<bool, super::super::store::StoreError> {
            unreachable!("no logins here")
        }
        fn save_releasing(
            &mut self,
            records: &[PlayerRecord],
            _: &[String],
            releases: &[Release],
        ) -> Result<(), super::super::store::StoreError> {
            if self.failures > 0 {
                self.failures -= 1;
                return Err(super::super::store::StoreError::Database("down".into()));
            }
            self.saved
                .lock()
                .unwrap()
                .push((records.to_vec(), releases.to_vec()));
            Ok(())
        }
    }

    /// Set when dropped (a name claim released).
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_failed_transaction_is_written_by_a_later_one_and_names_stay_claimed_until_then() {
        let saved = Arc::new(Mutex::new(Vec::new()));
        let store = FlakyStore {
            failures: 1,
            saved: saved.clone(),
        };
        let stats = Arc::new(Stats::default());
        let (handle, thread) = spawn(Box::new(store), Vec::new(), 4, stats.clone()).unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let (told, committed) = tokio::sync::oneshot::channel();
        let batch = Batch {
            records: vec![PlayerRecord {
                account: 7,
                position: Some([1.0, 2.0]),
                components: Vec::new(),
            }],
            released: vec![Held::new(Flag(released.clone()))],
            releases: vec![Release {
                account: 7,
                handoff: Some(99),
            }],
            committed: vec![told],
            ..Batch::default()
        };
        assert!(matches!(handle.hand_off(batch), HandOff::Sent));
        // The first attempt fails: the waiting handoff hears so at once, the name stays.
        assert_eq!(committed.blocking_recv(), Ok(false));
        assert!(!released.load(Ordering::SeqCst), "claimed until saved");
        // A newer position of the same player joins the retry.
        let newer = Batch {
            positions: vec![(7, [3.0, 4.0])],
            ..Batch::default()
        };
        assert!(matches!(handle.hand_off(newer), HandOff::Sent));
        assert!(handle.finish(Duration::from_secs(30)), "finished");
        thread.join().unwrap();
        let saved = saved.lock().unwrap();
        assert_eq!(saved.len(), 1, "written once, when the store came back");
        assert_eq!(
            saved[0].0[0].position,
            Some([3.0, 4.0]),
            "with the newer position"
        );
        assert_eq!(saved[0].1[0].handoff, Some(99), "and the release");
        assert!(
            released.load(Ordering::SeqCst),
            "the name is free once saved"
        );
        assert_eq!(stats.persist_failures.load(Ordering::Relaxed), 1);
    }
}
