package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

// buildBinary builds the real rampart binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rampart")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

type cli struct {
	t   *testing.T
	bin string
	env []string
}

func (c cli) run(stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, err := c.run("", args...)
	if err != nil {
		c.t.Fatalf("rampart %s: %v\n%s%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

// TestCLI drives the real binary against a real server: login, whoami,
// tenant, principal and key commands, JSON and table output, one-line
// errors with a non-zero exit.
func TestCLI(t *testing.T) {
	bin := buildBinary(t)
	e := servertest.Start(t)
	cfgDir := t.TempDir()
	op := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + cfgDir, "RAMPART_SERVER=", "RAMPART_KEY="}}

	// login reads the key from stdin and stores a 0600 config.
	if _, errs, err := op.run(e.OpToken+"\n", "login", "--server", e.URL); err != nil {
		t.Fatalf("login: %v %s", err, errs)
	}
	fi, err := os.Stat(filepath.Join(cfgDir, "config.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client config: %v %v", fi, err)
	}
	out := op.ok("whoami")
	if !strings.Contains(out, "operator") || !strings.Contains(out, "system") {
		t.Fatalf("whoami table: %s", out)
	}
	op.ok("tenant", "create", "bank")
	var tenants []rampart.Tenant
	if err := json.Unmarshal([]byte(op.ok("tenant", "list", "--json")), &tenants); err != nil || len(tenants) != 2 {
		t.Fatalf("tenant list --json: %v %v", tenants, err)
	}
	var pr httpapi.CreatePrincipalResponse
	if err := json.Unmarshal([]byte(op.ok("principal", "create", "alice", "--tenant", "bank", "--role", "data-provider", "--json")), &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Principal.Role != rampart.RoleDataProvider || !strings.HasPrefix(pr.Token, "rmp_") {
		t.Fatalf("principal create: %+v", pr)
	}
	if out := op.ok("principal", "list", "--tenant", "bank"); !strings.Contains(out, "alice") {
		t.Fatalf("principal list: %s", out)
	}

	// alice uses RAMPART_KEY and manages her own keys.
	alice := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + t.TempDir(), "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + pr.Token}}
	out = alice.ok("key", "create", "laptop", "--ttl", "720h")
	if !strings.Contains(out, "rmp_") || !strings.Contains(out, "shown once") {
		t.Fatalf("key create: %s", out)
	}
	var keys []rampart.APIKey
	if err := json.Unmarshal([]byte(alice.ok("key", "list", "--json")), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("key list: %v %v", keys, err)
	}
	if strings.Contains(alice.ok("key", "list", "--json"), "hash") {
		t.Fatal("key list exposes hashes")
	}
	var laptop rampart.APIKey
	for _, k := range keys {
		if k.Name == "laptop" {
			laptop = k
		}
	}
	alice.ok("key", "revoke", laptop.ID)
	if out := alice.ok("key", "list"); !strings.Contains(out, "revoked") {
		t.Fatalf("key list after revoke: %s", out)
	}

	// Errors: one line, non-zero exit.
	_, errs, err := alice.run("", "tenant", "list")
	if err == nil || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "error:") {
		t.Fatalf("forbidden: err=%v stderr=%q", err, errs)
	}
	bad := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + t.TempDir(), "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=rmp_nope"}}
	if _, errs, err := bad.run("", "whoami"); err == nil || !strings.Contains(errs, "invalid credential") {
		t.Fatalf("bad key: %v %q", err, errs)
	}
	if _, errs, err := bad.run("", "login"); err == nil || !strings.Contains(errs, "--server") {
		t.Fatalf("login without server: %v %q", err, errs)
	}
}

// TestQuickstartOnce runs the main job end to end.
func TestQuickstartOnce(t *testing.T) {
	bin := buildBinary(t)
	c := cli{t, bin, nil}
	data := filepath.Join(t.TempDir(), "qs")
	start := time.Now()
	out := c.ok("quickstart", "--once", "--data", data, "--addr", "127.0.0.1:0")
	for _, want := range []string{"bank", "modelworks", "shop", "rmp_", "[ok  ] shop reads bank's principal → 404"} {
		if !strings.Contains(out, want) {
			t.Fatalf("quickstart output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Fatalf("quickstart check failed:\n%s", out)
	}
	// A rerun on the same data dir works and shows the same keys.
	out2 := c.ok("quickstart", "--once", "--data", data, "--addr", "127.0.0.1:0")
	if !strings.Contains(out2, strings.Fields(out[strings.Index(out, "bank "):])[2]) {
		t.Fatalf("rerun shows other keys:\n%s", out2)
	}
	t.Logf("quickstart twice in %s", time.Since(start))
}

// TestServeLifecycle starts the real binary: first start prints the operator
// key once, the server answers, SIGTERM shuts it down gracefully (exit 0),
// and the second start prints no key.
func TestServeLifecycle(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "d")
	start := func() (*exec.Cmd, *bytes.Buffer, string) {
		port := freePort(t)
		cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:"+port, "--log-level", "warn")
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		url := "http://127.0.0.1:" + port
		for i := 0; ; i++ {
			resp, err := http.Get(url + "/healthz")
			if err == nil {
				resp.Body.Close()
				break
			}
			if i > 100 {
				cmd.Process.Kill()
				t.Fatalf("server did not come up: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return cmd, &out, url
	}
	stop := func(cmd *exec.Cmd) {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatal("no graceful shutdown within 10 s")
		}
	}
	cmd, out, url := start()
	key, err := os.ReadFile(filepath.Join(data, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + t.TempDir(), "RAMPART_SERVER=" + url, "RAMPART_KEY=" + strings.TrimSpace(string(key))}}
	if !strings.Contains(c.ok("whoami"), "operator") {
		t.Fatal("operator key does not work")
	}
	stop(cmd)
	if strings.Count(out.String(), strings.TrimSpace(string(key))) != 1 {
		t.Fatalf("first start should print the key once:\n%s", out.String())
	}
	cmd, out, _ = start()
	stop(cmd)
	if strings.Contains(out.String(), "rmp_") {
		t.Fatalf("second start printed a key:\n%s", out.String())
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}
