package assess

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Problem types of the endpoint's guards (httpapi: urn:rampart:problem:<kind>).
const (
	problemBase        = "urn:rampart:problem:"
	kindRateLimited    = "rate-limited"
	kindBudget         = "budget-exhausted"
	kindExtraction     = "extraction-suspected"
	kindOverloaded     = "overloaded"
	maxResponseBytes   = 64 << 20
	defaultMaxWaitTime = 30 * time.Second
)

// Token is a bearer credential; it never prints.
type Token string

// String redacts the token.
func (Token) String() string { return "[redacted]" }

// HTTPOracle queries a live endpoint through POST
// /v1/endpoints/{endpoint}/predict as one principal, so every guard of the
// endpoint (rate limit, budget, validation, OOD, output policy, extraction
// monitor) applies to the attack (PRIV-2, PRIV-3). A rate-limited request
// waits as a patient attacker would (within MaxWait in total); an
// exhausted budget or an extraction block ends the attack (ErrRefused).
type HTTPOracle struct {
	Client   *http.Client
	BaseURL  string // e.g. https://rampart.example:8443
	Endpoint string
	Token    Token
	Space    Space
	// MaxWait bounds the total time spent waiting on Retry-After
	// (default 30 s).
	MaxWait time.Duration

	mu      sync.Mutex
	waited  time.Duration
	flagged string
	queries int64
}

// Flagged implements Flagger: whether the endpoint has answered this
// principal with an extraction-suspected refusal or throttle (INF-3).
func (o *HTTPOracle) Flagged(context.Context) (bool, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.flagged != "", o.flagged, nil
}

// Queries returns the rows answered so far.
func (o *HTTPOracle) Queries() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queries
}

type problemDoc struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
	Status int    `json:"status"`
}

type predictResponse struct {
	Predictions []struct {
		Label         string          `json:"label"`
		Labels        []string        `json:"labels"`
		Probability   *float64        `json:"probability"`
		Probabilities json.RawMessage `json:"probabilities"`
	} `json:"predictions"`
}

// Predict implements Oracle.
func (o *HTTPOracle) Predict(ctx context.Context, rows [][]float64) ([]Prediction, error) {
	body, err := o.encode(rows)
	if err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	u := strings.TrimRight(o.BaseURL, "/") + "/v1/endpoints/" + url.PathEscape(o.Endpoint) + "/predict"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("assess: endpoint request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+string(o.Token))
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("assess: endpoint request: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("assess: endpoint response: %w", err)
		}
		if resp.StatusCode == http.StatusOK {
			out, err := o.decode(b, len(rows))
			if err == nil {
				o.mu.Lock()
				o.queries += int64(len(rows))
				o.mu.Unlock()
			}
			return out, err
		}
		var p problemDoc
		_ = json.Unmarshal(b, &p)
		kind := strings.TrimPrefix(p.Type, problemBase)
		if kind == kindExtraction {
			o.mu.Lock()
			if o.flagged == "" {
				o.flagged = p.Detail
			}
			o.mu.Unlock()
		}
		wait := retryAfter(resp.Header.Get("Retry-After"))
		if resp.StatusCode == http.StatusTooManyRequests && wait > 0 && (kind == kindRateLimited || kind == kindOverloaded || kind == kindExtraction) {
			o.mu.Lock()
			limit := o.MaxWait
			if limit <= 0 {
				limit = defaultMaxWaitTime
			}
			ok := o.waited+wait <= limit
			if ok {
				o.waited += wait
			}
			o.mu.Unlock()
			if ok {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(wait):
				}
				continue
			}
			return nil, fmt.Errorf("%w: %s (waited %v in total)", ErrRefused, kind, limit)
		}
		if resp.StatusCode == http.StatusTooManyRequests || kind == kindBudget || kind == kindExtraction {
			return nil, fmt.Errorf("%w: %s: %s", ErrRefused, kind, p.Detail)
		}
		return nil, fmt.Errorf("assess: endpoint answered %d %s: %s", resp.StatusCode, kind, p.Detail)
	}
}

func retryAfter(h string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(min(s, 3600)) * time.Second
}

// encode writes rows as the /v1 predict body: objects keyed by feature.
func (o *HTTPOracle) encode(rows [][]float64) ([]byte, error) {
	type body struct {
		Rows []map[string]any `json:"rows"`
	}
	b := body{Rows: make([]map[string]any, len(rows))}
	for i, r := range rows {
		if len(r) != len(o.Space.Features) {
			return nil, fmt.Errorf("%w: row %d has %d values for %d features", ErrInput, i, len(r), len(o.Space.Features))
		}
		m := make(map[string]any, len(r))
		for j, f := range o.Space.Features {
			v := r[j]
			switch {
			case math.IsNaN(v):
				m[f.Name] = nil
			case f.Categorical:
				k := int(v)
				if k < 0 || k >= len(f.Categories) {
					return nil, fmt.Errorf("%w: row %d: category index %v of %q out of range", ErrInput, i, v, f.Name)
				}
				m[f.Name] = f.Categories[k]
			default:
				m[f.Name] = v
			}
		}
		b.Rows[i] = m
	}
	return json.Marshal(b)
}

func (o *HTTPOracle) decode(b []byte, n int) ([]Prediction, error) {
	var r predictResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("assess: endpoint response: %w", err)
	}
	if len(r.Predictions) != n {
		return nil, fmt.Errorf("assess: endpoint returned %d predictions for %d rows", len(r.Predictions), n)
	}
	k := len(o.Space.Classes)
	out := make([]Prediction, n)
	for i, p := range r.Predictions {
		label := p.Label
		if label == "" && len(p.Labels) > 0 {
			label = p.Labels[0] // top-k: most probable first
		}
		c := o.Space.ClassIndex(label)
		if c < 0 {
			return nil, fmt.Errorf("assess: endpoint returned unknown class %q", label)
		}
		out[i] = Prediction{Class: c, PLabel: math.NaN()}
		if p.Probability != nil {
			out[i].PLabel = *p.Probability
		}
		if len(p.Probabilities) > 0 && p.Probabilities[0] == '{' {
			var m map[string]float64
			if err := json.Unmarshal(p.Probabilities, &m); err != nil {
				return nil, fmt.Errorf("assess: endpoint probabilities: %w", err)
			}
			out[i].Proba = make([]float64, k)
			for l, v := range m {
				if j := o.Space.ClassIndex(l); j >= 0 {
					out[i].Proba[j] = v
				}
			}
			out[i].PLabel = out[i].Proba[c]
		} else if len(p.Probabilities) > 0 && p.Probabilities[0] == '[' {
			var v []float64
			if err := json.Unmarshal(p.Probabilities, &v); err == nil && len(v) > 0 {
				out[i].PLabel = v[0]
			}
		}
	}
	return out, nil
}

var _ Flagger = (*HTTPOracle)(nil)
