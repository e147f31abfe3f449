//! The tick's once-per-tick signal to the network runtime: this tick's frames are published.

/// The tick's end of the signal: one bounded channel of capacity 1 per network flush task.
#[derive(bevy_ecs::resource::Resource, Default)]
pub(crate) struct TickSignal(Vec<tokio::sync::mpsc::Sender<()>>);

/// A signal with `receivers` receiving ends (one per flush task).
pub(crate) fn tick_signals(receivers: usize) -> (TickSignal, Vec<tokio::sync::mpsc::Receiver<()>>) {
    let (senders, receivers) = (0..receivers)
        .map(|_| tokio::sync::mpsc::channel(1))
        .unzip();
    (TickSignal(senders), receivers)
}

impl TickSignal {
    /// Signals that this tick's frames are published. Never waits: if the previous signal is
    /// still pending, the flush task has not run yet and will see these frames too.
    pub(crate) fn send(&self) {
        for sender in &self.0 {
            let _ = sender.try_send(());
        }
    }
}
