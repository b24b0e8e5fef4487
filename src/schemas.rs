//! The JSON Schemas of the workflows' params and event payloads, which the HTTP API serves
//! (`GET /workflows/{name}`) for the dashboard's forms (`Api::with_schemas` in `entry`).
//! They are text written beside the types, not derived from them; `tests/workflows/schemas.rs`
//! checks each against its workflow's typed params and events
//! (`worker_workflows_api::http::schema::problems`), so one that drifts fails a test.
//! `step-tour` (a probe driven by a list of actions) and `daily-cleanup` (started by its
//! cron) have none: the dashboard offers their params as JSON, checked when sent.

use worker_workflows_api::http::schema::WorkflowSchemas;

/// Every schema this Worker serves.
pub static SCHEMAS: [WorkflowSchemas; 5] = [
    WorkflowSchemas::new("order-processing").params(
        r#"{
  "type": "object",
  "properties": {
    "orderId": {"type": "string", "description": "The order's id."},
    "userId": {"type": "string", "description": "The customer's user id."},
    "items": {
      "type": "array", "minItems": 0, "maxItems": 50, "description": "What was ordered: at most 50 items.",
      "items": {
        "type": "object",
        "properties": {
          "productId": {"type": "string", "minLength": 1, "description": "One path segment of the inventory URL (not . or ..)."},
          "quantity": {"type": "integer", "minimum": 0}
        },
        "required": ["productId", "quantity"],
        "additionalProperties": false
      }
    },
    "fulfillmentDelay": {"type": ["string", "integer"], "description": "How long to wait between payment and shipment (\"5 seconds\", or milliseconds); 5 seconds when not given."}
  },
  "required": ["orderId", "userId", "items"],
  "additionalProperties": false,
  "examples": [{"orderId": "42", "userId": "u-1", "items": [{"productId": "p-1", "quantity": 2}], "fulfillmentDelay": "5 seconds"}]
}"#,
    ),
    WorkflowSchemas::new("approval")
        .params(
            r#"{
  "type": "object",
  "properties": {
    "userId": {"type": "string", "description": "Whose request it is."},
    "timeout": {"type": ["string", "integer"], "description": "How long to wait for a response before auto-rejecting (\"48 hours\", or milliseconds); 48 hours when not given."}
  },
  "required": ["userId"],
  "additionalProperties": false,
  "examples": [{"userId": "u-1", "timeout": "48 hours"}]
}"#,
        )
        .events(&[(
            "approval-response",
            r#"{
  "type": "object",
  "properties": {
    "approved": {"type": "boolean", "description": "The decision."},
    "by": {"type": "string", "description": "Who decided (recorded as decided_by)."}
  },
  "required": ["approved"],
  "examples": [{"approved": true, "by": "ops"}]
}"#,
        )]),
    WorkflowSchemas::new("user-onboarding").params(
        r#"{
  "type": "object",
  "properties": {
    "email": {"type": "string", "description": "The address to onboard (a welcome email is sent to it)."},
    "name": {"type": "string"},
    "avatarUrl": {"type": "string"}
  },
  "required": ["email", "name"],
  "additionalProperties": false,
  "examples": [{"email": "ada@example.com", "name": "Ada", "avatarUrl": "https://example.com/ada.png"}]
}"#,
    ),
    WorkflowSchemas::new("data-pipeline").params(
        r#"{
  "type": "object",
  "properties": {
    "sourceUrl": {"type": "string", "description": "Where to GET the records: an https URL of a public host answering a JSON array."}
  },
  "required": ["sourceUrl"],
  "additionalProperties": false,
  "examples": [{"sourceUrl": "https://example.com/records.json"}]
}"#,
    ),
    WorkflowSchemas::new("user-lifecycle").params(
        r#"{
  "type": "object",
  "properties": {
    "userId": {"type": "string"},
    "trialPeriod": {"type": ["string", "integer"], "description": "How long the trial lasts (\"7 days\", or milliseconds); 7 days when not given."}
  },
  "required": ["userId"],
  "additionalProperties": false,
  "examples": [{"userId": "u-1", "trialPeriod": "7 days"}]
}"#,
    ),
];
