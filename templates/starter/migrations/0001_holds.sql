-- The expense workflow's budget holds.
CREATE TABLE IF NOT EXISTS holds (
  id           TEXT    PRIMARY KEY, -- the expense instance's id
  employee     TEXT    NOT NULL,
  amount_cents INTEGER NOT NULL,
  state        TEXT    NOT NULL     -- held, paid, released
);
