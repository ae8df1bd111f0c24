// Command rampart is both the Rampart server (serve, quickstart) and its
// client CLI (login, whoami, tenant, principal, key, …).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	server string
	caCert string
	json   bool
	tty    bool // stdout is a terminal: draw progress bars
	out    io.Writer
	errOut io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &globals{out: os.Stdout, errOut: os.Stderr, tty: isatty.IsTerminal(os.Stdout.Fd())}
	root := newRoot(g)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", oneLine(err))
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

type exitCoder interface{ ExitCode() int }

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "rampart",
		Short:         "Rampart: secure machine learning as a service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "server URL (else RAMPART_SERVER, else the saved login)")
	pf.StringVar(&g.caCert, "ca-cert", "", "PEM file of a CA to trust (else RAMPART_CA_CERT, else the saved login)")
	pf.BoolVar(&g.json, "json", false, "print JSON instead of tables")
	root.AddCommand(serveCmd(g), quickstartCmd(g), loginCmd(g), whoamiCmd(g), tenantCmd(g), principalCmd(g), keyCmd(g), versionCmd(g), trainCmd(g), jobCmd(g), internalCmd())
	root.AddCommand(datasetCmd(g))
	root.AddCommand(auditCmd(g))
	root.AddCommand(endpointCmd(g), predictCmd(g))
	root.AddCommand(complianceCmd(g))
	root.AddCommand(modelCmd(g))
	root.AddCommand(assessCmd(g))
	return root
}

// newLogger logs JSON in production and text on a terminal.
func newLogger(w *os.File, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if isatty.IsTerminal(w.Fd()) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func oneLine(err error) string {
	s := err.Error()
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
