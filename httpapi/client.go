package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// Client calls a Rampart server; the CLI is built on it.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client; caFile, if set, is a PEM bundle to trust
// (e.g. a server's self-signed certificate).
func NewClient(baseURL, token, caFile string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://host:port", baseURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token,
		HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}, nil
}

// ProblemError is a server's problem+json answer.
type ProblemError struct {
	Problem
}

func (e *ProblemError) Error() string {
	s := e.Detail
	if s == "" {
		s = e.Title
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// Is lets callers match by rampart code: errors.Is(err, rampart.ErrNotFound).
func (e *ProblemError) Is(target error) bool {
	t, ok := target.(*rampart.Error)
	return ok && t.Code == e.Code
}

// Do sends in (JSON, unless nil) and decodes the answer into out (unless nil).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decode(resp, out)
}

func decode(resp *http.Response, out any) error {
	lr := io.LimitReader(resp.Body, 64<<20)
	if resp.StatusCode >= 400 {
		var p ProblemError
		b, _ := io.ReadAll(io.LimitReader(lr, 1<<20))
		if err := json.Unmarshal(b, &p.Problem); err != nil || p.Code == "" {
			return &ProblemError{Problem: Problem{Status: resp.StatusCode, Code: codeForStatus(resp.StatusCode),
				Title: http.StatusText(resp.StatusCode), Detail: fmt.Sprintf("server answered %s", resp.Status)}}
		}
		return &p
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, lr)
		return nil
	}
	return json.NewDecoder(lr).Decode(out)
}

// Decode turns a response into out, or into a *ProblemError for 4xx/5xx.
func (c *Client) Decode(resp *http.Response, out any) error { return decode(resp, out) }

// DoRaw sends body with contentType (e.g. a CSV upload) and decodes the
// JSON answer into out.
func (c *Client) DoRaw(ctx context.Context, method, path string, query url.Values, contentType string, body io.Reader, out any) error {
	u := c.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decode(resp, out)
}
