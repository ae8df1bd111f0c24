package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/serving"
	"github.com/spf13/cobra"
)

// maxPredictInput bounds what `rampart predict` reads (the server's limit).
const maxPredictInput = serving.MaxBody

// predictCmd is `rampart predict NAME` (also `rampart endpoint predict`).
func predictCmd(g *globals) *cobra.Command {
	var file, format string
	var verify bool
	cmd := &cobra.Command{Use: "predict NAME [--file rows.csv|rows.json]",
		Short: "Predict with an endpoint: CSV (header row) or JSON rows in, a table or JSON out",
		Long: "Reads rows from --file or stdin: CSV with a header row, a JSON array of objects keyed by feature name, " +
			"or {\"rows\": [...]}. Empty CSV fields are missing values. Prints the model version and digest that " +
			"answered; --verify checks the endpoint's signature (INF-6).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			if file != "" && file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
				if format == "" && strings.HasSuffix(strings.ToLower(file), ".csv") {
					format = "csv"
				}
			}
			raw, err := io.ReadAll(io.LimitReader(in, maxPredictInput+1))
			if err != nil {
				return err
			}
			if len(raw) > maxPredictInput {
				return fmt.Errorf("input larger than %d bytes", maxPredictInput)
			}
			body, err := predictBody(raw, format)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "POST", cl.BaseURL+epPath(args[0])+"/predict", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+cl.Token)
			resp, err := cl.HTTP.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return cl.Decode(resp, nil)
			}
			out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			if err != nil {
				return err
			}
			if verify {
				if err := verifyPrediction(cmd, g, resp.Header.Get("X-Rampart-Signature"), body, out); err != nil {
					return err
				}
			}
			if g.json {
				_, err := g.out.Write(append(out, '\n'))
				return err
			}
			return predictionTable(g, out, resp.Header)
		}}
	cmd.Flags().StringVarP(&file, "file", "f", "", "rows file (default: stdin)")
	cmd.Flags().StringVar(&format, "format", "", "csv or json (default: by extension, else detected)")
	cmd.Flags().BoolVar(&verify, "verify", false, "verify the response signature with the platform key")
	return cmd
}

// predictBody turns CSV or JSON rows into a /v1 predict body.
func predictBody(raw []byte, format string) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	if format == "" {
		format = "csv"
		if len(t) > 0 && (t[0] == '[' || t[0] == '{') {
			format = "json"
		}
	}
	switch format {
	case "json":
		if len(t) > 0 && t[0] == '[' {
			var rows []map[string]json.RawMessage
			if err := json.Unmarshal(t, &rows); err != nil {
				return nil, fmt.Errorf("JSON rows: %w", err)
			}
			return json.Marshal(serving.PredictRequest{Rows: rows})
		}
		return t, nil
	case "csv":
		r := csv.NewReader(bytes.NewReader(raw))
		recs, err := r.ReadAll()
		if err != nil {
			return nil, fmt.Errorf("CSV rows: %w", err)
		}
		if len(recs) < 2 {
			return nil, fmt.Errorf("CSV rows: want a header row and at least one row")
		}
		rows := make([]map[string]any, 0, len(recs)-1)
		for _, rec := range recs[1:] {
			m := make(map[string]any, len(rec))
			for j, v := range rec {
				switch f, err := strconv.ParseFloat(v, 64); {
				case v == "":
					m[recs[0][j]] = nil
				case err == nil:
					m[recs[0][j]] = f
				default:
					m[recs[0][j]] = v
				}
			}
			rows = append(rows, m)
		}
		return json.Marshal(map[string]any{"rows": rows})
	}
	return nil, fmt.Errorf("--format must be csv or json")
}

func verifyPrediction(cmd *cobra.Command, g *globals, jws string, req, resp []byte) error {
	if jws == "" {
		return fmt.Errorf("--verify: the endpoint does not sign its predictions")
	}
	cl, err := g.client()
	if err != nil {
		return err
	}
	var key httpapi.PublicKeyResponse
	if err := cl.Do(cmd.Context(), "GET", "/v1/prediction-signing-key", nil, nil, &key); err != nil {
		return err
	}
	blk, _ := pem.Decode([]byte(key.PublicKeyPEM))
	if blk == nil {
		return fmt.Errorf("signing key: not PEM")
	}
	pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	pub, ok := pk.(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("signing key is not Ed25519")
	}
	c, err := serving.VerifyJWS(jws, pub, req, resp)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.errOut, "signature verified (key %s, model %s)\n", key.KeyID, c.ModelDigest)
	return nil
}

func predictionTable(g *globals, body []byte, h http.Header) error {
	var out struct {
		Predictions []map[string]json.RawMessage `json:"predictions"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	cols := map[string]bool{}
	for _, p := range out.Predictions {
		for k := range p {
			cols[k] = true
		}
	}
	order := []string{"label", "labels", "value", "probability", "probabilities", "ood"}
	var header table.Row
	var keys []string
	header = append(header, "ROW")
	for _, k := range order {
		if cols[k] {
			header = append(header, strings.ToUpper(k))
			keys = append(keys, k)
		}
	}
	var rows []table.Row
	for i, p := range out.Predictions {
		r := table.Row{i}
		for _, k := range keys {
			r = append(r, cell(p[k]))
		}
		rows = append(rows, r)
	}
	g.table(header, rows)
	fmt.Fprintf(g.errOut, "model version %s, digest %s\n", h.Get("X-Rampart-Model-Version"), h.Get("X-Rampart-Model-Digest"))
	return nil
}

func cell(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) == nil {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+string(m[k]))
		}
		return strings.Join(parts, " ")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
