//! The executor of workflow runs: each run's future is polled in a microtask after it is
//! woken, as with `wasm_bindgen_futures::spawn_local`, but the microtask is queued with
//! `then` on a resolved promise, a V8 built-in. wasm-bindgen's queue calls workerd's
//! `queueMicrotask`, which cost about a third of a millisecond per call under
//! `wrangler dev`, and a step wakes its run twice (bench/analysis.md).
//!
//! A waker holds only its task's number; the tasks live in this thread's queue, so the
//! executor needs no `unsafe`. A wake only queues: it never polls, so code may wake a task
//! while it holds a borrow the task's poll takes. As with wasm-bindgen's executor, a run whose promises never
//! settle stays pending, and kept.

use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use wasm_bindgen::prelude::*;

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

#[wasm_bindgen]
extern "C" {
    /// A promise, for `then` with a plain function.
    type Thenable;
    #[wasm_bindgen(method)]
    fn then(this: &Thenable, on_fulfilled: &Function) -> JsValue;
}

struct Queue {
    /// The tasks not being polled right now, by number.
    tasks: RefCell<HashMap<u32, (TaskFuture, Waker)>>,
    /// The tasks woken since the last turn, in order, each once.
    ready: RefCell<VecDeque<u32>>,
    /// A microtask is queued to run the ready tasks.
    scheduled: Cell<bool>,
    next: Cell<u32>,
    resolved: Promise,
    /// Runs the ready tasks; the JS garbage collector owns it.
    run_ready: Function,
}

thread_local! {
    static QUEUE: Queue = Queue {
        tasks: RefCell::default(),
        ready: RefCell::default(),
        scheduled: Cell::new(false),
        next: Cell::new(0),
        resolved: Promise::resolve(&JsValue::UNDEFINED),
        run_ready: Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| run_ready()).into_js_value().unchecked_into(),
    };
}

/// A task's waker: its number.
struct TaskWaker(u32);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let id = self.0;
        QUEUE.with(|queue| {
            {
                let mut ready = queue.ready.borrow_mut();
                if !ready.contains(&id) {
                    ready.push_back(id);
                }
            }
            if !queue.scheduled.replace(true) {
                queue.resolved.unchecked_ref::<Thenable>().then(&queue.run_ready);
            }
        });
    }
}

/// Runs `future` to its end in the background, polled first in a microtask.
pub(crate) fn spawn(future: impl Future<Output = ()> + 'static) {
    QUEUE.with(|queue| {
        let id = queue.next.get();
        queue.next.set(id.wrapping_add(1));
        let waker = Waker::from(Arc::new(TaskWaker(id)));
        queue.tasks.borrow_mut().insert(id, (Box::pin(future), waker.clone()));
        waker.wake();
    });
}

/// One turn: polls the tasks woken before it began, once each. A task woken during the
/// turn (by its own poll or another's) is polled in the next one, after the microtasks
/// queued meanwhile, as wasm-bindgen's queue does: a future that yields by waking itself
/// lets JS promise reactions run between its polls.
fn run_ready() {
    let turn = QUEUE.with(|queue| {
        queue.scheduled.set(false);
        queue.ready.borrow().len()
    });
    for _ in 0..turn {
        let Some(id) = QUEUE.with(|queue| queue.ready.borrow_mut().pop_front()) else { return };
        // Taken out while it is polled: its poll may wake it, or spawn others.
        let Some((mut future, waker)) = QUEUE.with(|queue| queue.tasks.borrow_mut().remove(&id)) else { continue };
        match future.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Pending => {
                QUEUE.with(|queue| queue.tasks.borrow_mut().insert(id, (future, waker)));
            }
            // Dropped outside the queue's borrows: dropping it may wake other tasks.
            Poll::Ready(()) => drop(future),
        }
    }
}
