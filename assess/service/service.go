// Package service runs assessments as asynchronous jobs (issue 8): a
// caller who may read a model version starts one; it runs in the
// background against the verified model (registry.Load, MODEL-1) with the
// version's training data (members) and an optional held-out dataset
// (non-members, the attacker's natural rows), and finishes with its report
// and headline metrics in one store update (PRIV-1..3). Progress is kept
// in memory for event streams. Assessments inherit the model's
// authorization: a version the caller may not read is 404.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/registry"
)

// Attacks an assessment may run.
var Attacks = []string{"membership", "extraction", "evasion", "poisoning"}

// Query budget bounds (the extraction attacker's largest budget).
const (
	MinQueries     = 100
	MaxQueries     = 100_000
	DefaultQueries = 2_000
	maxRows        = 200_000 // rows read from a dataset for an assessment
)

// PrefixAssessment prefixes assessment IDs.
const PrefixAssessment = "asm"

// CreateInput starts an assessment.
type CreateInput struct {
	Model   string   // model ID
	Version int      // 0: the latest
	Attacks []string // default: membership, extraction, evasion
	Queries int      // extraction budget; 0: DefaultQueries
	Seed    uint64
	// Holdout is a dataset (ID, version; 0 = latest) of rows the model
	// was not trained on, with the same columns.
	HoldoutID      string
	HoldoutVersion int
	// Endpoint (name or ID in the caller's tenant), when set, is attacked
	// through its HTTP API as well: extraction then runs with the
	// endpoint's guards on, as fresh service-user principals (issue 8).
	Endpoint string
}

// EndpointAccess lets assessments attack a live endpoint the way a real
// service user would: over HTTP, authenticated as a freshly minted
// service-user principal of the endpoint's tenant, so every guard (rate
// limit, budget, validation, OOD, output policy, extraction monitor) is part
// of what is measured.
type EndpointAccess struct {
	// Resolve returns the endpoint, authorizing the caller (404 otherwise).
	Resolve func(ctx context.Context, ref string) (rampart.Endpoint, error)
	// Mint creates a service-user principal in tenant and returns its API
	// key and a function that disables it afterwards.
	Mint    func(ctx context.Context, tenantID, name string) (token string, retire func(), err error)
	BaseURL func() string
	Client  *http.Client
}

// SetEndpointAccess enables endpoint assessments.
func (s *Service) SetEndpointAccess(e *EndpointAccess) { s.endpoints = e }

// Event is one progress message of a running assessment.
type Event struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
	Done    bool      `json:"done,omitempty"`
}

// Service runs assessments.
type Service struct {
	store    record.Store
	registry *registry.Service
	datasets *dataset.Service
	audit    rampart.Auditor
	log      *slog.Logger
	now      func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	endpoints *EndpointAccess

	mu     sync.Mutex
	events map[string][]Event
	wake   map[string]chan struct{}
}

// New returns the service. Assessments left running by a previous process
// are failed with a reason first: they are never half-written.
func New(ctx context.Context, store record.Store, reg *registry.Service, ds *dataset.Service, audit rampart.Auditor, log *slog.Logger) (*Service, error) {
	if store == nil || reg == nil || ds == nil || audit == nil {
		return nil, errors.New("assess/service: store, registry, datasets and audit are required")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{store: store, registry: reg, datasets: ds, audit: audit, log: log, now: time.Now,
		events: map[string][]Event{}, wake: map[string]chan struct{}{}}
	if n, err := store.FailRunningAssessments(ctx, "interrupted: the server stopped while the assessment ran", s.now().UTC()); err != nil {
		return nil, fmt.Errorf("assess/service: failing interrupted assessments: %w", err)
	} else if n > 0 {
		log.Warn("failed interrupted assessments", "count", n)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Close stops running assessments (they end failed) and waits for them.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Create validates the request, checks the caller may read the version
// (404 otherwise) and starts the assessment.
func (s *Service) Create(ctx context.Context, in CreateInput) (record.Assessment, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return record.Assessment{}, rampart.ErrUnauthenticated
	}
	if len(in.Attacks) == 0 {
		in.Attacks = []string{"membership", "extraction", "evasion"}
	}
	for _, a := range in.Attacks {
		if !slices.Contains(Attacks, a) {
			return record.Assessment{}, rampart.Invalid("attacks", "unknown attack %q (membership, extraction, evasion, poisoning)", a)
		}
	}
	in.Attacks = slices.Compact(slices.Sorted(slices.Values(in.Attacks)))
	if in.Queries == 0 {
		in.Queries = DefaultQueries
	}
	if in.Queries < MinQueries || in.Queries > MaxQueries {
		return record.Assessment{}, rampart.Invalid("queries", "queries must be in [%d, %d]", MinQueries, MaxQueries)
	}
	if in.Version < 0 || in.HoldoutVersion < 0 {
		return record.Assessment{}, rampart.Invalid("version", "versions are positive (0: the latest)")
	}
	var endpointID string
	if in.Endpoint != "" {
		if s.endpoints == nil {
			return record.Assessment{}, rampart.Invalid("endpoint", "endpoint assessments are not available on this server")
		}
		ep, err := s.endpoints.Resolve(ctx, in.Endpoint)
		if err != nil {
			return record.Assessment{}, err
		}
		if in.Model != "" && in.Model != ep.ModelID {
			return record.Assessment{}, rampart.Invalid("model_id", "the endpoint serves another model")
		}
		in.Model, in.Version, in.Endpoint, endpointID = ep.ModelID, ep.ModelVersion, ep.ID, ep.ID
	}
	if in.Model == "" {
		return record.Assessment{}, rampart.Invalid("model_id", "give model_id or endpoint")
	}
	v, err := s.registry.GetVersion(ctx, in.Model, in.Version)
	if err != nil {
		return record.Assessment{}, err
	}
	if in.HoldoutID != "" {
		// A dataset the caller may not see is 404 now, not a failed job later.
		if _, err := s.datasets.Get(ctx, in.HoldoutID); err != nil {
			return record.Assessment{}, err
		}
	}
	if in.HoldoutID == "" && slices.Contains(in.Attacks, "membership") {
		return record.Assessment{}, rampart.Invalid("holdout_dataset_id", "membership inference needs a held-out dataset (rows the model was not trained on)")
	}
	a := record.Assessment{ID: rampart.NewID(PrefixAssessment), TenantID: v.TenantID, ModelID: v.ModelID, ModelVersion: v.Version,
		Endpoint: endpointID, Attacks: in.Attacks, Status: record.Running, CreatedBy: c.Principal.ID, CreatedAt: s.now().UTC()}
	ev := rampart.AuditEvent{Time: a.CreatedAt, TenantID: a.TenantID, Principal: c.Principal.ID, Role: c.Principal.Role,
		Action: "assessment.create", Resource: "assessment/" + a.ID, Allow: true, Outcome: "ok", RequestID: c.RequestID,
		Digest: v.Digest, Details: map[string]string{"model": v.ModelID, "version": strconv.Itoa(v.Version), "attacks": fmt.Sprint(in.Attacks),
			"queries": strconv.Itoa(in.Queries)}}
	if err := s.audit.Record(ctx, ev); err != nil {
		return record.Assessment{}, &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable", Err: err}
	}
	if err := s.store.CreateAssessment(ctx, a); err != nil {
		return record.Assessment{}, err
	}
	// The job keeps the caller (its data access is the caller's) but not
	// the request's cancellation; the service's own context stops it.
	jctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		go func() {
			select {
			case <-s.ctx.Done():
				stop()
			case <-jctx.Done():
			}
		}()
		s.run(jctx, a, v.ModelVersion, in)
	}()
	return a, nil
}

// authorized returns the tenant's assessment if the caller may read its
// model (404 like a missing one otherwise).
func (s *Service) authorized(ctx context.Context, id string) (record.Assessment, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return record.Assessment{}, rampart.ErrUnauthenticated
	}
	a, err := s.store.GetAssessment(ctx, c.Principal.TenantID, id)
	if err != nil {
		return record.Assessment{}, err
	}
	if _, err := s.registry.GetVersion(ctx, a.ModelID, a.ModelVersion); err != nil {
		if errors.Is(err, rampart.ErrForbidden) {
			return record.Assessment{}, err
		}
		return record.Assessment{}, &rampart.Error{Code: rampart.CodeNotFound, Message: "assessment not found"}
	}
	return a, nil
}

// Get returns an assessment without its report.
func (s *Service) Get(ctx context.Context, id string) (record.Assessment, error) {
	a, err := s.authorized(ctx, id)
	a.Report = nil
	return a, err
}

// Report returns a finished assessment's report.
func (s *Service) Report(ctx context.Context, id string) (*assess.Report, error) {
	a, err := s.authorized(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.Status != record.Succeeded {
		return nil, rampart.Errorf(rampart.CodeConflict, "assessment %s is %s; only a succeeded assessment has a report", a.ID, a.Status)
	}
	var r assess.Report
	if err := json.Unmarshal(a.Report, &r); err != nil {
		return nil, fmt.Errorf("assessment %s: report: %w", a.ID, err)
	}
	return &r, nil
}

// List lists a model's assessments (the caller must read the model).
func (s *Service) List(ctx context.Context, modelID string, version int) ([]record.Assessment, error) {
	m, err := s.registry.GetModel(ctx, modelID)
	if err != nil {
		return nil, err
	}
	return s.store.ListAssessments(ctx, m.TenantID, m.ID, version)
}

// Events returns the progress events after seq and a channel closed when
// more arrive (nil once the assessment is done or unknown to this
// process).
func (s *Service) Events(ctx context.Context, id string, after int64) ([]Event, <-chan struct{}, error) {
	a, err := s.authorized(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.events[a.ID]
	var out []Event
	for _, e := range evs {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	if a.Status != record.Running || (len(evs) > 0 && evs[len(evs)-1].Done) {
		if len(evs) == 0 {
			out = append(out, Event{Seq: 1, Time: a.CreatedAt, Message: a.Status + " " + a.Reason, Done: true})
		}
		return out, nil, nil
	}
	ch, ok := s.wake[a.ID]
	if !ok {
		ch = make(chan struct{})
		s.wake[a.ID] = ch
	}
	return out, ch, nil
}

func (s *Service) emit(id, msg string, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.events[id]
	s.events[id] = append(evs, Event{Seq: int64(len(evs) + 1), Time: s.now().UTC(), Message: msg, Done: done})
	if ch, ok := s.wake[id]; ok {
		close(ch)
		delete(s.wake, id)
	}
}

// run executes the attacks and finishes the assessment.
func (s *Service) run(ctx context.Context, a record.Assessment, v rampart.ModelVersion, in CreateInput) {
	start := s.now()
	rep, err := s.attack(ctx, a, v, in)
	fin := s.now().UTC()
	a.FinishedAt = &fin
	if err != nil {
		a.Status, a.Reason = record.Failed, reason(err)
		s.log.Warn("assessment failed", "assessment", a.ID, "err", err)
	} else {
		a.Status = record.Succeeded
		rep.Timings["total"] = time.Since(start).Seconds()
		a.Metrics = rep.Metrics()
		if a.Report, err = json.Marshal(rep); err != nil {
			a.Status, a.Reason, a.Metrics, a.Report = record.Failed, "the report could not be encoded", nil, nil
		}
	}
	if err := s.store.FinishAssessment(context.WithoutCancel(ctx), a); err != nil {
		s.log.Error("finishing assessment", "assessment", a.ID, "err", err)
	}
	s.emit(a.ID, a.Status+" "+a.Reason, true)
}

// reason is the failure text a caller sees: the error code's message for
// platform errors, never internals.
func reason(err error) string {
	var re *rampart.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled: the server stopped"
	case errors.As(err, &re) && re.Code != rampart.CodeInternal:
		return re.Error()
	case errors.Is(err, assess.ErrInput), errors.Is(err, ml.ErrSchema), errors.Is(err, ml.ErrData):
		return err.Error()
	}
	return "internal error while assessing"
}

func (s *Service) readFrame(ctx context.Context, id string, version int, purpose authz.Purpose) (*ml.Frame, error) {
	if version == 0 {
		d, err := s.datasets.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		version = d.Latest
	}
	u, err := s.datasets.Open(ctx, id, version, purpose)
	if err != nil {
		return nil, err
	}
	defer u.Close()
	return ml.ReadCSV(u, ml.CSVOptions{MaxRows: maxRows})
}

// Stream sends the events after seq, then new ones as they come, and
// closes the channel after the final event or when ctx ends.
func (s *Service) Stream(ctx context.Context, id string, after int64) (<-chan Event, error) {
	evs, wake, err := s.Events(ctx, id, after)
	if err != nil {
		return nil, err
	}
	ch := make(chan Event)
	go func() {
		defer close(ch)
		for {
			for _, e := range evs {
				select {
				case ch <- e:
					after = e.Seq
				case <-ctx.Done():
					return
				}
			}
			if wake == nil {
				return
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			}
			if evs, wake, err = s.Events(ctx, id, after); err != nil {
				return
			}
		}
	}()
	return ch, nil
}
