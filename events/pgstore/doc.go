// Package pgstore is an events.Store on PostgreSQL (13 or later), through
// github.com/jackc/pgx/v5. It passes the conformance suite in
// events/storetest, including the close-and-reopen tests ("reopen" is a
// new Store on the same schema).
//
// Schema: every table lives in Config.Schema (default "engine"), created
// by the embedded, numbered migrations in migrations/*.sql. Open applies
// the missing ones in one transaction under pg_advisory_xact_lock, keyed
// by the schema name, and records them in schema_migrations, so several
// nodes may start at once.
//
// Appends: one transaction per Append (there is no group commit yet, so
// throughput is bounded by one commit, i.e. one WAL flush, per append). The
// transaction first bumps the one row of log_head (UPDATE … RETURNING),
// whose row lock serialises appenders until commit: positions are
// therefore assigned gap-free and become visible in position order, so a
// reader never sees a gap. Under that lock it checks the ids (idempotent
// retry or ErrDuplicateID) and the stream's version, inserts the events
// and sends pg_notify, which PostgreSQL delivers at commit. UNIQUE(id) and
// UNIQUE(stream, version) back the checks up: a violation of the latter
// is reported as ErrWrongExpectedVersion with the version re-read.
//
// Follow: events.Follow over ReadAll and a watermark that is advanced by
// this process's own commits, by notifications (one LISTEN connection per
// Store, outside the pool) and by a poll of the head every PollInterval,
// so a lost notification or a dropped listener connection never stalls a
// follower.
//
// Data is stored as bytea, byte for byte; Time as milliseconds since the
// Unix epoch.
package pgstore
