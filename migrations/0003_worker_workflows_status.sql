-- Finished instances' statuses (worker_workflows::STATUS_MIGRATION; copy this file into
-- your D1 migrations_dir beside the other two).

-- The status route's copy of a finished instance's status ({status, error?, output?} as
-- JSON), recorded the first time the route reads it from the engine, so later reads are
-- answered from this row without calling the engine. A restart or terminate through the
-- API clears it and counts `generation` up (a status read before that cannot be recorded
-- after it); a delete removes the row. `final_at`: when it was recorded (Unix
-- milliseconds); a copy older than a minute is read from the engine again, which bounds
-- how long a change made outside the API (a restart from the dashboard or wrangler, the
-- end of the engine's retention) goes unseen.
ALTER TABLE instances ADD COLUMN final_status TEXT;
ALTER TABLE instances ADD COLUMN final_at INTEGER;
ALTER TABLE instances ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
