package executor

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGrowPipe: the worker's pipes get a larger buffer than the kernel's
// 64 KiB default (best effort: at least 128 KiB where the system allows it).
func TestGrowPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	before, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Skip("F_GETPIPE_SZ:", err)
	}
	growPipe(w)
	after, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if after < 128<<10 || after < before {
		t.Fatalf("pipe buffer %d bytes after growPipe (was %d)", after, before)
	}
	t.Logf("pipe buffer %d → %d bytes", before, after)
}

// TestGrowPipeCmd: the pipes exec.Cmd hands out (as spawn uses them) are
// grown too, not only bare *os.File values.
func TestGrowPipeCmd(t *testing.T) {
	cmd := exec.Command("/bin/true")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer stdout.Close()
	for _, f := range []any{stdin, stdout} {
		growPipe(f)
		sc, ok := f.(interface{ Fd() uintptr })
		if !ok {
			t.Fatalf("%T has no Fd", f)
		}
		if n, err := unix.FcntlInt(sc.Fd(), unix.F_GETPIPE_SZ, 0); err != nil || n < 128<<10 {
			t.Fatalf("%T: pipe buffer %d bytes, %v", f, n, err)
		}
	}
}
