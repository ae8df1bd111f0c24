package httpapi

import (
	"net/http"
	"net/url"
	"testing"
)

// loopLimit is bodyLimit's route-by-route answer (the reference).
func (a *API) loopLimit(r *http.Request) int64 {
	for _, s := range a.streaming {
		if _, p := s.mux.Handler(r); p != "" {
			return s.max
		}
	}
	return MaxJSONBody
}

func streamingAPI() *API {
	a := &API{}
	a.StreamingRoute("POST", PredictPath, 1<<20)
	a.StreamingRoute("POST", InferPath, 2<<20)
	a.StreamingRoute("POST", InferVersionsPath, 3<<20)
	a.StreamingRoute("POST", "/v1/models/import", 4<<20)
	a.StreamingRoute("POST", "/v1/datasets/{dataset}/versions", 5<<20)
	return a
}

var limitCases = []struct{ method, target string }{
	{"POST", "/v1/endpoints/ep/predict"},
	{"POST", "/v2/models/ep/infer"},
	{"POST", "/v2/models/ep/versions/3/infer"},
	{"POST", "/v1/models/import"},
	{"POST", "/v1/datasets/ds_1/versions"},
	{"GET", "/v2/models/ep/infer"},
	{"PUT", "/v2/models/ep/infer"},
	{"POST", "/v2/models/ep/infer/"},
	{"POST", "/v2/models//infer"},
	{"POST", "/v2/models/a/../ep/infer"},
	{"POST", "/v2/models/./ep/infer"},
	{"POST", "//v2/models/ep/infer"},
	{"POST", "/v2/models/e%2Fp/infer"},
	{"POST", "/v2/models/ep/infer?x=1"},
	{"POST", "/v1/endpoints"},
	{"POST", "/"},
	{"CONNECT", "/v2/models/ep/infer"},
}

// TestBodyLimitMatchesLoop: the one-mux lookup answers as the
// route-by-route loop it replaces.
func TestBodyLimitMatchesLoop(t *testing.T) {
	a := streamingAPI()
	if a.streamAll == nil || a.streamAll.off {
		t.Fatal("the server's streaming routes do not overlap: the one-mux lookup should be on")
	}
	for _, c := range limitCases {
		r := request(t, c.method, c.target)
		if got, want := a.bodyLimit(r), a.loopLimit(r); got != want {
			t.Errorf("%s %s: %d, want %d", c.method, c.target, got, want)
		}
	}
	if got := a.bodyLimit(request(t, "POST", "/v2/models/ep/infer")); got != 2<<20 {
		t.Errorf("infer limit %d", got)
	}
}

// Overlapping patterns switch the one-mux lookup off (the loop takes the
// first registered route; a mux would take the most specific or panic).
func TestBodyLimitOverlap(t *testing.T) {
	for _, ps := range [][2]string{
		{"/v1/x/{a}", "/v1/{b}/y"},
		{"/v1/x/{a}", "/v1/x/y"},
		{"/v1/", "/v1/x"},
		{"/v1/{a...}", "/v1/x/y"},
		{"/v1/x", "/v1/x"},
	} {
		a := &API{}
		a.StreamingRoute("POST", ps[0], 1)
		a.StreamingRoute("POST", ps[1], 2)
		if !a.streamAll.off {
			t.Errorf("%q and %q overlap but the one-mux lookup is on", ps[0], ps[1])
		}
		for _, p := range []string{"/v1/x/y", "/v1/x", "/v1/z/y"} {
			r := request(t, "POST", p)
			if got, want := a.bodyLimit(r), a.loopLimit(r); got != want {
				t.Errorf("%v %s: %d, want %d", ps, p, got, want)
			}
		}
	}
	if overlap("POST /v1/x/{a}", "POST /v1/y/{a}") || overlap("GET /v1/x", "POST /v1/x") {
		t.Error("disjoint patterns reported as overlapping")
	}
}

func request(t testing.TB, method, target string) *http.Request {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Skip(err)
	}
	return &http.Request{Method: method, URL: u, Host: "localhost", Header: http.Header{}}
}

func FuzzBodyLimit(f *testing.F) {
	for _, c := range limitCases {
		f.Add(c.method, c.target)
	}
	a := streamingAPI()
	f.Fuzz(func(t *testing.T, method, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || len(method) == 0 || len(method) > 10 {
			return
		}
		r := &http.Request{Method: method, URL: u, Host: "localhost", Header: http.Header{}}
		if got, want := a.bodyLimit(r), a.loopLimit(r); got != want {
			t.Fatalf("%s %s: %d, want %d", method, target, got, want)
		}
	})
}
