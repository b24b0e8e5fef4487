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
