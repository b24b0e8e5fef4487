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
