// The OpenAPI document against the running Worker: the served document is the library's
// on disk with this Worker's own (its demo routes' part, its workflows' names), every documented operation answers one of its documented statuses (with a body
// of the documented shape), and every documented path answers 405 + Allow for a method
// it does not document.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { api, worker, uniqueId } from "./harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const read = (file) => JSON.parse(readFileSync(path.join(here, "../..", file), "utf8"));
// The library's document with the demo routes' part merged in, as the Worker serves it
// (`Api::with_openapi`): paths, components by section, tags.
const disk = read("crates/worker-workflows-api/src/http/openapi.json");
const demo = read("src/demo/openapi.json");
Object.assign(disk.paths, demo.paths);
for (const [section, items] of Object.entries(demo.components ?? {})) disk.components[section] = { ...disk.components[section], ...items };
disk.tags.push(...(demo.tags ?? []));

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** `[{method, template, op}]` for every operation in a document. */
function operations(doc) {
  return Object.entries(doc.paths).flatMap(([template, item]) =>
    Object.entries(item)
      .filter(([key]) => METHODS.includes(key))
      .map(([key, op]) => ({ method: key.toUpperCase(), template, op })),
  );
}

const opKeys = (doc) => operations(doc).map(({ method, template }) => `${method} ${template}`).sort();

/** Follows a local `$ref` (`#/components/...`). */
function resolve(node) {
  let n = node;
  while (n && typeof n === "object" && typeof n.$ref === "string") {
    n = n.$ref
      .replace(/^#\//, "")
      .split("/")
      .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
      .reduce((at, key) => at?.[key], disk);
    assert.ok(n !== undefined, `unresolved $ref ${node.$ref}`);
  }
  return n;
}

const typeOf = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);

/** The problems of `value` against a JSON Schema subset (type, const, enum, required, properties, items, anyOf/oneOf). */
function check(schema, value, at = "body") {
  const s = resolve(schema);
  if (s === true || s === undefined || s === null) return [];
  const problems = [];
  if (s.anyOf || s.oneOf) {
    const branches = (s.anyOf ?? s.oneOf).map((b) => check(b, value, at));
    if (!branches.some((p) => p.length === 0)) problems.push(`${at}: matches no alternative (${branches.map((p) => p.join("; ")).join(" | ")})`);
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const t = typeOf(value);
    if (!types.includes(t) && !(t === "integer" && types.includes("number"))) {
      problems.push(`${at}: expected ${types.join("|")}, got ${t}`);
      return problems;
    }
  }
  if ("const" in s && value !== s.const) problems.push(`${at}: expected ${JSON.stringify(s.const)}, got ${JSON.stringify(value)}`);
  if (s.enum && !s.enum.includes(value)) problems.push(`${at}: ${JSON.stringify(value)} is not one of ${s.enum.join(", ")}`);
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const key of s.required ?? []) if (!(key in value)) problems.push(`${at}: missing ${key}`);
    for (const [key, sub] of Object.entries(s.properties ?? {})) {
      if (key in value) problems.push(...check(sub, value[key], `${at}.${key}`));
    }
  }
  if (Array.isArray(value) && s.items) value.forEach((v, i) => problems.push(...check(s.items, v, `${at}[${i}]`)));
  return problems;
}

/** A concrete request for a documented operation. */
function requestFor(method, template) {
  const urlPath = template
    .replace("{name}", "step-tour")
    .replace("{id}", uniqueId("oa"))
    .replace("{type}", "ping");
  if (method !== "POST") return { urlPath, body: undefined };
  let body = {};
  if (template === "/workflows/{name}/instances") body = { params: { actions: [] } };
  else if (template === "/workflows/{name}/instances/batch") body = [{ params: { actions: [] } }];
  else if (template === "/workflows/{name}/instances/delete") body = { ids: [uniqueId("oa-gone")] };
  else if (template === "/api/workflow/start") body = { email: "a@example.com", name: "A" };
  return { urlPath, body };
}

describe("OpenAPI document", { concurrency: true }, () => {
  it("is served at /openapi.json and is the document on disk", async () => {
    await worker();
    const res = await api("GET", "/openapi.json");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.headers.get("content-type") ?? "", /application\/json/);
    assert.equal(typeof res.body, "object");
    assert.ok(String(res.body.openapi).startsWith("3.1"), res.body.openapi);
    assert.deepEqual(opKeys(res.body), opKeys(disk));
    assert.deepEqual(res.body.paths, disk.paths);
    // The `{name}` parameter lists exactly the workflows this deployment serves.
    const listed = (await api("GET", "/workflows")).body.workflows.map((w) => w.name);
    const served = res.body.components.parameters.WorkflowName.schema;
    assert.deepEqual(served.enum, listed);
    assert.ok(listed.includes("order-processing") && listed.includes("step-tour"), JSON.stringify(listed));
    delete served.enum;
    assert.deepEqual(res.body.components, disk.components);
    assert.deepEqual(res.body.tags, disk.tags);
  });

  for (const { method, template, op } of operations(disk)) {
    it(`${method} ${template} answers a documented status`, async () => {
      const { urlPath, body } = requestFor(method, template);
      const res = await api(method, urlPath, body);
      const documented = Object.keys(op.responses);
      const what = `${method} ${urlPath} → ${res.status} ${JSON.stringify(res.body)}`;
      assert.ok(documented.includes(String(res.status)), `${what}; documented: ${documented.join(", ")}`);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/, what);
      if (res.status >= 400) {
        assert.equal(typeof res.body?.error?.code, "string", what);
        assert.equal(typeof res.body?.error?.message, "string", what);
      }
      const response = resolve(op.responses[String(res.status)]);
      const schema = response.content?.["application/json"]?.schema;
      assert.ok(schema, `${method} ${template} ${res.status} documents no JSON body`);
      assert.deepEqual(check(schema, res.body), [], what);
      for (const [name, header] of Object.entries(response.headers ?? {})) {
        if (resolve(header).required) assert.ok(res.headers.get(name) !== null, `${what}: missing ${name} header`);
      }
    });
  }

  for (const [template, item] of Object.entries(disk.paths)) {
    const allowed = METHODS.filter((m) => m in item).map((m) => m.toUpperCase());
    const other = ["DELETE", "PUT", "PATCH"].find((m) => !allowed.includes(m));
    it(`${other} ${template} is 405 with Allow`, async () => {
      const { urlPath } = requestFor(other, template);
      const res = await api(other, urlPath);
      const what = `${other} ${urlPath} → ${res.status} ${JSON.stringify(res.body)}`;
      assert.equal(res.status, 405, what);
      const allow = res.headers.get("allow");
      assert.ok(allow, `${what}: no Allow header`);
      assert.deepEqual(allow.split(",").map((m) => m.trim().toUpperCase()).sort(), [...allowed].sort(), `Allow: ${allow}`);
      assert.equal(res.body?.error?.code, "method_not_allowed", what);
      assert.equal(typeof res.body?.error?.message, "string", what);
    });
  }
});
