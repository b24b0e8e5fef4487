-- The instance index: the Workflow binding cannot list instances, so every create
-- through this Worker records one row here (see src/instance_index.rs).
CREATE TABLE IF NOT EXISTS instances (
  workflow   TEXT    NOT NULL,
  id         TEXT    NOT NULL,
  created_at INTEGER NOT NULL, -- Unix milliseconds
  PRIMARY KEY (workflow, id)
);
CREATE INDEX IF NOT EXISTS instances_newest ON instances (workflow, created_at DESC, id DESC);
