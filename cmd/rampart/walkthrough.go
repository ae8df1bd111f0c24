package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/compliance"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/examples"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// story is the quickstart walk-through: the whole MLaaS flow through the
// public API, as each role would drive it.
type story struct {
	g       *globals
	base    string
	op      *httpapi.Client
	bank    *httpapi.Client
	works   *httpapi.Client
	shop    *httpapi.Client
	ids     map[string]httpapi.WhoamiResponse
	summary []string
	// witnessDir keeps the checkpoints the walk-through verified, as a
	// client would, so a rerun checks consistency with the last one.
	witnessDir string
	dataDir    string
}

func (s *story) say(format string, args ...any) {
	if !s.g.json {
		fmt.Fprintf(s.g.out, format+"\n", args...)
	}
}

func (s *story) note(format string, args ...any) {
	s.summary = append(s.summary, fmt.Sprintf(format, args...))
}

// runStory runs the walk-through; every step must succeed.
func runStory(ctx context.Context, g *globals, base, opKey, witnessDir string, ts []demoTenant) error {
	s := &story{g: g, base: base, ids: map[string]httpapi.WhoamiResponse{}, witnessDir: witnessDir, dataDir: filepath.Dir(witnessDir)}
	var err error
	if s.op, err = httpapi.NewClient(base, opKey, ""); err != nil {
		return err
	}
	for _, d := range ts {
		c, err := httpapi.NewClient(base, d.Key, "")
		if err != nil {
			return err
		}
		var w httpapi.WhoamiResponse
		if err := c.Do(ctx, "GET", "/v1/whoami", nil, nil, &w); err != nil {
			return fmt.Errorf("%s: %w", d.Tenant, err)
		}
		s.ids[d.Tenant] = w
		switch d.Tenant {
		case "bank":
			s.bank = c
		case "modelworks":
			s.works = c
		case "shop":
			s.shop = c
		}
	}
	start := time.Now()
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"bank uploads credit data", s.upload},
		{"modelworks trains", s.train},
		{"modelworks deploys", s.deploy},
		{"shop predicts", s.predict},
		{"an extraction attempt", s.extraction},
		{"modelworks assesses its model", s.assess},
		{"the audit log verifies", s.verifyAudit},
		{"the operator checks compliance", s.compliance},
	}
	for i, st := range steps {
		s.say("── %d. %s", i+1, st.name)
		if err := st.f(ctx); err != nil {
			return fmt.Errorf("walk-through step %q: %w", st.name, err)
		}
	}
	s.note("walk-through finished in %s", time.Since(start).Round(100*time.Millisecond))
	return g.emit(map[string]any{"summary": s.summary}, func() {
		fmt.Fprintln(g.out, "\nSummary:")
		for _, l := range s.summary {
			fmt.Fprintln(g.out, "  •", l)
		}
		fmt.Fprintln(g.out)
	})
}

// State carried between steps.
var (
	storyDataset string
	storyVersion int
	storyGBDT    string
	storyDP      string
	storyRows    [][]string
	storyHeader  []string
)

func (s *story) upload(ctx context.Context) error {
	var ds dataset.Dataset
	if err := s.bank.Do(ctx, "POST", "/v1/datasets", nil, httpapi.CreateDatasetRequest{Name: "credit", Label: "Status"}, &ds); err != nil {
		if !errors.Is(err, rampart.ErrConflict) {
			return err
		}
		all, lerr := listAll[dataset.Dataset](ctx, s.bank, "/v1/datasets", nil)
		if lerr != nil {
			return lerr
		}
		for _, d := range all {
			if d.Name == "credit" {
				ds = d
			}
		}
	}
	var up httpapi.UploadResponse
	if err := s.bank.DoRaw(ctx, "POST", "/v1/datasets/"+ds.ID+"/versions", nil, "text/csv", bytes.NewReader(examples.CreditData), &up); err != nil {
		return err
	}
	storyDataset, storyVersion = ds.ID, up.Version.Version
	r := up.Report
	flagged := 0
	if r.LabelFlip != nil {
		flagged = up.Version.Flagged
	}
	pii := "none"
	if len(up.Version.PIIKinds) > 0 {
		pii = strings.Join(up.Version.PIIKinds, ", ")
	}
	s.say("   bank: dataset credit v%d, %d rows × %d columns, digest %s…", up.Version.Version, r.Rows, len(r.Columns), trim(up.Version.Digest, 16))
	s.say("   data audit: %d duplicate rows, direct identifiers: %s, label screening flagged %d rows", r.Duplicate.Rows, pii, flagged)
	// Train-only grant to modelworks with an ε budget (DATA-7, TRAIN-3).
	eps := 3.0
	works := s.ids["modelworks"].Tenant.ID
	var gr dataset.Grant
	if err := s.bank.Do(ctx, "POST", "/v1/datasets/"+ds.ID+"/grants", nil,
		httpapi.GrantRequest{To: works, Purpose: "train", MaxEpsilon: &eps, ExpiresInSeconds: 30 * 24 * 3600}, &gr); err != nil {
		return err
	}
	s.say("   bank grants modelworks train-only use (max ε = %.0f): grant %s", eps, gr.ID)
	// The grantee can train but never read a row.
	err := s.works.Do(ctx, "GET", fmt.Sprintf("/v1/datasets/%s/versions/%d/data", ds.ID, up.Version.Version), nil, nil, nil)
	if !errors.Is(err, rampart.ErrNotFound) {
		return fmt.Errorf("train-only grantee reading rows: want 404, got %v", err)
	}
	s.say("   modelworks tries to download the rows: 404 (train-only grant)")
	s.note("bank uploaded %d rows (digest %s…); modelworks holds a train-only grant and cannot read them", r.Rows, trim(up.Version.Digest, 12))
	// Keep some rows for shop's predictions and the extraction attempt.
	rd := csv.NewReader(bytes.NewReader(examples.CreditData))
	all, err := rd.ReadAll()
	if err != nil {
		return err
	}
	storyHeader, storyRows = all[0], all[1:]
	return nil
}

func trim(s string, n int) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (s *story) runJob(ctx context.Context, req httpapi.CreateJobRequest, label string) (rampart.Job, error) {
	var j rampart.Job
	if err := s.works.Do(ctx, "POST", "/v1/jobs", nil, req, &j); err != nil {
		return j, err
	}
	last := ""
	for !j.State.Final() {
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
		if err := s.works.Do(ctx, "GET", "/v1/jobs/"+j.ID, nil, nil, &j); err != nil {
			return j, err
		}
		line := fmt.Sprintf("   %-22s %-9s %s", label, j.State, bar(j.Progress.Step, j.Progress.Total))
		if line != last && !s.g.json && s.g.tty {
			fmt.Fprintf(s.g.out, "\r%s", line)
			last = line
		}
	}
	if s.g.tty && !s.g.json {
		fmt.Fprintln(s.g.out)
	} else {
		s.say("   %-22s %-9s %s", label, j.State, bar(j.Progress.Step, j.Progress.Total))
	}
	if j.State != rampart.JobSucceeded {
		return j, fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Reason)
	}
	return j, nil
}

func bar(step, total int) string {
	if total <= 0 {
		return ""
	}
	const w = 30
	n := step * w / total
	if n > w {
		n = w
	}
	return "[" + strings.Repeat("█", n) + strings.Repeat("·", w-n) + "] " + strconv.Itoa(step) + "/" + strconv.Itoa(total)
}

func (s *story) train(ctx context.Context) error {
	g, err := s.runJob(ctx, httpapi.CreateJobRequest{DatasetID: storyDataset, DatasetVersion: storyVersion, Target: "Status",
		Algorithm: "gbdt", Params: map[string]string{"n_estimators": "100", "max_depth": "6", "learning_rate": "0.1"}, Seed: 7,
		ModelName: "credit-gbdt"}, "GBDT (100 trees)")
	if err != nil {
		return err
	}
	storyGBDT = g.Result.ModelID
	s.say("   GBDT: model %s v%d, training AUC %.3f, artifact %s…, signed", g.Result.ModelID, g.Result.ModelVersion, g.Result.Metrics["train_auc"], trim(g.Result.ArtifactDigest, 16))
	d, err := s.runJob(ctx, httpapi.CreateJobRequest{DatasetID: storyDataset, DatasetVersion: storyVersion, Target: "Status",
		Algorithm: "logreg", Seed: 7, DP: &rampart.JobDP{Epsilon: 1}, ModelName: "credit-dp"}, "DP logistic (ε = 1)")
	if err != nil {
		return err
	}
	storyDP = d.Result.ModelID
	s.say("   DP logistic regression: training AUC %.3f at ε = %.2f, δ = %.1e; %.1f of bank's ε budget of 3 spent",
		d.Result.Metrics["train_auc"], d.Result.DPEpsilon, d.Result.DPDelta, d.EpsilonCharged)
	s.say("   isolation the jobs got: %s", strings.Join(d.Isolation, ", "))
	s.note("modelworks trained a GBDT (training AUC %.3f) and a DP logistic regression (training AUC %.3f at ε = 1); both signed, both attested",
		g.Result.Metrics["train_auc"], d.Result.Metrics["train_auc"])
	return nil
}

func (s *story) deploy(ctx context.Context) error {
	pol := &rampart.GuardPolicy{RatePerSec: 50, Burst: 50, BudgetPerDay: 2000, BudgetTotal: -1, MaxRows: 100,
		RangeMargin: 0.1, OOD: "flag", Output: "proba", Decimals: 2, Extraction: "block"}
	var ep map[string]any
	err := s.works.Do(ctx, "POST", "/v1/endpoints", nil, httpapi.CreateEndpointRequest{Name: "credit-scoring", Model: storyGBDT, Policy: pol}, &ep)
	if err != nil && !errors.Is(err, rampart.ErrConflict) {
		return err
	}
	shop := s.ids["shop"].Tenant.ID
	if err := s.works.Do(ctx, "POST", "/v1/endpoints/credit-scoring/grants", nil, httpapi.EndpointGrantRequest{TenantID: shop}, nil); err != nil && !errors.Is(err, rampart.ErrConflict) {
		return err
	}
	s.say("   endpoint credit-scoring serves the GBDT behind the guards (rate 50/s, 2,000 rows/day, OOD flag, label + p rounded to 2 decimals, extraction block); shop may call it")
	s.note("modelworks deployed endpoint credit-scoring with every guard on and granted shop")
	return nil
}

func rowObject(i int) map[string]any {
	m := map[string]any{}
	for j, h := range storyHeader {
		if h == "Status" {
			continue
		}
		v := storyRows[i][j]
		if v == "" {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			m[h] = f
		} else {
			m[h] = v
		}
	}
	return m
}

func (s *story) endpointID(ctx context.Context) (string, error) {
	var ep struct {
		ID string `json:"id"`
	}
	if err := s.works.Do(ctx, "GET", "/v1/endpoints/credit-scoring", nil, nil, &ep); err != nil {
		return "", err
	}
	return ep.ID, nil
}

func (s *story) predict(ctx context.Context) error {
	id, err := s.endpointID(ctx)
	if err != nil {
		return err
	}
	rows := []map[string]any{rowObject(0), rowObject(1), rowObject(2)}
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/endpoints/"+id+"/predict", jsonBody(map[string]any{"rows": rows}))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.shop.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.shop.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		return fmt.Errorf("predict: %d %s", resp.StatusCode, body)
	}
	digest := resp.Header.Get("X-Rampart-Model-Digest")
	s.say("   shop → 3 applicants → %s", strings.TrimSpace(string(body)))
	s.say("   model digest in the response: %s…", trim(digest, 16))
	s.note("shop scored applicants through the endpoint; every response names the signed model's digest")
	return nil
}

func (s *story) extraction(ctx context.Context) error {
	id, err := s.endpointID(ctx)
	if err != nil {
		return err
	}
	// A second shop principal plays the attacker: random synthetic
	// applicants, one per request, as a model thief would.
	var pr httpapi.CreatePrincipalResponse
	if err := s.op.Do(ctx, "POST", "/v1/principals", nil, httpapi.CreatePrincipalRequest{TenantID: s.ids["shop"].Tenant.ID,
		Name: "scraper-" + rampart.RandomToken(3), Role: rampart.RoleServiceUser}, &pr); err != nil {
		return err
	}
	// Synthetic applicants drawn uniformly within each column's observed
	// range (categories from the observed values): inputs that pass schema
	// and range validation, spread over the space as a model thief's are.
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := map[int]float64{}, map[int]float64{}
	cats := map[int][]string{}
	for _, r := range storyRows {
		for j, v := range r {
			if storyHeader[j] == "Status" || v == "" {
				continue
			}
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				if _, ok := lo[j]; !ok || f < lo[j] {
					lo[j] = f
				}
				if _, ok := hi[j]; !ok || f > hi[j] {
					hi[j] = f
				}
			} else if len(cats[j]) < 50 && !contains(cats[j], v) {
				cats[j] = append(cats[j], v)
			}
		}
	}
	synth := func() map[string]any {
		m := map[string]any{}
		for j, h := range storyHeader {
			switch {
			case h == "Status":
			case len(cats[j]) > 0:
				m[h] = cats[j][rng.IntN(len(cats[j]))]
			default:
				m[h] = float64(int(lo[j] + rng.Float64()*(hi[j]-lo[j])))
			}
		}
		return m
	}
	sent, ok, limited := 0, 0, 0
	var stop string
	for sent < 800 && stop == "" {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/endpoints/"+id+"/predict", jsonBody(map[string]any{"rows": []any{synth()}}))
		req.Header.Set("Authorization", "Bearer "+pr.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.shop.HTTP.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		sent++
		pt := problemType(b)
		switch {
		case resp.StatusCode == 200:
			ok++
		case strings.HasSuffix(pt, "rate-limited"):
			limited++
			time.Sleep(25 * time.Millisecond) // a patient thief slows down
		case strings.HasSuffix(pt, "out-of-distribution"), strings.HasSuffix(pt, "invalid-input"):
			// rejected row: the thief keeps trying
		default:
			stop = fmt.Sprintf("%d %s", resp.StatusCode, pt)
		}
	}
	if stop == "" {
		s.say("   a scraper sent %d synthetic queries (%d answered, %d rate-limited) and was not stopped", sent, ok, limited)
		s.note("extraction attempt: not stopped within %d queries", sent)
		return nil
	}
	s.say("   a scraper sending synthetic applicants got %d answers (%d rate-limited), then was stopped at query %d: %s", ok, limited, sent, stop)
	s.note("a simulated extraction attack was stopped after %d queries (%s)", sent, stop)
	return nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func problemType(b []byte) string {
	var p httpapi.Problem
	if err := jsonUnmarshal(b, &p); err != nil || p.Type == "" {
		return ""
	}
	return p.Type
}

func (s *story) verifyAudit(ctx context.Context) error {
	// The operator recomputes the whole log's root; the bank verifies its
	// own events' inclusion: both through the same code as `audit verify`.
	for _, who := range []struct {
		name string
		c    *httpapi.Client
	}{{"operator", s.op}, {"bank", s.bank}} {
		var buf bytes.Buffer
		g2 := &globals{server: s.base, json: true, out: &buf, errOut: io.Discard}
		if err := verifyWith(ctx, g2, who.c, s.witnessDir+"/"+who.name, "", false); err != nil {
			return fmt.Errorf("%s: %w", who.name, err)
		}
		var res verifyResult
		if err := jsonUnmarshal(buf.Bytes(), &res); err != nil {
			return err
		}
		s.say("   %s: checkpoint of %d events verified (%d leaves recomputed, %d own events proven)", who.name, res.Size, res.Leaves, res.Events)
		if who.name == "operator" {
			s.note("the audit log (%d events, every prediction included) verifies against its signed checkpoint", res.Size)
		}
	}
	return nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func (s *story) compliance(ctx context.Context) error {
	var r compliance.Evaluation
	if err := s.op.Do(ctx, "GET", "/v1/compliance", nil, nil, &r); err != nil {
		return err
	}
	var fails []string
	for _, x := range r.Results {
		if x.Status == compliance.Fail {
			fails = append(fails, x.ID)
		}
	}
	s.say("   %d requirements: %d pass with evidence checked just now, %d fail (%s), %d not applicable, %d proved by tests only",
		len(r.Results), r.Summary[compliance.Pass], r.Summary[compliance.Fail], strings.Join(fails, ", "),
		r.Summary[compliance.NotApplicable], r.Summary[compliance.NotChecked])
	s.note("compliance: %d pass, %d fail, %d n/a, %d test-only (`rampart compliance` shows the evidence)",
		r.Summary[compliance.Pass], r.Summary[compliance.Fail], r.Summary[compliance.NotApplicable], r.Summary[compliance.NotChecked])
	return nil
}

func (s *story) assess(ctx context.Context) error {
	var a record.Assessment
	if err := s.works.Do(ctx, "POST", "/v1/assessments", nil, httpapi.CreateAssessmentRequest{ModelID: storyGBDT,
		Attacks: []string{"extraction", "evasion"}, Queries: 1000, Seed: 1, Endpoint: "credit-scoring"}, &a); err != nil {
		return err
	}
	for a.Status == "running" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if err := s.works.Do(ctx, "GET", "/v1/assessments/"+a.ID, nil, nil, &a); err != nil {
			return err
		}
	}
	if a.Status != "succeeded" {
		return fmt.Errorf("assessment %s %s: %s", a.ID, a.Status, a.Reason)
	}
	keys := make([]string, 0, len(a.Metrics))
	for k := range a.Metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.3f", k, a.Metrics[k]))
	}
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/v1/assessments/"+a.ID+"/report?format=html", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.works.Token)
	resp, err := s.works.HTTP.Do(req)
	if err != nil {
		return err
	}
	html, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	resp.Body.Close()
	out := filepath.Join(s.dataDir, "assessment-"+a.ID+".html")
	if resp.StatusCode == 200 {
		if err := os.WriteFile(out, html, 0o600); err != nil {
			return err
		}
	}
	s.say("   assessment %s (extraction, evasion): %s", a.ID, strings.Join(parts, ", "))
	s.say("   report: %s", out)
	s.note("an attack assessment of the GBDT was written to %s", out)
	return nil
}
