// Command floor is the latency floor of bench/serving's half-load run: a
// bare net/http server that reads the same OIP body, decodes it with
// encoding/json and answers a fixed one-row response — no auth, guards,
// model or audit. Paced by the same wrk script at the same offered rate, its
// p99 is what this machine's scheduler and loopback give any Go server,
// so the gap to the real endpoint's p99 is Rampart's own.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address (loopback only)")
	flag.Parse()
	http.HandleFunc("POST /v2/models/floor/infer", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var v map[string]any
		if err != nil || json.Unmarshal(b, &v) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"model_name":"floor","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[1]}]}`))
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
