-- The tables worker-workflows keeps in the Worker's D1 database `DB`
-- (worker_workflows::MIGRATION; copy this file into your D1 migrations_dir).

-- The instance index: the Workflow binding cannot list instances, so every create
-- through the HTTP API, the queue or a cron claims its (workflow, id) here first (which
-- settles racing creates of one id), and listing reads it.
CREATE TABLE IF NOT EXISTS instances (
  workflow   TEXT    NOT NULL,
  id         TEXT    NOT NULL,
  created_at INTEGER NOT NULL, -- Unix milliseconds
  -- How the instance's webhook callback delivery ended, as JSON ({state, attempts,
  -- lastError?, webhookId}; core::callback::DeliveryOutcome), written by the instance
  -- when its delivery succeeds or fails for good. NULL: no callback, or none ended yet.
  callback   TEXT,
  PRIMARY KEY (workflow, id)
);
CREATE INDEX IF NOT EXISTS instances_newest ON instances (workflow, created_at DESC, id DESC);

-- Jobs that can never succeed (not JSON, unknown workflow, invalid params) or that
-- exhausted their retries: recorded with the reason, never retried forever, never dropped.
CREATE TABLE IF NOT EXISTS dead_letters (
  message_id  TEXT    NOT NULL,
  queue       TEXT    NOT NULL,
  body        TEXT    NOT NULL,
  reason      TEXT    NOT NULL,
  attempts    INTEGER NOT NULL,
  recorded_at INTEGER NOT NULL, -- Unix milliseconds
  PRIMARY KEY (queue, message_id)
);
CREATE INDEX IF NOT EXISTS dead_letters_newest ON dead_letters (recorded_at DESC);

-- The last transient failure of each queue message still being retried: when the queue
-- gives up and moves the message to the dead-letter queue (which keeps the message id but
-- counts its own attempts from 1), the dead letter is recorded with this original reason
-- and attempt count. Rows go when the message is created or recorded as a dead letter.
CREATE TABLE IF NOT EXISTS job_failures (
  message_id TEXT    PRIMARY KEY,
  reason     TEXT    NOT NULL,
  attempts   INTEGER NOT NULL,
  failed_at  INTEGER NOT NULL -- Unix milliseconds
);
