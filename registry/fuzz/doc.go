// Package fuzz holds the fuzz targets of the registry's parsers of
// untrusted input (XGBoost JSON, LightGBM text, format sniffing). They live
// apart from package registry's tests so the fuzzing binary does not link
// the SQLite driver, whose size makes coverage-guided fuzzing crawl. The
// seeds are real models of tens of kilobytes: cap minimization, e.g.
//
//	go test ./registry/fuzz -run '^$' -fuzz FuzzLightGBMText -fuzzminimizetime 2x
package fuzz
