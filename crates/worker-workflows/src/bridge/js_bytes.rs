//! Bytes as the engine's `ReadableStream` step outputs: a streamed step's bytes become a
//! stream of `Uint8Array` chunks for the engine, and the stream the engine returns is
//! read back to bytes, bounded by [`MAX_STREAM_STEP_BYTES`](crate::core::step_error::MAX_STREAM_STEP_BYTES) before anything is copied.

use super::js;
use crate::core::step_error::StepError;
use js_sys::{Object, Promise, Reflect, Uint8Array};
use std::cell::Cell;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The size of the chunks handed to the engine: the size it stores them in, and well
/// under its 16 MiB limit on one chunk.
const CHUNK_BYTES: usize = 256 * 1024;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = ReadableStream)]
    type JsReadableStream;

    #[wasm_bindgen(constructor, catch, js_class = "ReadableStream")]
    fn new(source: &Object) -> Result<JsReadableStream, JsValue>;

    #[wasm_bindgen(method, catch, js_name = getReader)]
    fn get_reader(this: &JsReadableStream) -> Result<JsStreamReader, JsValue>;

    type JsStreamReader;

    #[wasm_bindgen(method, catch)]
    fn read(this: &JsStreamReader) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method)]
    fn cancel(this: &JsStreamReader) -> Promise;

    type JsStreamController;

    #[wasm_bindgen(method, catch)]
    fn enqueue(this: &JsStreamController, chunk: &JsValue) -> Result<(), JsValue>;

    #[wasm_bindgen(method, catch)]
    fn close(this: &JsStreamController) -> Result<(), JsValue>;
}

/// What feeds a stream made by [`readable_stream`]: its bytes and the pull function.
/// Keep it until the stream has been read; dropping it frees the bytes.
pub struct StreamSource {
    _pull: Closure<dyn FnMut(JsValue)>,
}

/// A `ReadableStream` of `bytes` in 256 KiB `Uint8Array` chunks, copied out one chunk
/// per pull (so JS holds one chunk at a time, not a second copy of everything).
pub fn readable_stream(bytes: Vec<u8>) -> Result<(JsValue, StreamSource), StepError> {
    let offset = Cell::new(0_usize);
    let pull = Closure::<dyn FnMut(JsValue)>::own_assert_unwind_safe(move |controller: JsValue| {
        let controller: JsStreamController = controller.unchecked_into();
        let start = offset.get();
        if start >= bytes.len() {
            let _ = controller.close();
            return;
        }
        let end = start.saturating_add(CHUNK_BYTES).min(bytes.len());
        offset.set(end);
        let _ = controller.enqueue(&Uint8Array::from(&bytes[start..end]));
    });
    let source = Object::new();
    Reflect::set(&source, &"pull".into(), pull.as_ref()).map_err(|e| StepError::Serialization(js::error_message(&e)))?;
    let stream = JsReadableStream::new(&source).map_err(|e| StepError::Serialization(js::error_message(&e)))?;
    Ok((stream.into(), StreamSource { _pull: pull }))
}

/// Reads the stream the engine returned for step `name` to its end, refusing more than
/// `MAX_STREAM_STEP_BYTES` (the stream is cancelled) before copying the chunk that
/// would pass it.
pub async fn read_to_end(value: &JsValue, name: &str) -> Result<Vec<u8>, StepError> {
    let Some(stream) = value.dyn_ref::<JsReadableStream>() else {
        return Err(StepError::Serialization(format!("step {name:?}: the engine returned no ReadableStream for a streamed step")));
    };
    let reader = stream.get_reader().map_err(|e| js::step_error_from_js(&e))?;
    let mut bytes = Vec::new();
    loop {
        let read = reader.read().map_err(|e| js::step_error_from_js(&e))?;
        let next = JsFuture::from(read).await.map_err(|e| js::step_error_from_js(&e))?;
        if js::get(&next, "done").as_bool() == Some(true) {
            return Ok(bytes);
        }
        let Some(chunk) = js::get(&next, "value").dyn_ref::<Uint8Array>().cloned() else {
            let _ = reader.cancel();
            return Err(StepError::Serialization(format!("step {name:?}: the engine's stream gave a chunk that is not a Uint8Array")));
        };
        let total = bytes.len().saturating_add(chunk.length() as usize);
        if let Err(too_large) = StepError::check_stream_size(total) {
            let _ = reader.cancel();
            return Err(too_large);
        }
        let start = bytes.len();
        bytes.resize(total, 0);
        chunk.copy_to(&mut bytes[start..]);
    }
}
