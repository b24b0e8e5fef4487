-- Child workflows (worker_workflows::CHILD_MIGRATION; copy this file into your D1
-- migrations_dir beside 0000_worker_workflows.sql).

-- The parent of an instance that a workflow started as its child (Step::child,
-- Step::children), written when the child's id is claimed: the status route shows it,
-- and a terminate with children finds a parent's children by it. NULL for every other
-- instance.
ALTER TABLE instances ADD COLUMN parent_workflow TEXT;
ALTER TABLE instances ADD COLUMN parent_id TEXT;
CREATE INDEX IF NOT EXISTS instances_by_parent ON instances (parent_workflow, parent_id, created_at) WHERE parent_id IS NOT NULL;
