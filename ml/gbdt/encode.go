package gbdt

import (
	"math"

	"github.com/rampart-mlaas/rampart/ml/internal/wire"
)

// maxNodes bounds one tree when decoding (a depth-32 tree cannot be read
// from an artifact anyway: the bytes would not fit the size limit).
const maxNodes = 1 << 22

// Encode writes the model canonically.
func (m *Model) Encode(w *wire.Writer) {
	w.U8(uint8(m.Objective))
	w.Int(m.Outputs)
	w.Int(m.D)
	w.F64s(m.Base)
	w.U32(uint32(len(m.Trees)))
	for _, tree := range m.Trees {
		w.U32(uint32(len(tree)))
		for _, nd := range tree {
			w.U32(uint32(nd.Feature))
			if nd.Feature < 0 {
				w.F64(nd.Value)
				continue
			}
			w.U32(uint32(nd.Left))
			w.U32(uint32(nd.Right))
			w.Bool(nd.DefaultLeft)
			w.F64(nd.Threshold)
		}
	}
}

// Decode reads an Encode'd model with d input features. Untrusted input:
// every child index must point forward in its tree, so traversal always
// terminates, and every number must be finite.
func Decode(r *wire.Reader, d int) *Model {
	m := &Model{Objective: Objective(r.U8()), Outputs: r.Int(1 << 16), D: r.Int(1 << 24)}
	m.Base = r.FiniteF64s()
	if r.Err() != nil {
		return nil
	}
	switch {
	case m.D != d:
		r.Fail("gbdt has %d features, schema has %d", m.D, d)
	case m.Objective < BinaryLogistic || m.Objective > RegSquaredError:
		r.Fail("gbdt objective %d", m.Objective)
	case (m.Objective == MultiSoftprob) != (m.Outputs > 1) || m.Outputs < 1 || len(m.Base) != m.Outputs:
		r.Fail("gbdt outputs %d for objective %d", m.Outputs, m.Objective)
	}
	nt := int(r.U32())
	if r.Err() != nil || nt > r.Remaining()/4 {
		r.Fail("tree count %d", nt)
		return nil
	}
	if nt%m.Outputs != 0 {
		r.Fail("tree count %d not a multiple of %d outputs", nt, m.Outputs)
		return nil
	}
	m.Trees = make([][]Node, 0, nt)
	for range nt {
		nn := int(r.U32())
		if r.Err() != nil || nn < 1 || nn > maxNodes || nn > r.Remaining()/12 {
			r.Fail("node count %d", nn)
			return nil
		}
		tree := make([]Node, nn)
		// Every node but the root has exactly one parent, as the builder
		// makes them: prediction lays trees out breadth-first and relies on it.
		parent := make([]bool, nn)
		for t := range tree {
			f := int32(r.U32())
			nd := Node{Feature: f}
			if f < 0 {
				if f != -1 {
					r.Fail("feature %d", f)
				}
				nd.Value = r.Finite()
			} else {
				nd.Left, nd.Right = int32(r.U32()), int32(r.U32())
				nd.DefaultLeft = r.Bool()
				nd.Threshold = r.F64()
				if int(f) >= d || nd.Left <= int32(t) || nd.Right <= int32(t) || int(nd.Left) >= nn || int(nd.Right) >= nn ||
					math.IsNaN(nd.Threshold) || nd.Left == nd.Right {
					r.Fail("bad split node %d", t)
				} else if parent[nd.Left] || parent[nd.Right] {
					r.Fail("node %d shares a child", t)
				} else {
					parent[nd.Left], parent[nd.Right] = true, true
				}
			}
			if r.Err() != nil {
				return nil
			}
			tree[t] = nd
		}
		m.Trees = append(m.Trees, tree)
	}
	return m
}
