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
pub fn connection_task<F>(app: F) -> ConnectionTask<F>
where
    F: Future<Output = ()> + Send,
{
    let root = Arc::new(Root {
        waker: Mutex::new(None),
        polling: AtomicBool::new(false),
        app_woken: AtomicBool::new(true),
    });
    ConnectionTask {
        app,
        app_done: false,
        first: None,
        more: Vec::new(),
        root,
    }
}

pin_project_lite::pin_project! {
    /// The future [`connection_task`] returns.
    pub struct ConnectionTask<F> {
        #[pin]
        app: F,
        app_done: bool,
        // The usual single driver is held here, the rest in `more`.
        first: Option<Slot>,
        more: Vec<Slot>,
        root: Arc<Root>,
    }
}

impl<F> std::fmt::Debug for ConnectionTask<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTask")
            .field("app_done", &self.app_done)
            .field(
                "drivers",
                &(usize::from(self.first.is_some()) + self.more.len()),
            )
            .finish()
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

fn adopt(first: &mut Option<Slot>, more: &mut Vec<Slot>, root: &Arc<Root>, driver: Branch) {
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
                if !*this.app_done && this.root.app_woken.swap(false, Ordering::SeqCst) {
                    any = true;
                    let waker = Waker::from(this.root.clone());
                    let mut cx = Context::from_waker(&waker);
                    let app = this.app.as_mut();
                    let (done, adopted) = collect_drivers(|| app.poll(&mut cx).is_ready());
                    *this.app_done = done;
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
                let mut i = 0;
                while i < this.more.len() {
                    let (polled, done) = this.more[i].poll();
                    any |= polled;
                    if done {
                        drop(this.more.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                if !any {
                    break;
                }
                passes += 1;
            }
            this.root.polling.store(false, Ordering::SeqCst);
            if *this.app_done && this.first.is_none() {
                return Poll::Ready(());
            }
            // A wake between the last pass and the store above saw the
            // task as polling and did not wake it: look once more.
            let woken = (!*this.app_done && this.root.app_woken.load(Ordering::SeqCst))
                || this.first.as_ref().is_some_and(Slot::woken)
                || this.more.iter().any(Slot::woken);
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
