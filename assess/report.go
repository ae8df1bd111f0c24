package assess

import (
	"encoding/json"
	"io"
	"time"
)

// Report is one assessment of one model: what was attacked, how, and what
// the attacks achieved. It is the JSON form; WriteHTML renders it.
type Report struct {
	Title   string    `json:"title"`
	Model   ModelInfo `json:"model"`
	Created time.Time `json:"created"`
	Seed    uint64    `json:"seed"`

	Membership *MembershipReport `json:"membership,omitempty"`
	// Extraction holds one report per guard setting (off, on).
	Extraction []*ExtractionReport `json:"extraction,omitempty"`
	Evasion    []*EvasionReport    `json:"evasion,omitempty"`
	Poisoning  *PoisonReport       `json:"poisoning,omitempty"`
	// Timings is the wall time of each attack in seconds.
	Timings map[string]float64 `json:"timings_seconds,omitempty"`
	Notes   []string           `json:"notes,omitempty"`
}

// ModelInfo identifies the assessed model.
type ModelInfo struct {
	Name      string       `json:"name,omitempty"`
	Version   int          `json:"version,omitempty"`
	Digest    string       `json:"digest,omitempty"`
	Algorithm string       `json:"algorithm,omitempty"`
	Dataset   string       `json:"dataset,omitempty"`
	DP        *DPGuarantee `json:"dp,omitempty"`
	Endpoint  string       `json:"endpoint,omitempty"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
