package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/authn"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/blob/disk"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/identity"
	"github.com/rampart-mlaas/rampart/keyring"
	"github.com/rampart-mlaas/rampart/serving"
	"github.com/rampart-mlaas/rampart/sqlite"
)

// Version is the build's version, set by cmd/rampart.
var Version = "dev"

// Files under the data dir.
const (
	dbFile       = "metadata.db"
	rootKeyFile  = "root.key"
	operatorFile = "operator.key"
	blobDir      = "blobs"
)

// Server is one assembled Rampart server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	DB       *sqlite.DB
	Keyring  *keyring.Keyring
	Blobs    *disk.Store
	Barrier  *barrier.Barrier
	Authn    *authn.Authenticator
	Audit    rampart.Auditor
	AuditLog *auditlog.Log
	API      *httpapi.API

	// OperatorToken is set only on the first start (bootstrap).
	OperatorToken authn.Token

	closers []func() error
	serving *serving.Service
	// selfURL is the base URL of the listener, once Listen has run; the
	// assessment service attacks endpoints through it (issue 8).
	selfURL atomic.Pointer[string]
	wg      sync.WaitGroup
	stop    chan struct{}
}

// Open prepares a server: checks the data dir, loads the root key, opens the
// stores and bootstraps on first start. On any error nothing has been
// changed beyond what a first start creates.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if _, set := os.LookupEnv("GOGC"); !set && cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	s := &Server{cfg: cfg, log: log, stop: make(chan struct{})}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	fresh, err := prepareDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	root, err := loadRootKey(cfg, fresh, log)
	if err != nil {
		return nil, err
	}
	// An existing store is checked against the root key before anything,
	// migrations included, may change it.
	s.DB, err = sqlite.OpenUnmigrated(ctx, filepath.Join(cfg.DataDir, dbFile))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.DB.Close)
	if fresh {
		if err := s.DB.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	s.Keyring, err = keyring.Open(ctx, s.DB, root)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	if !fresh {
		if err := s.DB.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	s.Blobs, err = disk.Open(filepath.Join(cfg.DataDir, blobDir))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Blobs.Close)
	s.Barrier = barrier.New(s.Keyring, s.Blobs)
	mac, err := s.Keyring.SystemMAC(ctx, "api-keys")
	if err != nil {
		return nil, err
	}
	s.Authn = authn.New(s.DB, mac, nil)
	s.AuditLog, err = openAudit(ctx, s)
	if err != nil {
		return nil, err
	}
	s.Audit = s.AuditLog
	ids := identity.New(s.DB, s.Authn, s.Audit, nil)
	s.API = httpapi.New(httpapi.Deps{Identity: ids, Authn: s.Authn, Audit: s.Audit, Log: log, Version: Version,
		Ready: s.ready, Checks: s.checks})
	s.routeAudit()
	if _, err := openRegistry(s); err != nil {
		return nil, err
	}
	if err := openDatasets(ctx, s); err != nil {
		return nil, err
	}
	if err := openJobs(ctx, s); err != nil {
		return nil, err
	}
	if err := openServing(ctx, s); err != nil {
		return nil, err
	}
	if err := openAssess(ctx, s); err != nil {
		return nil, err
	}
	if err := s.openCompliance(); err != nil {
		return nil, err
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.flushLoop()
	return s, nil
}

// prepareDataDir creates the data dir (0700) or checks that an existing one
// is private. fresh reports whether it holds no metadata yet.
func prepareDataDir(dir string) (fresh bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("create data dir: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("data dir: %w", err)
	case !fi.IsDir():
		return false, fmt.Errorf("data dir %s is not a directory", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return false, fmt.Errorf("data dir %s has mode %04o: it must not be accessible to group or others; run: chmod 700 %s",
			dir, fi.Mode().Perm(), dir)
	}
	_, err = os.Stat(filepath.Join(dir, dbFile))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	return false, err
}

// loadRootKey picks the root key source: RAMPART_ROOT_KEY, --root-key-file,
// else a file beside the data (development default, with a warning).
func loadRootKey(cfg Config, fresh bool, log *slog.Logger) (*keyring.RootKey, error) {
	switch {
	case cfg.RootKey != "":
		return keyring.ParseRootKey(string(cfg.RootKey))
	case cfg.RootKeyFile != "":
		return keyring.LoadOrCreateRootKeyFile(cfg.RootKeyFile, fresh)
	}
	path := filepath.Join(cfg.DataDir, rootKeyFile)
	log.Warn("the root key is kept beside the data (development default); use --root-key-file, RAMPART_ROOT_KEY or a KMS in production",
		"path", path)
	rk, err := keyring.LoadOrCreateRootKeyFile(path, fresh)
	if err != nil && !fresh && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the data dir has data but no root key at %s: restore it or give --root-key-file/RAMPART_ROOT_KEY: %w", path, err)
	}
	return rk, err
}

func (s *Server) ready(ctx context.Context) error {
	st := s.AuditLog.Status()
	if st.Closed {
		return fmt.Errorf("audit log closed")
	}
	if st.QueueCap > 0 && st.QueueLen > st.QueueCap*9/10 {
		return fmt.Errorf("audit queue nearly full (%d/%d)", st.QueueLen, st.QueueCap)
	}
	return s.DB.SQL().PingContext(ctx)
}

func (s *Server) flushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Authn.Flush(context.Background()); err != nil {
				s.log.Warn("flush key usage", "err", err)
			}
		}
	}
}

func (s *Server) closeAll() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			s.log.Warn("close", "err", err)
		}
	}
	s.closers = nil
}

// Close releases everything; call after Serve returns.
func (s *Server) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	if s.Authn != nil {
		if err := s.Authn.Flush(context.Background()); err != nil {
			s.log.Warn("flush key usage", "err", err)
		}
	}
	s.closeAll()
	return nil
}

// Listen opens the listener (TLS if configured). Split from Serve so a
// caller can learn the bound address (":0" in tests) before serving.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if !s.cfg.TLS() {
		s.storeSelfURL(ln)
		return ln, nil
	}
	tc, err := s.tlsConfig()
	if err != nil {
		ln.Close()
		return nil, err
	}
	tln := tls.NewListener(ln, tc)
	s.storeSelfURL(ln)
	return tln, nil
}

// Serve serves on ln until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.API,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// URL is the base URL for a listener address.
func (s *Server) URL(ln net.Listener) string {
	scheme := "http"
	if s.cfg.TLS() {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String()
}

// SetAddr changes the listen address before Listen (quickstart's fallback
// to a free port).
func (s *Server) SetAddr(addr string) { s.cfg.Addr = addr }

// storeSelfURL records how this process reaches its own listener: through
// loopback when it listens on every address.
func (s *Server) storeSelfURL(ln net.Listener) {
	host, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if s.cfg.TLS() {
		scheme = "https"
	}
	u := scheme + "://" + net.JoinHostPort(host, port)
	s.selfURL.Store(&u)
}
