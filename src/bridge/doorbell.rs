//! A connection task's doorbell: rung by the tick or a flush task (a close, a Welcome, a
//! socket the flush could not finish), awaited by the one task that serves the connection.
//!
//! Why not `tokio::sync::Notify`: the connection task waits on its doorbell in the same
//! `select!` as its socket read, so the wait is created, polled and dropped once per input
//! the client sends, 20 times a second per player, although the bell rings only a few times
//! in a session. A `Notify` waiter joins and leaves a mutex-guarded list on each of those:
//! 2.6% of the server's samples at crowd-open-1,000 were that list and its futures. Here
//! the one waiter's waker sits in an [`AtomicWaker`] (0.7% in the same profile, mostly the
//! first touch of the connection's outbox), and dropping the wait costs nothing.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use atomic_waker::AtomicWaker;

/// A wake-up for one waiting task that is never lost: a ring before the wait is kept until
/// the wait takes it, and rings before a wait coalesce into one (as `Notify::notify_one`'s
/// permit does). Several tasks must not wait on one doorbell at once: only the last to
/// register would be woken.
#[derive(Default)]
pub(crate) struct Doorbell {
    rung: AtomicBool,
    waiter: AtomicWaker,
}

impl Doorbell {
    /// Rings: the waiting task (or the next wait) resolves.
    pub(crate) fn ring(&self) {
        self.rung.store(true, Ordering::Release);
        self.waiter.wake();
    }

    /// Resolves once the bell has rung since the last wait resolved.
    pub(crate) async fn rung(&self) {
        poll_fn(|cx| {
            // Registered before the check, so a ring between the two still wakes the task.
            self.waiter.register(cx.waker());
            if self.rung.load(Ordering::Relaxed) && self.rung.swap(false, Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Wake, Waker};

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker and its count of wake-ups.
    fn counting_waker() -> (Arc<Counting>, Waker) {
        let counting = Arc::new(Counting::default());
        (counting.clone(), Waker::from(counting))
    }

    #[test]
    fn a_ring_before_the_wait_is_kept_and_rings_before_it_coalesce() {
        let bell = Doorbell::default();
        bell.ring();
        bell.ring();
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(pin!(bell.rung()).poll(&mut cx).is_ready());
        // The two rings were one: the next wait waits.
        assert!(pin!(bell.rung()).poll(&mut cx).is_pending());
    }

    #[test]
    fn a_ring_during_the_wait_wakes_the_waiter_once_and_resolves_it() {
        let bell = Doorbell::default();
        let (counting, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut wait = pin!(bell.rung());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        // Polled again without a ring (the select! around it woke for its socket): still
        // waiting, and nothing is woken.
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert_eq!(counting.0.load(Ordering::SeqCst), 0);
        bell.ring();
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_wait_dropped_unrung_leaves_the_next_ring_for_the_next_wait() {
        let bell = Doorbell::default();
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(pin!(bell.rung()).poll(&mut cx).is_pending());
        bell.ring();
        assert!(pin!(bell.rung()).poll(&mut cx).is_ready());
    }

    #[test]
    fn a_ring_from_another_thread_wakes_a_task_waiting_on_a_runtime() {
        let bell = Arc::new(Doorbell::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let waiting = runtime.spawn({
            let bell = bell.clone();
            async move { bell.rung().await }
        });
        std::thread::spawn({
            let bell = bell.clone();
            move || bell.ring()
        })
        .join()
        .unwrap();
        runtime.block_on(waiting).unwrap();
    }
}
