//! The engine's promises and calls for one run, without a wasm-bindgen closure each.
//!
//! A `JsFuture` makes two closures for its promise and drops them when it settles, and a
//! step's callback was one more closure per step; under `wrangler dev` making and dropping
//! those was the largest share of the Rust step path's CPU (bench/analysis.md). Here one
//! function serves every call of a kind for the whole run, bound to an id per promise or
//! per step (`Function.prototype.bind`, no Rust closure), and what arrives waits in a slot
//! for the future that polls it. The functions belong to the JS garbage collector
//! (`into_js_value`), so a promise that settles, or an engine call that comes, after the
//! run is gone finds an empty slot instead of a freed closure.

use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// A function, for `bind` with an id.
    type Bindable;
    /// `function.bind(null, id)`.
    #[wasm_bindgen(method, js_name = bind)]
    fn bind(this: &Bindable, this_arg: &JsValue, id: u32) -> Function;

    /// A promise, for `then` with plain functions.
    type Thenable;
    /// `promise.then(onFulfilled, onRejected)`.
    #[wasm_bindgen(method)]
    fn then(this: &Thenable, on_fulfilled: &Function, on_rejected: &Function) -> JsValue;
}

/// `function.bind(null, id)`.
fn bind_id(function: &Function, id: u32) -> Function {
    function.unchecked_ref::<Bindable>().bind(&JsValue::NULL, id)
}

enum Slot {
    Pending(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
}

#[derive(Default)]
struct Slots {
    next: Cell<u32>,
    by_id: RefCell<HashMap<u32, Slot>>,
}

impl Slots {
    fn open(&self) -> u32 {
        let id = self.next.get();
        self.next.set(id.wrapping_add(1));
        self.by_id.borrow_mut().insert(id, Slot::Pending(None));
        id
    }

    fn settle(&self, id: u32, outcome: Result<JsValue, JsValue>) {
        let waker = match self.by_id.borrow_mut().get_mut(&id) {
            Some(slot @ Slot::Pending(_)) => match std::mem::replace(slot, Slot::Settled(outcome)) {
                Slot::Pending(waker) => waker,
                Slot::Settled(_) => None,
            },
            // Its future was dropped (the step was cancelled): nobody waits for it.
            _ => None,
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Awaits the engine's promises of one run.
pub(crate) struct Promises {
    slots: Rc<Slots>,
    on_fulfilled: Function,
    on_rejected: Function,
}

impl Promises {
    pub(crate) fn new() -> Self {
        let slots = Rc::new(Slots::default());
        let settler = |fulfilled: bool| {
            let slots = Rc::clone(&slots);
            Closure::<dyn FnMut(u32, JsValue)>::own_assert_unwind_safe(move |id: u32, value: JsValue| {
                slots.settle(id, if fulfilled { Ok(value) } else { Err(value) })
            })
            .into_js_value()
            .unchecked_into::<Function>()
        };
        let (on_fulfilled, on_rejected) = (settler(true), settler(false));
        Promises { slots, on_fulfilled, on_rejected }
    }

    /// The outcome of `promise`, as a future.
    pub(crate) fn settled(&self, promise: &Promise) -> Settled {
        let id = self.slots.open();
        promise.unchecked_ref::<Thenable>().then(&bind_id(&self.on_fulfilled, id), &bind_id(&self.on_rejected, id));
        Settled { slots: Rc::clone(&self.slots), id }
    }
}

/// A promise's outcome: `Ok` with its value, `Err` with what it was rejected with.
pub(crate) struct Settled {
    slots: Rc<Slots>,
    id: u32,
}

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slots = self.slots.by_id.borrow_mut();
        if let Some(Slot::Pending(waker)) = slots.get_mut(&self.id) {
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(match slots.remove(&self.id) {
            Some(Slot::Settled(outcome)) => outcome,
            _ => Err(JsValue::from_str("the promise's outcome was taken already")),
        })
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        self.slots.by_id.borrow_mut().remove(&self.id);
    }
}

/// What answers an engine call, by step id.
pub(crate) type Handler = Rc<dyn Fn(JsValue) -> Promise>;
type Handlers = RefCell<HashMap<u32, Handler>>;

/// One function for every step's callback in a run, bound to the step's id: the engine's
/// call goes to what [`Callbacks::register`] gave for that id, while the step is registered.
pub(crate) struct Callbacks {
    handlers: Rc<Handlers>,
    next: Cell<u32>,
    function: Function,
}

impl Callbacks {
    /// `gone` answers a call for a step that is no longer registered.
    pub(crate) fn new(gone: fn() -> Promise) -> Self {
        let handlers: Rc<Handlers> = Rc::default();
        let shared = Rc::clone(&handlers);
        let function = Closure::<dyn FnMut(u32, JsValue) -> Promise>::own_assert_unwind_safe(move |id: u32, arg: JsValue| {
            // Cloned out first, so the handler runs with no borrow of the table held.
            let handler = shared.borrow().get(&id).cloned();
            match handler {
                Some(handler) => handler(arg),
                None => gone(),
            }
        })
        .into_js_value()
        .unchecked_into::<Function>();
        Callbacks { handlers, next: Cell::new(0), function }
    }

    /// The function for the engine, calling `handler` until the registration is dropped.
    pub(crate) fn register(&self, handler: Handler) -> (Function, Registration) {
        let id = self.next.get();
        self.next.set(id.wrapping_add(1));
        self.handlers.borrow_mut().insert(id, handler);
        (bind_id(&self.function, id), Registration { handlers: Rc::clone(&self.handlers), id })
    }
}

/// A step's callback, registered until this is dropped.
pub(crate) struct Registration {
    handlers: Rc<Handlers>,
    id: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.handlers.borrow_mut().remove(&self.id);
    }
}
