package ml

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/rampart-mlaas/rampart/ml/gbdt"
	"github.com/rampart-mlaas/rampart/ml/internal/wire"
	"github.com/rampart-mlaas/rampart/ml/linear"
	"github.com/rampart-mlaas/rampart/ml/mlp"
)

// Artifact format, version 1. All integers little-endian; see package wire.
//
//	magic "RMPTML\x00\x01"  (the last byte is the format version)
//	algorithm, task, target   strings
//	classes                   []string
//	params                    u32 count, then (key, value) strings sorted by key
//	seed                      u64
//	preprocessor              impute, standardize, features (see preprocess.go)
//	dp                        bool present; ε, δ, σ, C, q, steps, accountant, private
//	info                      rows, width, iterations, final loss, warnings
//	learner                   linear | gbdt | mlp payload
//
// No map iteration order, timestamp or pointer reaches the bytes, so equal
// models encode equally (TRAIN-6) and the digest identifies the model.
var magic = []byte("RMPTML\x00\x01")

// MaxArtifactSize bounds Unmarshal's input (256 MiB).
const MaxArtifactSize = 256 << 20

// ErrArtifact is wrapped by every Unmarshal error.
var ErrArtifact = errors.New("invalid model artifact")

// Marshal encodes the model canonically.
func (m *Model) Marshal() ([]byte, error) {
	w := &wire.Writer{}
	for _, b := range magic {
		w.U8(b)
	}
	w.String(m.Algorithm)
	w.String(string(m.Task))
	w.String(m.Target)
	w.Strings(m.Classes)
	keys := make([]string, 0, len(m.Params))
	for k := range m.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.U32(uint32(len(keys)))
	for _, k := range keys {
		w.String(k)
		w.String(m.Params[k])
	}
	w.U64(m.Seed)
	m.Prep.encode(w)
	w.Bool(m.DP != nil)
	if m.DP != nil {
		w.F64(m.DP.Epsilon)
		w.F64(m.DP.Delta)
		w.F64(m.DP.NoiseMultiplier)
		w.F64(m.DP.MaxGradNorm)
		w.F64(m.DP.SampleRate)
		w.Int(m.DP.Steps)
		w.String(m.DP.Accountant)
		w.Bool(m.DP.Private)
	}
	w.Int(m.Info.Rows)
	w.Int(m.Info.Width)
	w.Int(m.Info.Iterations)
	w.F64(m.Info.FinalLoss)
	w.Strings(m.Info.Warnings)
	switch {
	case m.linear != nil:
		m.linear.Encode(w)
	case m.gbdt != nil:
		m.gbdt.Encode(w)
	case m.mlp != nil:
		m.mlp.Encode(w)
	default:
		return nil, fmt.Errorf("marshal: model has no learner")
	}
	return w.Bytes(), nil
}

// Digest is the hex SHA-256 of the artifact bytes.
func (m *Model) Digest() (string, error) {
	b, err := m.Marshal()
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// Unmarshal decodes an artifact. The input is untrusted: sizes are bounded
// by the input length, shapes are cross-checked, and any inconsistency is an
// error wrapping ErrArtifact — never a panic (fuzzed by FuzzUnmarshal).
func Unmarshal(b []byte) (*Model, error) {
	if len(b) > MaxArtifactSize {
		return nil, fmt.Errorf("%w: %d bytes exceed %d", ErrArtifact, len(b), MaxArtifactSize)
	}
	if !bytes.HasPrefix(b, magic[:len(magic)-1]) || len(b) < len(magic) {
		return nil, fmt.Errorf("%w: not a Rampart model", ErrArtifact)
	}
	if v := b[len(magic)-1]; v != magic[len(magic)-1] {
		return nil, fmt.Errorf("%w: unsupported format version %d", ErrArtifact, v)
	}
	r := wire.NewReader(b[len(magic):])
	m := &Model{Params: map[string]string{}}
	m.Algorithm = r.String(64)
	m.Task = Task(r.String(64))
	m.Target = r.String(1 << 12)
	m.Classes = r.Strings(1 << 12)
	np := int(r.U32())
	if np > r.Remaining()/8 {
		r.Fail("param count %d", np)
	}
	prev := ""
	for i := 0; i < np && r.Err() == nil; i++ {
		k, v := r.String(256), r.String(1<<12)
		if i > 0 && k <= prev {
			r.Fail("params not sorted")
		}
		prev = k
		m.Params[k] = v
	}
	m.Seed = r.U64()
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, r.Err())
	}
	m.Prep = decodePreprocessor(r)
	if r.Bool() {
		m.DP = &DPReport{Epsilon: r.Finite(), Delta: r.Finite(), NoiseMultiplier: r.Finite(), MaxGradNorm: r.Finite(),
			SampleRate: r.Finite(), Steps: r.Int(math.MaxInt32), Accountant: r.String(1 << 10), Private: r.Bool()}
	}
	m.Info = TrainInfo{Rows: r.Int(math.MaxInt32), Width: r.Int(math.MaxInt32), Iterations: r.Int(math.MaxInt32), FinalLoss: r.F64(), Warnings: r.Strings(1 << 12)}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, r.Err())
	}
	if err := m.checkHeader(); err != nil {
		return nil, err
	}
	d := m.Prep.Width()
	switch m.Algorithm {
	case LogReg:
		rows := len(m.Classes)
		if rows == 2 {
			rows = 1
		}
		m.linear = linear.Decode(r, d, rows)
		if r.Err() == nil && !m.linear.Logistic {
			r.Fail("logreg payload is not logistic")
		}
	case LinReg:
		m.linear = linear.Decode(r, d, 1)
		if r.Err() == nil && m.linear.Logistic {
			r.Fail("linreg payload is logistic")
		}
	case GBDT:
		m.gbdt = gbdt.Decode(r, d)
		if r.Err() == nil && m.gbdt.Width() != m.OutputWidth() {
			r.Fail("gbdt outputs %d, model needs %d", m.gbdt.Width(), m.OutputWidth())
		}
	case MLP:
		units := len(m.Classes)
		if m.Task == Regression || units == 2 {
			units = 1
		}
		m.mlp = mlp.Decode(r, d, units)
		if r.Err() == nil && m.mlp.Width() != m.OutputWidth() {
			r.Fail("mlp outputs %d, model needs %d", m.mlp.Width(), m.OutputWidth())
		}
	}
	if err := r.End(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	return m, nil
}

func (m *Model) checkHeader() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrArtifact, fmt.Sprintf(format, args...))
	}
	switch m.Algorithm {
	case LogReg, LinReg, GBDT, MLP:
	default:
		return bad("unknown algorithm %q", m.Algorithm)
	}
	switch m.Task {
	case Classification:
		if len(m.Classes) < 2 {
			return bad("classification model with %d classes", len(m.Classes))
		}
		if m.Algorithm == LinReg {
			return bad("linreg cannot classify")
		}
	case Regression:
		if len(m.Classes) != 0 || m.Algorithm == LogReg {
			return bad("regression model with classes or logreg")
		}
	default:
		return bad("unknown task %q", m.Task)
	}
	seen := map[string]bool{}
	for _, c := range m.Classes {
		if c == "" || seen[c] {
			return bad("empty or duplicate class label")
		}
		seen[c] = true
	}
	if m.Prep.Width() != m.Info.Width {
		return bad("encoded width %d, info says %d", m.Prep.Width(), m.Info.Width)
	}
	for _, fi := range m.Prep.Features {
		if fi.Name == m.Target {
			return bad("target %q is also a feature", fi.Name)
		}
	}
	return nil
}
