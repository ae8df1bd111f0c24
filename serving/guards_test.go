package serving_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/serving"
)

// call sends one request through the server's handler in-process.
func call(w *world, token, path string, body []byte) resp {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	w.e.Server.API.ServeHTTP(rec, req)
	return resp{rec.Code, rec.Header(), rec.Body.Bytes()}
}

var open = &rampart.GuardPolicy{RatePerSec: -1, BudgetPerDay: -1, BudgetTotal: -1}

func withPolicy(p rampart.GuardPolicy) *rampart.GuardPolicy {
	p.RatePerSec, p.BudgetPerDay, p.BudgetTotal = -1, -1, -1
	return &p
}

// decimals is the number of digits after the point in a JSON number.
func decimals(raw json.RawMessage) int {
	s := string(raw)
	if strings.ContainsAny(s, "eE") {
		return 99
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// TestOutputPolicyRun is INF-2: 10,000 requests over four endpoints with
// different output policies (label only, the default label + probability
// to 2 decimals, top-2 to 1 decimal, all probabilities to 3 decimals),
// alternating /v1 and OIP: 100 % of responses obey their policy.
func TestOutputPolicyRun(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 800
	}
	w := newWorld(t)
	tr := train(t, hr, "logreg", nil)
	register(t, w.e, w.md, "hr", tr.art)
	type ep struct {
		name  string
		pol   rampart.GuardPolicy
		check func(p map[string]json.RawMessage) error
	}
	eps := []ep{
		{"label", rampart.GuardPolicy{Output: rampart.OutputLabel, Decimals: -1}, func(p map[string]json.RawMessage) error {
			if len(p) != 1 || p["label"] == nil {
				return fmt.Errorf("label only: %v", p)
			}
			return nil
		}},
		{"default", rampart.GuardPolicy{}, func(p map[string]json.RawMessage) error {
			if len(p) != 2 || p["label"] == nil || p["probability"] == nil || decimals(p["probability"]) > 2 {
				return fmt.Errorf("default: %v", p)
			}
			return nil
		}},
		{"top2", rampart.GuardPolicy{Output: rampart.OutputTopK, TopK: 2, Decimals: 1}, func(p map[string]json.RawMessage) error {
			var ls []string
			var ps []json.RawMessage
			if json.Unmarshal(p["labels"], &ls) != nil || json.Unmarshal(p["probabilities"], &ps) != nil || len(ls) != 2 || len(ps) != 2 || len(p) != 2 {
				return fmt.Errorf("top2: %v", p)
			}
			for _, x := range ps {
				if decimals(x) > 1 {
					return fmt.Errorf("top2 decimals: %s", x)
				}
			}
			return nil
		}},
		{"proba", rampart.GuardPolicy{Output: rampart.OutputProba, Decimals: 3}, func(p map[string]json.RawMessage) error {
			var ps map[string]json.RawMessage
			if json.Unmarshal(p["probabilities"], &ps) != nil || len(ps) != 2 || p["label"] == nil || len(p) != 2 {
				return fmt.Errorf("proba: %v", p)
			}
			for _, x := range ps {
				if decimals(x) > 3 {
					return fmt.Errorf("proba decimals: %s", x)
				}
			}
			return nil
		}},
	}
	for _, e := range eps {
		w.endpoint(t, e.name, "hr", 0, withPolicy(e.pol))
	}
	var mu sync.Mutex
	obeyed := 0
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(5, uint64(g)))
			for i := g; i < n; i += 8 {
				e := eps[i%len(eps)]
				row := rng.IntN(tr.test.NumRows())
				r := call(w, w.su.Token, "/v1/endpoints/"+e.name+"/predict", rowsBody(tr.test, tr.features, []int{row}))
				var out struct {
					Predictions []map[string]json.RawMessage `json:"predictions"`
				}
				if r.status != 200 || json.Unmarshal(r.body, &out) != nil || len(out.Predictions) != 1 {
					errs <- fmt.Errorf("%s: %d %s", e.name, r.status, r.body)
					return
				}
				p := out.Predictions[0]
				delete(p, "ood") // the OOD flag is not an output of the model
				if err := e.check(p); err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
					return
				}
				mu.Lock()
				obeyed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("INF-2: %d of %d responses obey their endpoint's output policy", obeyed, n)
}

// TestRateLimitAndBudget: 429 with Retry-After and a distinct problem type
// for the rate limit; the daily budget is exact and its refusal names the
// budget (INF-1).
func TestRateLimitAndBudget(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, "logreg", nil)
	register(t, w.e, w.md, "bc", tr.art)
	w.endpoint(t, "rl", "bc", 0, &rampart.GuardPolicy{RatePerSec: 5, Burst: 5, BudgetPerDay: -1, BudgetTotal: -1})
	body := tensorBody(tr.test, tr.features, seq(0, 1))
	start := time.Now()
	ok, limited := 0, 0
	for range 60 {
		r := call(w, w.su.Token, "/v2/models/rl/infer", body)
		switch r.status {
		case 200:
			ok++
		case 429:
			limited++
			if p := problemOf(t, r); p.Type != httpapi.ProblemTypeBase+"rate-limited" || r.hdr.Get("Retry-After") == "" {
				t.Fatalf("429 %s, Retry-After %q", r.body, r.hdr.Get("Retry-After"))
			}
		default:
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	elapsed := time.Since(start).Seconds()
	// The bucket allows at most burst + rate × elapsed.
	if max := 5 + int(5*elapsed) + 1; ok > max {
		t.Fatalf("%d allowed in %.2fs, at most %d", ok, elapsed, max)
	}
	t.Logf("INF-1: 60 requests in %.2fs at 5/s: %d allowed, %d refused with 429 + Retry-After", elapsed, ok, limited)

	w.endpoint(t, "budget", "bc", 0, &rampart.GuardPolicy{RatePerSec: -1, BudgetPerDay: 30, BudgetTotal: -1})
	four := tensorBody(tr.test, tr.features, seq(0, 4))
	granted := 0
	for range 7 {
		if r := call(w, w.su.Token, "/v2/models/budget/infer", four); r.status != 200 {
			t.Fatalf("within budget: %d %s", r.status, r.body)
		}
		granted += 4
	}
	r := call(w, w.su.Token, "/v2/models/budget/infer", four)
	if p := problemOf(t, r); r.status != 429 || p.Type != httpapi.ProblemTypeBase+"budget-exhausted" || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("over budget: %d %s", r.status, r.body)
	}
	two := tensorBody(tr.test, tr.features, seq(0, 2))
	if r := call(w, w.su.Token, "/v2/models/budget/infer", two); r.status != 200 {
		t.Fatalf("last 2 rows: %d %s", r.status, r.body)
	}
	if r := call(w, w.su.Token, "/v2/models/budget/infer", tensorBody(tr.test, tr.features, seq(0, 1))); r.status != 429 {
		t.Fatalf("budget not exact: %d", r.status)
	}
	// The budget is per principal: another caller has its own.
	if r := call(w, w.md.Token, "/v2/models/budget/infer", two); r.status != 200 {
		t.Fatalf("other principal: %d %s", r.status, r.body)
	}
	// A refusal is audited with the guard that refused.
	recs, _, err := w.e.Server.AuditLog.Events(context.Background(), auditlog.Query{Tenant: w.tn.ID, Action: "endpoint.predict", Page: rampart.Page{Limit: 500}})
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, rec := range recs {
		if strings.Contains(string(rec.Raw), "refused by guard budget-exhausted") {
			refusals++
		}
	}
	if refusals != 2 {
		t.Fatalf("%d budget refusals audited, want 2", refusals)
	}
}

// TestOODPolicies: flag marks shifted rows, reject refuses them with the
// out-of-distribution problem type (INF-5).
func TestOODPolicies(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, "logreg", nil)
	register(t, w.e, w.md, "bc", tr.art)
	w.endpoint(t, "flag", "bc", 0, withPolicy(rampart.GuardPolicy{RangeMargin: 100}))
	w.endpoint(t, "reject", "bc", 0, withPolicy(rampart.GuardPolicy{OOD: rampart.OODReject, RangeMargin: 100}))
	rows := rowObjects(tr.test, tr.features, seq(0, 2))
	for k := range rows[1] {
		rows[1][k] = rows[1][k].(float64) * 10 // a unit error
	}
	b, _ := json.Marshal(map[string]any{"rows": rows})
	r := call(w, w.su.Token, "/v1/endpoints/flag/predict", b)
	var out struct {
		Predictions []struct {
			OOD bool `json:"ood"`
		} `json:"predictions"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil || out.Predictions[0].OOD || !out.Predictions[1].OOD {
		t.Fatalf("flag: %d %s", r.status, r.body)
	}
	r = call(w, w.su.Token, "/v1/endpoints/reject/predict", b)
	if p := problemOf(t, r); r.status != 400 || p.Type != httpapi.ProblemTypeBase+"out-of-distribution" || !strings.Contains(p.Detail, "1") {
		t.Fatalf("reject: %d %s", r.status, r.body)
	}
	// With the default margin the ×10 row fails validation already.
	w.endpoint(t, "strict", "bc", 0, open)
	r = call(w, w.su.Token, "/v1/endpoints/strict/predict", b)
	if p := problemOf(t, r); r.status != 400 || p.Type != httpapi.ProblemTypeBase+"invalid-input" {
		t.Fatalf("strict: %d %s", r.status, r.body)
	}
}

// TestExtractionBlock: a synthetic-query stream is flagged, audited and,
// under the block policy, refused with extraction-suspected (INF-3).
func TestExtractionBlock(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, "logreg", nil)
	register(t, w.e, w.md, "bc", tr.art)
	w.endpoint(t, "bc", "bc", 0, withPolicy(rampart.GuardPolicy{Extraction: rampart.ExtractionBlock}))
	rng := rand.New(rand.NewPCG(1, 1))
	var lo, hi []float64
	for _, fi := range tr.model.Schema() {
		lo, hi = append(lo, fi.Min), append(hi, fi.Max)
	}
	blockedAt := 0
	for q := 1; q <= 500 && blockedAt == 0; q++ {
		x := make([]float64, len(lo))
		for j := range x {
			x[j] = lo[j] + (hi[j]-lo[j])*rng.Float64()
		}
		b, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "x", "shape": []int{1, len(x)}, "datatype": "FP64", "data": x}}})
		r := call(w, w.su.Token, "/v2/models/bc/infer", b)
		switch r.status {
		case 200:
		case 403:
			if p := problemOf(t, r); p.Type != httpapi.ProblemTypeBase+"extraction-suspected" {
				t.Fatalf("403 %s", r.body)
			}
			blockedAt = q
		default:
			t.Fatalf("query %d: %d %s", q, r.status, r.body)
		}
	}
	if blockedAt == 0 {
		t.Fatal("uniform synthetic queries not blocked within 500")
	}
	recs, _, err := w.e.Server.AuditLog.Events(context.Background(), auditlog.Query{Tenant: w.tn.ID, Action: "endpoint.extraction_alert", Page: rampart.Page{Limit: 10}})
	if err != nil || len(recs) != 1 {
		t.Fatalf("alerts: %d %v", len(recs), err)
	}
	// Another principal is unaffected.
	if r := call(w, w.md.Token, "/v2/models/bc/infer", tensorBody(tr.test, tr.features, seq(0, 1))); r.status != 200 {
		t.Fatalf("other principal: %d", r.status)
	}
	t.Logf("INF-3: blocked at query %d", blockedAt)
}

// TestSignedPredictions is INF-6: a signed prediction verifies with the
// platform key; changing any byte of the response, the request or the JWS
// fails verification (100 %).
func TestSignedPredictions(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, "logreg", nil)
	v := register(t, w.e, w.md, "bc", tr.art)
	w.endpoint(t, "bc", "bc", 0, withPolicy(rampart.GuardPolicy{Sign: true}))
	req := tensorBody(tr.test, tr.features, seq(0, 3))
	r := call(w, w.su.Token, "/v2/models/bc/infer", req)
	jws := r.hdr.Get("X-Rampart-Signature")
	if r.status != 200 || jws == "" {
		t.Fatalf("%d %q", r.status, jws)
	}
	var key httpapi.PublicKeyResponse
	if err := w.su.C.Do(context.Background(), "GET", "/v1/prediction-signing-key", nil, nil, &key); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(key.PublicKeyPEM))
	pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := pk.(ed25519.PublicKey)
	c, err := serving.VerifyJWS(jws, pub, req, r.body)
	if err != nil || c.ModelDigest != v.Digest {
		t.Fatalf("verify: %v %+v", err, c)
	}
	failed, total := 0, 0
	for i := range r.body {
		b := bytes.Clone(r.body)
		b[i] ^= 0x01
		total++
		if _, err := serving.VerifyJWS(jws, pub, req, b); err != nil {
			failed++
		}
	}
	for i := range req {
		b := bytes.Clone(req)
		b[i] ^= 0x01
		total++
		if _, err := serving.VerifyJWS(jws, pub, b, r.body); err != nil {
			failed++
		}
	}
	for i := range len(jws) {
		j := []byte(jws)
		j[i] ^= 0x01
		total++
		if _, err := serving.VerifyJWS(string(j), pub, req, r.body); err != nil {
			failed++
		}
	}
	if failed != total {
		t.Fatalf("%d of %d changed bytes failed verification", failed, total)
	}
	t.Logf("INF-6: %d of %d single-byte changes (response, request, JWS) fail verification", failed, total)
}

// TestRollbackUnderLoad is MODEL-6: switching an endpoint between two
// versions ten times while four clients predict fails no request, and both
// versions answer.
func TestRollbackUnderLoad(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, "logreg", nil)
	tr2 := train(t, breast, "gbdt", map[string]string{"n_estimators": "20"})
	register(t, w.e, w.md, "bc", tr.art)
	register(t, w.e, w.md, "bc", tr2.art)
	w.endpoint(t, "bc", "bc", 1, open)
	body := tensorBody(tr.test, tr.features, seq(0, 2))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	failed := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := call(w, w.su.Token, "/v2/models/bc/infer", body)
				mu.Lock()
				if r.status != 200 {
					if failed == 0 {
						t.Logf("first failure: %d %s", r.status, r.body)
					}
					failed++
				}
				seen[r.hdr.Get("X-Rampart-Model-Version")]++
				mu.Unlock()
			}
		}()
	}
	for i := range 10 {
		v := 2 - i%2
		if err := w.md.C.Do(context.Background(), "PATCH", "/v1/endpoints/bc", nil, httpapi.UpdateEndpointRequest{Version: &v}, nil); err != nil {
			t.Fatal(err)
		}
		for {
			mu.Lock()
			n := seen[fmt.Sprint(v)]
			mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if failed != 0 || seen["1"] == 0 || seen["2"] == 0 {
		t.Fatalf("%d failed; versions seen %v", failed, seen)
	}
	t.Logf("MODEL-6: 10 switches under load: 0 failed of %d requests (%v)", seen["1"]+seen["2"], seen)
}
