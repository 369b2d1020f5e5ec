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
// Appends: group commit. Append queues its request and waits; one
// committer goroutine per Store takes every append waiting (at least one,
// then up to 2,048 events or 4 MiB) and commits them in one transaction of
// two round trips (commit.go):
//
//  1. BEGIN; SELECT … FROM log_head FOR UPDATE SKIP LOCKED; the events
//     stored with any of the batch's ids; the current version of each of
//     its streams. If the lock was taken (another node's committer holds
//     it), the committer waits for it with FOR UPDATE, adds the appends
//     queued meanwhile to the batch and reads again: one more round trip,
//     but a batch as big as the wait.
//  2. INSERT of every accepted event (one INSERT … SELECT FROM unnest of
//     column arrays); UPDATE log_head; one pg_notify; COMMIT.
//
// Between the two, in Go, each append is checked in stream order (stable,
// so arrival order within a stream), seeing those accepted before it:
// ids stored in its stream → the original events with Duplicate set; ids
// stored elsewhere or only some → ErrDuplicateID; a version mismatch →
// *WrongExpectedVersionError. A failed append inserts nothing, so no
// statement fails and the rest of the batch commits. If the transaction
// itself fails (connection, or a constraint violation, which cannot happen
// while every writer takes log_head first), each append of the batch is
// retried once in a transaction of its own and gets that one's result;
// the retry is safe when the failed commit did happen, since its ids are
// then found stored and the append is answered as a duplicate. A request
// whose context is done before the committer takes it is dropped (no
// effect); one taken is committed even if its caller stopped waiting.
// Close waits for the Appends in flight and for the committer's batch.
//
// The row lock on log_head, held until commit, serialises writers — the
// committers of every Store on the schema, i.e. of several engine nodes —
// so positions are assigned gap-free and become visible in position
// order: PostgreSQL marks a transaction visible before it releases its
// locks, and each statement after the lock has a fresh snapshot (read
// committed), so the reads see every earlier commit and a follower
// reading position > last never skips a committed event. The cost of
// that lock, of the round trips and of the WAL flush is paid per batch,
// not per event: with one writer an append still costs a transaction
// (~1 ms), with many the batch grows while the previous one commits.
// Several nodes share the lock, so their batches alternate, each node's
// is smaller than one node's would be, and the lock changes hands between
// processes once per batch (docs/benchmarks.md, "PostgreSQL store"). UNIQUE(id) and UNIQUE(stream, version) back the checks up.
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
