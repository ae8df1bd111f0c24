package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/rampart-mlaas/rampart/atomicfile"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/spf13/cobra"
)

// clientConfig is what `rampart login` saves (mode 0600).
type clientConfig struct {
	Server string `json:"server"`
	Key    string `json:"key"`
	CACert string `json:"ca_cert,omitempty"`
}

func configDir() (string, error) {
	if d := os.Getenv("RAMPART_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "rampart"), nil
}

func readClientConfig() (clientConfig, error) {
	var c clientConfig
	dir, err := configDir()
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("client config: %w", err)
	}
	return c, nil
}

// client finds the server and key: flags, then RAMPART_SERVER/RAMPART_KEY,
// then the saved login.
func (g *globals) client() (*httpapi.Client, error) {
	saved, err := readClientConfig()
	if err != nil {
		return nil, err
	}
	pick := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	srv := pick(g.server, os.Getenv("RAMPART_SERVER"), saved.Server)
	key := pick(os.Getenv("RAMPART_KEY"), saved.Key)
	ca := pick(g.caCert, os.Getenv("RAMPART_CA_CERT"), saved.CACert)
	if srv == "" {
		return nil, errors.New("no server: give --server, set RAMPART_SERVER or run `rampart login --server URL`")
	}
	if key == "" {
		return nil, errors.New("no API key: set RAMPART_KEY or run `rampart login`")
	}
	return httpapi.NewClient(srv, key, ca)
}

func loginCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "login --server URL",
		Short: "Save the server URL and an API key (read from stdin) for later commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.server == "" {
				return errors.New("--server URL is required")
			}
			fmt.Fprint(g.errOut, "API key: ")
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 4096)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			key := strings.TrimSpace(line)
			if key == "" {
				return errors.New("no key on stdin")
			}
			c, err := httpapi.NewClient(g.server, key, g.caCert)
			if err != nil {
				return err
			}
			var who httpapi.WhoamiResponse
			if err := c.Do(cmd.Context(), "GET", "/v1/whoami", nil, nil, &who); err != nil {
				return fmt.Errorf("login: %w", err)
			}
			dir, err := configDir()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			ca := g.caCert
			if ca != "" {
				if ca, err = filepath.Abs(ca); err != nil {
					return err
				}
			}
			b, _ := json.MarshalIndent(clientConfig{Server: g.server, Key: key, CACert: ca}, "", "  ")
			if err := writePrivate(filepath.Join(dir, "config.json"), b); err != nil {
				return err
			}
			fmt.Fprintf(g.errOut, "\nlogged in to %s as %s (%s, tenant %s)\n", g.server, who.Principal.Name, who.Principal.Role, who.Tenant.Name)
			return nil
		},
	}
}

// writePrivate writes a 0600 file atomically.
func writePrivate(path string, b []byte) error { return atomicfile.Write(path, b, 0o600) }

// emit prints v as JSON with --json, else calls human.
func (g *globals) emit(v any, human func()) error {
	if g.json {
		enc := json.NewEncoder(g.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human()
	return nil
}

func (g *globals) table(header table.Row, rows []table.Row) {
	t := table.NewWriter()
	t.SetOutputMirror(g.out)
	t.SetStyle(table.StyleLight)
	t.Style().Options.DrawBorder = false
	t.Style().Options.SeparateColumns = false
	t.Style().Options.SeparateHeader = true
	t.AppendHeader(header)
	t.AppendRows(rows)
	t.Render()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func tsp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return ts(*t)
}
