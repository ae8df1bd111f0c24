package auditlog_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/auditlog"
)

const (
	crashDBEnv  = "RAMPART_AUDIT_CRASH_DB"
	crashKeyEnv = "RAMPART_AUDIT_CRASH_KEY"
	crashRunEnv = "RAMPART_AUDIT_CRASH_RUN"
)

// TestCrashChild is the child of TestCrashRecovery: it appends as fast as it
// can from several goroutines and prints "ack <index> <request id>" for every
// acknowledged event until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		t.Skip("run by TestCrashRecovery")
	}
	seed, _ := hex.DecodeString(os.Getenv(crashKeyEnv))
	run := os.Getenv(crashRunEnv)
	db := openDB(t, path)
	l := openLog(t, db.Audit(), ed25519.NewKeyFromSeed(seed), func(c *auditlog.Config) { c.PublishInterval = 3 * time.Millisecond })
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ev := testEvent(i)
				ev.RequestID = fmt.Sprintf("req_%s_%d_%d", run, g, i)
				// Half the appenders are prediction-like: acknowledged once
				// committed, flushed to disk in the background.
				ev.AckOnWrite = g%2 == 0
				idx, err := l.Append(context.Background(), ev)
				if err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %s\n", idx, ev.RequestID)
				out.Flush() // the ack reaches the "client" only now
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashRecovery (RES-2, AUDIT-1): kill -9 the appending child at random
// moments, 50 times; every time the log reopens, verifies (consistent with
// the checkpoint seen before the crash), and holds every acknowledged event —
// those acknowledged after the disk flush and the AckOnWrite ones
// acknowledged on commit alike.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 50 processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i * 7)
	}
	key := ed25519.NewKeyFromSeed(seed)
	vkeyLog := openLog(t, newDB(t).Audit(), key)
	vkey := vkeyLog.VerifierKey()
	r := rand.New(rand.NewPCG(7, 7))
	var witness []byte
	totalAcked := 0
	const runs = 50
	for run := 0; run < runs; run++ {
		cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashKeyEnv+"="+hex.EncodeToString(seed), crashRunEnv+"="+strconv.Itoa(run))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[uint64]string{}
		first := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stdout)
			once := sync.Once{}
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 3 || f[0] != "ack" {
					continue
				}
				idx, _ := strconv.ParseUint(f[1], 10, 64)
				acked[idx] = f[2]
				once.Do(func() { close(first) })
			}
		}()
		select {
		case <-first:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("run %d: child never acknowledged an event", run)
		}
		time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		<-done
		cmd.Wait()

		db := openDB(t, path)
		st := db.Audit()
		rep, err := auditlog.VerifyStore(ctx, st, vkey, auditlog.StoreVerifyOptions{Witness: witness, ParseEvents: true})
		if err != nil {
			t.Fatalf("run %d: after kill -9: %v", run, err)
		}
		for idx, req := range acked {
			if idx >= rep.Leaves {
				t.Fatalf("run %d: acknowledged event %d lost (%d leaves)", run, idx, rep.Leaves)
			}
			lv, err := st.ReadLeaves(ctx, idx, idx+1)
			if err != nil || len(lv) != 1 {
				t.Fatalf("run %d: read %d: %v", run, idx, err)
			}
			ev, err := auditlog.ParseEvent(lv[0].Data)
			if err != nil || ev.RequestID != req {
				t.Fatalf("run %d: event %d is %q, acknowledged %q (%v)", run, idx, ev.RequestID, req, err)
			}
		}
		totalAcked += len(acked)
		if rep.Latest != nil {
			witness = rep.Latest.Note
		}
		db.Close()
	}
	// Finally the log opens, publishes over everything and verifies strictly.
	db := openDB(t, path)
	l := openLog(t, db.Audit(), key)
	if _, err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := auditlog.VerifyStore(ctx, db.Audit(), vkey, auditlog.StoreVerifyOptions{Witness: witness, RequireCovered: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kill -9 runs: %d events acknowledged, %d stored, %d checkpoints; none lost", runs, totalAcked, rep.Leaves, rep.Checkpoints)
}
