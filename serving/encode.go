package serving

import (
	"context"

	"github.com/rampart-mlaas/rampart/authz"
	"slices"
	"strconv"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/guard"
)

// OIP output names.
const (
	OutLabel         = "label"
	OutProbability   = "probability"   // label policy: the label's probability; topk: the K probabilities
	OutProbabilities = "probabilities" // proba policy: [N, C]
	OutValue         = "value"         // regression
	OutOOD           = "ood"
)

// outputsOf lists the outputs an endpoint's policy produces.
func outputsOf(sm *servedModel, op guard.OutputPolicy, ood bool) []string {
	var outs []string
	switch {
	case sm.regression:
		outs = []string{OutValue}
	case op.Mode == rampart.OutputProba:
		outs = []string{OutLabel, OutProbabilities}
	case op.Decimals >= 0:
		outs = []string{OutLabel, OutProbability}
	default:
		outs = []string{OutLabel}
	}
	if ood {
		outs = append(outs, OutOOD)
	}
	return outs
}

// encodeOIP writes an OIP v2 inference response.
func encodeOIP(ep rampart.Endpoint, sm *servedModel, op guard.OutputPolicy, preds []guard.Prediction, ood []bool, meta OIPMeta, rid string) ([]byte, error) {
	all := outputsOf(sm, op, ood != nil)
	want := all
	if len(meta.Outputs) > 0 {
		want = nil
		for _, o := range meta.Outputs {
			if !slices.Contains(all, o) {
				return nil, guard.Invalid("outputs", "unknown output %q; this endpoint returns %v", truncate(o, 64), all)
			}
			want = append(want, o)
		}
	}
	n := len(preds)
	b := make([]byte, 0, 64+n*24)
	b = append(b, `{"model_name":`...)
	b = appendString(b, ep.Name)
	b = append(b, `,"model_version":"`...)
	b = strconv.AppendInt(b, int64(sm.version.Version), 10)
	b = append(b, '"')
	if meta.ID != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, meta.ID)
	}
	b = append(b, `,"parameters":{"model_digest":`...)
	b = appendString(b, sm.version.Digest)
	b = append(b, `,"request_id":`...)
	b = appendString(b, rid)
	if !sm.regression && op.Mode == rampart.OutputProba {
		b = append(b, `,"classes":[`...)
		for i, c := range sm.classes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, c)
		}
		b = append(b, ']')
	}
	b = append(b, `},"outputs":[`...)
	k := 1
	if op.Mode == rampart.OutputTopK && !sm.regression {
		k = min(max(op.TopK, 1), len(sm.classes))
	}
	for oi, name := range want {
		if oi > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":"`...)
		b = append(b, name...)
		b = append(b, `","datatype":"`...)
		width := 1
		switch name {
		case OutLabel:
			b = append(b, "BYTES"...)
			width = k
		case OutOOD:
			b = append(b, "BOOL"...)
		case OutProbabilities:
			b = append(b, "FP64"...)
			width = len(sm.classes)
		case OutProbability:
			b = append(b, "FP64"...)
			width = k
		default:
			b = append(b, "FP64"...)
		}
		b = append(b, `","shape":[`...)
		b = strconv.AppendInt(b, int64(n), 10)
		if width > 1 || op.Mode == rampart.OutputTopK && (name == OutLabel || name == OutProbability) && !sm.regression {
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(width), 10)
		}
		b = append(b, `],"data":[`...)
		first := true
		sep := func() {
			if !first {
				b = append(b, ',')
			}
			first = false
		}
		for i := range preds {
			p := &preds[i]
			switch name {
			case OutLabel:
				if op.Mode == rampart.OutputTopK {
					for _, l := range p.Labels {
						sep()
						b = appendString(b, l)
					}
				} else {
					sep()
					b = appendString(b, p.Label)
				}
			case OutProbability, OutProbabilities:
				for _, v := range p.Proba {
					sep()
					b = appendFloat(b, v)
				}
			case OutValue:
				sep()
				b = appendFloat(b, p.Value)
			case OutOOD:
				sep()
				b = strconv.AppendBool(b, ood[i])
			}
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}"...)
	return b, nil
}

// encodeRows writes a /v1 predict response: one object per row.
func encodeRows(ep rampart.Endpoint, sm *servedModel, op guard.OutputPolicy, preds []guard.Prediction, ood []bool) []byte {
	b := make([]byte, 0, 128+len(preds)*40)
	b = append(b, `{"endpoint":`...)
	b = appendString(b, ep.Name)
	b = append(b, `,"model_version":`...)
	b = strconv.AppendInt(b, int64(sm.version.Version), 10)
	b = append(b, `,"model_digest":`...)
	b = appendString(b, sm.version.Digest)
	b = append(b, `,"predictions":[`...)
	for i := range preds {
		p := &preds[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		switch {
		case sm.regression:
			b = append(b, `"value":`...)
			b = appendFloat(b, p.Value)
		case op.Mode == rampart.OutputTopK:
			b = append(b, `"labels":[`...)
			for j, l := range p.Labels {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, l)
			}
			b = append(b, ']')
			if p.HasP {
				b = append(b, `,"probabilities":[`...)
				for j, v := range p.Proba {
					if j > 0 {
						b = append(b, ',')
					}
					b = appendFloat(b, v)
				}
				b = append(b, ']')
			}
		case op.Mode == rampart.OutputProba:
			b = append(b, `"label":`...)
			b = appendString(b, p.Label)
			b = append(b, `,"probabilities":{`...)
			for j, v := range p.Proba {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, sm.classes[j])
				b = append(b, ':')
				b = appendFloat(b, v)
			}
			b = append(b, '}')
		default:
			b = append(b, `"label":`...)
			b = appendString(b, p.Label)
			if p.HasP {
				b = append(b, `,"probability":`...)
				b = appendFloat(b, p.Proba[0])
			}
		}
		if ood != nil && ood[i] {
			b = append(b, `,"ood":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	return b
}

// ModelMetadata is the OIP model metadata response.
type ModelMetadata struct {
	Name     string       `json:"name"`
	Versions []string     `json:"versions"`
	Platform string       `json:"platform"`
	Inputs   []TensorMeta `json:"inputs"`
	Outputs  []TensorMeta `json:"outputs"`
}

// TensorMeta describes a tensor.
type TensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// Metadata returns the OIP metadata of an endpoint (endpoint.read): its
// inputs (one per feature; numeric models also take one [-1, F] tensor)
// and the outputs its policy produces. It names features, which callers
// need, and nothing of the model's internals.
func (s *Service) Metadata(ctx context.Context, ref, version string) (ModelMetadata, error) {
	ep, _, _, err := s.authorized(ctx, ref, authz.EndpointRead, map[string]string{"oip": "metadata"})
	if err != nil {
		return ModelMetadata{}, err
	}
	if version != "" && version != strconv.Itoa(ep.ModelVersion) {
		return ModelMetadata{}, &rampart.Error{Code: rampart.CodeNotFound, Message: "model version not served by this endpoint"}
	}
	sm, err := s.load(ctx, ep)
	if err != nil {
		return ModelMetadata{}, err
	}
	sc := sm.schema(ep.Policy.RangeMargin)
	md := ModelMetadata{Name: ep.Name, Versions: []string{strconv.Itoa(ep.ModelVersion)}, Platform: "rampart"}
	for _, f := range sc.Features {
		dt := "FP64"
		if f.Categorical {
			dt = "BYTES"
		}
		md.Inputs = append(md.Inputs, TensorMeta{Name: f.Name, Datatype: dt, Shape: []int64{-1}})
	}
	op := guard.OutputPolicy{Mode: ep.Policy.Output, TopK: ep.Policy.TopK, Decimals: ep.Policy.Decimals}
	for _, o := range outputsOf(sm, op, sc.Profiled && ep.Policy.OOD == rampart.OODFlag) {
		dt, shape := "FP64", []int64{-1}
		switch o {
		case OutLabel:
			dt = "BYTES"
		case OutOOD:
			dt = "BOOL"
		case OutProbabilities:
			shape = []int64{-1, int64(len(sm.classes))}
		}
		if op.Mode == rampart.OutputTopK && (o == OutLabel || o == OutProbability) && !sm.regression {
			shape = []int64{-1, int64(min(max(op.TopK, 1), len(sm.classes)))}
		}
		md.Outputs = append(md.Outputs, TensorMeta{Name: o, Datatype: dt, Shape: shape})
	}
	return md, nil
}

// Ready reports whether the endpoint's model is loaded and verified
// (endpoint.read); it loads it if needed.
func (s *Service) Ready(ctx context.Context, ref, version string) error {
	_, err := s.Metadata(ctx, ref, version)
	return err
}
