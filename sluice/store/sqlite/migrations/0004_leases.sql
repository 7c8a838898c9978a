-- Named leases with an expiry (the timer leader). One SQLite node always holds them; the
-- table exists so both backends share one schema and one contract.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until REAL NOT NULL
);
