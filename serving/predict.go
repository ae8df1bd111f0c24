package serving

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/guard"
)

// Protocol is the wire format of a prediction request.
type Protocol int

// The protocols.
const (
	ProtocolOIP  Protocol = iota // Open Inference Protocol v2 (KServe V2) REST
	ProtocolRows                 // POST /v1/endpoints/{endpoint}/predict
)

// PredictInput is one prediction request.
type PredictInput struct {
	Ref      string // endpoint name or ID
	Version  string // OIP /versions/{v}: must be the served version if set
	Protocol Protocol
	Body     []byte
}

// PredictOutput is the response: the encoded body and the headers every
// prediction carries (INF-6).
type PredictOutput struct {
	Body         []byte
	ModelDigest  string
	ModelVersion int
	Signature    string // compact JWS when the endpoint signs
	OODRows      int
}

// guardLog accumulates the guard decisions of one request for its audit
// event.
type guardLog []byte

func (g *guardLog) add(name, decision string) {
	if len(*g) > 0 {
		*g = append(*g, ' ')
	}
	*g = append(append(append(*g, name...), '='), decision...)
}

// Predict runs one request through the guard pipeline (package comment).
// Every outcome, refusals included, is recorded in the audit log before the
// caller sees it; if the record cannot be written the prediction is
// withheld (fail closed, AUDIT-3).
func (s *Service) Predict(ctx context.Context, in PredictInput) (*PredictOutput, error) {
	start := time.Now()
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, rampart.ErrUnauthenticated
	}
	ep, granted, err := s.lookup(ctx, c, in.Ref)
	if err != nil {
		return nil, err
	}
	// Authorization (IAM-2): a foreign endpoint without a grant never gets
	// here (lookup answers 404); a same-tenant role without the action is 403.
	d := authz.Decide(c.Principal, authz.Predict, resourceOf(ep, granted))
	ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: ep.TenantID, Principal: c.Principal.ID, Role: c.Principal.Role,
		Action: string(authz.Predict), Resource: "endpoint/" + ep.ID, Allow: d.Allow, Reason: d.Reason, RequestID: c.RequestID,
		Digest: ep.ModelDigest, Details: map[string]string{"model": ep.ModelID, "model_version": strconv.Itoa(ep.ModelVersion)}}
	if c.Principal.TenantID != ep.TenantID {
		ev.Details["caller_tenant"] = c.Principal.TenantID
	}
	gl := guardLog(make([]byte, 0, 160))
	out, err := s.predict(ctx, c, ep, d, in, &gl, &ev)
	ev.Details["guards"] = string(gl)
	ev.Time = s.now().UTC()
	outcome := "ok"
	if err != nil {
		ev.Outcome = string(rampart.ErrorCode(err))
		outcome = ev.Outcome
		var rj *guard.Rejection
		if errors.As(err, &rj) {
			ev.Reason = "refused by guard " + rj.Kind
			outcome = rj.Kind
			s.metrics.rejections.WithLabelValues(ep.ID, rj.Kind).Inc()
		}
	} else {
		ev.Outcome = "ok"
	}
	em := s.metrics.of(ep.ID)
	if outcome == "ok" {
		em.ok.Inc()
	} else {
		s.metrics.requests.WithLabelValues(ep.ID, outcome).Inc()
	}
	if aerr := s.recordBoth(ctx, c, ep, ev); aerr != nil {
		return nil, errors.Join(err, aerr)
	}
	em.latency.Observe(time.Since(start).Seconds())
	return out, err
}

// recordBoth records the prediction event in the endpoint's tenant and, for
// a caller of another tenant (a grant), in the caller's tenant too.
func (s *Service) recordBoth(ctx context.Context, c rampart.Caller, ep rampart.Endpoint, ev rampart.AuditEvent) error {
	if err := s.audit.Record(ctx, ev); err != nil {
		return unavailable(err)
	}
	if c.Principal.TenantID != ep.TenantID {
		ev.TenantID = c.Principal.TenantID
		if err := s.audit.Record(ctx, ev); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

func (s *Service) predict(ctx context.Context, c rampart.Caller, ep rampart.Endpoint, d authz.Decision, in PredictInput,
	gl *guardLog, ev *rampart.AuditEvent) (*PredictOutput, error) {
	if !d.Allow {
		gl.add("authz", "deny")
		return nil, d.Err("endpoint")
	}
	gl.add("authz", "allow")
	if in.Version != "" && in.Version != strconv.Itoa(ep.ModelVersion) {
		return nil, &rampart.Error{Code: rampart.CodeNotFound, Message: "model version not served by this endpoint"}
	}
	pol := ep.Policy
	key := ep.ID + "\x00" + c.Principal.ID
	now := s.now()

	// Extraction monitor verdicts from earlier requests (INF-3).
	if flagged, _ := s.monitor.Flagged(key); flagged {
		switch pol.Extraction {
		case rampart.ExtractionBlock:
			gl.add("extraction", "block")
			return nil, &guard.Rejection{Kind: guard.KindExtractionSuspected, Err: &rampart.Error{Code: rampart.CodeForbidden,
				Message: "this principal's queries look like a model-extraction attempt; contact the endpoint's owner"}}
		case rampart.ExtractionThrottle:
			gl.add("extraction", "throttle")
			if err := s.limiter.Allow(key+"\x00throttle", 1, 1, 1, now); err != nil {
				rj := err.(*guard.Rejection)
				rj.Kind = guard.KindExtractionSuspected
				rj.Err.Message = "this principal's queries look like a model-extraction attempt and are throttled"
				return nil, rj
			}
		}
	}

	// Fair share between tenants (TEN-3).
	release, err := s.fair.acquire(ctx, c.Principal.TenantID)
	if err != nil {
		gl.add("fair_share", "queue-full")
		return nil, err
	}
	defer release()

	// Rate limit per principal × endpoint (INF-1).
	if err := s.limiter.Allow(key, pol.RatePerSec, pol.Burst, 1, now); err != nil {
		gl.add("rate", "limited")
		return nil, err
	}
	gl.add("rate", "ok")

	// The verified model (MODEL-1): loaded through the registry's checks.
	sm, err := s.load(ctx, ep)
	if err != nil {
		gl.add("model", "unverified")
		return nil, err
	}
	schema := sm.schema(pol.RangeMargin)

	// Decoding: structure, types, shapes, sizes (INF-4).
	var rows *guard.Rows
	var meta OIPMeta
	if in.Protocol == ProtocolOIP {
		rows, meta, err = DecodeOIP(in.Body, schema)
	} else {
		rows, err = DecodeRows(in.Body, schema, pol.MaxRows)
	}
	if err != nil {
		gl.add("validation", "malformed")
		return nil, err
	}
	ev.Details["rows"] = strconv.Itoa(rows.N)
	ev.Sensitive = map[string]string{"input_digest": Digest(in.Body)}

	// Query budget per principal per day and in total (INF-1).
	if err := s.budget.Take(ctx, ep.ID, c.Principal.ID, int64(rows.N), pol.BudgetPerDay, pol.BudgetTotal, now); err != nil {
		gl.add("budget", "exhausted")
		return nil, err
	}
	gl.add("budget", "ok")

	// Schema, ranges, missing values, size (INF-4).
	if err := schema.Validate(rows, pol.MaxRows); err != nil {
		gl.add("validation", "invalid")
		return nil, err
	}
	gl.add("validation", "ok")

	// Out-of-distribution score (INF-5) and the extraction monitor's view
	// of each row (INF-3): every value's normal score computed once.
	F := len(schema.Features)
	// The rows' OOD scores, top probabilities and output probabilities
	// share one allocation.
	w := sm.width
	pw := w // probabilities a row's output may carry
	if pol.Output == rampart.OutputLabel {
		pw = 1
	}
	fbuf := make([]float64, rows.N*(2+pw))
	ood, pmax, probs := fbuf[:rows.N:rows.N], fbuf[rows.N:2*rows.N:2*rows.N], fbuf[2*rows.N:]
	var xs []float64 // rows in the monitor's space, row-major
	var oodFlags []bool
	nOOD := 0
	// The score also feeds the extraction monitor; with both off it is skipped.
	if schema.Profiled && (pol.OOD != rampart.OODOff || pol.Extraction != rampart.ExtractionOff) {
		thr := pol.OODThreshold
		if thr == 0 {
			thr = guard.DefaultOODThreshold
		}
		if pol.Extraction != rampart.ExtractionOff {
			// Recycled: nothing keeps xs past this request (the monitor
			// copies the rows it keeps).
			bp := xsBuf.Get().(*[]float64)
			if cap(*bp) < rows.N*F {
				*bp = make([]float64, rows.N*F)
			}
			xs = (*bp)[:rows.N*F]
			defer xsBuf.Put(bp)
		}
		scoreRows(schema, rows, xs, ood)
		if pol.OOD != rampart.OODOff {
			oodFlags = make([]bool, rows.N)
			for i, v := range ood {
				if v > thr {
					oodFlags[i] = true
					nOOD++
				}
			}
		}
		if nOOD > 0 {
			s.metrics.ood.WithLabelValues(ep.ID, pol.OOD).Add(float64(nOOD))
		}
		if pol.OOD == rampart.OODReject && nOOD > 0 {
			gl.add("ood", "reject:"+strconv.Itoa(nOOD))
			var bad []string
			for i, f := range oodFlags {
				if f && len(bad) < 10 {
					bad = append(bad, strconv.Itoa(i))
				}
			}
			return nil, &guard.Rejection{Kind: guard.KindOutOfDistribution, Err: &rampart.Error{Code: rampart.CodeInvalid, Field: "inputs",
				Message: "row(s) " + strings.Join(bad, ", ") + " are out of the distribution the model was trained on"}}
		}
		gl.add("ood", pol.OOD+":"+strconv.Itoa(nOOD))
	}

	// The model.
	scores, err := sm.scores(rows, schema)
	if err != nil {
		gl.add("model", "error")
		return nil, err
	}
	gl.add("model", "ok")

	// Output policy (INF-2). The rows' probabilities share one buffer.
	op := guard.OutputPolicy{Mode: pol.Output, TopK: pol.TopK, Decimals: pol.Decimals}
	preds := make([]guard.Prediction, rows.N)
	classIdx := make([]int, rows.N)
	for i := range rows.N {
		row := scores[i*w : (i+1)*w]
		preds[i].Proba = probs[i*pw : i*pw : (i+1)*pw]
		op.Apply(sm.classes, row, sm.regression, &preds[i])
		best := 0
		for k := 1; k < len(row); k++ {
			if row[k] > row[best] {
				best = k
			}
		}
		classIdx[i], pmax[i] = best, 1
		if !sm.regression {
			pmax[i] = row[best]
		}
	}
	gl.add("output", pol.Output)

	// Extraction monitor (INF-3).
	if pol.Extraction != rampart.ExtractionOff {
		qs := make([]guard.Query, rows.N)
		for i := range qs {
			var x []float64
			if xs != nil {
				x = xs[i*F : (i+1)*F : (i+1)*F]
			} else { // unprofiled schema: the raw row
				x = schema.Normalise(rows, i, nil)
			}
			qs[i] = guard.Query{X: x, Class: classIdx[i], PMax: pmax[i], OOD: ood[i], Z2: schema.Plausibility(x)}
			if sm.regression {
				qs[i].Class = 0
			}
		}
		v := s.monitor.ObserveRows(key, schema, rows, qs, now)
		if v.New {
			s.metrics.extraction.WithLabelValues(ep.ID).Inc()
			alert := rampart.AuditEvent{Time: s.now().UTC(), TenantID: ep.TenantID, Principal: c.Principal.ID, Role: c.Principal.Role,
				Action: "endpoint.extraction_alert", Resource: "endpoint/" + ep.ID, Allow: true, Outcome: "ok", Reason: v.Reason,
				RequestID: c.RequestID, Details: map[string]string{"policy": pol.Extraction}}
			if err := s.audit.Record(ctx, alert); err != nil {
				return nil, unavailable(err)
			}
		}
		decision := "ok"
		if v.Suspected {
			decision = "suspected"
		}
		gl.add("extraction", decision)
	}

	// Drift (INF-7).
	s.observeDrift(ctx, c, ep, sm, schema, rows, classIdx)

	// Response.
	var body []byte
	if pol.OOD != rampart.OODFlag {
		oodFlags = nil
	}
	if in.Protocol == ProtocolOIP {
		body, err = encodeOIP(ep, sm, op, preds, oodFlags, meta, c.RequestID)
	} else {
		body = encodeRows(ep, sm, op, preds, oodFlags)
	}
	if err != nil {
		return nil, err
	}
	s.metrics.of(ep.ID).rows.Add(float64(rows.N))
	ev.Sensitive["output_digest"] = Digest(body)
	out := &PredictOutput{Body: body, ModelDigest: sm.version.Digest, ModelVersion: sm.version.Version, OODRows: nOOD}
	if pol.Sign {
		jws, err := s.sign(ctx, Claims{Endpoint: ep.ID, ModelDigest: sm.version.Digest, ModelVersion: sm.version.Version,
			RequestDigest: Digest(in.Body), ResponseDigest: Digest(body), RequestID: c.RequestID, IssuedAt: now.Unix()})
		if err != nil {
			return nil, err
		}
		out.Signature = jws
		gl.add("sign", "jws")
	}
	return out, nil
}

func (s *Service) observeDrift(ctx context.Context, c rampart.Caller, ep rampart.Endpoint, sm *servedModel, schema *guard.Schema, rows *guard.Rows, classIdx []int) {
	if !schema.Profiled {
		return
	}
	s.mu.Lock()
	d := s.drift[ep.ID]
	if d == nil {
		d = guard.NewDrift(schema, len(sm.classes), 0)
		s.drift[ep.ID] = d
	}
	s.mu.Unlock()
	var cls []int
	if !sm.regression {
		cls = classIdx
	}
	rep, closed := d.Observe(rows, cls)
	if !closed {
		return
	}
	s.metrics.psi.WithLabelValues(ep.ID, "input").Set(rep.InputPSI)
	s.metrics.psi.WithLabelValues(ep.ID, "prediction").Set(rep.PredictionPSI)
	if rep.Alert {
		ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: ep.TenantID, Principal: c.Principal.ID, Role: c.Principal.Role,
			Action: "endpoint.drift_alert", Resource: "endpoint/" + ep.ID, Allow: true, Outcome: "ok",
			Reason:    "population stability index above " + strconv.FormatFloat(guard.DriftAlertPSI, 'f', 2, 64) + " (INF-7)",
			RequestID: c.RequestID, Details: map[string]string{"input_psi": strconv.FormatFloat(rep.InputPSI, 'f', 3, 64),
				"feature": rep.Feature, "prediction_psi": strconv.FormatFloat(rep.PredictionPSI, 'f', 3, 64)}}
		if err := s.audit.Record(ctx, ev); err != nil {
			s.log.WarnContext(ctx, "drift alert not recorded", "endpoint", ep.ID, "err", err)
		}
	}
}

// Stats is an endpoint's monitoring view.
type Stats struct {
	Endpoint rampart.Endpoint  `json:"endpoint"`
	Drift    guard.DriftReport `json:"drift"`
}

// Stats returns the endpoint's drift report (endpoint.read).
func (s *Service) Stats(ctx context.Context, ref string) (Stats, error) {
	ep, _, _, err := s.authorized(ctx, ref, authz.EndpointUpdate, map[string]string{"stats": "true"})
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Endpoint: ep}
	s.mu.Lock()
	d := s.drift[ep.ID]
	s.mu.Unlock()
	if d != nil {
		st.Drift = d.Report()
	}
	return st, nil
}

var xsBuf = sync.Pool{New: func() any { return new([]float64) }}

// scoreRows runs Schema.ScoreRange over the rows, on every core for large
// batches.
func scoreRows(sc *guard.Schema, r *guard.Rows, x, ood []float64) {
	const chunk = 2048
	parts := min(runtime.GOMAXPROCS(0), (r.N+chunk-1)/chunk)
	if parts <= 1 {
		sc.ScoreRange(r, 0, r.N, x, ood)
		return
	}
	var wg sync.WaitGroup
	for k := range parts {
		lo, hi := r.N*k/parts, r.N*(k+1)/parts
		wg.Go(func() { sc.ScoreRange(r, lo, hi, x, ood) })
	}
	wg.Wait()
}

func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// appendString appends s as a JSON string exactly as json.Marshal writes
// it: plain printable ASCII directly, anything else through json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
