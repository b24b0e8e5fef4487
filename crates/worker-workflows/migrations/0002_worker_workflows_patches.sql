-- The library's second table in the Worker's D1 database `DB`
-- (worker_workflows::PATCHES_MIGRATION; copy this file into your D1 migrations_dir too).

-- Patches (Step::patched): when a run of this Worker first asked for each patch of each
-- workflow. Written once, by the first run to ask (the first writer wins), and read by
-- every instance's `patched:{id}` step: an instance created before `first_seen` takes the
-- old path, one created at or after it the new one. Delete a row only once no instance
-- created before its `first_seen` can run again, and the patch is out of the code.
CREATE TABLE IF NOT EXISTS workflow_patches (
  workflow   TEXT    NOT NULL,
  patch      TEXT    NOT NULL,
  first_seen INTEGER NOT NULL, -- Unix milliseconds
  PRIMARY KEY (workflow, patch)
);
