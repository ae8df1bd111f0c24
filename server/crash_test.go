package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/server"
)

// TestMain lets the test binary act as the crash-test child: a real server
// process that serves the API and writes blobs until it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("RAMPART_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func crashChild(dir string) {
	ctx := context.Background()
	srv, err := server.Open(ctx, testConfig(dir), quietLog())
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	ln, err := srv.Listen()
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	go srv.Serve(ctx, ln)
	fmt.Println("URL", srv.URL(ln))
	for i := 0; ; i++ {
		id := "b" + rampart.RandomToken(10)
		data := bytes.Repeat([]byte(id), 100+i%5000)
		s, err := srv.Barrier.PutBytes(ctx, barrier.Ref{Tenant: "tn_crash", Kind: "blob", ID: id, Version: 1}, data)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		// Acknowledged: only now does the parent count it.
		fmt.Println("BLOB", id, s.Digest, len(data))
	}
}

type ackedPrincipal struct {
	id, token string
}

type ackedBlob struct {
	id, digest string
	size       int
}

// TestCrashRecovery is RES-2 (first part): kill -9 of a real server process
// at random moments while principals (over HTTP) and blobs are written, 50
// times; after each kill the store opens and every acknowledged write is
// present and intact.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 50 server processes")
	}
	dir := filepath.Join(t.TempDir(), "data")
	// First start bootstraps; keep the operator key.
	srv, err := server.Open(context.Background(), testConfig(dir), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	opTok := srv.OperatorToken.Reveal()
	var sys rampart.Tenant
	sys, err = srv.DB.GetTenantByName(context.Background(), rampart.SystemTenantName)
	if err != nil {
		t.Fatal(err)
	}
	tn := rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: "crash", CreatedAt: time.Now()}
	if err := srv.DB.CreateTenant(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_ = sys

	rng := rand.New(rand.NewPCG(42, 1))
	var principals []ackedPrincipal
	var blobs []ackedBlob
	const rounds = 50
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RAMPART_CRASH_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "URL ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child did not start: %q", round, sc.Text())
		}
		url := strings.TrimPrefix(sc.Text(), "URL ")
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() { // blob acks
			defer wg.Done()
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 4 && f[0] == "BLOB" {
					var n int
					fmt.Sscan(f[3], &n)
					mu.Lock()
					blobs = append(blobs, ackedBlob{f[1], f[2], n})
					mu.Unlock()
				} else if f[0] == "ERR" {
					t.Errorf("child: %s", sc.Text())
				}
			}
		}()
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() { // principal writes over the API
				defer wg.Done()
				c, _ := httpapi.NewClient(url, opTok, "")
				c.HTTP.Timeout = 2 * time.Second
				for {
					select {
					case <-stop:
						return
					default:
					}
					var pr httpapi.CreatePrincipalResponse
					err := c.Do(context.Background(), "POST", "/v1/principals", nil,
						httpapi.CreatePrincipalRequest{TenantID: tn.ID, Name: "p-" + rampart.RandomToken(6), Role: rampart.RoleServiceUser}, &pr)
					if err == nil {
						mu.Lock()
						principals = append(principals, ackedPrincipal{pr.Principal.ID, pr.Token})
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		close(stop)
		cmd.Wait()
		wg.Wait()

		// Reopen and check every acknowledged write.
		srv, err := server.Open(context.Background(), testConfig(dir), quietLog())
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for _, p := range principals {
			got, _, err := srv.Authn.Authenticate(context.Background(), p.token)
			if err != nil || got.ID != p.id {
				t.Fatalf("round %d: acknowledged principal %s lost: %v", round, p.id, err)
			}
		}
		for _, b := range blobs {
			data, err := srv.Barrier.GetBytes(context.Background(), barrier.Ref{Tenant: "tn_crash", Kind: "blob", ID: b.id, Version: 1}, b.digest, 1<<20)
			sum := sha256.Sum256(data)
			if err != nil || len(data) != b.size || fmt.Sprintf("%x", sum) != b.digest {
				t.Fatalf("round %d: acknowledged blob %s lost or corrupt: %v", round, b.id, err)
			}
		}
		srv.Close()
	}
	if len(principals) < rounds || len(blobs) < rounds {
		t.Fatalf("too few writes to mean anything: %d principals, %d blobs", len(principals), len(blobs))
	}
	t.Logf("%d kill -9 rounds: %d acknowledged principals and %d acknowledged blobs all intact", rounds, len(principals), len(blobs))
}
