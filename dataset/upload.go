package dataset

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/barrier"
)

// UploadInput describes an upload besides its bytes.
type UploadInput struct {
	Format Format
	// DeclaredPII lists identifier kinds the provider declares present
	// (policy require-declaration).
	DeclaredPII []string
}

// Upload ingests a new version: the bytes are parsed, validated, profiled
// and screened while they stream into the barrier (DATA-1, DATA-4); the
// version becomes visible only once sealed, screened and recorded. Any
// failure shreds whatever was sealed, so a rejected upload leaves nothing
// behind (no data key, no blob, no version row).
func (s *Service) Upload(ctx context.Context, id string, body io.Reader, in UploadInput) (Version, *Report, error) {
	declared, err := normKinds(in.DeclaredPII)
	if err != nil {
		return Version{}, nil, err
	}
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetWrite, map[string]string{"format": string(in.Format)})
	if err != nil {
		return Version{}, nil, err
	}
	c, _ := rampart.CallerFrom(ctx)
	s.mu.Lock()
	if s.running[d.ID] {
		s.mu.Unlock()
		return Version{}, nil, ev.finish(ctx, rampart.Errorf(rampart.CodeConflict, "another upload to this dataset is in progress"))
	}
	s.running[d.ID] = true
	s.mu.Unlock()
	defer func() { s.mu.Lock(); delete(s.running, d.ID); s.mu.Unlock() }()

	pol, err := s.store.GetDatasetPolicy(ctx, d.TenantID)
	if err != nil {
		return Version{}, nil, ev.finish(ctx, err)
	}
	var prev *Report
	prevV := 0
	if d.Latest > 0 {
		if pv, err := s.store.GetVersion(ctx, d.ID, d.Latest); err == nil && pv.Status == StatusReady {
			if prev, err = s.readReport(ctx, pv); err != nil {
				return Version{}, nil, ev.finish(ctx, err)
			}
			prevV = pv.Version
		}
	}
	v, err := s.store.ReserveVersion(ctx, Version{DatasetID: d.ID, TenantID: d.TenantID, Status: StatusIngesting,
		Format: string(in.Format), CreatedAt: s.now().UTC(), CreatedBy: c.Principal.ID})
	if err != nil {
		return Version{}, nil, ev.finish(ctx, err)
	}
	ev.ev.Details["version"] = strconv.Itoa(v.Version)
	fail := func(err error) (Version, *Report, error) {
		s.discard(context.WithoutCancel(ctx), v)
		return Version{}, nil, ev.finish(ctx, err)
	}

	opt := s.Limits
	opt.Format, opt.Schema, opt.Label, opt.Previous = in.Format, d.Schema, d.Label, prev
	res, sealed, err := s.ingestAndSeal(ctx, dataRef(v), body, opt)
	if err != nil {
		return fail(err)
	}
	rep := res.Report
	if prev != nil {
		rep.DriftAgainst = prevV
	}
	// PII policy (DATA-6).
	rep.PII.Policy, rep.PII.Declared = pol.PII, declared
	var kinds []string
	for _, pc := range rep.PII.Columns {
		for k := range pc.Kinds {
			if !containsStr(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	sortStrings(kinds)
	switch pol.PII {
	case PIIBlock:
		if len(kinds) > 0 {
			return fail(rampart.Invalid("body", "the upload contains direct identifiers (%s in column(s) %s) and the tenant policy blocks them",
				strings.Join(kinds, ", "), piiColumns(rep.PII)))
		}
	case PIIRequireDecl:
		var undeclared []string
		for _, k := range kinds {
			if !containsStr(declared, k) {
				undeclared = append(undeclared, k)
			}
		}
		if len(undeclared) > 0 {
			return fail(rampart.Invalid("declare_pii", "the upload contains undeclared direct identifiers (%s in column(s) %s); declare them to proceed",
				strings.Join(undeclared, ", "), piiColumns(rep.PII)))
		}
	}
	// Label-flip screening (DATA-5).
	if d.Label != "" && res.Sample != nil {
		lf, err := ScreenLabels(ctx, res.Sample, d.Label, rep.Columns, uint64(v.Version))
		if err != nil {
			s.log.WarnContext(ctx, "label screening failed", "dataset", d.ID, "err", err)
			lf = &LabelFlipReport{Skipped: "screening failed"}
		}
		lf.Policy = pol.Label
		lf.Quarantined = pol.Label == LabelQuarantine && lf.Flagged > 0
		rep.LabelFlip = lf
		v.Flagged, v.Quarantined = lf.Flagged, lf.Quarantined
	}
	rb, err := json.Marshal(rep)
	if err != nil {
		return fail(fmt.Errorf("dataset: encode report: %w", err))
	}
	rs, err := s.sealer.Put(ctx, reportRef(v), strings.NewReader(string(rb)))
	if err != nil {
		return fail(err)
	}
	v.Status, v.Digest, v.Size, v.Rows, v.Columns = StatusReady, sealed.Digest, sealed.Size, rep.Rows, len(rep.Columns)
	v.ReportDigest, v.PIIKinds = rs.Digest, kinds
	if err := s.store.FinishVersion(ctx, v); err != nil {
		return fail(err)
	}
	ev.ev.Digest = "sha256:" + v.Digest
	ev.ev.Details["rows"] = strconv.FormatInt(v.Rows, 10)
	ev.ev.Details["pii"] = strings.Join(kinds, ",")
	ev.ev.Details["flagged"] = strconv.Itoa(v.Flagged)
	if err := ev.finish(ctx, nil); err != nil {
		// Not recorded, not acknowledged: undo (fail closed).
		s.discard(context.WithoutCancel(ctx), v)
		return Version{}, nil, err
	}
	return v, rep, nil
}

func piiColumns(p *PIIReport) string {
	var cs []string
	for _, c := range p.Columns {
		cs = append(cs, strconv.Quote(c.Column))
	}
	return strings.Join(cs, ", ")
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// discard shreds a version's sealed objects and removes its row.
func (s *Service) discard(ctx context.Context, v Version) {
	for _, ref := range []barrier.Ref{dataRef(v), reportRef(v)} {
		if err := s.sealer.Shred(ctx, ref); err != nil {
			s.log.ErrorContext(ctx, "shred rejected upload", "ref", ref.String(), "err", err)
		}
	}
	if err := s.store.DropVersion(ctx, v.DatasetID, v.Version); err != nil {
		s.log.ErrorContext(ctx, "drop rejected version", "dataset", v.DatasetID, "version", v.Version, "err", err)
	}
}

// RecoverPending discards versions left ingesting by a crash (RES-2): they
// were never acknowledged.
func (s *Service) RecoverPending(ctx context.Context) error {
	vs, err := s.store.PendingVersions(ctx)
	if err != nil {
		return err
	}
	for _, v := range vs {
		s.discard(ctx, v)
	}
	return nil
}

// ingestAndSeal runs Ingest with its output streaming into the barrier
// through a pipe: Ingest's reader hands each block it reads to the pipe
// while workers parse it, so parsing and encryption run concurrently.
func (s *Service) ingestAndSeal(ctx context.Context, ref barrier.Ref, body io.Reader, opt Options) (*Result, barrier.Sealed, error) {
	if c, ok := s.sealer.(streamSealer); ok {
		// The barrier's writer is the sink: Ingest's reader hashes and
		// encrypts each block itself (after handing the block's piece to
		// the workers), with no pipe or copy in between (issue 5).
		w, err := c.Create(ctx, ref)
		if err != nil {
			return nil, barrier.Sealed{}, fmt.Errorf("dataset: seal: %w", err)
		}
		res, ierr := Ingest(ctx, body, opt, w)
		if ierr != nil {
			w.Abort() // nothing stored, the data key destroyed
			return nil, barrier.Sealed{}, ierr
		}
		// Ingest writes nothing once it has returned.
		sd, err := w.Commit()
		if err != nil {
			return nil, barrier.Sealed{}, fmt.Errorf("dataset: seal: %w", err)
		}
		return res, sd, nil
	}
	pr, pw := io.Pipe()
	type sealResult struct {
		s   barrier.Sealed
		err error
	}
	done := make(chan sealResult, 1)
	go func() {
		sd, err := s.sealer.Put(ctx, ref, pr)
		if err != nil {
			pr.CloseWithError(err) // unblock the writer
		}
		done <- sealResult{s: sd, err: err}
	}()
	res, ierr := Ingest(ctx, body, opt, pw)
	// Ingest writes nothing once it has returned; nil closes with EOF.
	pw.CloseWithError(ierr)
	sr := <-done
	switch {
	case ierr != nil:
		return nil, barrier.Sealed{}, ierr
	case sr.err != nil:
		return nil, barrier.Sealed{}, fmt.Errorf("dataset: seal: %w", sr.err)
	}
	return res, sr.s, nil
}
