//! One task per connection: the application's future and the drivers of the
//! WebSockets it opens, polled together.
//!
//! Without it, every message costs three task wake-ups: the socket wakes the
//! driver task, the driver wakes the application task with the message, and
//! the application's reply wakes the driver task again. Inside a
//! [`connection_task`] those hand-offs happen within one poll: each branch
//! (the application, each driver) gets a waker of its own that only marks
//! the branch as woken while the task is being polled, and the task polls
//! woken branches again before it returns. A wake from outside (the socket,
//! a timer, another task) marks the branch and wakes the task as usual.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use crate::runtime::Runtime;

type Branch = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Passes over the woken branches per poll before yielding to other tasks.
const PASSES_PER_POLL: usize = 16;

thread_local! {
    /// The drivers started while a connection task polls its application:
    /// they join that task instead of getting tasks of their own.
    static ADOPT: RefCell<Option<Vec<Branch>>> = const { RefCell::new(None) };
}

/// Starts a connection's driver: inside the poll of a [`connection_task`],
/// as a branch of that task; elsewhere, as a task of its own on `R`.
pub(crate) fn spawn_driver<R: Runtime, F: Future<Output = ()> + Send + 'static>(driver: F) {
    if let Err(driver) = try_adopt(driver) {
        R::spawn(driver);
    }
}

/// Hands `driver` to the connection task being polled on this thread, or
/// back if there is none.
fn try_adopt<F: Future<Output = ()> + Send + 'static>(driver: F) -> Result<(), F> {
    ADOPT.with(|adopt| match adopt.borrow_mut().as_mut() {
        Some(adopted) => {
            adopted.push(Box::pin(driver));
            Ok(())
        }
        None => Err(driver),
    })
}

/// Runs `f`, collecting the drivers it starts instead of spawning them: for
/// [`ConnectionTask::with_drivers`], when the connection is opened before
/// the task that serves it exists.
pub(crate) fn collect_drivers<T>(f: impl FnOnce() -> T) -> (T, Vec<Branch>) {
    /// Puts back the collection this one interrupted, on unwinding too:
    /// a panicking application must not leave later drivers collected
    /// into a vector nobody polls.
    struct Restore(Option<Vec<Branch>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            ADOPT.with(|adopt| *adopt.borrow_mut() = previous);
        }
    }
    let restore = Restore(ADOPT.with(|adopt| adopt.borrow_mut().replace(Vec::new())));
    let value = f();
    let adopted = ADOPT.with(|adopt| adopt.borrow_mut().take());
    drop(restore);
    (value, adopted.unwrap_or_default())
}

/// Wraps the future that serves one connection so that the driver of every
/// WebSocket it opens (accepted, connected, or upgraded) runs in the same
/// task as the future itself. Spawn the result where you would have spawned
/// `app`:
///
/// ```
/// # use wavecast_runtime::{connection_task, WebSocket};
/// # fn spawn(_: impl std::future::Future<Output = ()> + Send + 'static) {}
/// # async fn accept() -> WebSocket { unimplemented!() }
/// spawn(connection_task(async move {
///     let mut ws = accept().await;
///     while let Some(Ok(message)) = ws.recv().await {
///         if ws.send(message).await.is_err() {
///             break;
///         }
///     }
/// }));
/// ```
///
/// An echoed message then costs one task wake-up instead of three, and the
/// connection one task instead of two. The task ends when `app` has ended
/// and every adopted connection has finished closing; [`crate::serve`]
/// wraps its handlers in it already.
///
/// The task lives as long as the connection, and with it everything its
/// `async` block captured, even after the block has moved it on: start the
/// handshake outside and move in only its future (one boxed pointer), not
/// the TCP stream and the config it consumes. On tokio, whose task cells
/// come in 128-byte steps, a few bytes of captures can cost 128 per
/// connection.
///
/// ```
/// # use wavecast_runtime::{connection_task, WebSocket, Error};
/// # fn spawn(_: impl std::future::Future<Output = ()> + Send + 'static) {}
/// # fn accept_with(_tcp: (), _config: ()) -> impl std::future::Future<Output = Result<WebSocket, Error>> + Send { async { unimplemented!() } }
/// # let (tcp, config) = ((), ());
/// let accepting = accept_with(tcp, config); // nothing runs until awaited
/// spawn(connection_task(async move {
///     let Ok(mut ws) = accepting.await else { return };
///     while let Some(Ok(message)) = ws.recv().await {
///         if ws.send(message).await.is_err() {
///             break;
///         }
///     }
/// }));
/// ```
pub fn connection_task<F>(app: F) -> ConnectionTask<F>
where
    F: Future<Output = ()> + Send,
{
    let root = Arc::new(Root {
        waker: Mutex::new(None),
        polling: AtomicBool::new(false),
        app_woken: AtomicBool::new(true),
        app_done: AtomicBool::new(false),
    });
    ConnectionTask {
        app,
        first: None,
        more: More::default(),
        root,
    }
}

pin_project_lite::pin_project! {
    /// The future [`connection_task`] returns.
    pub struct ConnectionTask<F> {
        #[pin]
        app: F,
        // The usual single driver is held here, the rest in `more`.
        first: Option<Slot>,
        more: More,
        root: Arc<Root>,
    }
}

impl<F> std::fmt::Debug for ConnectionTask<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTask")
            .field("app_done", &self.root.app_done.load(Ordering::Relaxed))
            .field(
                "drivers",
                &(usize::from(self.first.is_some()) + self.more.slots().len()),
            )
            .finish()
    }
}

/// The drivers after the first. Rare (a task that opens several
/// WebSockets at once), so boxed: the task of every connection, which
/// lives as long as the connection, is 16 bytes smaller for it, and with
/// tokio's 128-byte aligned task cells a few bytes can decide a whole
/// 128-byte step.
#[derive(Default)]
// clippy's box_collection: the box is what keeps the empty case small.
#[allow(clippy::box_collection)]
struct More(Option<Box<Vec<Slot>>>);

impl More {
    #[inline]
    fn slots(&self) -> &[Slot] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    fn push(&mut self, slot: Slot) {
        self.0.get_or_insert_with(Box::default).push(slot);
    }

    fn pop(&mut self) -> Option<Slot> {
        let slots = self.0.as_mut()?;
        let slot = slots.pop();
        if slots.is_empty() {
            self.0 = None;
        }
        slot
    }

    /// Polls every woken driver once, dropping those that ended; whether
    /// any was polled. Inlined: the usual case, no further drivers, costs
    /// a test instead of a call.
    #[inline]
    fn poll(&mut self) -> bool {
        self.0.is_some() && self.poll_slots()
    }

    fn poll_slots(&mut self) -> bool {
        let Some(slots) = self.0.as_mut() else {
            return false;
        };
        let mut any = false;
        let mut i = 0;
        while i < slots.len() {
            let (polled, done) = slots[i].poll();
            any |= polled;
            if done {
                drop(slots.swap_remove(i));
            } else {
                i += 1;
            }
        }
        if slots.is_empty() {
            self.0 = None;
        }
        any
    }
}

/// An adopted driver with its waker.
struct Slot {
    driver: Branch,
    wake: Arc<DriverWake>,
}

impl Slot {
    fn new(driver: Branch, root: &Arc<Root>) -> Slot {
        let wake = Arc::new(DriverWake {
            woken: AtomicBool::new(true),
            root: root.clone(),
        });
        Slot { driver, wake }
    }

    /// Polls the driver if it was woken: (whether it was, whether it ended).
    fn poll(&mut self) -> (bool, bool) {
        if !self.wake.woken.swap(false, Ordering::SeqCst) {
            return (false, false);
        }
        // Made per poll rather than kept: an idle connection's task stays
        // smaller, for two reference count updates per poll.
        let waker = Waker::from(self.wake.clone());
        let done = self
            .driver
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        (true, done)
    }

    fn woken(&self) -> bool {
        self.wake.woken.load(Ordering::SeqCst)
    }
}

/// The task's own waker, whether the task is being polled now, and the
/// application's mark; the application's waker is this.
struct Root {
    waker: Mutex<Option<Waker>>,
    polling: AtomicBool,
    app_woken: AtomicBool,
    /// The application's future has ended (kept here rather than in the
    /// task, where it would cost 8 bytes; this allocation has room).
    app_done: AtomicBool,
}

impl Root {
    /// Marks a branch woken, and wakes the task unless the task is being
    /// polled (it then sees the mark before it returns).
    fn mark(&self, woken: &AtomicBool) {
        if woken.swap(true, Ordering::SeqCst) || self.polling.load(Ordering::SeqCst) {
            return;
        }
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Wake for Root {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.mark(&self.app_woken);
    }
}

/// A driver's waker.
struct DriverWake {
    woken: AtomicBool,
    root: Arc<Root>,
}

impl Wake for DriverWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.root.mark(&self.woken);
    }
}

impl<F: Future<Output = ()> + Send> ConnectionTask<F> {
    /// Adds drivers started before the task (see [`collect_drivers`]).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn with_drivers(mut self, drivers: Vec<Branch>) -> Self {
        for driver in drivers {
            adopt(&mut self.first, &mut self.more, &self.root, driver);
        }
        self
    }
}

fn adopt(first: &mut Option<Slot>, more: &mut More, root: &Arc<Root>, driver: Branch) {
    let slot = Slot::new(driver, root);
    match first {
        None => *first = Some(slot),
        Some(_) => more.push(slot),
    }
}

impl<F: Future<Output = ()> + Send> Future for ConnectionTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        {
            let mut stored = this.root.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !stored.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *stored = Some(cx.waker().clone());
            }
        }
        let mut passes = 0;
        loop {
            this.root.polling.store(true, Ordering::SeqCst);
            while passes < PASSES_PER_POLL {
                // One pass: every woken branch polled once.
                let mut any = false;
                let app_done = this.root.app_done.load(Ordering::Relaxed);
                if !app_done && this.root.app_woken.swap(false, Ordering::SeqCst) {
                    any = true;
                    let waker = Waker::from(this.root.clone());
                    let mut cx = Context::from_waker(&waker);
                    let app = this.app.as_mut();
                    let (done, adopted) = collect_drivers(|| app.poll(&mut cx).is_ready());
                    this.root.app_done.store(done, Ordering::Relaxed);
                    for driver in adopted {
                        adopt(this.first, this.more, this.root, driver);
                    }
                }
                if let Some(slot) = this.first.as_mut() {
                    let (polled, done) = slot.poll();
                    any |= polled;
                    if done {
                        *this.first = this.more.pop();
                    }
                }
                any |= this.more.poll();
                if !any {
                    break;
                }
                passes += 1;
            }
            this.root.polling.store(false, Ordering::SeqCst);
            let app_done = this.root.app_done.load(Ordering::Relaxed);
            if app_done && this.first.is_none() {
                return Poll::Ready(());
            }
            // A wake between the last pass and the store above saw the
            // task as polling and did not wake it: look once more.
            let woken = (!app_done && this.root.app_woken.load(Ordering::SeqCst))
                || this.first.as_ref().is_some_and(Slot::woken)
                || this.more.slots().iter().any(Slot::woken);
            if !woken {
                return Poll::Pending;
            }
            if passes >= PASSES_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::attach::tests::Counter;

    fn poll_once<F: Future<Output = ()> + Send>(
        task: &mut Pin<Box<ConnectionTask<F>>>,
        count: &Arc<Counter>,
    ) -> Poll<()> {
        let waker = Waker::from(count.clone());
        task.as_mut().poll(&mut Context::from_waker(&waker))
    }

    /// A branch that wakes itself (or another branch) while the task is
    /// being polled is polled again in the same poll: no task wake-up.
    #[test]
    fn a_wake_inside_the_poll_does_not_wake_the_task() {
        let mut polls = 0;
        let app = std::future::poll_fn(move |cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(())
        });
        let count = Arc::new(Counter::default());
        let mut task = Box::pin(connection_task(app));
        assert!(poll_once(&mut task, &count).is_ready());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    /// A wake from outside (a socket, a timer, another task) wakes the task,
    /// which then polls the woken branch.
    #[test]
    fn a_wake_from_outside_wakes_the_task() {
        let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (slot, flag) = (stored.clone(), done.clone());
        let app = std::future::poll_fn(move |cx| {
            if flag.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        });
        let count = Arc::new(Counter::default());
        let mut task = Box::pin(connection_task(app));
        assert!(poll_once(&mut task, &count).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        done.store(true, Ordering::SeqCst);
        stored.lock().unwrap().take().unwrap().wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll_once(&mut task, &count).is_ready());
    }

    /// Drivers started while the application is polled join the task; the
    /// task ends only when they have ended too, and outside a connection
    /// task a driver is handed back to be spawned.
    #[test]
    fn drivers_started_by_the_application_run_in_its_task() {
        let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
        let finish = Arc::new(AtomicBool::new(false));
        let polled = Arc::new(AtomicUsize::new(0));
        let (slot, flag, seen) = (stored.clone(), finish.clone(), polled.clone());
        let driver = std::future::poll_fn(move |cx| {
            seen.fetch_add(1, Ordering::SeqCst);
            if flag.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        });
        assert!(try_adopt(async {}).is_err(), "no connection task here");
        let mut driver = Some(driver);
        let app = std::future::poll_fn(move |_| {
            if let Some(driver) = driver.take() {
                assert!(try_adopt(driver).is_ok());
            }
            Poll::Ready(())
        });
        let count = Arc::new(Counter::default());
        let mut task = Box::pin(connection_task(app));
        assert!(
            poll_once(&mut task, &count).is_pending(),
            "the driver still runs"
        );
        assert_eq!(polled.load(Ordering::SeqCst), 1);
        assert!(try_adopt(async {}).is_err(), "adoption ends with the poll");
        finish.store(true, Ordering::SeqCst);
        stored.lock().unwrap().take().unwrap().wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll_once(&mut task, &count).is_ready());
        assert_eq!(polled.load(Ordering::SeqCst), 2);
    }

    /// Several drivers: each is polled when its own waker fires, not when
    /// another's does, and the task ends only once the last has ended,
    /// whichever order they end in (the first slot is refilled from the
    /// rest).
    #[test]
    fn several_drivers_are_polled_apart_and_all_awaited() {
        struct Probe {
            waker: Mutex<Option<Waker>>,
            finish: AtomicBool,
            polls: AtomicUsize,
        }
        let probes: Vec<Arc<Probe>> = (0..3)
            .map(|_| {
                Arc::new(Probe {
                    waker: Mutex::new(None),
                    finish: AtomicBool::new(false),
                    polls: AtomicUsize::new(0),
                })
            })
            .collect();
        let mut drivers: Vec<_> = probes
            .iter()
            .map(|probe| {
                let probe = probe.clone();
                std::future::poll_fn(move |cx| {
                    probe.polls.fetch_add(1, Ordering::SeqCst);
                    if probe.finish.load(Ordering::SeqCst) {
                        return Poll::Ready(());
                    }
                    *probe.waker.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Pending
                })
            })
            .collect();
        let app = std::future::poll_fn(move |_| {
            for driver in drivers.drain(..) {
                assert!(try_adopt(driver).is_ok());
            }
            Poll::Ready(())
        });
        let polls = |probes: &[Arc<Probe>]| -> Vec<usize> {
            probes
                .iter()
                .map(|p| p.polls.load(Ordering::SeqCst))
                .collect()
        };
        let wake = |probe: &Probe| probe.waker.lock().unwrap().take().unwrap().wake();
        let count = Arc::new(Counter::default());
        let mut task = Box::pin(connection_task(app));
        assert!(poll_once(&mut task, &count).is_pending());
        assert_eq!(polls(&probes), [1, 1, 1]);

        // The first driver (in the first slot) ends: the task goes on.
        probes[0].finish.store(true, Ordering::SeqCst);
        wake(&probes[0]);
        assert!(poll_once(&mut task, &count).is_pending());
        assert_eq!(polls(&probes), [2, 1, 1]);

        // The last one is woken alone, polled alone, and ends.
        probes[2].finish.store(true, Ordering::SeqCst);
        wake(&probes[2]);
        assert!(poll_once(&mut task, &count).is_pending());
        assert_eq!(polls(&probes), [2, 1, 2]);

        // The middle one, now in the first slot, ends the task.
        probes[1].finish.store(true, Ordering::SeqCst);
        wake(&probes[1]);
        assert!(poll_once(&mut task, &count).is_ready());
        assert_eq!(polls(&probes), [2, 2, 2]);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            3,
            "one task wake per outside wake"
        );
    }

    /// A branch that keeps waking itself does not hold the thread: after
    /// a bounded number of passes the task yields and wakes itself.
    #[test]
    fn a_busy_branch_yields_after_a_bounded_number_of_passes() {
        let polls = Arc::new(AtomicUsize::new(0));
        let seen = polls.clone();
        let app = std::future::poll_fn(move |cx| {
            seen.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        let count = Arc::new(Counter::default());
        let mut task = Box::pin(connection_task(app));
        assert!(poll_once(&mut task, &count).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), PASSES_PER_POLL);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
