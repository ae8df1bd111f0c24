// Package serving runs inference endpoints (issue 7): endpoints of a
// tenant's registered models, the Open Inference Protocol v2 REST codec and
// the guard pipeline every prediction passes, in this order:
// authentication (httpapi) → authorization → fair share (TEN-3) → rate
// limit (INF-1) → decoding → query budget (INF-1) → input validation
// (INF-4) → out-of-distribution score (INF-5) → verified model (MODEL-1) →
// output policy (INF-2) → extraction monitor (INF-3) → audit (AUDIT-3,
// AUDIT-5) → response with the model digest and an optional JWS (INF-6);
// drift (INF-7) is tracked per endpoint on the side.
//
// Like the other services, every caller-facing method loads the object,
// authorizes the caller through authz, records the decision in the audit log
// (fail closed) and only then acts.
package serving

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/enforce"
	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/keyring"
	"github.com/rampart-mlaas/rampart/registry"
)

// Options configure the service.
type Options struct {
	Store    rampart.EndpointStore
	Models   rampart.ModelStore
	Registry *registry.Service
	Audit    rampart.Auditor
	// Keys signs responses (INF-6); nil disables signing.
	Keys    *keyring.Keyring
	Metrics prometheus.Registerer
	Log     *slog.Logger
	Now     func() time.Time
	// Concurrency is the number of predictions scored at once (default
	// 2 × GOMAXPROCS); QueuePerTenant bounds each tenant's waiting
	// requests (default 256) (TEN-3).
	Concurrency    int
	QueuePerTenant int
	// CacheTTL bounds how long another node's endpoint change may take to
	// reach this one (default 1 s); local changes apply at once.
	CacheTTL time.Duration
}

// Service is the serving service.
type Service struct {
	store    rampart.EndpointStore
	models   rampart.ModelStore
	registry *registry.Service
	audit    rampart.Auditor
	keys     *keyring.Keyring
	log      *slog.Logger
	now      func() time.Time
	ttl      time.Duration

	limiter *guard.Limiter
	budget  *guard.Budget
	monitor *guard.Monitor
	fair    *fairShare
	metrics *metrics

	mu     sync.Mutex
	gen    uint64 // bumped by every local change: invalidates the caches
	eps    map[string]cachedEndpoint
	grants map[string]cachedGrants
	served map[string]*servedModel // endpoint ID → loaded model
	loadMu sync.Map                // endpoint ID → *sync.Mutex (one load at a time)
	drift  map[string]*guard.Drift
}

type cachedEndpoint struct {
	ep  rampart.Endpoint
	err error
	at  time.Time
	gen uint64
}

type cachedGrants struct {
	ok  bool
	ep  rampart.Endpoint
	at  time.Time
	gen uint64
}

// New returns the service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Models == nil || o.Registry == nil || o.Audit == nil {
		return nil, errors.New("serving: store, models, registry and audit are required")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if o.QueuePerTenant <= 0 {
		o.QueuePerTenant = 256
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = time.Second
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	return &Service{store: o.Store, models: o.Models, registry: o.Registry, audit: o.Audit, keys: o.Keys, log: o.Log,
		now: o.Now, ttl: o.CacheTTL, limiter: guard.NewLimiter(), budget: guard.NewBudget(o.Store),
		monitor: guard.NewMonitor(guard.MonitorConfig{}), fair: newFairShare(o.Concurrency, o.QueuePerTenant),
		metrics: m, eps: map[string]cachedEndpoint{}, grants: map[string]cachedGrants{},
		served: map[string]*servedModel{}, drift: map[string]*guard.Drift{}}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckName validates an endpoint name: 1-63 of a-z, 0-9, '.', '_', '-',
// starting with a letter or digit, and not shaped like an endpoint ID.
func CheckName(name string) error {
	if !nameRE.MatchString(name) || rampart.ValidID(rampart.PrefixEndpoint, name) {
		return rampart.Invalid("name", "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit, and not look like an endpoint ID")
	}
	return nil
}

// DefaultPolicy is the guard policy of an endpoint that sets nothing:
// every guard on.
func DefaultPolicy() rampart.GuardPolicy {
	return rampart.GuardPolicy{RatePerSec: 50, Burst: 100, BudgetPerDay: 100_000, BudgetTotal: 10_000_000, MaxRows: 10_000,
		RangeMargin: 0.5, OOD: rampart.OODFlag, Output: rampart.OutputLabel, TopK: 3, Decimals: guard.DefaultDecimals,
		Extraction: rampart.ExtractionThrottle}
}

// normPolicy fills defaults into p and checks it.
func normPolicy(p rampart.GuardPolicy) (rampart.GuardPolicy, error) {
	d := DefaultPolicy()
	if p.RatePerSec == 0 {
		p.RatePerSec = d.RatePerSec
		if p.Burst == 0 {
			p.Burst = d.Burst
		}
	}
	if p.Burst == 0 {
		p.Burst = max(1, int(p.RatePerSec))
	}
	if p.BudgetPerDay == 0 {
		p.BudgetPerDay = d.BudgetPerDay
	}
	if p.BudgetTotal == 0 {
		p.BudgetTotal = d.BudgetTotal
	}
	if p.MaxRows == 0 {
		p.MaxRows = d.MaxRows
	}
	if p.RangeMargin == 0 {
		p.RangeMargin = d.RangeMargin
	}
	if p.OOD == "" {
		p.OOD = d.OOD
	}
	if p.Output == "" {
		p.Output = d.Output
	}
	if p.TopK == 0 {
		p.TopK = d.TopK
	}
	if p.Decimals == 0 {
		p.Decimals = d.Decimals
	}
	if p.Extraction == "" {
		p.Extraction = d.Extraction
	}
	switch {
	case p.RatePerSec > 1e6 || p.Burst < 0 || p.Burst > 1_000_000:
		return p, rampart.Invalid("policy.rate_per_sec", "rate must be at most 1e6/s and burst 0..1e6")
	case p.MaxRows < 0 || p.MaxRows > MaxRowsHard:
		return p, rampart.Invalid("policy.max_rows", "max_rows must be 1..%d", MaxRowsHard)
	case p.RangeMargin > 1000:
		return p, rampart.Invalid("policy.range_margin", "range_margin must be at most 1000")
	case p.OOD != rampart.OODOff && p.OOD != rampart.OODFlag && p.OOD != rampart.OODReject:
		return p, rampart.Invalid("policy.ood", "ood must be off, flag or reject")
	case p.OODThreshold < 0 || p.OODThreshold > 1e6:
		return p, rampart.Invalid("policy.ood_threshold", "ood_threshold must be 0..1e6")
	case p.Output != rampart.OutputLabel && p.Output != rampart.OutputTopK && p.Output != rampart.OutputProba:
		return p, rampart.Invalid("policy.output", "output must be label, topk or proba")
	case p.TopK < 1 || p.TopK > 100:
		return p, rampart.Invalid("policy.top_k", "top_k must be 1..100")
	case p.Decimals < -1 || p.Decimals > guard.MaxDecimals:
		return p, rampart.Invalid("policy.decimals", "decimals must be -1..%d", guard.MaxDecimals)
	case p.Output == rampart.OutputProba && p.Decimals < 0:
		return p, rampart.Invalid("policy.decimals", "output proba needs decimals ≥ 1")
	case p.Extraction != rampart.ExtractionOff && p.Extraction != rampart.ExtractionAlert &&
		p.Extraction != rampart.ExtractionThrottle && p.Extraction != rampart.ExtractionBlock:
		return p, rampart.Invalid("policy.extraction", "extraction must be off, alert, throttle or block")
	}
	return p, nil
}

func missing() error {
	return &rampart.Error{Code: rampart.CodeNotFound, Message: "endpoint not found"}
}

func unavailable(err error) error { return enforce.Unavailable(err) }

func resourceOf(ep rampart.Endpoint, granted bool) authz.Resource {
	r := authz.Resource{Kind: "endpoint", ID: ep.ID, TenantID: ep.TenantID}
	if granted {
		r.Grants = []authz.Purpose{authz.PurposePredict}
	}
	return r
}

// audited is an allowed, recorded action (see enforce).
type audited = enforce.Outcome

// decide authorizes the caller for action on res and records the decision
// (fail closed).
func (s *Service) decide(ctx context.Context, action authz.Action, res authz.Resource, details map[string]string) (rampart.Caller, *audited, error) {
	return (&enforce.Recorder{Audit: s.audit, Now: s.now}).Guard(ctx, action, res, details)
}

// invalidate drops every cached endpoint and grant after a local change.
func (s *Service) invalidate() {
	s.mu.Lock()
	s.gen++
	clear(s.eps)
	clear(s.grants)
	s.mu.Unlock()
}

// lookup finds the endpoint ref names for caller c: a name in the caller's
// tenant, or an endpoint ID of the caller's tenant or granted to the caller.
// granted reports whether access comes from a grant. A foreign endpoint
// without a grant is not found, exactly like a missing one (TEN-1).
func (s *Service) lookup(ctx context.Context, c rampart.Caller, ref string) (rampart.Endpoint, bool, error) {
	now := s.now()
	key := c.Principal.TenantID + "\x00" + ref
	s.mu.Lock()
	ce, ok := s.eps[key]
	gen := s.gen
	s.mu.Unlock()
	if !ok || ce.gen != gen || now.Sub(ce.at) > s.ttl {
		var ep rampart.Endpoint
		var err error
		switch {
		case rampart.ValidID(rampart.PrefixEndpoint, ref):
			ep, err = s.store.GetEndpoint(ctx, c.Principal.TenantID, ref)
		case CheckName(ref) == nil:
			ep, err = s.store.GetEndpointByName(ctx, c.Principal.TenantID, ref)
		default:
			err = missing()
		}
		if errors.Is(err, rampart.ErrNotFound) {
			err = missing()
		}
		if err != nil && !errors.Is(err, rampart.ErrNotFound) {
			return ep, false, err
		}
		ce = cachedEndpoint{ep: ep, err: err, at: now, gen: gen}
		s.mu.Lock()
		if len(s.eps) > 100_000 {
			clear(s.eps)
		}
		s.eps[key] = ce
		s.mu.Unlock()
	}
	if ce.err == nil {
		return ce.ep, false, nil
	}
	if !rampart.ValidID(rampart.PrefixEndpoint, ref) {
		return rampart.Endpoint{}, false, missing()
	}
	// Another tenant's endpoint: reachable only through a live grant.
	gkey := ref + "\x00" + c.Principal.ID
	s.mu.Lock()
	cg, ok := s.grants[gkey]
	s.mu.Unlock()
	if !ok || cg.gen != gen || now.Sub(cg.at) > s.ttl {
		gs, err := s.store.GrantsTo(ctx, ref, c.Principal)
		if err != nil {
			return rampart.Endpoint{}, false, err
		}
		cg = cachedGrants{at: now, gen: gen}
		for _, g := range gs {
			if !g.Covers(c.Principal) {
				continue
			}
			ep, err := s.store.GetEndpoint(ctx, g.TenantID, ref)
			if errors.Is(err, rampart.ErrNotFound) {
				continue
			} else if err != nil {
				return rampart.Endpoint{}, false, err
			}
			cg.ok, cg.ep = true, ep
			break
		}
		s.mu.Lock()
		if len(s.grants) > 100_000 {
			clear(s.grants)
		}
		s.grants[gkey] = cg
		s.mu.Unlock()
	}
	if !cg.ok {
		return rampart.Endpoint{}, false, missing()
	}
	return cg.ep, true, nil
}
