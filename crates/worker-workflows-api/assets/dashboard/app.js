// The worker-workflows dashboard: calls the Worker's HTTP API (/workflows…) with the
// bearer token the operator types in, kept in this tab's sessionStorage only. Every
// value from the API is put on the page as text (text nodes, never parsed as markup).

const TOKEN_KEY = "worker-workflows-dashboard-token";
const STATES = ["queued", "running", "paused", "waiting", "waitingForPause", "rollingBack", "errored", "terminated", "complete"];
const FINISHED = ["complete", "errored", "terminated"];
const PAGE_SIZE = 25;
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

let current = null; // what the shown view started (an instance's event stream), stopped on leaving it

// ---- building the page from data, as text ----------------------------------------------

/** An element: `props` set as properties or attributes (names from this code only), `on`
 * its listeners; children are nodes or strings (text nodes), arrays flattened. */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    else if (key === "class") el.className = value;
    else if (key === "value" || key === "checked" || key === "selected") el[key] = value;
    else if (/^on/i.test(key)) throw new Error(`no handler attributes: ${key}`);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  add(el, children);
  return el;
}
function add(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const badge = (state) => h("span", { class: `badge s-${state}` }, state);
const json = (value) => h("pre", {}, JSON.stringify(value, null, 2));
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "");
function took(ms) {
  if (ms === undefined || ms === null || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 172_800_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} days`;
}
function announce(text) {
  $("announce").textContent = "";
  setTimeout(() => ($("announce").textContent = text), 50);
}

// ---- the API ---------------------------------------------------------------------------

const token = () => sessionStorage.getItem(TOKEN_KEY);

class ApiError extends Error {
  constructor(status, code, message) {
    super(code ? `${code}: ${message}` : message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token()}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const error = data?.error;
  if (res.status === 401) {
    signOut(`The Worker refused the token: ${error?.message ?? res.statusText}`);
    throw new ApiError(401, "unauthorized", error?.message ?? "unauthorized");
  }
  if (!res.ok) throw new ApiError(res.status, error?.code, error?.message ?? `HTTP ${res.status}`);
  return data;
}

// ---- sign-in ---------------------------------------------------------------------------

function showLogin(message) {
  stop();
  $("view").hidden = true;
  $("view").replaceChildren();
  $("crumbs").replaceChildren();
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(message);
}

async function signIn(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  try {
    await api("GET", "/workflows");
  } catch (e) {
    if (e.status !== 401) showLogin(`The Worker could not be reached: ${e.message}`);
    return;
  }
  render();
}

// ---- routing: #/, #/workflows/{name}?status=&cursor=, #/workflows/{name}/instances/{id} --

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function stop() {
  current?.abort();
  current = null;
}

async function render() {
  stop();
  if (!token()) return showLogin();
  $("login").hidden = true;
  $("forget").hidden = false;
  const view = $("view");
  view.hidden = false;
  view.replaceChildren(h("p", { class: "hint" }, "Loading…"));
  try {
    // Inside the try: a malformed link (`%E0`) is an error shown, not a stuck page.
    const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const params = new URLSearchParams(query ?? "");
    if (parts[0] === "workflows" && parts.length === 2) await workflowView(parts[1], params);
    else if (parts[0] === "workflows" && parts[2] === "instances" && parts.length === 4) await instanceView(parts[1], parts[3]);
    else await homeView();
  } catch (e) {
    if (e.status === 401) return;
    view.replaceChildren(h("h2", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, e.message));
  }
  $("main").focus({ preventScroll: true });
}

function crumbs(...items) {
  $("crumbs").replaceChildren(...items.map(([label, hash]) => (hash ? h("a", { href: hash }, label) : h("span", {}, label))));
}

// ---- the workflows, with counts by status ------------------------------------------------

async function homeView() {
  crumbs();
  const { workflows } = await api("GET", "/workflows");
  const body = h("tbody");
  const table = h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Workflow"), h("th", { scope: "col" }, "Instances"), h("th", { scope: "col" }, "By status"))), body);
  for (const w of workflows) {
    const total = h("td", {}, "…");
    const counts = h("td", {}, "…");
    body.append(h("tr", { "data-workflow": w.name }, h("th", { scope: "row" }, h("a", { href: `#/workflows/${enc(w.name)}` }, w.name)), total, counts));
    api("GET", `/workflows/${enc(w.name)}`).then(
      (d) => {
        total.textContent = String(d.instances.total);
        counts.replaceChildren(statusCounts(d.instances));
      },
      (e) => counts.replaceChildren(h("span", { class: "error" }, e.message)),
    );
  }
  $("view").replaceChildren(h("h2", {}, "Workflows"), table, searchForm(workflows));
}

function statusCounts({ byStatus, counted, total }) {
  const entries = Object.entries(byStatus);
  return h(
    "div",
    {},
    h("div", { class: "badges" }, entries.length ? entries.map(([state, n]) => h("span", { class: `badge s-${state}` }, `${state} ${n}`)) : h("span", { class: "hint" }, "none")),
    counted < total ? h("p", { class: "hint" }, `counted over the newest ${counted} of ${total}`) : null,
  );
}

function searchForm(workflows) {
  const input = h("input", { id: "search-id", name: "id", autocomplete: "off", spellcheck: "false", required: true, maxlength: 100 });
  const results = h("ul", { id: "search-results", "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "stack panel",
      role: "search",
      on: {
        submit: async (event) => {
          event.preventDefault();
          const id = input.value.trim();
          results.replaceChildren(h("li", {}, "Searching…"));
          const found = await Promise.all(
            workflows.map((w) => api("GET", `/workflows/${enc(w.name)}/instances/${enc(id)}`).then((i) => [w.name, i], () => null)),
          );
          const hits = found.filter(Boolean);
          results.replaceChildren(
            ...(hits.length
              ? hits.map(([name, i]) => h("li", {}, h("a", { href: `#/workflows/${enc(name)}/instances/${enc(i.id)}` }, `${name} / ${i.id}`), " ", badge(i.status)))
              : [h("li", {}, `No instance has the id “${id}”.`)]),
          );
        },
      },
    },
    h("label", { for: "search-id" }, "Find an instance by id"),
    h("div", { class: "row" }, input, h("button", { type: "submit" }, "Search")),
    results,
  );
  return form;
}

// ---- one workflow's instances ----------------------------------------------------------

const pages = new Map(); // the cursors of the pages before this one, per workflow and filter

async function workflowView(name, params) {
  crumbs([name]);
  const status = params.get("status") ?? "";
  const cursor = params.get("cursor");
  const here = (c) => `#/workflows/${enc(name)}?status=${enc(status)}${c ? `&cursor=${enc(c)}` : ""}`;
  const key = `${name}|${status}`;
  if (!cursor) pages.set(key, []);
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (status) query.set("status", status);
  if (cursor) query.set("cursor", cursor);
  const [described, page] = await Promise.all([api("GET", `/workflows/${enc(name)}`), api("GET", `/workflows/${enc(name)}/instances?${query}`)]);

  const filter = h(
    "select",
    { id: "status-filter", on: { change: () => go(`#/workflows/${enc(name)}?status=${enc(filter.value)}`) } },
    h("option", { value: "" }, "any"),
    STATES.map((s) => h("option", { value: s, selected: s === status }, s)),
  );
  const rows = page.instances.map((i) =>
    h("tr", {}, h("td", {}, h("a", { href: `#/workflows/${enc(name)}/instances/${enc(i.id)}` }, i.id)), h("td", {}, badge(i.status)), h("td", {}, when(i.createdAt))),
  );
  const history = pages.get(key) ?? [];
  const pager = h(
    "div",
    { class: "pager" },
    history.length
      ? h("button", { type: "button", on: { click: () => go(here(history.pop())) } }, "← Newer")
      : null,
    cursor ? h("button", { type: "button", on: { click: () => go(here(null)) } }, "Newest") : null,
    page.cursor
      ? h("button", { type: "button", id: "older", on: { click: () => (history.push(cursor), pages.set(key, history), go(here(page.cursor))) } }, "Older →")
      : null,
  );
  $("view").replaceChildren(
    h("h2", {}, name),
    statusCounts(described.instances),
    h("div", { class: "row" }, h("label", { for: "status-filter" }, "Status"), filter),
    rows.length
      ? h("table", { id: "instances" }, h("caption", { class: "visually-hidden" }, `Instances of ${name}, newest first`), h("thead", {}, h("tr", {}, ["Id", "Status", "Created"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows))
      : h("p", {}, page.cursor ? "None in the instances read; older ones may match." : "No instances."),
    pager,
    createForm(name, described.params),
  );
}

function createForm(name, schema) {
  const id = h("input", { id: "create-id", name: "id", autocomplete: "off", spellcheck: "false", maxlength: 100, pattern: "[a-zA-Z0-9_][a-zA-Z0-9_\\-]*" });
  const params = schemaForm(schema, "create-params");
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      on: {
        submit: async (event) => {
          event.preventDefault();
          error.textContent = "";
          let value;
          try {
            value = params.read();
          } catch (e) {
            error.textContent = e.message;
            return;
          }
          const chosen = id.value.trim();
          if (chosen && !/^[a-zA-Z0-9_][a-zA-Z0-9\-_]*$/.test(chosen)) {
            error.textContent = "The id may hold letters, digits, - and _ (not first), at most 100 characters.";
            return;
          }
          if (!(await confirmAction(`Create an instance of ${name}${chosen ? ` with the id “${chosen}”` : ""}? It starts running at once.`, "Create"))) return;
          try {
            const created = await api("POST", `/workflows/${enc(name)}/instances`, { ...(chosen ? { id: chosen } : {}), params: value });
            announce(`Created ${created.id}`);
            go(`#/workflows/${enc(name)}/instances/${enc(created.id)}`);
          } catch (e) {
            error.textContent = e.message;
          }
        },
      },
    },
    h("label", { for: "create-id" }, "Id (optional: a UUID otherwise)"),
    id,
    h("fieldset", {}, h("legend", {}, "Params"), params.element),
    error,
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Create…")),
  );
  return h("details", { class: "panel", id: "create" }, h("summary", {}, "Create an instance"), form);
}

// ---- forms from a JSON Schema, and checking values against it ---------------------------

const typesOf = (schema) => (Array.isArray(schema?.type) ? schema.type : schema?.type ? [schema.type] : []);

/** Problems of `value` against the schema's keywords this page knows (empty: none). */
function check(schema, value, at = "") {
  if (!schema || typeof schema !== "object") return [];
  const where = at || "the value";
  const types = typesOf(schema);
  const is = {
    string: (v) => typeof v === "string",
    integer: (v) => Number.isInteger(v),
    number: (v) => typeof v === "number" && Number.isFinite(v),
    boolean: (v) => typeof v === "boolean",
    array: Array.isArray,
    object: (v) => v !== null && typeof v === "object" && !Array.isArray(v),
    null: (v) => v === null,
  };
  if (types.length && !types.some((t) => is[t]?.(value) ?? true)) return [`${where}: expected ${types.join(" or ")}`];
  const problems = [];
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    problems.push(`${where}: one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${where}: at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) problems.push(`${where}: at most ${schema.maximum}`);
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) problems.push(`${where}: at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) problems.push(`${where}: at most ${schema.maxLength} characters`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) problems.push(`${where}: at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) problems.push(`${where}: at most ${schema.maxItems} items`);
    value.forEach((item, i) => problems.push(...check(schema.items, item, `${at}[${i}]`)));
  }
  if (is.object(value)) {
    const properties = schema.properties ?? {};
    for (const name of schema.required ?? []) if (!(name in value)) problems.push(`${at ? `${at}.` : ""}${name}: required`);
    for (const [name, v] of Object.entries(value)) {
      if (name in properties) problems.push(...check(properties[name], v, at ? `${at}.${name}` : name));
      else if (schema.additionalProperties === false) problems.push(`${at ? `${at}.` : ""}${name}: not a field of this schema`);
    }
  }
  return problems;
}

/** A form for a value of `schema`: one field per property of an object schema (a JSON
 * text field for nested values), or JSON text; `read()` gives the value, checked. */
function schemaForm(schema, prefix) {
  const example = schema?.examples?.[0];
  const raw = h("textarea", { id: `${prefix}-json`, spellcheck: "false", "aria-describedby": `${prefix}-json-hint` });
  raw.value = JSON.stringify(example ?? (typesOf(schema).includes("object") ? {} : null), null, 2);
  const rawField = h("div", { class: "stack" }, h("label", { for: `${prefix}-json` }, "JSON"), raw, h("p", { class: "hint", id: `${prefix}-json-hint` }, schema ? "Checked against the workflow's schema before it is sent." : "No schema given for it: the Worker checks it when it is sent."));
  const readRaw = () => {
    try {
      return JSON.parse(raw.value);
    } catch (e) {
      throw new Error(`The JSON does not parse: ${e.message}`);
    }
  };
  const checked = (value) => {
    const problems = check(schema, value);
    if (problems.length) throw new Error(`Does not fit the schema:\n${problems.join("\n")}`);
    return value;
  };
  const properties = schema?.properties;
  if (!typesOf(schema).includes("object") || !properties || !Object.keys(properties).length) {
    return { element: rawField, read: () => checked(readRaw()) };
  }
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(properties).map(([name, prop]) => field(`${prefix}-${name}`, name, prop, required.has(name), example?.[name]));
  const fieldset = h("div", { class: "stack" }, fields.map((f) => f.element));
  const asJson = h("input", { type: "checkbox", id: `${prefix}-as-json` });
  rawField.hidden = true;
  const readFields = () => {
    const value = {};
    for (const f of fields) {
      const v = f.read();
      if (v !== undefined) value[f.name] = v;
    }
    return value;
  };
  asJson.addEventListener("change", () => {
    if (asJson.checked) {
      try {
        raw.value = JSON.stringify(readFields(), null, 2);
      } catch {
        // keep the text as it was
      }
    }
    fieldset.hidden = asJson.checked;
    rawField.hidden = !asJson.checked;
  });
  return {
    element: h("div", { class: "stack" }, fieldset, h("label", { class: "check", for: `${prefix}-as-json` }, asJson, "Edit as JSON"), rawField),
    read: () => checked(asJson.checked ? readRaw() : readFields()),
  };
}

function field(id, name, schema, required, example) {
  const types = typesOf(schema);
  const hint = schema.description ? h("p", { class: "hint", id: `${id}-hint` }, schema.description) : null;
  const label = h("label", { for: id }, name, required ? " (required)" : " (optional)");
  const described = hint ? `${id}-hint` : undefined;
  let input;
  let read;
  if (Array.isArray(schema.enum)) {
    input = h("select", { id, name, "aria-describedby": described }, required ? null : h("option", { value: "" }, "(not given)"), schema.enum.map((v, i) => h("option", { value: String(i), selected: JSON.stringify(v) === JSON.stringify(example) }, JSON.stringify(v))));
    read = () => (input.value === "" ? undefined : schema.enum[Number(input.value)]);
  } else if (types.length === 1 && types[0] === "boolean" && required) {
    input = h("input", { id, name, type: "checkbox", checked: example === true, "aria-describedby": described });
    read = () => input.checked;
    return { name, read, element: h("div", {}, h("label", { class: "check", for: id }, input, name), hint) };
  } else if (types.includes("boolean") && types.every((t) => t === "boolean" || t === "null")) {
    input = h("select", { id, name, "aria-describedby": described }, h("option", { value: "" }, "(not given)"), h("option", { value: "true", selected: example === true }, "true"), h("option", { value: "false", selected: example === false }, "false"));
    read = () => (input.value === "" ? undefined : input.value === "true");
  } else if (types.some((t) => t === "integer" || t === "number") && types.every((t) => ["integer", "number", "null"].includes(t))) {
    input = h("input", { id, name, type: "number", step: types.includes("integer") ? "1" : "any", inputmode: "decimal", required, "aria-describedby": described, value: example ?? "" });
    read = () => (input.value === "" ? undefined : Number(input.value));
  } else if (types.includes("string") && types.every((t) => ["string", "integer", "number", "null"].includes(t))) {
    // Text, or a number where the schema also allows one and the text is one ("5000"). An
    // empty field is a field not given (a required one is then reported missing).
    const numeric = types.some((t) => t === "integer" || t === "number");
    input = h("input", { id, name, type: "text", spellcheck: "false", required, "aria-describedby": described, value: example ?? "" });
    read = () => (input.value === "" ? undefined : numeric && /^-?\d+(\.\d+)?$/.test(input.value.trim()) ? Number(input.value) : input.value);
  } else {
    input = h("textarea", { id, name, spellcheck: "false", "aria-describedby": described });
    input.value = example === undefined ? "" : JSON.stringify(example, null, 2);
    read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch (e) {
        throw new Error(`${name}: the JSON does not parse: ${e.message}`);
      }
    };
  }
  return { name, read, element: h("div", { class: "stack" }, label, input, hint) };
}

// ---- confirming an action ---------------------------------------------------------------

function confirmAction(text, okLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "cancel";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

// ---- one instance: facts, actions and its steps, followed live ---------------------------

/** The steps of an instance, folded from its events as the Worker's History does. */
class Timeline {
  constructor() {
    this.steps = new Map();
    this.params = undefined;
    this.startedAt = undefined;
    this.endedAt = undefined;
    this.status = undefined;
  }
  entry(kind, ref, at) {
    const key = `${kind}|${ref.name}|${ref.count}`;
    let step = this.steps.get(key);
    if (!step) {
      step = { key, kind, name: ref.name, count: ref.count, status: "running", start: at, attempts: new Map() };
      this.steps.set(key, step);
    }
    return step;
  }
  attempt(kind, ref, at, n) {
    const step = this.entry(kind, ref, at);
    let attempt = step.attempts.get(n);
    if (!attempt) step.attempts.set(n, (attempt = { n, start: at }));
    return [step, attempt];
  }
  end(kind, ref, at, status) {
    const step = this.entry(kind, ref, at);
    step.status = status;
    step.end = at;
    return step;
  }
  apply(e) {
    const at = e.timestamp;
    const ref = e.step;
    const states = {
      workflow_queued: "queued",
      workflow_started: "running",
      workflow_running: "running",
      workflow_paused: "paused",
      workflow_waiting_for_pause: "waitingForPause",
      workflow_waiting: "waiting",
      workflow_completed: "complete",
      workflow_errored: "errored",
      workflow_terminated: "terminated",
      rollback_started: "rollingBack",
    };
    if (states[e.type]) this.status = states[e.type];
    if (e.type === "workflow_started") {
      this.params = "params" in e ? e.params : this.params;
      this.startedAt ??= at;
    }
    if (FINISHED.includes(states[e.type])) this.endedAt = at;
    if (!ref) return;
    switch (e.type) {
      case "step_started":
        this.entry("do", ref, at).config = e.config;
        break;
      case "attempt_started":
        this.attempt("do", ref, at, e.attempt);
        break;
      case "attempt_completed":
        this.attempt("do", ref, at, e.attempt)[1].end = at;
        break;
      case "attempt_errored":
      case "rollback_attempt_errored": {
        const [, attempt] = this.attempt(e.type === "attempt_errored" ? "do" : "rollback", ref, at, e.attempt);
        Object.assign(attempt, { end: at, error: e.error, retryDelayMs: e.retryDelayMs });
        break;
      }
      case "step_completed": {
        const step = this.end("do", ref, at, "complete");
        if ("output" in e) step.output = e.output;
        if (e.outputIsStream) step.outputIsStream = true;
        if (e.outputOmittedChars) step.outputOmittedChars = e.outputOmittedChars;
        break;
      }
      case "step_errored":
        this.end("do", ref, at, "errored");
        break;
      case "sleep_started":
        this.entry("sleep", ref, at).durationMs = e.durationMs;
        break;
      case "sleep_completed":
        this.end("sleep", ref, at, "complete");
        break;
      case "wait_started":
        this.entry("waitForEvent", ref, at).eventType = e.eventType;
        break;
      case "wait_completed":
        this.end("waitForEvent", ref, at, "complete");
        break;
      case "wait_timed_out":
        this.end("waitForEvent", ref, at, "timedOut");
        break;
      case "rollback_step_started":
        this.entry("rollback", ref, at);
        break;
      case "rollback_attempt_started":
        this.attempt("rollback", ref, at, e.attempt);
        break;
      case "rollback_attempt_completed":
        this.attempt("rollback", ref, at, e.attempt)[1].end = at;
        break;
      case "rollback_step_completed":
        this.end("rollback", ref, at, "complete");
        break;
      case "rollback_step_errored":
        this.end("rollback", ref, at, "errored").error = e.error;
        break;
    }
  }
}

const KINDS = { do: "step", sleep: "sleep", waitForEvent: "wait for event", rollback: "rollback" };
const errorText = (error) => (error ? `${error.name ? `${error.name}: ` : ""}${error.message ?? JSON.stringify(error)}` : "");

function drawTimeline(timeline, list, open) {
  const steps = [...timeline.steps.values()];
  const now = Date.now();
  const t0 = timeline.startedAt ?? Math.min(...steps.map((s) => s.start));
  const t1 = Math.max(t0 + 1, timeline.endedAt ?? now, ...steps.map((s) => s.end ?? now));
  const span = t1 - t0;
  const items = steps.map((s) => {
    const end = s.end ?? (FINISHED.includes(timeline.status) ? timeline.endedAt : now);
    const bar = h("div", { class: "bar" });
    bar.style.left = `${((s.start - t0) / span) * 100}%`;
    bar.style.width = `${(Math.max(0, end - s.start) / span) * 100}%`;
    const details = [];
    if (s.kind === "sleep" && s.durationMs !== undefined) details.push(h("p", { class: "hint" }, `sleeps ${took(s.durationMs)}`));
    if (s.kind === "waitForEvent") details.push(h("p", { class: "hint" }, `waits for an event of type “${s.eventType ?? "?"}”`));
    const attempts = [...s.attempts.values()];
    if (attempts.length && (attempts.length > 1 || attempts.some((a) => a.error)))
      details.push(
        h(
          "ul",
          { class: "attempts", "aria-label": `Attempts of ${s.name}` },
          attempts.map((a) =>
            h(
              "li",
              {},
              `attempt ${a.n}`,
              a.end !== undefined ? ` · ${took(a.end - a.start)}` : " · running",
              a.error ? [" · ", h("span", { class: "error" }, errorText(a.error))] : null,
              a.retryDelayMs ? ` · retried after ${took(a.retryDelayMs)}` : null,
            ),
          ),
        ),
      );
    if (s.error) details.push(h("p", { class: "error" }, errorText(s.error)));
    if (s.output === "[REDACTED]") details.push(h("p", {}, "output ", h("span", { class: "badge s-redacted" }, "redacted")));
    else if (s.outputIsStream) details.push(h("p", { class: "hint" }, "output: a stream of bytes"));
    else if (s.outputOmittedChars) details.push(h("p", { class: "hint" }, `output: ${s.outputOmittedChars} characters, not shown`));
    else if ("output" in s) {
      const d = h("details", { "data-key": s.key, open: open.has(s.key) }, h("summary", {}, "output"), json(s.output));
      d.addEventListener("toggle", () => (d.open ? open.add(s.key) : open.delete(s.key)));
      details.push(d);
    }
    return h(
      "li",
      { class: `s-${s.status} k-${s.kind}`, "data-step": s.name, "data-kind": s.kind },
      h(
        "div",
        { class: "step-head" },
        h("span", { class: "name" }, s.count > 1 ? `${s.name} #${s.count}` : s.name),
        h("span", { class: "kind" }, KINDS[s.kind]),
        badge(s.status),
        h("span", { class: "when" }, `at +${took(s.start - t0)}`, s.end !== undefined ? ` · took ${took(s.end - s.start)}` : ` · for ${took(now - s.start)} so far`),
      ),
      h("div", { class: "track", "aria-hidden": "true" }, bar),
      details,
    );
  });
  list.replaceChildren(...(items.length ? items : [h("li", { class: "hint" }, "No steps yet.")]));
}

/** Follows an instance's events over the SSE route (fetch, so the token goes in a header),
 * reconnecting with Last-Event-ID after a dropped connection, until the instance ends. */
function follow(name, id, signal, onEvent, onState) {
  let last = null;
  let ended = false;
  let delay = 500;
  const frame = (text) => {
    let eventId = null;
    const data = [];
    for (const line of text.split("\n")) {
      if (line.startsWith(":")) continue;
      const [field, ...rest] = line.split(":");
      const value = rest.join(":").replace(/^ /, "");
      if (field === "id") eventId = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    let event;
    try {
      event = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (eventId !== null) last = eventId;
    if (["workflow_completed", "workflow_errored", "workflow_terminated"].includes(event.type)) ended = true;
    onEvent(event);
  };
  (async () => {
    while (!signal.aborted && !ended) {
      try {
        const headers = { authorization: `Bearer ${token()}`, accept: "text/event-stream" };
        if (last !== null) headers["last-event-id"] = last;
        const res = await fetch(`/workflows/${enc(name)}/instances/${enc(id)}/history`, { headers, signal, cache: "no-store", credentials: "omit" });
        if (res.status === 401) return signOut("The Worker refused the token.");
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        onState("live");
        delay = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer = (buffer + value).replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            frame(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch {
        if (signal.aborted) return;
      }
      if (ended || signal.aborted) break;
      onState("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
    if (!signal.aborted) onState("ended");
  })();
}

async function instanceView(name, id) {
  crumbs([name, `#/workflows/${enc(name)}`], [id]);
  const base = `/workflows/${enc(name)}/instances/${enc(id)}`;
  const [instance, described] = await Promise.all([api("GET", base), api("GET", `/workflows/${enc(name)}`)]);
  const controller = new AbortController();
  current = controller;

  const statusCell = h("dd", { id: "instance-status" }, badge(instance.status));
  const outputCell = h("dd", { id: "instance-output" });
  const errorCell = h("dd", { id: "instance-error" });
  const paramsCell = h("dd", { id: "instance-params" }, h("span", { class: "hint" }, "from its history…"));
  const liveText = h("span", { class: "live", id: "live", role: "status" }, "connecting…");
  const list = h("ol", { class: "timeline", id: "timeline", "aria-label": "Steps, in the order they started" });
  const message = h("p", { class: "error", role: "alert", id: "action-error" });
  const done = h("p", { class: "hint", role: "status", id: "action-done" });
  const open = new Set();
  let timeline = new Timeline();
  let state = instance.status;

  const showFacts = (i) => {
    state = i.status;
    statusCell.replaceChildren(badge(i.status));
    outputCell.replaceChildren(i.output !== undefined ? json(i.output) : h("span", { class: "hint" }, "none yet"));
    errorCell.replaceChildren(i.error ? h("span", { class: "error" }, errorText(i.error)) : h("span", { class: "hint" }, "none"));
    buttons();
  };
  const refresh = async () => showFacts(await api("GET", base));

  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      drawTimeline(timeline, list, open);
      if (timeline.params !== undefined) paramsCell.replaceChildren(json(timeline.params));
      fillRestart();
    });
  };
  const ticker = setInterval(() => [...timeline.steps.values()].some((s) => s.end === undefined) && redraw(), 1000);
  controller.signal.addEventListener("abort", () => clearInterval(ticker));

  const start = () => {
    follow(
      name,
      id,
      controller.signal,
      (event) => {
        timeline.apply(event);
        if (timeline.status && timeline.status !== state) {
          state = timeline.status;
          statusCell.replaceChildren(badge(state));
          announce(`${id} is ${state}`);
          buttons();
          if (FINISHED.includes(state)) refresh().catch(() => {});
        }
        redraw();
      },
      (s) => {
        liveText.textContent = { live: "live", reconnecting: "reconnecting…", ended: "ended" }[s];
        liveText.classList.toggle("on", s === "live");
      },
    );
  };

  // Actions, each confirmed first.
  const act = async (question, label, path, body, after) => {
    message.textContent = "";
    done.textContent = "";
    if (!(await confirmAction(question, label))) return;
    try {
      const answer = await api("POST", `${base}/${path}`, body);
      done.textContent = `${label}: done${answer?.status ? ` (${answer.status})` : ""}.`;
      announce(done.textContent);
      after?.();
      // A pause asked for during a step takes effect when the step ends: look again a few times.
      for (const ms of [0, 500, 1000, 2000, 4000]) {
        await new Promise((r) => setTimeout(r, ms));
        if (controller.signal.aborted) break;
        await refresh();
        if (state !== "waitingForPause") break;
      }
    } catch (e) {
      message.textContent = e.message;
    }
  };
  const pause = h("button", { type: "button", id: "pause", on: { click: () => act(`Pause ${id}? It stops after the running step.`, "Pause", "pause") } }, "Pause…");
  const resume = h("button", { type: "button", id: "resume", on: { click: () => act(`Resume ${id}?`, "Resume", "resume") } }, "Resume…");
  const rollback = h("input", { type: "checkbox", id: "terminate-rollback" });
  const terminate = h(
    "button",
    { type: "button", class: "danger", id: "terminate", on: { click: () => act(rollback.checked ? `Terminate ${id} after running its steps' rollbacks?` : `Terminate ${id}? Its rollbacks do not run.`, "Terminate", "terminate", { rollback: rollback.checked }) } },
    "Terminate…",
  );
  const from = h("select", { id: "restart-from" });
  const fillRestart = () => {
    const chosen = from.value;
    const steps = [...timeline.steps.values()].filter((s) => s.kind !== "rollback");
    from.replaceChildren(h("option", { value: "" }, "the start"), steps.map((s) => h("option", { value: s.key, selected: s.key === chosen }, `${s.name}${s.count > 1 ? ` #${s.count}` : ""} (${KINDS[s.kind]})`)));
  };
  const restart = h(
    "button",
    {
      type: "button",
      id: "restart",
      on: {
        click: () => {
          const step = timeline.steps.get(from.value);
          const body = step ? { from: { name: step.name, count: step.count, type: step.kind } } : {};
          act(`Restart ${id} from ${step ? `step “${step.name}”` : "the start"}? ${step ? "Earlier steps keep their results." : "Every step runs again."}`, "Restart", "restart", body, () => {
            // Event ids start again after a restart: follow the new run from its start.
            controller.abort();
            render();
          });
        },
      },
    },
    "Restart…",
  );
  const buttons = () => {
    const finished = FINISHED.includes(state);
    pause.disabled = finished || state === "paused" || state === "rollingBack";
    resume.disabled = state !== "paused";
    terminate.disabled = finished;
    send.disabled = finished || !described.events.length;
  };

  const eventForm = h("div", {});
  const send = h("button", { type: "submit", id: "send-event", class: "primary" }, "Send…");
  const typeSelect = h("select", { id: "event-type" }, described.events.map((e, i) => h("option", { value: String(i) }, e.type ?? "(any type)")));
  const anyType = h("input", { id: "event-type-name", autocomplete: "off", spellcheck: "false", "aria-label": "Event type" });
  let payload;
  const showEventForm = () => {
    const spec = described.events[Number(typeSelect.value)];
    if (!spec) return;
    anyType.hidden = spec.type !== null;
    payload = schemaForm(spec.schema, "event-payload");
    eventForm.replaceChildren(payload.element);
  };
  typeSelect.addEventListener("change", showEventForm);
  const eventError = h("p", { class: "error", role: "alert", id: "event-error" });
  const sendForm = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      on: {
        submit: async (event) => {
          event.preventDefault();
          eventError.textContent = "";
          const spec = described.events[Number(typeSelect.value)];
          const type = spec.type ?? anyType.value.trim();
          let value;
          try {
            value = payload.read();
          } catch (e) {
            eventError.textContent = e.message;
            return;
          }
          if (!(await confirmAction(`Send a “${type}” event to ${id}?`, "Send"))) return;
          try {
            await api("POST", `${base}/events/${enc(type)}`, value);
            done.textContent = `Event “${type}” sent.`;
            announce(done.textContent);
          } catch (e) {
            eventError.textContent = e.message;
          }
        },
      },
    },
    h("label", { for: "event-type" }, "Event type"),
    h("div", { class: "row" }, typeSelect, anyType),
    h("fieldset", {}, h("legend", {}, "Payload"), eventForm),
    eventError,
    h("div", {}, send),
  );
  showEventForm();

  $("view").replaceChildren(
    h("h2", {}, id),
    h(
      "dl",
      { class: "facts panel" },
      h("dt", {}, "Workflow"),
      h("dd", {}, h("a", { href: `#/workflows/${enc(name)}` }, name)),
      h("dt", {}, "Status"),
      statusCell,
      h("dt", {}, "Params"),
      paramsCell,
      h("dt", {}, "Output"),
      outputCell,
      h("dt", {}, "Error"),
      errorCell,
    ),
    h("section", { "aria-labelledby": "steps-title" }, h("div", { class: "row" }, h("h3", { id: "steps-title" }, "Steps"), liveText), list),
    h(
      "section",
      { class: "panel", "aria-labelledby": "actions-title" },
      h("h3", { id: "actions-title" }, "Actions"),
      h("div", { class: "row" }, pause, resume),
      h("div", { class: "row" }, terminate, h("label", { class: "check", for: "terminate-rollback" }, rollback, " run the steps' rollbacks first")),
      h("div", { class: "row" }, restart, h("label", { for: "restart-from" }, "from"), from),
      message,
      done,
    ),
    described.events.length ? h("section", { class: "panel", "aria-labelledby": "event-title" }, h("h3", { id: "event-title" }, "Send an event"), sendForm) : null,
  );
  showFacts(instance);
  fillRestart();
  drawTimeline(timeline, list, open);
  start();
}

// ---- start -------------------------------------------------------------------------------

$("login-form").addEventListener("submit", signIn);
$("forget").addEventListener("click", () => signOut("The token was forgotten."));
addEventListener("hashchange", render);
render();
