// The TypeScript twin of the Rust Worker, for the benchmarks (bench/run.mjs): the same
// two HTTP routes with the same bearer-token check, `order-processing` step for step,
// and the `noop`, `download` and `transform` actions of `step-tour`. Written the way
// Cloudflare's documentation writes Workflows, with no dependencies.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";
import { transform } from "./records";

// ---- Minimal types of the runtime APIs used here (no @cloudflare/workers-types) ----

type Duration = string | number;

interface WorkflowEvent<T> {
  payload: Readonly<T>;
  timestamp: Date;
  instanceId: string;
}

interface WorkflowStepConfig {
  retries?: { limit: number; delay: Duration; backoff?: "constant" | "linear" | "exponential" };
  timeout?: Duration;
}

interface WorkflowStep {
  do<T>(name: string, callback: () => Promise<T>): Promise<T>;
  do<T>(name: string, config: WorkflowStepConfig, callback: () => Promise<T>): Promise<T>;
  sleep(name: string, duration: Duration): Promise<void>;
}

interface InstanceStatus {
  status: string;
  error?: unknown;
  output?: unknown;
}

interface WorkflowInstance {
  id: string;
  status(): Promise<InstanceStatus>;
}

interface Workflow {
  create(options?: { id?: string; params?: unknown }): Promise<WorkflowInstance>;
  get(id: string): Promise<WorkflowInstance>;
}

interface Env {
  ORDER_WORKFLOW: Workflow;
  STEP_TOUR_WORKFLOW: Workflow;
  INVENTORY_URL: string;
  PAYMENTS_URL: string;
  SHIPPING_URL: string;
  NOTIFY_URL: string;
  API_TOKEN?: string;
}

// ---- Calls to outside services ----

/** Joins a base URL from config and a path without doubling or dropping the slash. */
function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}

interface ServiceRequest {
  method?: "GET" | "POST";
  body?: unknown;
  headers?: Record<string, string>;
  /** 4xx answers (but 408 and 429) fail the step without retries. */
  clientErrorsAreFinal?: boolean;
}

/**
 * Calls a service and returns its JSON answer (null when empty or not JSON). A non-2xx
 * answer throws, keeping the start of the body so the instance's error says what the
 * service said.
 */
async function callService(service: string, url: string, request: ServiceRequest = {}): Promise<unknown> {
  const headers: Record<string, string> = { ...request.headers };
  let body: string | undefined;
  if (request.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(request.body);
  }
  let response: Response;
  try {
    response = await fetch(url, { method: request.method ?? "GET", headers, body });
  } catch (e) {
    throw new Error(`${service} unreachable: ${e}`);
  }
  const text = await response.text();
  const status = response.status;
  if (status < 200 || status > 299) {
    const message = `${service} answered ${status}: ${text.slice(0, 200)}`;
    if (request.clientErrorsAreFinal && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      throw new NonRetryableError(message);
    }
    throw new Error(message);
  }
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A field of a service's answer that must be there, with its type. */
function answerField<T>(service: string, answer: unknown, field: string, type: "string" | "boolean"): T {
  const value = (answer as Record<string, unknown> | null)?.[field];
  if (typeof value !== type) {
    throw new Error(`${service} answered with unexpected JSON: expected a ${type} \`${field}\` in ${JSON.stringify(answer)}`);
  }
  return value as T;
}

/** GETs a source; a non-2xx answer fails the attempt (the engine retries it). */
async function fetchSource(url: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`source unreachable: ${e}`);
  }
  if (!response.ok) throw new Error(`source answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  return response;
}

// ---- order-processing ----

interface OrderItem {
  productId: string;
  quantity: number;
}

interface OrderParams {
  orderId: string;
  userId: string;
  items: OrderItem[];
  /** How long to wait between payment and shipment; "5 seconds" when absent. */
  fulfillmentDelay?: Duration | null;
}

type OrderOutput =
  | { status: "completed"; transactionId: string; trackingNumber: string }
  | { status: "cancelled"; reason: string };

/** Charging is retried quickly (2 s, 4 s, 8 s, …) since checkout waits on it; the idempotency key makes every retry safe. */
const PAYMENT_CONFIG: WorkflowStepConfig = {
  retries: { limit: 5, delay: "2 seconds", backoff: "exponential" },
  timeout: "30 seconds",
};

function requiredVar(env: Env, name: "INVENTORY_URL" | "PAYMENTS_URL" | "SHIPPING_URL" | "NOTIFY_URL"): string {
  const value = env[name];
  if (typeof value !== "string") throw new NonRetryableError(`the var ${name} is not set`);
  return value;
}

export class OrderWorkflow extends WorkflowEntrypoint<Env, OrderParams> {
  async run(event: WorkflowEvent<OrderParams>, step: WorkflowStep): Promise<OrderOutput> {
    const order = event.payload;
    const inventory = requiredVar(this.env, "INVENTORY_URL");
    const payments = requiredVar(this.env, "PAYMENTS_URL");
    const shipping = requiredVar(this.env, "SHIPPING_URL");
    const notify = requiredVar(this.env, "NOTIFY_URL");

    const inStock = await step.do("validate-inventory", async () => {
      const answers = await Promise.all(
        order.items.map((item) => callService("inventory", joinUrl(inventory, `check/${encodeURIComponent(item.productId)}`))),
      );
      return answers.every((answer) => answerField<boolean>("inventory", answer, "available", "boolean"));
    });

    if (!inStock) {
      await step.do("notify-out-of-stock", async () => {
        await callService("notifications", joinUrl(notify, "send"), {
          method: "POST",
          headers: { "idempotency-key": `${event.instanceId}:notify-out-of-stock:1` },
          body: { userId: order.userId, message: "Items out of stock" },
        });
        return null;
      });
      return { status: "cancelled", reason: "out_of_stock" };
    }

    const payment = await step.do("process-payment", PAYMENT_CONFIG, async () => {
      const answer = await callService("payments", joinUrl(payments, "charge"), {
        method: "POST",
        headers: { "idempotency-key": `order-payment-${event.instanceId}` },
        body: { orderId: order.orderId, userId: order.userId },
        clientErrorsAreFinal: true,
      });
      return { transactionId: answerField<string>("payments", answer, "transactionId", "string") };
    });

    await step.sleep("wait-before-fulfillment", order.fulfillmentDelay ?? "5 seconds");

    const shipment = await step.do("create-shipment", async () => {
      const answer = await callService("shipping", joinUrl(shipping, "create"), {
        method: "POST",
        headers: { "idempotency-key": `${event.instanceId}:create-shipment:1` },
        body: { orderId: order.orderId, items: order.items },
      });
      return { trackingNumber: answerField<string>("shipping", answer, "trackingNumber", "string") };
    });

    await step.do("send-confirmation", async () => {
      await callService("notifications", joinUrl(notify, "send"), {
        method: "POST",
        headers: { "idempotency-key": `${event.instanceId}:send-confirmation:1` },
        body: { userId: order.userId, message: `Order ${order.orderId} shipped! Tracking: ${shipment.trackingNumber}` },
      });
      return null;
    });

    return { status: "completed", transactionId: payment.transactionId, trackingNumber: shipment.trackingNumber };
  }
}

// ---- step-tour (the actions the benchmarks use) ----

type TourAction =
  | { noop: { name: string; count: number } }
  | { download: { name: string; url: string } }
  | { transform: { name: string; url: string; repeat?: number } };

interface TourParams {
  actions: TourAction[];
}

export class StepTourWorkflow extends WorkflowEntrypoint<Env, TourParams> {
  async run(event: WorkflowEvent<TourParams>, step: WorkflowStep): Promise<unknown[]> {
    const results: unknown[] = [];
    for (const action of event.payload.actions) results.push(await perform(step, action));
    return results;
  }
}

async function perform(step: WorkflowStep, action: TourAction): Promise<unknown> {
  if ("noop" in action) {
    // `count` sequential steps named "{name} {i}" that do nothing: the engine's own cost per step.
    const { name, count } = action.noop;
    for (let i = 0; i < count; i++) await step.do(`${name} ${i}`, async () => null);
    return { name, steps: count };
  }
  if ("download" in action) {
    const { name, url } = action.download;
    return step.do(name, async () => {
      const response = await fetchSource(url);
      return { name, bytes: (await response.arrayBuffer()).byteLength };
    });
  }
  if ("transform" in action) {
    // Downloads and normalises the records (parse included), `repeat` times over the same
    // body as the Rust Worker does; only the counts leave the step.
    const { name, url, repeat = 1 } = action.transform;
    return step.do(name, async () => {
      const text = await (await fetchSource(url)).text();
      let counts = { records: 0, dropped: 0 };
      for (let i = 0; i < Math.max(1, repeat); i++) {
        let data: unknown;
        try {
          data = JSON.parse(text);
        } catch (e) {
          throw new NonRetryableError(`the source data (${url}) is not JSON: ${e}`);
        }
        if (!Array.isArray(data)) throw new NonRetryableError(`the source data (${url}) is not a JSON array of records`);
        const { records, dropped } = transform(data);
        counts = { records: records.length, dropped };
      }
      return { name, ...counts };
    });
  }
  throw new NonRetryableError(`the step-tour action ${JSON.stringify(Object.keys(action))} is not supported by the TypeScript twin`);
}

// ---- HTTP API ----

const WORKFLOWS: Record<string, "ORDER_WORKFLOW" | "STEP_TOUR_WORKFLOW"> = {
  "order-processing": "ORDER_WORKFLOW",
  "step-tour": "STEP_TOUR_WORKFLOW",
};

/** The largest request body accepted (the engine's limit on params). */
const MAX_BODY_BYTES = 1024 * 1024;
const INSTANCE_ID = /^[a-zA-Z0-9_][a-zA-Z0-9_-]*$/;
const STATES = new Set(["queued", "running", "paused", "errored", "terminated", "complete", "waiting", "waitingForPause"]);
const INSTANCES_PATH = /^\/workflows\/([^/]+)\/instances$/;
const INSTANCE_PATH = /^\/workflows\/([^/]+)\/instances\/([^/]+)$/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers });
}

/** Compares the presented token with the configured one in time independent of where they differ. */
function tokensMatch(presented: string, configured: string): boolean {
  const a = utf8.encode(presented);
  const b = utf8.encode(configured);
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** `Authorization: Bearer <API_TOKEN>`; with no API_TOKEN configured the API stays closed. */
function authorize(request: Request, env: Env): void {
  const configured = env.API_TOKEN?.trim();
  if (!configured) {
    throw new ApiError(401, "unauthorized", "the API is closed: no API_TOKEN is configured (set it with `wrangler secret put API_TOKEN`; locally it comes from .dev.vars)");
  }
  const header = request.headers.get("authorization")?.trim() ?? "";
  const rest = header.startsWith("Bearer ") || header.startsWith("bearer ") ? header.slice(7).trim() : "";
  if (rest === "") {
    throw new ApiError(401, "unauthorized", "missing or malformed Authorization header: expected `Authorization: Bearer <API_TOKEN>`");
  }
  if (!tokensMatch(rest, configured)) throw new ApiError(401, "unauthorized", "the bearer token is not valid");
}

function binding(env: Env, workflow: string): Workflow {
  const name = Object.hasOwn(WORKFLOWS, workflow) ? WORKFLOWS[workflow] : undefined;
  if (name === undefined) {
    throw new ApiError(404, "workflow_not_found", `no workflow named ${JSON.stringify(workflow)}`);
  }
  return env[name];
}

function checkId(id: string): void {
  if (id.length > 100 || !INSTANCE_ID.test(id)) {
    throw new ApiError(400, "invalid_id", `invalid instance id ${JSON.stringify(id)}: 1 to 100 characters, letters, digits, '-' and '_', not starting with '-'`);
  }
}

function isNotFound(e: unknown): boolean {
  return String((e as Error)?.message ?? e).includes("instance.not_found");
}

function statusUrl(workflow: string, id: string): string {
  return `/workflows/${workflow}/instances/${id}`;
}

// ---- Params, checked before anything is created ----

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why `value` is not an object with exactly these fields (required ones first), or null. */
function checkFields(value: unknown, path: string, required: string[], optional: string[] = []): string | null {
  if (!isObject(value)) return `${path}: expected an object`;
  for (const key of Object.keys(value)) {
    if (!required.includes(key) && !optional.includes(key)) return `${path}: unknown field \`${key}\`, expected one of ${[...required, ...optional].join(", ")}`;
  }
  for (const key of required) if (value[key] === undefined) return `${path}: missing field \`${key}\``;
  return null;
}

function isU32(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff;
}

function checkOrderParams(params: unknown): string | null {
  const fields = checkFields(params, "params", ["orderId", "userId", "items"], ["fulfillmentDelay"]);
  if (fields) return fields;
  const p = params as Json;
  if (typeof p.orderId !== "string") return "orderId: expected a string";
  if (typeof p.userId !== "string") return "userId: expected a string";
  if (!Array.isArray(p.items)) return "items: expected an array";
  for (let i = 0; i < p.items.length; i++) {
    const item = p.items[i];
    const problem = checkFields(item, `items[${i}]`, ["productId", "quantity"]);
    if (problem) return problem;
    if (typeof item.productId !== "string") return `items[${i}].productId: expected a string`;
    if (!isU32(item.quantity)) return `items[${i}].quantity: expected an integer from 0 to 4294967295`;
  }
  const delay = p.fulfillmentDelay;
  if (delay != null && typeof delay !== "string" && !(Number.isInteger(delay) && (delay as number) >= 0)) {
    return "fulfillmentDelay: expected a duration (\"5 seconds\") or milliseconds";
  }
  return null;
}

function checkTourParams(params: unknown): string | null {
  const fields = checkFields(params, "params", ["actions"]);
  if (fields) return fields;
  const actions = (params as Json).actions;
  if (!Array.isArray(actions)) return "actions: expected an array";
  for (let i = 0; i < actions.length; i++) {
    const action = actions[i];
    const keys = isObject(action) ? Object.keys(action) : [];
    if (keys.length !== 1) return `actions[${i}]: expected an object with one action`;
    const [kind] = keys;
    const body = action[kind];
    const path = `actions[${i}].${kind}`;
    if (kind === "noop") {
      const problem = checkFields(body, path, ["name", "count"]);
      if (problem) return problem;
      if (typeof body.name !== "string") return `${path}.name: expected a string`;
      if (!isU32(body.count)) return `${path}.count: expected an integer from 0 to 4294967295`;
    } else if (kind === "download" || kind === "transform") {
      const problem = checkFields(body, path, ["name", "url"], kind === "transform" ? ["repeat"] : []);
      if (problem) return problem;
      if (typeof body.name !== "string") return `${path}.name: expected a string`;
      if (typeof body.url !== "string") return `${path}.url: expected a string`;
      if (body.repeat !== undefined && !isU32(body.repeat)) return `${path}.repeat: expected an integer from 0 to 4294967295`;
    } else if (!["call", "panic", "nonRetryable", "sleep", "sleepUntil", "waitForEvent", "parallel", "oversized"].includes(kind)) {
      return `actions[${i}]: unknown action \`${kind}\``;
    }
    // The other actions of the Rust step-tour are accepted here and refused when run.
  }
  return null;
}

const PARAMS_CHECKS: Record<string, (params: unknown) => string | null> = {
  "order-processing": checkOrderParams,
  "step-tour": checkTourParams,
};

/** The body as JSON: `{}` when blank, 400 when not JSON, 413 over 1 MiB. */
async function readJson(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get("content-length"));
  if (declared > MAX_BODY_BYTES) throw new ApiError(413, "payload_too_large", `request body is larger than ${MAX_BODY_BYTES} bytes`);
  const bytes = await request.arrayBuffer();
  if (bytes.byteLength > MAX_BODY_BYTES) throw new ApiError(413, "payload_too_large", `request body is larger than ${MAX_BODY_BYTES} bytes`);
  try {
    const text = strictUtf8.decode(bytes);
    return /^[ \t\n\r\f]*$/.test(text) ? {} : JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, "invalid_json", `request body is not valid JSON: ${(e as Error).message}`);
  }
}

async function createInstance(request: Request, env: Env, workflow: string): Promise<Response> {
  const workflows = binding(env, workflow);
  const body = await readJson(request);
  if (!isObject(body)) throw new ApiError(400, "invalid_json", "request body is not valid JSON: expected an object {id?, params?}");
  for (const key of Object.keys(body)) {
    if (key !== "id" && key !== "params") {
      throw new ApiError(400, "invalid_json", `request body is not valid JSON: unknown field \`${key}\`, expected \`id\` or \`params\``);
    }
  }
  if (body.id != null && typeof body.id !== "string") throw new ApiError(400, "invalid_json", "request body is not valid JSON: id: expected a string");
  const requestedId = body.id as string | null | undefined;
  if (requestedId != null) checkId(requestedId);
  const params = body.params ?? null;
  const problem = PARAMS_CHECKS[workflow](params);
  if (problem) throw new ApiError(400, "invalid_params", `params do not match the workflow's params: ${problem}`);

  const id = requestedId ?? crypto.randomUUID();
  let instance: WorkflowInstance;
  let created = true;
  try {
    instance = await workflows.create({ id, params });
  } catch (e) {
    // An id that exists: answer with that instance, never start a second run.
    if (!String((e as Error)?.message ?? e).includes("instance.already_exists")) throw e;
    instance = await workflows.get(id);
    created = false;
  }
  const status = await instance.status();
  const url = statusUrl(workflow, id);
  return json(
    created ? 201 : 200,
    { id, workflow, status: stateOf(status.status), statusUrl: url, created },
    { location: url },
  );
}

function stateOf(status: string): string {
  return STATES.has(status) ? status : "unknown";
}

/** An instance's error as `{name, message}` (older engines report a bare string). */
function errorOf(error: unknown): { name: string; message: string } | undefined {
  if (error == null) return undefined;
  if (typeof error === "string") return { name: "Error", message: error };
  const e = error as { name?: unknown; message?: unknown };
  return { name: typeof e.name === "string" ? e.name : "Error", message: typeof e.message === "string" ? e.message : "" };
}

async function getInstance(env: Env, workflow: string, id: string): Promise<Response> {
  const workflows = binding(env, workflow);
  checkId(id);
  let status: InstanceStatus;
  try {
    status = await (await workflows.get(id)).status();
  } catch (e) {
    if (isNotFound(e)) throw new ApiError(404, "instance_not_found", `no instance ${JSON.stringify(id)} of workflow ${JSON.stringify(workflow)}`);
    throw e;
  }
  const state = stateOf(status.status);
  return json(200, {
    id,
    workflow,
    status: state,
    output: state === "complete" && status.output != null ? status.output : undefined,
    error: errorOf(status.error),
  });
}

async function serve(request: Request, env: Env, path: string): Promise<Response> {
  let m = INSTANCES_PATH.exec(path);
  if (m) {
    if (request.method !== "POST") throw new ApiError(405, "method_not_allowed", "method not allowed; allowed: POST", { allow: "POST" });
    authorize(request, env);
    return createInstance(request, env, m[1]);
  }
  m = INSTANCE_PATH.exec(path);
  if (m) {
    if (request.method !== "GET") throw new ApiError(405, "method_not_allowed", "method not allowed; allowed: GET", { allow: "GET" });
    authorize(request, env);
    return getInstance(env, m[1], m[2]);
  }
  throw new ApiError(404, "not_found", "no route for this path");
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const started = Date.now();
    const path = new URL(request.url).pathname;
    let response: Response;
    try {
      response = await serve(request, env, path);
    } catch (e) {
      if (e instanceof ApiError) {
        response = json(e.status, { error: { code: e.code, message: e.message } }, e.headers);
      } else {
        // The details only in the log.
        console.log(JSON.stringify({ level: "error", method: request.method, path, error: String((e as Error)?.stack ?? e) }));
        response = json(500, { error: { code: "internal", message: "internal error" } });
      }
    }
    console.log(JSON.stringify({ type: "request", method: request.method, path, status: response.status, ms: Date.now() - started }));
    return response;
  },
};
