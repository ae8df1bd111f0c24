package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
)

// Service owns datasets. Every method loads the object, authorizes the
// caller against it through authz (TEN-1, IAM-2, DATA-7), records the
// decision in the audit log before acting (AUDIT-3, fail closed), then acts.
type Service struct {
	store  Store
	sealer Sealer
	audit  rampart.Auditor
	log    *slog.Logger
	now    func() time.Time
	// Limits for uploads; zero values mean the package defaults.
	Limits Options
	// uploads serialises uploads per dataset, so drift compares with the
	// version that really precedes.
	mu      sync.Mutex
	running map[string]bool
}

// New returns the service. now and log may be nil.
func New(store Store, sealer Sealer, audit rampart.Auditor, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{store: store, sealer: sealer, audit: audit, log: log, now: now, running: map[string]bool{}}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func missing(kind string) error {
	return &rampart.Error{Code: rampart.CodeNotFound, Message: kind + " not found"}
}

func unavailable(err error) error {
	return &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable; action refused", Err: err}
}

// event is one audit record in the making.
type event struct {
	s  *Service
	ev rampart.AuditEvent
}

// finish records the outcome of an allowed action (AUDIT-3); an audit
// failure turns success into refusal.
func (e *event) finish(ctx context.Context, err error) error {
	e.ev.Time = e.s.now().UTC()
	e.ev.Outcome = "ok"
	if err != nil {
		e.ev.Outcome = string(rampart.ErrorCode(err))
	}
	if aerr := e.s.audit.Record(context.WithoutCancel(ctx), e.ev); aerr != nil {
		if err != nil {
			return errors.Join(err, unavailable(aerr))
		}
		return unavailable(aerr)
	}
	return err
}

// guard authorizes the caller for action on res and records the decision
// before anything happens (AUDIT-3). The returned event records the outcome.
func (s *Service) guard(ctx context.Context, action authz.Action, res authz.Resource, details map[string]string) (rampart.Caller, *event, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return c, nil, rampart.ErrUnauthenticated
	}
	d := authz.Decide(c.Principal, action, res)
	ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: c.Principal.TenantID, Principal: c.Principal.ID,
		Role: c.Principal.Role, Action: string(action), Resource: res.Kind + "/" + res.ID, Allow: d.Allow,
		Reason: d.Reason, RequestID: c.RequestID, Details: details}
	if !d.Allow {
		ev.Outcome = string(rampart.ErrorCode(d.Err(res.Kind)))
		if err := s.audit.Record(ctx, ev); err != nil {
			return c, nil, unavailable(err)
		}
		return c, nil, d.Err(res.Kind)
	}
	ev.Outcome = "pending"
	if err := s.audit.Record(ctx, ev); err != nil {
		return c, nil, unavailable(err)
	}
	return c, &event{s: s, ev: ev}, nil
}

// load returns a live dataset; missing, deleted and malformed IDs are all
// "not found" (TEN-1).
func (s *Service) load(ctx context.Context, id string) (Dataset, error) {
	if !rampart.ValidID(PrefixDataset, id) {
		return Dataset{}, missing("dataset")
	}
	d, err := s.store.GetDataset(ctx, id)
	if errors.Is(err, rampart.ErrNotFound) || (err == nil && d.DeletedAt != nil) {
		return Dataset{}, missing("dataset")
	}
	return d, err
}

// liveGrants returns the caller's live grants on d (none for its own tenant).
func (s *Service) liveGrants(ctx context.Context, c rampart.Caller, d Dataset) ([]Grant, error) {
	if c.Principal.TenantID == d.TenantID {
		return nil, nil
	}
	var out []Grant
	cursor := ""
	for {
		gs, next, err := s.store.ListGrants(ctx, d.ID, rampart.Page{Cursor: cursor, Limit: rampart.MaxPageSize})
		if err != nil {
			return nil, err
		}
		now := s.now()
		for _, g := range gs {
			if g.Live(now) && g.GranteeTenantID == c.Principal.TenantID &&
				(g.GranteePrincipalID == "" || g.GranteePrincipalID == c.Principal.ID) {
				out = append(out, g)
			}
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// resource describes d for authz, with the purposes of the caller's live
// grants. Grants are read on every request, so an expired or revoked grant
// stops working on the next request (DATA-7).
func (s *Service) resource(ctx context.Context, d Dataset) (authz.Resource, []Grant, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return authz.Resource{}, nil, rampart.ErrUnauthenticated
	}
	gs, err := s.liveGrants(ctx, c, d)
	if err != nil {
		return authz.Resource{}, nil, err
	}
	r := authz.Resource{Kind: "dataset", ID: d.ID, TenantID: d.TenantID}
	for _, g := range gs {
		if !slices.Contains(r.Grants, g.Purpose) {
			r.Grants = append(r.Grants, g.Purpose)
		}
	}
	return r, gs, nil
}

// authorize loads a dataset and guards action on it.
func (s *Service) authorize(ctx context.Context, id string, action authz.Action, details map[string]string) (Dataset, authz.Resource, []Grant, *event, error) {
	d, err := s.load(ctx, id)
	if err != nil {
		return Dataset{}, authz.Resource{}, nil, nil, err
	}
	res, gs, err := s.resource(ctx, d)
	if err != nil {
		return Dataset{}, authz.Resource{}, nil, nil, err
	}
	_, ev, err := s.guard(ctx, action, res, details)
	if err != nil {
		return Dataset{}, authz.Resource{}, nil, nil, err
	}
	return d, res, gs, ev, nil
}

// CreateInput is a new dataset.
type CreateInput struct {
	Name   string
	Label  string
	Schema *Schema
}

// Create creates an empty dataset in the caller's tenant.
func (s *Service) Create(ctx context.Context, in CreateInput) (Dataset, error) {
	if !nameRE.MatchString(in.Name) {
		return Dataset{}, rampart.Invalid("name", "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")
	}
	if len(in.Label) > maxNameBytes {
		return Dataset{}, rampart.Invalid("label", "label must be at most %d bytes", maxNameBytes)
	}
	if in.Schema != nil {
		if err := in.Schema.Validate(); err != nil {
			return Dataset{}, err
		}
		if in.Label != "" && !slices.ContainsFunc(in.Schema.Columns, func(c Column) bool { return c.Name == in.Label }) {
			return Dataset{}, rampart.Invalid("label", "label column %q is not in the declared schema", in.Label)
		}
	}
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return Dataset{}, rampart.ErrUnauthenticated
	}
	_, ev, err := s.guard(ctx, authz.DatasetCreate, authz.Resource{Kind: "dataset", TenantID: c.Principal.TenantID},
		map[string]string{"name": in.Name})
	if err != nil {
		return Dataset{}, err
	}
	d := Dataset{ID: rampart.NewID(PrefixDataset), TenantID: c.Principal.TenantID, Name: in.Name, Label: in.Label,
		Schema: in.Schema, CreatedAt: s.now().UTC(), CreatedBy: c.Principal.ID}
	ev.ev.Resource = "dataset/" + d.ID
	return d, ev.finish(ctx, s.store.CreateDataset(ctx, d))
}

// Get returns a dataset's metadata.
func (s *Service) Get(ctx context.Context, id string) (Dataset, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetRead, nil)
	if err != nil {
		return Dataset{}, err
	}
	return d, ev.finish(ctx, nil)
}

// List lists the caller's tenant's datasets.
func (s *Service) List(ctx context.Context, p rampart.Page) ([]Dataset, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	_, ev, err := s.guard(ctx, authz.DatasetRead, authz.Resource{Kind: "dataset", TenantID: c.Principal.TenantID}, nil)
	if err != nil {
		return nil, "", err
	}
	ds, next, err := s.store.ListDatasets(ctx, c.Principal.TenantID, p)
	return ds, next, ev.finish(ctx, err)
}

// ListVersions lists a dataset's versions, deleted ones included.
func (s *Service) ListVersions(ctx context.Context, id string, p rampart.Page) ([]Version, string, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetRead, nil)
	if err != nil {
		return nil, "", err
	}
	vs, next, err := s.store.ListVersions(ctx, d.ID, p)
	return vs, next, ev.finish(ctx, err)
}

func (s *Service) loadVersion(ctx context.Context, d Dataset, v int) (Version, error) {
	if v <= 0 {
		return Version{}, missing("dataset version")
	}
	ver, err := s.store.GetVersion(ctx, d.ID, v)
	if errors.Is(err, rampart.ErrNotFound) {
		return Version{}, missing("dataset version")
	}
	return ver, err
}

func readyVersion(v Version) error {
	if v.Status != StatusReady {
		return missing("dataset version")
	}
	return nil
}

// GetVersion returns one version's metadata.
func (s *Service) GetVersion(ctx context.Context, id string, v int) (Version, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetRead, map[string]string{"version": strconv.Itoa(v)})
	if err != nil {
		return Version{}, err
	}
	ver, err := s.loadVersion(ctx, d, v)
	if err == nil && ver.Status == StatusIngesting {
		err = missing("dataset version") // not acknowledged yet
	}
	return ver, ev.finish(ctx, err)
}

// Report returns a version's data audit report. Callers who may not read
// rows (train/evaluate grantees, model developers, auditors) get it
// without row-level detail and data values (DATA-7).
func (s *Service) Report(ctx context.Context, id string, v int) (*Report, error) {
	d, res, _, ev, err := s.authorize(ctx, id, authz.DatasetRead, map[string]string{"version": strconv.Itoa(v)})
	if err != nil {
		return nil, err
	}
	ver, err := s.loadVersion(ctx, d, v)
	if err == nil {
		err = readyVersion(ver)
	}
	if err != nil {
		return nil, ev.finish(ctx, err)
	}
	rep, err := s.readReport(ctx, ver)
	if err != nil {
		return nil, ev.finish(ctx, err)
	}
	c, _ := rampart.CallerFrom(ctx)
	if !authz.Decide(c.Principal, authz.DatasetReadRows, res).Allow {
		rep = rep.Redacted()
		ev.ev.Details = map[string]string{"version": strconv.Itoa(v), "redacted": "true"}
	}
	return rep, ev.finish(ctx, nil)
}

const maxReportBytes = 64 << 20

func (s *Service) readReport(ctx context.Context, v Version) (*Report, error) {
	b, err := s.sealer.GetBytes(ctx, reportRef(v), v.ReportDigest, maxReportBytes)
	if err != nil {
		return nil, fmt.Errorf("dataset: read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("dataset: decode report: %w", err)
	}
	return &r, nil
}

// Policy returns the caller's tenant screening policy.
func (s *Service) Policy(ctx context.Context) (Policy, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return Policy{}, rampart.ErrUnauthenticated
	}
	_, ev, err := s.guard(ctx, authz.DatasetRead, authz.Resource{Kind: "dataset-policy", ID: c.Principal.TenantID, TenantID: c.Principal.TenantID}, nil)
	if err != nil {
		return Policy{}, err
	}
	p, err := s.store.GetDatasetPolicy(ctx, c.Principal.TenantID)
	return p, ev.finish(ctx, err)
}

// SetPolicy changes the caller's tenant screening policy (data provider).
func (s *Service) SetPolicy(ctx context.Context, pii, label string) (Policy, error) {
	if !slices.Contains([]string{PIIWarn, PIIBlock, PIIRequireDecl}, pii) {
		return Policy{}, rampart.Invalid("pii", "pii must be warn, block or require-declaration")
	}
	if !slices.Contains([]string{LabelWarn, LabelQuarantine}, label) {
		return Policy{}, rampart.Invalid("label", "label must be warn or quarantine")
	}
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return Policy{}, rampart.ErrUnauthenticated
	}
	_, ev, err := s.guard(ctx, authz.DatasetWrite, authz.Resource{Kind: "dataset-policy", ID: c.Principal.TenantID, TenantID: c.Principal.TenantID},
		map[string]string{"pii": pii, "label": label})
	if err != nil {
		return Policy{}, err
	}
	p := Policy{TenantID: c.Principal.TenantID, PII: pii, Label: label, UpdatedAt: s.now().UTC(), UpdatedBy: c.Principal.ID}
	return p, ev.finish(ctx, s.store.PutDatasetPolicy(ctx, p))
}

func normKinds(in []string) ([]string, error) {
	var out []string
	for _, k := range in {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !slices.Contains(PIIKinds, k) {
			return nil, rampart.Invalid("declare_pii", "unknown identifier kind %q (known: %s)", k, strings.Join(PIIKinds, ", "))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

func pageOf(cursor string) rampart.Page {
	return rampart.Page{Cursor: cursor, Limit: rampart.MaxPageSize}
}
