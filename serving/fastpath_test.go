package serving_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/ml"
)

// TestFastPathMatchesHuma sends the same requests to the prediction routes
// through the server's fast path (httpapi/predict_fast.go) and through huma
// (the fast path switched off), each to its own of two identical endpoints
// so that rate limits and budgets see the same history, and requires the
// same status, headers and body (request IDs and the endpoints' own
// names and IDs aside).
func TestFastPathMatchesHuma(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, ml.LogReg, nil)
	register(t, w.e, w.md, "m", tr.art)
	api := w.e.Server.API
	defer api.SetFastPredict(true)
	limited := rampart.GuardPolicy{RatePerSec: 0.001, Burst: 1}
	eps := map[string][2]rampart.Endpoint{}
	for _, name := range []string{"ep", "rl"} {
		var pol *rampart.GuardPolicy
		if name == "rl" {
			pol = &limited
		}
		eps[name] = [2]rampart.Endpoint{w.endpoint(t, name+"-a", "m", 0, pol), w.endpoint(t, name+"-b", "m", 0, pol)}
	}
	one := tensorBody(tr.test, tr.features, []int{0})
	three := tensorBody(tr.test, tr.features, []int{1, 2, 3})
	rows := rowsBody(tr.test, tr.features, []int{4, 5})
	long := strings.Repeat("x", 81)
	type req struct {
		method, path string // "%s" is the endpoint's name, "%i" its ID
		body         []byte
		hdr          map[string]string
	}
	cases := []req{
		{"POST", "/v2/models/ep-%s/infer", one, nil},
		{"POST", "/v2/models/ep-%s/infer", three, nil},
		{"POST", "/v2/models/%i/infer", one, nil},
		{"POST", "/v1/endpoints/ep-%s/predict", rows, nil},
		{"POST", "/v1/endpoints/ep-%s/predict", one, nil},
		{"POST", "/v2/models/ep-%s/versions/1/infer", one, nil},
		{"POST", "/v2/models/ep-%s/versions/9/infer", one, nil},
		{"POST", "/v2/models/ep-%s/versions/x/infer", one, nil},
		{"POST", "/v2/models/ep-%s/infer", []byte(`{"inputs": [`), nil},
		{"POST", "/v2/models/ep-%s/infer", []byte(`{"inputs": []}`), nil},
		{"POST", "/v2/models/ep-%s/infer", nil, nil},
		{"POST", "/v2/models/ep-%s/infer", []byte("null"), nil},
		{"POST", "/v2/models/nope-%s/infer", one, nil},
		{"POST", "/v2/models/" + long + "%s/infer", one, nil},
		{"POST", "/v2/models/ep-%s/versions/" + long + "/infer", one, nil},
		{"POST", "/v2/models/ep-%s/infer?x=1", one, nil},
		{"POST", "/v2/models/ep-%s/infer?", one, nil},
		{"POST", "/v2/models/ep%2D%s/infer", one, nil},
		{"POST", "/v2/models/ep-%s/infer/", one, nil},
		{"POST", "/v2//models/ep-%s/infer", one, nil},
		{"POST", "/v2/models/x/../ep-%s/infer", one, nil},
		{"GET", "/v2/models/ep-%s/infer", nil, nil},
		{"POST", "/v2/models/ep-%s/infer", one, map[string]string{"Accept": "application/xml"}},
		{"POST", "/v2/models/ep-%s/infer", []byte("{"), map[string]string{"Accept": "application/xml"}},
		{"POST", "/v2/models/ep-%s/infer", []byte("{"), map[string]string{"Accept": "application/cbor"}},
		{"POST", "/v2/models/ep-%s/infer", []byte("{"), map[string]string{"Accept": "text/html, */*;q=0.1"}},
		{"POST", "/v2/models/ep-%s/infer", one, map[string]string{"Content-Type": "text/plain"}},
		{"POST", "/v2/models/rl-%s/infer", one, nil},
		{"POST", "/v2/models/rl-%s/infer", one, nil}, // rate limited
		{"POST", "/v1/endpoints/rl-%s/predict", rows, nil},
		// Bodies around the first MiB, which readBody reads before making
		// room for the rest of a declared length.
		{"POST", "/v2/models/ep-%s/infer", append(append([]byte{}, one...), bytes.Repeat([]byte(" "), 1<<20-len(one))...), nil},
		{"POST", "/v2/models/ep-%s/infer", append(append([]byte{}, one...), bytes.Repeat([]byte(" "), 1<<20-len(one)+1)...), nil},
		{"POST", "/v2/models/ep-%s/infer", append(append([]byte{}, three...), bytes.Repeat([]byte("\n"), 3<<20)...), nil},
	}
	do := func(c req, k int) (int, http.Header, []byte) {
		name := []string{"a", "b"}[k]
		path := strings.ReplaceAll(c.path, "%s", name)
		path = strings.ReplaceAll(path, "%i", eps["ep"][k].ID)
		r, err := http.NewRequest(c.method, w.e.URL+path, bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+w.su.Token)
		r.Header.Set("Content-Type", "application/json")
		for h, v := range c.hdr {
			r.Header.Set(h, v)
		}
		api.SetFastPredict(k == 0)
		res, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		// Normalise what differs by design.
		rid := res.Header.Get("X-Request-Id")
		b = bytes.ReplaceAll(b, []byte(rid), []byte("RID"))
		for _, ep := range []rampart.Endpoint{eps["ep"][k], eps["rl"][k]} {
			b = bytes.ReplaceAll(b, []byte(ep.ID), []byte("EPID"))
		}
		b = bytes.ReplaceAll(b, []byte("-"+name), []byte("-X"))
		res.Header.Del("X-Request-Id")
		res.Header.Del("Date")
		return res.StatusCode, res.Header, b
	}
	for _, c := range cases {
		fs, fh, fb := do(c, 0)
		hs, hh, hb := do(c, 1)
		what := c.method + " " + c.path
		if fs != hs {
			t.Errorf("%s: status %d (fast) vs %d (huma)\n%s\n%s", what, fs, hs, fb, hb)
			continue
		}
		if !bytes.Equal(fb, hb) {
			t.Errorf("%s (%d): bodies differ:\nfast %s\nhuma %s", what, fs, fb, hb)
		}
		for h := range mergeKeys(fh, hh) {
			if strings.Join(fh.Values(h), "|") != strings.Join(hh.Values(h), "|") {
				t.Errorf("%s (%d): header %s: %q (fast) vs %q (huma)", what, fs, h, fh.Values(h), hh.Values(h))
			}
		}
	}
	// The fast path's requests are counted under their route.
	st, body := w.e.Raw(t, "GET", "/metrics", w.e.OpToken, nil, nil)
	if st != 200 || !bytes.Contains(body, []byte(`rampart_http_requests_total{code="200",route="POST /v2/models/{endpoint}/infer"}`)) {
		t.Errorf("metrics (%d) lack the infer route's requests", st)
	}
}

func mergeKeys(a, b http.Header) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}
