// Package fuzz holds the fuzz targets (go test -fuzz) for every parser of
// untrusted audit input: checkpoints and signed notes, events, tenant
// exports, proofs and verifier keys. They live apart from package auditlog's
// tests so that the fuzzing binary does not link SQLite, whose coverage
// instrumentation would slow fuzzing to a crawl; they use the in-memory store.
package fuzz
