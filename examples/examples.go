// Package examples bundles the example data the quickstart walk-through
// uses, so `rampart quickstart` needs nothing beside the binary.
package examples

import _ "embed"

// CreditData is credit_data.csv (see PROVENANCE.md): 4454 loan applicants,
// label Status (good/bad).
//
//go:embed credit_data.csv
var CreditData []byte
