-- Tables of the workflow catalogue (user-onboarding, user-lifecycle, approval, data-pipeline).
CREATE TABLE IF NOT EXISTS users (
  id                  TEXT    PRIMARY KEY,
  email               TEXT    NOT NULL UNIQUE,
  name                TEXT    NOT NULL,
  avatar_url          TEXT,
  subscription_status TEXT    NOT NULL DEFAULT 'trial',
  created_at          INTEGER NOT NULL -- Unix milliseconds
);

CREATE TABLE IF NOT EXISTS approvals (
  id         TEXT    PRIMARY KEY, -- the approval instance's id
  user_id    TEXT    NOT NULL,
  status     TEXT    NOT NULL,    -- pending, approved, rejected, auto-rejected
  decided_by TEXT,
  created_at INTEGER NOT NULL,
  decided_at INTEGER
);

CREATE TABLE IF NOT EXISTS records (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  email      TEXT NOT NULL,
  created_at TEXT NOT NULL,       -- ISO-8601 UTC
  source     TEXT NOT NULL        -- the data-pipeline instance that loaded it
);
