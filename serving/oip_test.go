package serving_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/ml"
)

// irisLike trains a 3-class logistic regression on a synthetic table with
// iris-shaped features, so the KServe documentation's sklearn-iris request
// can be sent verbatim.
func irisLike(t *testing.T) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(8, 9))
	n := 300
	cols := [4][]float64{}
	y := make([]string, n)
	centres := [3][4]float64{{5.0, 3.4, 1.5, 0.2}, {5.9, 2.8, 4.3, 1.3}, {6.6, 3.0, 5.6, 2.0}}
	for i := range n {
		c := i % 3
		y[i] = []string{"setosa", "versicolor", "virginica"}[c]
		for j := range 4 {
			cols[j] = append(cols[j], centres[c][j]+0.35*rng.NormFloat64())
		}
	}
	fr, err := ml.NewFrame(ml.NumericColumn("sepal_length", cols[0]), ml.NumericColumn("sepal_width", cols[1]),
		ml.NumericColumn("petal_length", cols[2]), ml.NumericColumn("petal_width", cols[3]), ml.CategoricalColumn("species", y))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ml.Train(context.Background(), fr, ml.TrainSpec{Algorithm: ml.LogReg, Target: "species", Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOIPConformance sends the Open Inference Protocol requests of the
// KServe V2 documentation with curl, unchanged but for the
// Authorization header Rampart requires, and checks the answers have the
// structure the protocol defines ($inference_response, $metadata_model_
// response, $metadata_server_response, health). No OIP client library
// (tritonclient, kserve) is installable here (not in Debian or npm), so
// curl with the spec's own requests stands in for one.
func TestOIPConformance(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	w := newWorld(t)
	register(t, w.e, w.md, "sklearn-iris", irisLike(t))
	w.endpoint(t, "sklearn-iris", "sklearn-iris", 0, nil)
	curl := func(args ...string) (int, []byte) {
		t.Helper()
		args = append([]string{"-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Authorization: Bearer " + w.su.Token}, args...)
		out, err := exec.Command("curl", args...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		i := strings.LastIndexByte(string(out), '\n')
		code := 0
		for _, c := range string(out[i+1:]) {
			code = code*10 + int(c-'0')
		}
		return code, out[:i]
	}
	// The KServe docs' iris request (sklearn, V2 protocol), verbatim.
	const irisInput = `{
  "inputs": [
    {
      "name": "input-0",
      "shape": [2, 4],
      "datatype": "FP32",
      "data": [
        [6.8, 2.8, 4.8, 1.4],
        [6.0, 3.4, 4.5, 1.6]
      ]
    }
  ]
}`
	code, body := curl("-H", "Content-Type: application/json", "-d", irisInput, w.e.URL+"/v2/models/sklearn-iris/infer")
	if code != 200 {
		t.Fatalf("infer: %d %s", code, body)
	}
	var ir struct {
		ModelName    string         `json:"model_name"`
		ModelVersion string         `json:"model_version"`
		ID           string         `json:"id"`
		Parameters   map[string]any `json:"parameters"`
		Outputs      []struct {
			Name       string         `json:"name"`
			Shape      []int          `json:"shape"`
			Datatype   string         `json:"datatype"`
			Parameters map[string]any `json:"parameters"`
			Data       []any          `json:"data"`
		} `json:"outputs"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields() // only fields the protocol defines
	if err := dec.Decode(&ir); err != nil {
		t.Fatalf("response is not an $inference_response: %v: %s", err, body)
	}
	if ir.ModelName != "sklearn-iris" || ir.ModelVersion != "1" || len(ir.Outputs) == 0 {
		t.Fatalf("infer response %s", body)
	}
	for _, o := range ir.Outputs {
		size := 1
		for _, d := range o.Shape {
			size *= d
		}
		if o.Name == "" || o.Datatype == "" || len(o.Data) != size {
			t.Fatalf("output %+v does not match its shape", o)
		}
	}
	if l := ir.Outputs[0].Data[1]; ir.Outputs[0].Name != "label" || l != "versicolor" && l != "virginica" {
		t.Fatalf("iris prediction %s", body)
	}
	// The spec's request structure: id, parameters and requested outputs.
	const specRequest = `{
  "id" : "42",
  "inputs" : [
    {
      "name" : "input0",
      "shape" : [ 1, 4 ],
      "datatype" : "FP32",
      "data" : [ 5.1, 3.5, 1.4, 0.2 ]
    }
  ],
  "outputs" : [
    {
      "name" : "label"
    }
  ]
}`
	code, body = curl("-H", "Content-Type: application/json", "-d", specRequest, w.e.URL+"/v2/models/sklearn-iris/versions/1/infer")
	if code != 200 || !strings.Contains(string(body), `"id":"42"`) || !strings.Contains(string(body), `"outputs":[{"name":"label","datatype":"BYTES","shape":[1],"data":["setosa"]}]`) {
		t.Fatalf("spec request: %d %s", code, body)
	}
	// Health, server and model metadata, model readiness.
	for _, c := range []struct {
		path   string
		fields []string
	}{
		{"/v2/health/live", []string{`"live":true`}},
		{"/v2/health/ready", []string{`"ready":true`}},
		{"/v2", []string{`"name":"rampart"`, `"version":`, `"extensions":[]`}},
		{"/v2/models/sklearn-iris", []string{`"name":"sklearn-iris"`, `"versions":["1"]`, `"platform":"rampart"`,
			`{"name":"sepal_length","datatype":"FP64","shape":[-1]}`, `"outputs":[{"name":"label","datatype":"BYTES","shape":[-1]}`}},
		{"/v2/models/sklearn-iris/ready", []string{`"ready":true`}},
		{"/v2/models/sklearn-iris/versions/1/ready", []string{`"ready":true`}},
	} {
		code, body := curl(w.e.URL + c.path)
		if code != 200 {
			t.Fatalf("%s: %d %s", c.path, code, body)
		}
		for _, f := range c.fields {
			if !strings.Contains(string(body), f) {
				t.Fatalf("%s: %s lacks %s", c.path, body, f)
			}
		}
	}
	if code, _ := curl(w.e.URL + "/v2/models/nope/ready"); code != 404 {
		t.Fatalf("missing model ready: %d", code)
	}
	_ = rampart.OutputLabel
}
