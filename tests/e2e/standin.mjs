// Loopback stand-ins for the outside services the workflows call (inventory,
// payments, shipping, notifications, and a generic "call" service). Every request
// is recorded so tests can count calls; behaviour is scripted per key by tests.
import http from "node:http";

/// The records GET /source/{key}?n=N serves: ids `{key}-{i}`, three date formats,
/// and every 20th record invalid in one of three ways.
export function sourceRecords(key, n) {
  const base = Date.UTC(2024, 0, 1);
  return Array.from({ length: n }, (_, i) => {
    const at = new Date(base + i * 60_000);
    const createdAt = i % 3 === 0 ? at.toISOString() : i % 3 === 1 ? at.toUTCString().replace("GMT", "+0000") : at.getTime();
    const record = { id: `${key}-${i}`, name: `  User ${i}  `, email: ` User${i}@Example.COM `, createdAt };
    if (i % 20 === 19) {
      if (i % 60 === 19) record.email = "not-an-email";
      else if (i % 60 === 39) delete record.id;
      else record.createdAt = "sometime";
    }
    return record;
  });
}

/// How many of sourceRecords(key, n) are valid.
export const validSourceRecords = (n) => n - Math.floor((n + 1) / 20);

export function startStandin() {
  const calls = [];
  // key -> number of attempts still to fail with 503 (payments by orderId, call by key)
  const failures = new Map();
  // orderId -> status the payments service answers with (e.g. 402)
  const paymentStatus = new Map();
  // orderId -> ms the payments service takes to answer a charge it has already made
  const paymentDelay = new Map();
  // Idempotency-Key of a charge made -> its transaction id (a repeated charge answers the first)
  const charges = new Map();
  // Charge keys a refund named before any charge under them: a later charge under one is
  // refused, so a charge still on its way cannot land after its refund.
  const cancelledCharges = new Set();
  // userId -> status the notifications service answers with (e.g. 503: it is down)
  const notifyStatus = new Map();
  // orderId -> status the shipping service answers with (e.g. 422: it refuses the order)
  const shippingStatus = new Map();
  // key -> Retry-After seconds of the 429 answers /call/{key} gives first, in order
  const rateLimits = new Map();
  // key -> status a webhook receiver /hooks/{key} always answers with (e.g. 500, 410)
  const hookStatus = new Map();

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString();
    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch { body = raw; }
    const url = new URL(req.url, "http://standin");
    const call = { method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, raw, at: Date.now() };
    calls.push(call);
    const send = (status, value, headers = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(value));
    };
    const failOnce = (key) => {
      const left = failures.get(key) ?? 0;
      if (left > 0) { failures.set(key, left - 1); return true; }
      return false;
    };
    const parts = url.pathname.split("/").filter(Boolean);
    // Every POST the Worker sends has a side effect, so it must carry an Idempotency-Key:
    // without one it is refused, and every test that sees a POST succeed proves the key.
    if (req.method === "POST" && !req.headers["idempotency-key"]) return send(400, { error: "missing Idempotency-Key" });
    if (parts[0] === "inventory" && parts[1] === "check") {
      const productId = decodeURIComponent(parts[2] ?? "");
      return send(200, { available: !productId.startsWith("oos-") });
    }
    if (parts[0] === "payments" && parts[1] === "charge") {
      const orderId = body?.orderId;
      if (paymentStatus.has(orderId)) return send(paymentStatus.get(orderId), { error: "card declined" });
      if (failOnce(`payments:${orderId}`)) return send(503, { error: "payments briefly unavailable" });
      const key = req.headers["idempotency-key"];
      if (cancelledCharges.has(key)) return send(422, { error: "a refund cancelled this charge before it was made" });
      if (!charges.has(key)) charges.set(key, `tx-${orderId}`);
      // Made now; the answer may take a while (a slow processor), as the refund of a charge
      // in flight needs.
      if (paymentDelay.has(orderId)) await new Promise((r) => setTimeout(r, paymentDelay.get(orderId)));
      return send(200, { transactionId: charges.get(key) });
    }
    if (parts[0] === "payments" && parts[1] === "refund") {
      // Found by the charge's own key, as a real service finds a charge it may or may not
      // have made; none under it is nothing to refund (a 2xx saying so), and the key is
      // cancelled so a charge still on its way is refused.
      const key = body?.chargeIdempotencyKey;
      if (typeof key !== "string") return send(400, { error: "chargeIdempotencyKey missing" });
      if (charges.has(key)) call.answer = { refunded: true, transactionId: charges.get(key) };
      else {
        cancelledCharges.add(key);
        call.answer = { refunded: false, reason: "no charge under this key" };
      }
      return send(200, call.answer);
    }
    if (parts[0] === "shipping" && parts[1] === "create") {
      if (shippingStatus.has(body?.orderId)) return send(shippingStatus.get(body?.orderId), { error: "carrier refuses the order" });
      if (failOnce(`shipping:${body?.orderId}`)) return send(503, { error: "carrier busy" });
      return send(200, { trackingNumber: `trk-${body?.orderId}` });
    }
    if (parts[0] === "notify" && parts[1] === "send") {
      if (notifyStatus.has(body?.userId)) return send(notifyStatus.get(body?.userId), { error: "notifications unavailable" });
      return send(200, { sent: true });
    }
    if (parts[0] === "source") {
      // A data source for data-pipeline: GET /source/{key}?n=N → N generated records,
      // every 20th one invalid (a bad email, a missing id, or an unreadable date).
      const key = parts[1];
      if (failOnce(`source:${key}`)) return send(503, { error: "source warming up" });
      const n = Number(url.searchParams.get("n") ?? 10);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(sourceRecords(key, n)));
      return;
    }
    if (parts[0] === "hooks") {
      // A webhook receiver: answers its scripted status for good, or 503 while failures
      // are scripted for its key.
      if (hookStatus.has(parts[1])) return send(hookStatus.get(parts[1]), { error: "receiver refuses" });
      if (failOnce(`hooks:${parts[1]}`)) return send(503, { error: "receiver busy" });
      return send(200, { received: true });
    }
    if (parts[0] === "slow") {
      // Answers after `ms` (default 1000): calls that overlap are seen in flight together.
      const ms = Math.min(Number(url.searchParams.get("ms") ?? 1000), 10_000);
      await new Promise((r) => setTimeout(r, ms));
      call.answeredAt = Date.now();
      return send(200, { key: parts[1], i: parts[2] });
    }
    if (parts[0] === "redirect") {
      // A redirect to another stand-in route, which the Worker must never follow.
      return send(302, { moved: true }, { location: `http://${req.headers.host}/call/${parts[1]}-target` });
    }
    if (parts[0] === "big") {
      // A body of `bytes` bytes (at most 64 MiB), streamed in 64 KiB chunks without a
      // Content-Length (chunked), or with one when `declare=1`. `call.sent` counts what
      // was handed to the response before the Worker hung up; `call.written`, what of it
      // the socket actually wrote (a write's callback without an error: the bytes left
      // this process); `call.complete` says whether all of it was sent, and is set last.
      const total = Math.min(Number(url.searchParams.get("bytes") ?? 0), 64 * 1024 * 1024);
      const headers = { "content-type": "application/json" };
      if (url.searchParams.get("declare") === "1") headers["content-length"] = String(total);
      res.writeHead(200, headers);
      const chunk = Buffer.alloc(64 * 1024, "x");
      call.sent = 0;
      call.written = 0;
      let closed = false;
      const gone = new Promise((r) => res.once("close", () => { closed = true; r(); }));
      const writes = [];
      while (call.sent < total && !closed) {
        const n = Math.min(chunk.length, total - call.sent);
        let flushed;
        writes.push(new Promise((r) => {
          flushed = res.write(chunk.subarray(0, n), (err) => {
            if (!err) call.written += n;
            r();
          });
        }));
        call.sent += n;
        if (!flushed) await Promise.race([new Promise((r) => res.once("drain", r)), gone]);
      }
      res.end();
      // Every write settles: written, or failed when the socket closed (bounded, in case
      // one never reports).
      await Promise.race([Promise.all(writes), new Promise((r) => setTimeout(r, 10_000).unref())]);
      call.complete = call.sent === total && !closed;
      return;
    }
    if (parts[0] === "call") {
      const key = parts[1];
      const waits = rateLimits.get(key);
      if (waits?.length) return send(429, { error: "slow down" }, { "retry-after": String(waits.shift()) });
      if (failOnce(`call:${key}`)) return send(503, { error: "try again" });
      return send(200, { key, attempt: Number(url.searchParams.get("attempt")) });
    }
    send(404, { error: "no such stand-in route" });
  });

  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}`,
        calls,
        callsTo: (path, pred = () => true) => calls.filter((c) => c.path === path && pred(c)),
        failNext: (key, n) => failures.set(key, n),
        paymentAnswers: (orderId, status) => paymentStatus.set(orderId, status),
        paymentTakes: (orderId, ms) => paymentDelay.set(orderId, ms),
        notifyAnswers: (userId, status) => notifyStatus.set(userId, status),
        shippingAnswers: (orderId, status) => shippingStatus.set(orderId, status),
        hookAnswers: (key, status) => hookStatus.set(key, status),
        rateLimitNext: (key, retryAfterSeconds) => rateLimits.set(key, [...retryAfterSeconds]),
        closeAll: () => server.closeAllConnections(),
        close: () => new Promise((r) => server.close(r)),
      });
    });
  });
}
