// Package assess measures what an attacker can learn from a model (issue 8):
// membership inference (PRIV-1), model extraction (PRIV-2), evasion (PRIV-3)
// and a label-flip poisoning drill (DATA-5), with JSON and self-contained
// HTML reports.
//
// Every black-box attack is written against the small Oracle interface, so
// the same code runs against a model loaded directly (ModelOracle, with the
// endpoint's output policy simulated) and against a live endpoint reached
// through a real service-user principal, where the guards (rate limits,
// budgets, OOD scoring, output policy, extraction monitor) are part of what
// is measured. Attacks work with label-only outputs.
//
// Rows are vectors in schema order (see Space): a numeric feature is its
// value, a categorical feature the index of its category in the training
// categories, NaN a missing value.
package assess
