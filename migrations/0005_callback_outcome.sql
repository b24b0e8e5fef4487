-- How each instance's webhook callback delivery ended, as JSON
-- ({state, attempts, lastError?, webhookId}; src/core/callback.rs DeliveryOutcome), written by
-- the instance when its delivery succeeds or fails for good and shown in its status.
-- NULL: no callback, or none ended yet.
ALTER TABLE instances ADD COLUMN callback TEXT;
