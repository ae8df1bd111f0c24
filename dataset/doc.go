// Package dataset ingests, audits and guards training data (DATA-1..8):
// streamed CSV and Parquet parsing in bounded memory, schema inference and
// validation, the data audit report, PII and formula-injection screening,
// label-flip screening with out-of-fold predictions, and the Service that
// owns datasets, immutable content-addressed versions, purpose-bound grants,
// crypto-shredding deletion and lineage.
package dataset
