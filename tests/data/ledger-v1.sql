-- A ledger written by npufarm 0.1.0 with schema version 1, for the migration test.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE boards (  id INTEGER PRIMARY KEY,  kind TEXT NOT NULL,  key TEXT NOT NULL,  address TEXT NOT NULL,  name TEXT NOT NULL,  state TEXT NOT NULL CHECK (state IN ('idle', 'leased', 'busy',    'draining', 'quarantined', 'offline')),  first_seen_us INTEGER NOT NULL,  last_seen_us INTEGER NOT NULL,  detail TEXT,  UNIQUE (kind, key, address)) STRICT;
INSERT INTO boards VALUES(1,'tvm','rk3588','192.168.1.20:9090','192.168.1.20:9090','offline',1795559675795658,1795559675803289,'tracker connection closed');
CREATE TABLE leases (  id INTEGER PRIMARY KEY,  key TEXT NOT NULL,  user TEXT NOT NULL,  peer TEXT NOT NULL,  priority REAL NOT NULL,  requested_us INTEGER NOT NULL,  granted_us INTEGER,  released_us INTEGER,  board_id INTEGER REFERENCES boards(id),  matchkey TEXT,  outcome TEXT CHECK (outcome IN ('ok', 'timeout', 'exception',    'crash', 'lost', 'cancelled', 'expired', 'rejected')),  detail TEXT) STRICT;
INSERT INTO leases VALUES(1,'rk3588','','127.0.0.1:57118',1.0,1795559675798219,1795559675798254,1795559675803175,1,'rk3588:0.8444218515250481','lost','board''s tracker connection closed during the lease (tracker connection closed)');
CREATE TABLE events (  id INTEGER PRIMARY KEY,  at_us INTEGER NOT NULL,  kind TEXT NOT NULL,  board_id INTEGER REFERENCES boards(id),  detail TEXT) STRICT;
CREATE INDEX leases_board ON leases (board_id, granted_us);
CREATE INDEX leases_key ON leases (key, requested_us);
CREATE INDEX leases_open ON leases (released_us) WHERE released_us IS NULL;
CREATE VIEW lease_times AS SELECT l.id, l.key, l.user, l.peer,  l.priority, b.name AS board,  strftime('%Y-%m-%dT%H:%M:%fZ', l.requested_us / 1e6, 'unixepoch')    AS requested,  (l.granted_us - l.requested_us) / 1e6 AS wait_s,  (l.released_us - l.granted_us) / 1e6 AS held_s,  l.outcome, l.detail  FROM leases l LEFT JOIN boards b ON b.id = l.board_id;
CREATE VIEW free_boards AS SELECT key,  count(*) FILTER (WHERE state != 'offline') AS live,  count(*) FILTER (WHERE state = 'idle') AS free,  count(*) FILTER (WHERE state = 'leased') AS leased  FROM boards GROUP BY key;
CREATE VIEW board_history AS SELECT b.id, b.key, b.name, b.state,  count(l.id) AS leases,  count(l.id) FILTER (WHERE l.outcome IS NOT NULL AND    l.outcome != 'ok') AS failures,  max(l.granted_us) AS last_granted_us  FROM boards b LEFT JOIN leases l ON l.board_id = b.id  GROUP BY b.id;
COMMIT;
PRAGMA user_version = 1;
