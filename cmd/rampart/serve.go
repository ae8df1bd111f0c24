package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rampart-mlaas/rampart/server"
	"github.com/spf13/cobra"
)

var version = "dev"

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print the version", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.out, "rampart", version)
			return nil
		}}
}

// loadConfig reads the one typed config: defaults, then the file, then
// RAMPART_* variables, then flags (applied by the caller via Changed).
func loadConfig(path string) (server.Config, error) {
	cfg := server.Defaults()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		var fc struct {
			server.Config
			ShutdownTimeout string `json:"shutdown_timeout"`
		}
		fc.Config = cfg
		dec := json.NewDecoder(f)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		cfg = fc.Config
		if fc.ShutdownTimeout != "" {
			d, err := time.ParseDuration(fc.ShutdownTimeout)
			if err != nil {
				return cfg, fmt.Errorf("config %s: shutdown_timeout: %w", path, err)
			}
			cfg.ShutdownTimeout = d
		}
	}
	env := func(name string, dst *string) {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			*dst = v
		}
	}
	env("RAMPART_DATA", &cfg.DataDir)
	env("RAMPART_ADDR", &cfg.Addr)
	env("RAMPART_ROOT_KEY_FILE", &cfg.RootKeyFile)
	env("RAMPART_TSA_URL", &cfg.TSAURL)
	if v := os.Getenv("RAMPART_ROOT_KEY"); v != "" {
		cfg.RootKey = server.Secret(v)
	}
	return cfg, nil
}

func serveCmd(g *globals) *cobra.Command {
	var (
		cfgFile  string
		fl       server.Config
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Rampart server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			set := func(name string, apply func()) {
				if f.Changed(name) {
					apply()
				}
			}
			set("data", func() { cfg.DataDir = fl.DataDir })
			set("addr", func() { cfg.Addr = fl.Addr })
			set("tls-cert", func() { cfg.TLSCert = fl.TLSCert })
			set("tls-key", func() { cfg.TLSKey = fl.TLSKey })
			set("tls-self-signed", func() { cfg.TLSSelfSigned = fl.TLSSelfSigned })
			set("insecure-plaintext", func() { cfg.InsecurePlaintext = fl.InsecurePlaintext })
			set("root-key-file", func() { cfg.RootKeyFile = fl.RootKeyFile })
			set("tsa-url", func() { cfg.TSAURL = fl.TSAURL })
			set("audit-fsync-predictions", func() { cfg.AuditFsyncPredictions = fl.AuditFsyncPredictions })
			set("gc-percent", func() { cfg.GCPercent = fl.GCPercent })
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := newLogger(os.Stderr, lvl)
			ctx := cmd.Context()
			srv, err := server.Open(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := srv.Listen()
			if err != nil {
				return err
			}
			log.Info("rampart serving", "url", srv.URL(ln), "data", cfg.DataDir, "version", version)
			return srv.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	d := server.Defaults()
	f.StringVar(&cfgFile, "config", "", "JSON config file")
	f.StringVar(&fl.DataDir, "data", d.DataDir, "data directory")
	f.StringVar(&fl.Addr, "addr", d.Addr, "listen address")
	f.StringVar(&fl.TLSCert, "tls-cert", "", "TLS certificate (PEM)")
	f.StringVar(&fl.TLSKey, "tls-key", "", "TLS private key (PEM)")
	f.BoolVar(&fl.TLSSelfSigned, "tls-self-signed", false, "generate a self-signed certificate into the data dir")
	f.BoolVar(&fl.InsecurePlaintext, "insecure-plaintext", false, "allow plaintext HTTP on a non-loopback address (behind a TLS proxy)")
	f.StringVar(&fl.RootKeyFile, "root-key-file", "", "root key file (mode 0600); default: beside the data (development only)")
	f.StringVar(&fl.TSAURL, "tsa-url", "", "RFC 3161 time-stamping authority for audit checkpoints")
	f.BoolVar(&fl.AuditFsyncPredictions, "audit-fsync-predictions", false,
		"answer a prediction only once its audit event is on disk (default: once committed, flushed within milliseconds)")
	f.IntVar(&fl.GCPercent, "gc-percent", d.GCPercent, "Go GC target (GOGC) of the server process unless GOGC is set; 0: the runtime's default")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
