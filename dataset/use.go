package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
)

// Use is an authorized, recorded use of one dataset version for training
// or evaluation. Read streams the version's plaintext as CSV with a header
// row (quarantined rows removed); the digest was verified before Open
// returned (unless UseOptions.Streamed) and is verified again at EOF
// (DATA-3): any read error means the data must be discarded. Close when
// done.
type Use struct {
	Dataset Dataset
	Version Version
	Purpose authz.Purpose
	// Grant is the grant that allowed the use; nil for the owner's tenant.
	Grant *Grant
	// Terms are the privacy terms the trainer must enforce (from Grant).
	Terms Terms
	// Excluded lists quarantined data rows left out of the stream.
	Excluded []int64
	rc       io.ReadCloser
}

func (u *Use) Read(p []byte) (int, error) { return u.rc.Read(p) }

// Close releases the stream.
func (u *Use) Close() error { return u.rc.Close() }

// Open authorizes and records the use of a dataset version for purpose
// train or evaluate (DATA-7): the caller's own tenant or a live grant for
// that purpose; a train grant never gives a way to read rows. The stored
// bytes are verified against the version's digest before anything is
// returned (DATA-3: a tampered version refuses to start a job). The use is
// an audit event naming the grant. Call it with the context of the
// principal on whose behalf the job runs, at job start, so an expired or
// revoked grant stops the job.
func (s *Service) Open(ctx context.Context, id string, version int, purpose authz.Purpose) (*Use, error) {
	return s.OpenUse(ctx, id, version, purpose, UseOptions{})
}

// UseOptions tune OpenUse.
type UseOptions struct {
	// Latest lets version 0 mean the dataset's latest version, resolved
	// under the same authorization and audit event as the use (the event's
	// "version" detail is "latest" in the decision and the number in the
	// outcome).
	Latest bool
	// Streamed skips the verification pass before Open returns: the data
	// is decrypted once, every segment is authenticated as it is read and
	// the plaintext digest is compared at the end, where a mismatch is the
	// last Read's error instead of io.EOF (DATA-3). Only for a consumer
	// that uses nothing before it has read the stream to a clean io.EOF
	// and discards everything on any error — the training executor, whose
	// worker receives the end of its data only after that EOF, so a
	// tampered version never reaches training.
	Streamed bool
	// DeferOutcome writes the use's outcome record while the caller reads
	// instead of before OpenUse returns (the decision is recorded before,
	// as always): the stream's io.EOF and Close wait for the record and
	// return its failure instead (AUDIT-3, fail closed). Only for a
	// consumer that uses nothing it read unless it reached a clean io.EOF
	// or a nil Close — the training executor, or an admission check that
	// closes the use before it acts.
	DeferOutcome bool
}

// OpenUse is Open with options.
func (s *Service) OpenUse(ctx context.Context, id string, version int, purpose authz.Purpose, o UseOptions) (*Use, error) {
	action := authz.DatasetTrain
	switch purpose {
	case authz.PurposeTrain:
	case authz.PurposeEvaluate:
		action = authz.DatasetEvaluate
	default:
		return nil, rampart.Invalid("purpose", "purpose must be train or evaluate")
	}
	vdetail := strconv.Itoa(version)
	if o.Latest && version == 0 {
		vdetail = "latest"
	}
	d, _, gs, ev, err := s.authorize(ctx, id, action, map[string]string{"version": vdetail, "purpose": string(purpose)})
	if err != nil {
		return nil, err
	}
	if o.Latest && version == 0 {
		if d.Latest == 0 {
			return nil, ev.finish(ctx, &rampart.Error{Code: rampart.CodeInvalid, Field: "dataset_id", Message: "the dataset has no version yet"})
		}
		version = d.Latest
		ev.ev.Details["version"] = strconv.Itoa(version)
	}
	u := &Use{Dataset: d, Purpose: purpose}
	// The most specific live grant for the purpose: a principal grant
	// before a tenant grant.
	for i := range gs {
		g := gs[i]
		if g.Purpose != purpose {
			continue
		}
		if u.Grant == nil || (u.Grant.GranteePrincipalID == "" && g.GranteePrincipalID != "") {
			u.Grant = &g
		}
	}
	if u.Grant != nil {
		u.Terms = u.Grant.Terms
		ev.ev.Details["grant"] = u.Grant.ID
	}
	ver, err := s.loadVersion(ctx, d, version)
	if err == nil {
		err = readyVersion(ver)
	}
	if err != nil {
		return nil, ev.finish(ctx, err)
	}
	u.Version = ver
	ev.ev.Digest = "sha256:" + ver.Digest
	if !o.Streamed {
		if _, err := s.sealer.Verify(ctx, dataRef(ver), ver.Digest); err != nil {
			return nil, ev.finish(ctx, fmt.Errorf("dataset %s version %d: %w", d.ID, version, err))
		}
	}
	rc, err := s.sealer.Open(ctx, dataRef(ver), ver.Digest)
	if err != nil {
		return nil, ev.finish(ctx, err)
	}
	if o.Streamed {
		ev.ev.Details["verify"] = "streamed"
	}
	if ver.Quarantined {
		rep, err := s.readReport(ctx, ver)
		if err != nil {
			rc.Close()
			return nil, ev.finish(ctx, err)
		}
		if rep.LabelFlip != nil {
			for _, sp := range rep.LabelFlip.Suspects {
				u.Excluded = append(u.Excluded, sp.Row)
			}
			slices.Sort(u.Excluded)
		}
	}
	u.rc = rc
	if len(u.Excluded) > 0 {
		u.rc = filterRows(rc, u.Excluded, false)
	}
	ev.ev.Details["excluded_rows"] = strconv.Itoa(len(u.Excluded))
	if o.DeferOutcome {
		rec := make(chan error, 1)
		go func() { rec <- ev.finish(ctx, nil) }()
		u.rc = &outcomeReader{rc: u.rc, rec: rec}
		return u, nil
	}
	if err := ev.finish(ctx, nil); err != nil {
		u.rc.Close()
		return nil, err
	}
	return u, nil
}

// outcomeReader holds back the end of a use's stream, and its Close,
// until the use's outcome record is written, and turns a failure to write
// it into their error (AUDIT-3, fail closed; UseOptions.DeferOutcome).
type outcomeReader struct {
	rc   io.ReadCloser
	rec  <-chan error
	once sync.Once
	err  error
}

func (r *outcomeReader) wait() error {
	r.once.Do(func() { r.err = <-r.rec })
	return r.err
}

func (r *outcomeReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if errors.Is(err, io.EOF) {
		if werr := r.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (r *outcomeReader) Close() error {
	cerr := r.rc.Close()
	if werr := r.wait(); werr != nil {
		return werr
	}
	return cerr
}

// filterRows re-emits CSV without the given data rows; escape applies
// formula-injection escaping (exports).
func filterRows(rc io.ReadCloser, skip []int64, escape bool) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		cr := NewCSVReader(rc)
		cw := NewCSVWriter(pw)
		cw.Escape = escape
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, found := slices.BinarySearch(skip, int64(cr.Row())); found && cr.Row() > 0 {
				continue
			}
			if err := cw.Write(rec); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(cw.Flush())
	}()
	return struct {
		io.Reader
		io.Closer
	}{pr, closerFunc(func() error { pr.Close(); return rc.Close() })}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// ReadRows streams a version's rows as CSV for a caller who may read them:
// the owner's data providers or a read grantee (DATA-7); a train or
// evaluate grantee gets "not found". The data is verified first (DATA-3)
// and cells that would be evaluated as formulas are escaped.
func (s *Service) ReadRows(ctx context.Context, id string, version int) (io.ReadCloser, Version, error) {
	d, _, gs, ev, err := s.authorize(ctx, id, authz.DatasetReadRows, map[string]string{"version": strconv.Itoa(version)})
	if err != nil {
		return nil, Version{}, err
	}
	for _, g := range gs {
		if g.Purpose == authz.PurposeRead {
			ev.ev.Details["grant"] = g.ID
			break
		}
	}
	ver, err := s.loadVersion(ctx, d, version)
	if err == nil {
		err = readyVersion(ver)
	}
	if err != nil {
		return nil, Version{}, ev.finish(ctx, err)
	}
	ev.ev.Digest = "sha256:" + ver.Digest
	if _, err := s.sealer.Verify(ctx, dataRef(ver), ver.Digest); err != nil {
		return nil, Version{}, ev.finish(ctx, fmt.Errorf("dataset %s version %d: %w", d.ID, version, err))
	}
	rc, err := s.sealer.Open(ctx, dataRef(ver), ver.Digest)
	if err != nil {
		return nil, Version{}, ev.finish(ctx, err)
	}
	if err := ev.finish(ctx, nil); err != nil {
		rc.Close()
		return nil, Version{}, err
	}
	return filterRows(rc, nil, true), ver, nil
}

// SetQuarantine withholds (true) or releases (false) the rows that label
// screening flagged in a version (DATA-5): quarantined rows are left out of
// every training or evaluation stream. Only the owner's data providers
// decide.
func (s *Service) SetQuarantine(ctx context.Context, id string, version int, quarantine bool) (Version, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetWrite, map[string]string{"version": strconv.Itoa(version),
		"quarantine": strconv.FormatBool(quarantine)})
	if err != nil {
		return Version{}, err
	}
	ver, err := s.loadVersion(ctx, d, version)
	if err == nil {
		err = readyVersion(ver)
	}
	if err == nil && quarantine && ver.Flagged == 0 {
		err = rampart.Invalid("version", "label screening flagged no rows in this version")
	}
	if err == nil {
		err = s.store.SetQuarantined(ctx, d.ID, version, quarantine)
	}
	if err != nil {
		return Version{}, ev.finish(ctx, err)
	}
	ver.Quarantined = quarantine
	return ver, ev.finish(ctx, nil)
}

// RecordLineage records that object (kind "model", "job", …) was derived
// from a dataset version, so that deleting the data flags it (DATA-8). The
// caller must still be allowed to train on or evaluate the version.
func (s *Service) RecordLineage(ctx context.Context, id string, version int, kind, objectID string) error {
	if kind == "" || len(kind) > 32 || objectID == "" || len(objectID) > 128 {
		return rampart.Invalid("object", "kind and object ID are required")
	}
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.ErrUnauthenticated
	}
	d, res, gs, err := func() (Dataset, authz.Resource, []Grant, error) {
		d, err := s.load(ctx, id)
		if err != nil {
			return d, authz.Resource{}, nil, err
		}
		r, gs, err := s.resource(ctx, d)
		return d, r, gs, err
	}()
	if err != nil {
		return err
	}
	action := authz.DatasetTrain
	if !authz.Decide(c.Principal, action, res).Allow {
		action = authz.DatasetEvaluate
	}
	_, ev, err := s.guard(ctx, action, res, map[string]string{"version": strconv.Itoa(version), "lineage": kind + "/" + objectID})
	if err != nil {
		return err
	}
	ver, err := s.loadVersion(ctx, d, version)
	if err != nil {
		return ev.finish(ctx, err)
	}
	l := Lineage{DatasetID: d.ID, Version: ver.Version, TenantID: d.TenantID, Kind: kind, ObjectID: objectID,
		ObjectTenantID: c.Principal.TenantID, CreatedAt: s.now().UTC()}
	for _, g := range gs {
		if g.Purpose == authz.PurposeTrain || g.Purpose == authz.PurposeEvaluate {
			l.GrantID = g.ID
		}
	}
	return ev.finish(ctx, s.store.AddLineage(ctx, l))
}

// Lineage lists what was derived from a dataset, deleted datasets included
// (their entries carry DatasetDeletedAt): the models to flag after a
// deletion (DATA-8). Only the owning tenant's readers may list it.
func (s *Service) Lineage(ctx context.Context, id string) ([]Lineage, error) {
	if !rampart.ValidID(PrefixDataset, id) {
		return nil, missing("dataset")
	}
	d, err := s.store.GetDataset(ctx, id)
	if errors.Is(err, rampart.ErrNotFound) {
		return nil, missing("dataset")
	} else if err != nil {
		return nil, err
	}
	_, ev, err := s.guard(ctx, authz.DatasetRead, authz.Resource{Kind: "dataset", ID: d.ID, TenantID: d.TenantID}, map[string]string{"lineage": "list"})
	if err != nil {
		return nil, err
	}
	ls, err := s.store.ListLineage(ctx, d.ID)
	return ls, ev.finish(ctx, err)
}

func lineageSummary(ls []Lineage) string {
	// Audit detail values are bounded (512 bytes): list what fits, then a count.
	var b strings.Builder
	for i, l := range ls {
		item := l.Kind + "/" + l.ObjectID
		if b.Len()+len(item) > 440 {
			fmt.Fprintf(&b, ",+%d", len(ls)-i)
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(item)
	}
	return b.String()
}
