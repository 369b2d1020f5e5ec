-- 0001: the event log, snapshots, the pending index, store metadata and
-- the one-row log head that serialises appenders.
CREATE TABLE events (
	position    bigint PRIMARY KEY,
	stream      text COLLATE "C" NOT NULL,
	version     bigint NOT NULL,
	id          text COLLATE "C" NOT NULL UNIQUE,
	type        text NOT NULL,
	time_ms     bigint NOT NULL,
	data        bytea NOT NULL,
	correlation text NOT NULL DEFAULT '',
	causation   text NOT NULL DEFAULT '',
	txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
	CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);

CREATE TABLE snapshots (
	stream  text COLLATE "C" PRIMARY KEY,
	version bigint NOT NULL,
	data    bytea NOT NULL
);

CREATE TABLE pending (
	stream text COLLATE "C" PRIMARY KEY
);

CREATE TABLE meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);

CREATE TABLE log_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	last bigint NOT NULL
);
INSERT INTO log_head (one, last) VALUES (true, 0);
