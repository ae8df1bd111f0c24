package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/rampart-mlaas/rampart"
)

// Card is a model card with its security metadata (MODEL-3): what the model
// is, what data (by digest) and grant it was trained under, with which
// privacy guarantee, how it performs, who owns it and what it is for.
type Card struct {
	Model       string             `json:"model"`
	ModelID     string             `json:"model_id"`
	Version     int                `json:"version"`
	Owner       string             `json:"owner"`
	Provenance  string             `json:"provenance"`
	Format      string             `json:"format"`
	Digest      string             `json:"digest"`
	Algorithm   string             `json:"algorithm,omitempty"`
	Task        string             `json:"task,omitempty"`
	Target      string             `json:"target,omitempty"`
	Features    []string           `json:"features,omitempty"`
	Params      map[string]string  `json:"params,omitempty"`
	Seed        *uint64            `json:"seed,omitempty"`
	Datasets    []DatasetInput     `json:"datasets"`
	Metrics     map[string]float64 `json:"metrics"`
	DP          *DPParams          `json:"differential_privacy"`
	JobID       string             `json:"job_id,omitempty"`
	IntendedUse string             `json:"intended_use"`
	Limitations []string           `json:"known_limitations"`
	// Assessments are filled by the assessment service later (PRIV-1..3);
	// a gate may require them.
	Assessments map[string]float64 `json:"assessments,omitempty"`
	Signing     CardSigning        `json:"signing"`
}

// CardSigning says how to verify the version.
type CardSigning struct {
	KeyID         string `json:"key_id"`
	PredicateType string `json:"predicate_type"`
}

// DatasetInput is one dataset a model was trained on (TRAIN-1, AUDIT-5).
type DatasetInput struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Version int    `json:"version"`
	// Digest is the hex SHA-256 of the dataset version's bytes (DATA-3).
	Digest string `json:"digest"`
	// GrantID is the grant used when the dataset belongs to another
	// tenant or principal; "" for own data.
	GrantID string `json:"grant_id,omitempty"`
}

// DPParams is the privacy guarantee of a DP-trained model (TRAIN-2).
type DPParams struct {
	Epsilon         float64 `json:"epsilon"`
	Delta           float64 `json:"delta"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Private         bool    `json:"private" doc:"false when trained with seeded (test-only) noise"`
}

// Missing lists the card fields that make it incomplete (MODEL-3): a
// trained model must name its data by digest and report metrics; every
// model needs an owner, a digest, an intended use and known limitations.
func (c *Card) Missing() []string {
	var m []string
	if c.Owner == "" {
		m = append(m, "owner")
	}
	if c.Digest == "" {
		m = append(m, "digest")
	}
	if c.IntendedUse == "" {
		m = append(m, "intended_use")
	}
	if len(c.Limitations) == 0 {
		m = append(m, "known_limitations")
	}
	if c.Provenance == rampart.ProvenanceTrained {
		if len(c.Datasets) == 0 {
			m = append(m, "datasets")
		}
		for _, d := range c.Datasets {
			if d.Digest == "" {
				m = append(m, "datasets.digest")
				break
			}
		}
		if len(c.Metrics) == 0 {
			m = append(m, "metrics")
		}
	}
	return m
}

// Marshal encodes the card canonically (sorted map keys, fixed field order).
func (c *Card) Marshal() ([]byte, error) { return canonicalJSON(c) }

func canonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// BOM is the subset of CycloneDX 1.6 used for the ML-BOM (SUP-1): the model
// as a machine-learning-model component with its model card, its datasets as
// data components, and Rampart as the tool that made it.
type BOM struct {
	BOMFormat    string         `json:"bomFormat"`
	SpecVersion  string         `json:"specVersion"`
	SerialNumber string         `json:"serialNumber"`
	Version      int            `json:"version"`
	Metadata     BOMMetadata    `json:"metadata"`
	Components   []BOMComponent `json:"components"`
	Dependencies []BOMDep       `json:"dependencies"`
}

// BOMMetadata names the tool and the subject component.
type BOMMetadata struct {
	Tools     BOMTools     `json:"tools"`
	Component BOMComponent `json:"component"`
}

// BOMTools lists the producing tools.
type BOMTools struct {
	Components []BOMComponent `json:"components"`
}

// BOMComponent is a CycloneDX component.
type BOMComponent struct {
	Type       string        `json:"type"`
	BOMRef     string        `json:"bom-ref,omitempty"`
	Name       string        `json:"name"`
	Version    string        `json:"version,omitempty"`
	Hashes     []BOMHash     `json:"hashes,omitempty"`
	Properties []BOMProperty `json:"properties,omitempty"`
	ModelCard  *BOMModelCard `json:"modelCard,omitempty"`
	Data       []BOMData     `json:"data,omitempty"`
}

// BOMHash is a CycloneDX hash.
type BOMHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

// BOMProperty is a name/value pair.
type BOMProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// BOMData describes a dataset inside a data component.
type BOMData struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// BOMModelCard is CycloneDX's modelCard.
type BOMModelCard struct {
	ModelParameters      BOMModelParams    `json:"modelParameters"`
	QuantitativeAnalysis *BOMQuantitative  `json:"quantitativeAnalysis,omitempty"`
	Considerations       BOMConsiderations `json:"considerations"`
}

// BOMModelParams are the model's parameters in CycloneDX terms.
type BOMModelParams struct {
	Approach           map[string]string   `json:"approach"`
	Task               string              `json:"task,omitempty"`
	ArchitectureFamily string              `json:"architectureFamily,omitempty"`
	Datasets           []BOMRef            `json:"datasets,omitempty"`
	Inputs             []map[string]string `json:"inputs"`
	Outputs            []map[string]string `json:"outputs"`
}

// BOMRef references another component.
type BOMRef struct {
	Ref string `json:"ref"`
}

// BOMQuantitative holds performance metrics.
type BOMQuantitative struct {
	PerformanceMetrics []map[string]string `json:"performanceMetrics"`
}

// BOMConsiderations holds intended use and limitations.
type BOMConsiderations struct {
	UseCases             []string `json:"useCases,omitempty"`
	TechnicalLimitations []string `json:"technicalLimitations,omitempty"`
}

// BOMDep is a dependency edge.
type BOMDep struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

// buildBOM derives the ML-BOM from the card. The serial number is derived
// from the artifact digest and version, so equal inputs give equal BOMs.
func buildBOM(c *Card, platformVersion string) *BOM {
	d := c.Digest[len("sha256:"):]
	serial := fmt.Sprintf("urn:uuid:%s-%s-4%s-8%s-%s", d[0:8], d[8:12], d[13:16], d[17:20], d[20:32])
	model := BOMComponent{Type: "machine-learning-model", BOMRef: "model", Name: c.Model, Version: strconv.Itoa(c.Version),
		Hashes: []BOMHash{{Alg: "SHA-256", Content: d}},
		Properties: []BOMProperty{{Name: "rampart:format", Value: c.Format}, {Name: "rampart:provenance", Value: c.Provenance},
			{Name: "rampart:owner", Value: c.Owner}}}
	mc := &BOMModelCard{
		ModelParameters: BOMModelParams{Approach: map[string]string{"type": "supervised"}, Task: c.Task, ArchitectureFamily: c.Algorithm,
			Inputs: []map[string]string{{"format": "tabular"}}, Outputs: []map[string]string{{"format": "tabular"}}},
		Considerations: BOMConsiderations{UseCases: []string{c.IntendedUse}, TechnicalLimitations: c.Limitations},
	}
	if c.DP != nil {
		model.Properties = append(model.Properties, BOMProperty{Name: "rampart:dp:epsilon", Value: strconv.FormatFloat(c.DP.Epsilon, 'g', -1, 64)},
			BOMProperty{Name: "rampart:dp:delta", Value: strconv.FormatFloat(c.DP.Delta, 'g', -1, 64)})
	}
	if len(c.Metrics) > 0 {
		keys := make([]string, 0, len(c.Metrics))
		for k := range c.Metrics {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		q := &BOMQuantitative{}
		for _, k := range keys {
			q.PerformanceMetrics = append(q.PerformanceMetrics, map[string]string{"type": k, "value": strconv.FormatFloat(c.Metrics[k], 'g', -1, 64)})
		}
		mc.QuantitativeAnalysis = q
	}
	tool := BOMComponent{Type: "application", BOMRef: "rampart", Name: "rampart", Version: platformVersion}
	bom := &BOM{BOMFormat: "CycloneDX", SpecVersion: "1.6", SerialNumber: serial, Version: 1,
		Metadata:     BOMMetadata{Tools: BOMTools{Components: []BOMComponent{tool}}, Component: BOMComponent{Type: "machine-learning-model", BOMRef: "model-subject", Name: c.Model, Version: strconv.Itoa(c.Version)}},
		Dependencies: []BOMDep{{Ref: "model", DependsOn: []string{"rampart"}}}}
	for _, ds := range c.Datasets {
		ref := fmt.Sprintf("dataset-%s-%d", ds.ID, ds.Version)
		mc.ModelParameters.Datasets = append(mc.ModelParameters.Datasets, BOMRef{Ref: ref})
		dc := BOMComponent{Type: "data", BOMRef: ref, Name: ds.ID, Version: strconv.Itoa(ds.Version),
			Hashes: []BOMHash{{Alg: "SHA-256", Content: ds.Digest}}, Data: []BOMData{{Type: "dataset", Name: cmpOr(ds.Name, ds.ID)}}}
		if ds.GrantID != "" {
			dc.Properties = []BOMProperty{{Name: "rampart:grant", Value: ds.GrantID}}
		}
		bom.Components = append(bom.Components, dc)
		bom.Dependencies[0].DependsOn = append(bom.Dependencies[0].DependsOn, ref)
	}
	model.ModelCard = mc
	bom.Components = append([]BOMComponent{model, tool}, bom.Components...)
	return bom
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
