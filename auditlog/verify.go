package auditlog

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"

	"github.com/rampart-mlaas/rampart/auditlog/tsa"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// ProvenEvent is an event as served to a client: its index, its canonical
// bytes and its inclusion proof in the tree of some checkpoint's size.
type ProvenEvent struct {
	Index uint64
	Event []byte
	Proof [][]byte
}

// VerifyRequest is what `rampart audit verify` has fetched and remembered.
type VerifyRequest struct {
	// Key is the log's verifier key (`rampart audit key`).
	Key string
	// Checkpoint is the latest signed checkpoint served by the log.
	Checkpoint []byte
	// Timestamp is its RFC 3161 token, if the server had one (AUDIT-2).
	Timestamp []byte
	// TSARoots, when set, must hold the TSA's root: the token's chain is
	// checked. Without it only the token's own signature is checked.
	TSARoots *x509.CertPool
	// RequireTimestamp fails verification when Timestamp is empty.
	RequireTimestamp bool
	// Witness is the last checkpoint this client verified (kept under the
	// client's config dir): the new one must be consistent with it, so the
	// log cannot be rewritten or rolled back behind the client's back.
	Witness []byte
	// Consistency is the proof from the Witness's size to the Checkpoint's.
	Consistency [][]byte
	// Leaves, when given, is the whole log [0, size): the root is recomputed
	// from the events (for auditors and operators who may read everything).
	Leaves [][]byte
	// Events are events with inclusion proofs in the Checkpoint's tree (a
	// tenant's view). Each is fully parsed (canonical form, own index).
	Events []ProvenEvent
	// ParseEvents also fully parses every one of Leaves (canonical form);
	// otherwise only each leaf's index prefix is read, which with the root
	// check already proves the leaves are the signed ones. About 10x slower.
	ParseEvents bool
}

// VerifyResult describes what verified. On success the caller stores
// Checkpoint.Note as its new witness.
type VerifyResult struct {
	Checkpoint    Checkpoint
	Timestamp     *tsa.Info
	LeavesChecked int
	EventsChecked int
}

// Verify checks a checkpoint's signature, its time-stamp, its consistency
// with the client's witness checkpoint, and the events given (AUDIT-1). Every
// failure wraps ErrVerify or, for input that does not parse, rampart.ErrInvalid,
// and says what failed.
func Verify(req VerifyRequest) (VerifyResult, error) {
	v, err := NewVerifier(req.Key)
	if err != nil {
		return VerifyResult{}, err
	}
	cp, err := ParseCheckpoint(req.Checkpoint, v)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("checkpoint: %w", err)
	}
	cp.Timestamp = req.Timestamp
	res := VerifyResult{Checkpoint: cp}
	if res.Timestamp, err = verifyTimestamp(cp, req.TSARoots, req.RequireTimestamp); err != nil {
		return res, err
	}
	if len(req.Witness) > 0 {
		w, err := ParseCheckpoint(req.Witness, v)
		if err != nil {
			return res, fmt.Errorf("witness checkpoint: %w", err)
		}
		if w.Size > cp.Size {
			return res, verifyErr("log rolled back: checkpoint size %d is smaller than the witnessed %d", cp.Size, w.Size)
		}
		if err := proof.VerifyConsistency(hasher, w.Size, cp.Size, req.Consistency, w.Root, cp.Root); err != nil {
			return res, verifyErr("checkpoint %d is not consistent with the witnessed checkpoint %d: %v", cp.Size, w.Size, err)
		}
	}
	if req.Leaves != nil {
		if uint64(len(req.Leaves)) != cp.Size {
			return res, verifyErr("got %d events, checkpoint covers %d", len(req.Leaves), cp.Size)
		}
		rng := rangeFactory.NewEmptyRange(0)
		const chunk = 1 << 14
		for begin := 0; begin < len(req.Leaves); begin += chunk {
			part := req.Leaves[begin:min(begin+chunk, len(req.Leaves))]
			hashes, err := hashLeaves(uint64(begin), part, req.ParseEvents)
			if err != nil {
				return res, err
			}
			for _, h := range hashes {
				if err := rng.Append(h, nil); err != nil {
					return res, fmt.Errorf("audit: %w", err)
				}
			}
		}
		if root := rangeRoot(rng); !bytes.Equal(root, cp.Root) {
			return res, verifyErr("root recomputed from %d events differs from the checkpoint's", cp.Size)
		}
		res.LeavesChecked = len(req.Leaves)
	}
	for _, e := range req.Events {
		if err := verifyProvenEvent(cp, e); err != nil {
			return res, err
		}
		res.EventsChecked++
	}
	return res, nil
}

// VerifyInclusion checks that event sits at index in the tree of cp.
func VerifyInclusion(cp Checkpoint, e ProvenEvent) error { return verifyProvenEvent(cp, e) }

func verifyProvenEvent(cp Checkpoint, e ProvenEvent) error {
	ev, err := ParseEvent(e.Event)
	if err != nil {
		return fmt.Errorf("event %d: %w", e.Index, err)
	}
	if ev.Index != e.Index {
		return verifyErr("event at index %d says it is event %d", e.Index, ev.Index)
	}
	if e.Index >= cp.Size {
		return verifyErr("event %d is beyond the checkpoint's size %d", e.Index, cp.Size)
	}
	if err := proof.VerifyInclusion(hasher, e.Index, cp.Size, LeafHash(e.Event), e.Proof, cp.Root); err != nil {
		return verifyErr("event %d is not included in checkpoint %d: %v", e.Index, cp.Size, err)
	}
	return nil
}

// VerifyConsistency checks that newer extends older (RFC 6962 consistency).
func VerifyConsistency(older, newer Checkpoint, prf [][]byte) error {
	if older.Size > newer.Size {
		return verifyErr("checkpoint size %d is smaller than %d", newer.Size, older.Size)
	}
	if err := proof.VerifyConsistency(hasher, older.Size, newer.Size, prf, older.Root, newer.Root); err != nil {
		return verifyErr("checkpoints %d and %d are inconsistent: %v", older.Size, newer.Size, err)
	}
	return nil
}

func verifyTimestamp(cp Checkpoint, roots *x509.CertPool, required bool) (*tsa.Info, error) {
	if len(cp.Timestamp) == 0 {
		if required {
			return nil, verifyErr("checkpoint %d has no RFC 3161 time-stamp", cp.Size)
		}
		return nil, nil
	}
	d := cp.Digest()
	info, err := tsa.Verify(cp.Timestamp, d[:], roots)
	if err != nil {
		return nil, verifyErr("time-stamp of checkpoint %d: %v", cp.Size, err)
	}
	return &info, nil
}

// eventIndex reads the index of a canonical event from its fixed prefix
// ({"v":1,"index":N,"time":"), without decoding the rest.
func eventIndex(b []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(canonicalPrefix))
	if !ok {
		return 0, false
	}
	n := 0
	for n < len(rest) && n < 20 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || (n > 1 && rest[0] == '0') || !bytes.HasPrefix(rest[n:], []byte(timeField)) {
		return 0, false
	}
	idx, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	return idx, err == nil
}

// hashLeaves checks, in parallel, that every event carries its own index
// (first+i) — and with full set, that it is entirely canonical — and returns
// the leaf hashes.
func hashLeaves(first uint64, data [][]byte, full bool) ([][]byte, error) {
	out := make([][]byte, len(data))
	workers := runtime.GOMAXPROCS(0)
	per := (len(data) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, len(data))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				idx := first + uint64(i)
				got, ok := eventIndex(data[i])
				if full {
					ev, err := ParseEvent(data[i])
					if err != nil {
						errs[w] = verifyErr("event %d: %v", idx, err)
						return
					}
					got, ok = ev.Index, true
				}
				if !ok {
					errs[w] = verifyErr("event %d: not a canonical event", idx)
					return
				}
				if got != idx {
					errs[w] = verifyErr("event at position %d says it is event %d", idx, got)
					return
				}
				out[i] = LeafHash(data[i])
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// StoreVerifyOptions tunes VerifyStore.
type StoreVerifyOptions struct {
	// Witness is a checkpoint seen earlier (by a client, a backup, a
	// monitor): the stored log must still contain it.
	Witness []byte
	// RequireCovered fails when leaves exist beyond the latest checkpoint
	// (publish first); otherwise such a tail is checked for internal
	// consistency and reported as Uncovered.
	RequireCovered bool
	// TSARoots and RequireTimestamps as in VerifyRequest, for every checkpoint.
	TSARoots          *x509.CertPool
	RequireTimestamps bool
	// ParseEvents also fully parses every event (see VerifyRequest).
	ParseEvents bool
}

// StoreReport describes a verified store.
type StoreReport struct {
	Leaves      uint64
	Checkpoints int
	Timestamps  int
	Uncovered   uint64 // leaves beyond the latest checkpoint
	Latest      *Checkpoint
}

// VerifyStore re-verifies a whole stored log with only the public key: every
// checkpoint's signature (and time-stamp), every event's canonical form and
// index, the stored leaf and node hashes (which serve proofs) against hashes
// recomputed from the events, the root at every checkpoint size, and the
// witness. It is the operator's and the backup drill's check (AUDIT-1, RES-1).
func VerifyStore(ctx context.Context, st Store, key string, opts StoreVerifyOptions) (StoreReport, error) {
	var rep StoreReport
	v, err := NewVerifier(key)
	if err != nil {
		return rep, err
	}
	var cps []Checkpoint
	for from := uint64(0); ; {
		page, err := st.Checkpoints(ctx, from, 1000)
		if err != nil {
			return rep, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		for _, sc := range page {
			c, err := ParseCheckpoint(sc.Note, v)
			if err != nil {
				return rep, fmt.Errorf("stored checkpoint %d: %w", sc.Size, err)
			}
			if c.Size != sc.Size || !bytes.Equal(c.Root, sc.Root) {
				return rep, verifyErr("stored checkpoint %d: columns differ from the signed note", sc.Size)
			}
			if len(cps) > 0 && c.Size <= cps[len(cps)-1].Size {
				return rep, verifyErr("stored checkpoints out of order at %d", c.Size)
			}
			c.Timestamp = sc.Timestamp
			if info, err := verifyTimestamp(c, opts.TSARoots, opts.RequireTimestamps); err != nil {
				return rep, err
			} else if info != nil {
				rep.Timestamps++
			}
			cps = append(cps, c)
		}
		if len(page) < 1000 {
			break
		}
		from = page[len(page)-1].Size + 1
	}
	rep.Checkpoints = len(cps)
	var witness *Checkpoint
	if len(opts.Witness) > 0 {
		w, err := ParseCheckpoint(opts.Witness, v)
		if err != nil {
			return rep, fmt.Errorf("witness checkpoint: %w", err)
		}
		witness = &w
	}
	// Sizes at which the recomputed root must equal a signed one.
	want := map[uint64][][]byte{}
	for _, c := range cps {
		want[c.Size] = append(want[c.Size], c.Root)
	}
	if witness != nil {
		want[witness.Size] = append(want[witness.Size], witness.Root)
	}
	checkRoot := func(size uint64, rng *compact.Range) error {
		for _, r := range want[size] {
			if !bytes.Equal(r, rangeRoot(rng)) {
				return verifyErr("root of the stored tree at size %d differs from the signed checkpoint", size)
			}
		}
		return nil
	}
	rng := rangeFactory.NewEmptyRange(0)
	if err := checkRoot(0, rng); err != nil {
		return rep, err
	}
	// Read the next chunk while this one is hashed.
	const chunk = 1 << 13
	type chunkRes struct {
		leaves []Leaf
		err    error
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunkRes, 1)
	go func() {
		defer close(chunks)
		for begin := uint64(0); ; begin += chunk {
			leaves, err := st.ReadLeaves(rctx, begin, begin+chunk)
			select {
			case chunks <- chunkRes{leaves, err}:
			case <-rctx.Done():
				return
			}
			if err != nil || len(leaves) < chunk {
				return
			}
		}
	}()
	for res := range chunks {
		if res.err != nil {
			return rep, fmt.Errorf("audit: read leaves: %w", res.err)
		}
		leaves := res.leaves
		begin := rng.End()
		data := make([][]byte, len(leaves))
		for i, lf := range leaves {
			if lf.Index != begin+uint64(i) {
				return rep, verifyErr("leaf %d is missing", begin+uint64(i))
			}
			data[i] = lf.Data
		}
		hashes, err := hashLeaves(begin, data, opts.ParseEvents)
		if err != nil {
			return rep, err
		}
		for i, lf := range leaves {
			var nodes []byte
			if err := rng.Append(hashes[i], func(_ compact.NodeID, h []byte) { nodes = append(nodes, h...) }); err != nil {
				return rep, fmt.Errorf("audit: %w", err)
			}
			if !bytes.Equal(nodes, lf.Hashes) {
				return rep, verifyErr("stored hashes of leaf %d differ from the recomputed ones", lf.Index)
			}
			if err := checkRoot(rng.End(), rng); err != nil {
				return rep, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.Leaves = rng.End()
	// A checkpoint or witness beyond the stored leaves means truncation.
	if witness != nil && witness.Size > rep.Leaves {
		return rep, verifyErr("log truncated: %d leaves stored, the witness has seen %d", rep.Leaves, witness.Size)
	}
	if len(cps) > 0 {
		latest := cps[len(cps)-1]
		rep.Latest = &latest
		if latest.Size > rep.Leaves {
			return rep, verifyErr("log truncated: %d leaves stored, checkpoint %d signed", rep.Leaves, latest.Size)
		}
		rep.Uncovered = rep.Leaves - latest.Size
	} else {
		rep.Uncovered = rep.Leaves
	}
	if opts.RequireCovered && rep.Uncovered > 0 {
		return rep, verifyErr("%d leaves after the latest checkpoint are not covered by any signature", rep.Uncovered)
	}
	return rep, nil
}

// RootOf returns the RFC 6962 root hash of the tree of the given leaves
// (canonical events).
func RootOf(leaves [][]byte) []byte {
	rng := rangeFactory.NewEmptyRange(0)
	for _, l := range leaves {
		if err := rng.Append(LeafHash(l), nil); err != nil {
			panic(err) // cannot happen for a range built from 0
		}
	}
	return rangeRoot(rng)
}
