package serving_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/registry"
	"github.com/rampart-mlaas/rampart/servertest"
)

// The shared datasets, read from the dataset package's copies (see
// dataset/testdata/PROVENANCE.md): path, label column, CSV options.
type dataSpec struct {
	name, path, target string
	cat                []string
}

var (
	breast = dataSpec{"breast_cancer", "../dataset/testdata/breast_cancer.csv", "diagnosis", nil}
	credit = dataSpec{"credit_data", "../dataset/testdata/credit_data.csv", "Status", nil}
	spam   = dataSpec{"spambase", "../dataset/testdata/spambase.csv", "type", nil}
	hr     = dataSpec{"hr_attrition", "../dataset/testdata/hr_attrition.csv", "Attrition", nil}
)

type trained struct {
	art         []byte
	model       *ml.Model
	train, test *ml.Frame
	features    []string
}

var (
	trainMu    sync.Mutex
	trainCache = map[string]*trained{}
)

// train fits algo on a 70 % split of ds (seeded) once per test binary.
func train(t testing.TB, ds dataSpec, algo string, params map[string]string) *trained {
	t.Helper()
	key := ds.name + "/" + algo + fmt.Sprint(params)
	trainMu.Lock()
	defer trainMu.Unlock()
	if tr, ok := trainCache[key]; ok {
		return tr
	}
	f, err := os.Open(ds.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := ml.ReadCSV(f, ml.CSVOptions{Categorical: ds.cat})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 7))
	perm := rng.Perm(fr.NumRows())
	cut := fr.NumRows() * 7 / 10
	tr := &trained{train: fr.Take(perm[:cut]), test: fr.Take(perm[cut:])}
	tr.model, err = ml.Train(context.Background(), tr.train, ml.TrainSpec{Algorithm: algo, Target: ds.target, Params: params, Seed: 1}, nil)
	if err != nil {
		t.Fatalf("train %s: %v", key, err)
	}
	if tr.art, err = tr.model.Marshal(); err != nil {
		t.Fatal(err)
	}
	for _, fi := range tr.model.Schema() {
		tr.features = append(tr.features, fi.Name)
	}
	trainCache[key] = tr
	return tr
}

// register registers art as a trained model of md through the real
// registry over the server's own stores (signed, verified on every load).
func register(t testing.TB, e *servertest.Env, md *servertest.Actor, name string, art []byte) rampart.ModelVersion {
	t.Helper()
	reg, err := registry.New(registry.Options{Store: e.Server.DB, Principals: e.Server.DB, Keys: e.Server.Keyring,
		Barrier: e.Server.Barrier, Audit: e.Server.Audit, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte(name), art...))
	now := time.Now().UTC()
	v, err := reg.RegisterTrained(context.Background(), registry.TrainedInput{Owner: md.Principal, RequestID: "req_test", ModelName: name,
		Artifact: art, Datasets: []registry.DatasetInput{{ID: "ds_" + hex.EncodeToString(sum[:8]), Version: 1, Digest: hex.EncodeToString(sum[:])}},
		JobID: "job_" + hex.EncodeToString(sum[:10]), StartedAt: now, FinishedAt: now})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return v
}

// world is a server with a tenant, its model developer and service user.
type world struct {
	e      *servertest.Env
	tn     rampart.Tenant
	md, su *servertest.Actor
}

func newWorld(t testing.TB) *world {
	e := servertest.Start(t)
	tn := e.Tenant(t, "acme")
	return &world{e: e, tn: tn, md: e.Actor(t, tn, "dev", rampart.RoleModelDeveloper), su: e.Actor(t, tn, "app", rampart.RoleServiceUser)}
}

func (w *world) endpoint(t testing.TB, name, model string, version int, pol *rampart.GuardPolicy) rampart.Endpoint {
	t.Helper()
	var ep rampart.Endpoint
	if err := w.md.C.Do(context.Background(), "POST", "/v1/endpoints", nil,
		httpapi.CreateEndpointRequest{Name: name, Model: model, Version: version, Policy: pol}, &ep); err != nil {
		t.Fatalf("create endpoint: %v", err)
	}
	return ep
}

type resp struct {
	status int
	hdr    http.Header
	body   []byte
}

var hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func post(t testing.TB, e *servertest.Env, token, path string, body []byte) resp {
	t.Helper()
	req, err := http.NewRequest("POST", e.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	r, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, b}
}

// rowObjects renders rows [lo, hi) of f (features only) as /v1 rows.
func rowObjects(f *ml.Frame, features []string, rows []int) []map[string]any {
	out := make([]map[string]any, len(rows))
	for k, i := range rows {
		m := map[string]any{}
		for _, name := range features {
			c, _ := f.Column(name)
			if c.Kind == ml.Categorical {
				if c.Cat[i] == "" {
					m[name] = nil
				} else {
					m[name] = c.Cat[i]
				}
			} else {
				v := c.Num[i]
				if v != v {
					m[name] = nil
				} else {
					m[name] = v
				}
			}
		}
		out[k] = m
	}
	return out
}

func rowsBody(f *ml.Frame, features []string, rows []int) []byte {
	b, _ := json.Marshal(map[string]any{"rows": rowObjects(f, features, rows)})
	return b
}

// tensorBody renders rows of an all-numeric frame as one OIP [N, F] FP64 tensor.
func tensorBody(f *ml.Frame, features []string, rows []int) []byte {
	data := make([][]float64, len(rows))
	for k, i := range rows {
		for _, name := range features {
			c, _ := f.Column(name)
			data[k] = append(data[k], c.Num[i])
		}
	}
	b, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "input-0", "shape": []int{len(rows), len(features)},
		"datatype": "FP64", "data": data}}})
	return b
}

func seq(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

type problem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func problemOf(t testing.TB, r resp) problem {
	t.Helper()
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("not a problem (%d): %s", r.status, r.body)
	}
	return p
}
