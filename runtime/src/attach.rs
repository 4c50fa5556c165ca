//! Futures that run inside a connection's driver task instead of a task of
//! their own: a room member's forwarding loop, attached with
//! [`Shared::attach`].
//!
//! A member spawned as its own task costs two task wake-ups per delivered
//! message: the room wakes the member, which queues the frame and wakes the
//! driver, which writes it. Attached, the room wakes the driver directly,
//! and the driver polls the member (which queues the frame) just before it
//! writes. The driver polls only attached futures that were woken since,
//! each through a waker of its own, so a busy connection does not poll an
//! idle member at every read.
//!
//! The driver calls [`Shared::poll_attached`] at the start of every poll,
//! before [`Shared::driver`], and [`Shared::end_attached`] when it stops
//! (drop the driver, and the futures go with it). Futures attached to a
//! connection whose driver has stopped are dropped at once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};

use crate::shared::{lock, Shared};
use wavecast_core::room::MemberEnd;

/// A future the driver runs for the connection (see the module docs).
pub(crate) type AttachedFuture = Pin<Box<dyn Future<Output = MemberEnd> + Send + 'static>>;

/// What an attached future and its [`Attachment`] handle share. It is also
/// the future's waker: waking it marks the future for polling and wakes
/// the driver.
struct Slot {
    woken: AtomicBool,
    cancelled: AtomicBool,
    end: Mutex<(Option<MemberEnd>, Option<Waker>)>,
    shared: Weak<Shared>,
}

impl Slot {
    fn finish(&self, end: MemberEnd) {
        let waiter = {
            let mut e = lock(&self.end);
            e.0.get_or_insert(end);
            e.1.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }

    fn wants_poll(&self) -> bool {
        self.woken.load(Ordering::Acquire) || self.cancelled.load(Ordering::Acquire)
    }
}

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(shared) = self.shared.upgrade() {
            shared.tasks().wake_driver();
        }
    }
}

impl Tasks {
    /// Wakes the driver task, unless it is polling right now: then it
    /// finds the woken futures itself before it sleeps
    /// ([`Shared::end_driver_poll`]), and a wake would only poll it again.
    fn wake_driver(&self) {
        if !self.running {
            if let Some(w) = &self.driver {
                w.wake_by_ref();
            }
        }
    }
}

struct Entry {
    future: AttachedFuture,
    slot: Arc<Slot>,
    waker: Waker,
}

/// The attached futures of one connection (inside [`Shared`]).
#[derive(Default)]
pub(crate) struct Tasks {
    list: Vec<Entry>,
    driver: Option<Waker>,
    ended: bool,
    /// The driver is inside its poll (see [`Shared::end_driver_poll`]).
    running: bool,
}

impl fmt::Debug for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tasks")
            .field("attached", &self.list.len())
            .field("ended", &self.ended)
            .finish()
    }
}

/// The handle of an attached future: whether and how it ended. Dropping it
/// cancels the future (the driver drops it at its next poll).
#[derive(Debug)]
pub(crate) struct Attachment {
    slot: Arc<Slot>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("end", &lock(&self.end).0)
            .finish_non_exhaustive()
    }
}

impl Attachment {
    /// Whether the future has ended (returned, or dropped with its driver).
    pub(crate) fn is_finished(&self) -> bool {
        lock(&self.slot.end).0.is_some()
    }

    /// Ready with how the future ended; [`MemberEnd::Closed`] when it was
    /// dropped because the connection's driver stopped.
    pub(crate) fn poll_end(&self, cx: &mut Context<'_>) -> Poll<MemberEnd> {
        let mut e = lock(&self.slot.end);
        match e.0 {
            Some(end) => Poll::Ready(end),
            None => {
                match &e.1 {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => e.1 = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.slot.cancelled.store(true, Ordering::Release);
        if let Some(shared) = self.slot.shared.upgrade() {
            shared.tasks().wake_driver();
        }
    }
}

impl Shared {
    fn tasks(&self) -> MutexGuard<'_, Tasks> {
        lock(&self.tasks)
    }

    /// Runs `future` inside this connection's driver task until it ends,
    /// the returned [`Attachment`] is dropped, or the driver stops.
    pub(crate) fn attach(self: &Arc<Self>, future: AttachedFuture) -> Attachment {
        let slot = Arc::new(Slot {
            woken: AtomicBool::new(true),
            cancelled: AtomicBool::new(false),
            end: Mutex::new((None, None)),
            shared: Arc::downgrade(self),
        });
        let entry = Entry {
            future,
            waker: Waker::from(slot.clone()),
            slot: slot.clone(),
        };
        let mut tasks = self.tasks();
        if tasks.ended {
            drop(tasks);
            drop(entry);
            slot.finish(MemberEnd::Closed);
        } else {
            tasks.list.push(entry);
            tasks.wake_driver();
        }
        Attachment { slot }
    }

    /// Driver: its poll begins; wakes of attached futures mark them only
    /// (see [`Shared::end_driver_poll`]).
    pub(crate) fn begin_driver_poll(&self) {
        self.tasks().running = true;
    }

    /// Driver: its poll is about to return. `true` (and still running) if
    /// attached futures were woken meanwhile — a member whose output was
    /// just written wants to take the room's next messages — so poll them
    /// and go round again instead of waking the task for it; `false` (and
    /// no longer running: wakes wake the task again) otherwise.
    pub(crate) fn end_driver_poll(&self) -> bool {
        let mut tasks = self.tasks();
        if tasks.list.iter().any(|e| e.slot.wants_poll()) {
            return true;
        }
        tasks.running = false;
        false
    }

    /// Driver: its poll returns now whatever was woken; wakes wake the
    /// task again (call [`Shared::poll_attached`] at the next poll).
    pub(crate) fn stop_driver_poll(&self) {
        let mut tasks = self.tasks();
        tasks.running = false;
        if tasks.list.iter().any(|e| e.slot.wants_poll()) {
            tasks.wake_driver();
        }
    }

    /// Driver: polls the attached futures woken since the last call and
    /// drops cancelled ones. Call at the start of every poll, before
    /// [`Shared::driver`] (which must not be held while futures run).
    pub(crate) fn poll_attached(&self, cx: &mut Context<'_>) {
        let mut list = {
            let mut tasks = self.tasks();
            if tasks.list.is_empty() {
                return;
            }
            match &tasks.driver {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => tasks.driver = Some(cx.waker().clone()),
            }
            if !tasks.list.iter().any(|e| e.slot.wants_poll()) {
                return;
            }
            std::mem::take(&mut tasks.list)
        };
        // The driver is running and writes what the futures queue next, so
        // their sends need not wake it (that would only poll it again).
        // `Shared::driver` registers the waker again.
        self.forget_driver_waker();
        list.retain_mut(|entry| {
            if entry.slot.cancelled.load(Ordering::Acquire) {
                return false;
            }
            if !entry.slot.woken.swap(false, Ordering::AcqRel) {
                return true;
            }
            let mut cx = Context::from_waker(&entry.waker);
            match entry.future.as_mut().poll(&mut cx) {
                Poll::Ready(end) => {
                    entry.slot.finish(end);
                    false
                }
                Poll::Pending => true,
            }
        });
        let mut tasks = self.tasks();
        if tasks.ended {
            drop(tasks);
            end_all(list);
            return;
        }
        // Futures attached while these ran go after them.
        list.append(&mut tasks.list);
        tasks.list = list;
    }

    /// Driver: drops every attached future (each ends as
    /// [`MemberEnd::Closed`]) and those attached later. Call when the
    /// driver stops, including when it is dropped unfinished.
    pub(crate) fn end_attached(&self) {
        let list = {
            let mut tasks = self.tasks();
            tasks.ended = true;
            tasks.driver = None;
            std::mem::take(&mut tasks.list)
        };
        end_all(list);
    }
}

fn end_all(list: Vec<Entry>) {
    for entry in list {
        let slot = entry.slot.clone();
        // Drop the future first: a waiter that sees the end sees it gone.
        drop(entry);
        slot.finish(MemberEnd::Closed);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;
    use wavecast_core::{Config, Connection, Role};

    /// Counts wake-ups (the driver's here, a task's in `task`).
    #[derive(Default)]
    pub(crate) struct Counter(pub(crate) AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn shared() -> Arc<Shared> {
        let conn = Connection::new(Role::Server, Config::default(), Instant::now());
        Shared::new(conn)
    }

    /// A future that counts its polls and ends once `stop` is set.
    fn counting(
        polls: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    ) -> AttachedFuture {
        Box::pin(poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            if stop.load(Ordering::SeqCst) {
                return Poll::Ready(MemberEnd::Evicted(
                    wavecast_core::CloseCode::TRY_AGAIN_LATER,
                ));
            }
            *waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }))
    }

    #[test]
    fn polls_only_woken_futures_and_reports_their_end() {
        let shared = shared();
        let counter = Arc::new(Counter::default());
        let driver = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&driver);
        let (polls, stop, waker) = (Arc::default(), Arc::default(), Arc::default());
        let attached = shared.attach(counting(
            Arc::clone(&polls),
            Arc::clone(&stop),
            Arc::clone(&waker),
        ));

        shared.poll_attached(&mut cx);
        assert_eq!(polls.load(Ordering::SeqCst), 1, "a new future is polled");
        shared.poll_attached(&mut cx);
        shared.poll_attached(&mut cx);
        assert_eq!(polls.load(Ordering::SeqCst), 1, "not woken: not polled");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);

        // Its own waker wakes the driver and marks it for polling.
        let own = waker.lock().unwrap().take().unwrap();
        own.wake_by_ref();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        shared.poll_attached(&mut cx);
        assert_eq!(polls.load(Ordering::SeqCst), 2);

        let finished = Arc::new(Counter::default());
        let waiter = Waker::from(finished.clone());
        assert!(attached
            .poll_end(&mut Context::from_waker(&waiter))
            .is_pending());
        stop.store(true, Ordering::SeqCst);
        own.wake();
        shared.poll_attached(&mut cx);
        assert_eq!(polls.load(Ordering::SeqCst), 3);
        assert!(attached.is_finished());
        assert_eq!(finished.0.load(Ordering::SeqCst), 1, "the waiter is woken");
        assert_eq!(
            attached.poll_end(&mut Context::from_waker(&waiter)),
            Poll::Ready(MemberEnd::Evicted(
                wavecast_core::CloseCode::TRY_AGAIN_LATER
            ))
        );
        shared.poll_attached(&mut cx);
        assert_eq!(polls.load(Ordering::SeqCst), 3, "an ended future is gone");
    }

    #[test]
    fn dropping_the_handle_drops_the_future_at_the_next_poll() {
        let shared = shared();
        let counter = Arc::new(Counter::default());
        let driver = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&driver);
        let polls = Arc::new(AtomicUsize::new(0));
        let attached = shared.attach(counting(polls.clone(), Arc::default(), Arc::default()));
        shared.poll_attached(&mut cx);
        let woken = counter.0.load(Ordering::SeqCst);
        drop(attached);
        assert_eq!(counter.0.load(Ordering::SeqCst), woken + 1, "driver woken");
        // The future owns a clone of `polls`: dropped means one owner left.
        assert_eq!(Arc::strong_count(&polls), 2);
        shared.poll_attached(&mut cx);
        assert_eq!(Arc::strong_count(&polls), 1);
        assert_eq!(polls.load(Ordering::SeqCst), 1, "cancelled, not polled");
    }

    #[test]
    fn a_stopped_driver_ends_every_future_now_and_later() {
        let shared = shared();
        let polls = Arc::new(AtomicUsize::new(0));
        let first = shared.attach(counting(polls.clone(), Arc::default(), Arc::default()));
        shared.end_attached();
        assert!(first.is_finished());
        assert_eq!(Arc::strong_count(&polls), 1, "the future was dropped");
        let later = shared.attach(counting(polls.clone(), Arc::default(), Arc::default()));
        assert!(later.is_finished());
        assert_eq!(Arc::strong_count(&polls), 1);
        let noop = Waker::from(Arc::new(Counter::default()));
        assert_eq!(
            later.poll_end(&mut Context::from_waker(&noop)),
            Poll::Ready(MemberEnd::Closed)
        );
        assert_eq!(polls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn sends_from_an_attached_future_do_not_wake_the_running_driver() {
        let shared = shared();
        let counter = Arc::new(Counter::default());
        let driver = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&driver);
        drop(shared.driver(&driver, Instant::now()));
        let sender = shared.clone();
        let _attached = shared.attach(Box::pin(poll_fn(move |_| {
            sender.send(wavecast_core::Message::from("hi")).unwrap();
            Poll::<MemberEnd>::Pending
        })));
        let before = counter.0.load(Ordering::SeqCst);
        shared.poll_attached(&mut cx);
        assert_eq!(counter.0.load(Ordering::SeqCst), before);
        let mut state = shared.driver(&driver, Instant::now());
        assert!(state.conn().has_transmit(), "the message is queued");
        drop(state);
        // Once the driver registered again, a send from elsewhere wakes it.
        shared.send(wavecast_core::Message::from("there")).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), before + 1);
    }
}
