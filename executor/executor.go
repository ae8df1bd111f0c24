// Package executor runs one training job in a separate, confined OS process
// (TEN-2): the same binary re-executed as a hidden internal command, fed its
// spec and decrypted data over a stdin pipe, returning progress and the
// artifact over a stdout pipe in length-prefixed frames.
//
// The parent applies, as far as the kernel allows, and reports which it
// got: a fresh network, IPC and UTS namespace; a distinct unprivileged uid
// per running job; an empty environment and an empty private working
// directory; address-space, CPU-time and process-count limits; a seccomp
// filter (installed by the child before it reads any input) that kills the
// job on network, process-creation, exec and privilege system calls; and a
// wall-clock limit the parent enforces by killing the process group.
// docs/isolation.md says what this does and does not protect against.
package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FailureKind classifies why a run failed.
type FailureKind string

// Failure kinds. Only Crash is worth retrying: the others are properties of
// the job and would fail again.
const (
	FailLimit     FailureKind = "limit"     // memory, CPU time or wall clock (TRAIN-4)
	FailViolation FailureKind = "violation" // forbidden system call (TEN-2)
	FailDiverged  FailureKind = "diverged"  // NaN/Inf loss (TRAIN-4)
	FailInvalid   FailureKind = "invalid"   // parameters or data unusable for the algorithm
	FailCancelled FailureKind = "cancelled"
	FailCrash     FailureKind = "crash" // the worker died without saying why
)

// Failure is the error Run returns when the job (not the platform) failed.
// Reason is safe to show to the job's owner.
type Failure struct {
	Kind   FailureKind
	Reason string
	// Isolation lists what the failed run got (TEN-2).
	Isolation []string
	// CPU is the CPU time the child used (0 if it never started).
	CPU time.Duration
}

func (f *Failure) Error() string { return string(f.Kind) + ": " + f.Reason }

// Retryable reports whether running the same job again might succeed.
func (f *Failure) Retryable() bool { return f.Kind == FailCrash }

// Limits bound one run.
type Limits struct {
	MemoryBytes int64         // address space (RLIMIT_AS)
	CPUSeconds  int           // RLIMIT_CPU
	Wall        time.Duration // enforced by the parent
	Processes   int           // RLIMIT_NPROC (threads count) for the job's uid
}

// Config configures an Executor.
type Config struct {
	// Command is the worker command: binary and arguments. Default: this
	// executable with "internal train-worker".
	Command []string
	// UIDBase is the first uid given to jobs; job i of those running at
	// once runs as UIDBase+i. Default: a random multiple of 4096 in
	// [3e9, 4e9), where no users exist, so that two executors on one host
	// (two servers, or tests) do not share uids.
	UIDBase uint32
	// Spares is how many worker processes are kept started ahead of their
	// jobs (see SetSpares); 0 starts each one when its job runs.
	Spares int
	Log    *slog.Logger
}

// Executor starts confined training processes.
type Executor struct {
	cfg     Config
	path    string
	args    []string
	stage   string // private dir holding the staged worker binary
	root    bool
	mu      sync.Mutex
	uids    map[uint32]bool
	nsFlags uintptr // namespaces that work here, learnt on first start
	nsKnown bool

	spareMu sync.Mutex
	spares  []*proc // started, waiting for a spec, oldest first
	want    int
	filling bool
	closed  bool
	fillers sync.WaitGroup
}

// proc is one started worker process: its own uid, namespaces, empty
// environment and private working directory are in place (they are set at
// clone and exec time), and it is blocked reading its spec. It has seen
// nothing of any job; its rlimits and seccomp filter follow from the spec
// before it reads any data. A proc runs one job and is never reused.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *tailBuffer
	kill   context.CancelFunc // SIGKILL to the process group (the command's Cancel)
	work   string
	uid    uint32
	iso    []string // uid and namespaces it got
}

// New prepares an executor. As root it stages the worker binary in a
// directory the job uids can traverse (the original may sit in a private
// directory, like a test binary), so the child can run as an unprivileged uid.
func New(cfg Config) (*Executor, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.UIDBase == 0 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.UIDBase = 3_000_000_000 + (binary.BigEndian.Uint32(b[:])%1_000_000_000)&^4095
	}
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("executor: find own binary: %w", err)
		}
		cfg.Command = []string{exe, "internal", "train-worker"}
		if strings.HasSuffix(exe, ".test") {
			// A test binary: its TestMain serves the worker when it finds
			// the worker arguments (IsWorker); one that does not runs no
			// tests instead of the whole suite, and the job fails cleanly
			// on the frame protocol.
			cfg.Command = []string{exe, "-test.run=^$", "internal", "train-worker"}
		}
	}
	e := &Executor{cfg: cfg, path: cfg.Command[0], args: cfg.Command[1:], uids: map[uint32]bool{}, root: os.Geteuid() == 0, want: max(cfg.Spares, 0)}
	if e.root {
		dir, err := os.MkdirTemp("", "rampart-worker-")
		if err != nil {
			return nil, fmt.Errorf("executor: stage worker: %w", err)
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("executor: stage worker: %w", err)
		}
		dst := filepath.Join(dir, "rampart-train-worker")
		if err := stageBinary(e.path, dst); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("executor: stage worker: %w", err)
		}
		e.stage, e.path = dir, dst
	}
	return e, nil
}

// stageBinary hard-links src to dst, or copies it when linking fails.
func stageBinary(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return os.Chmod(dst, 0o755)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// IsWorker reports whether args (os.Args) ask this process to be a
// training worker, and returns the arguments after "internal train-worker".
// Test binaries call it from TestMain.
func IsWorker(args []string) ([]string, bool) {
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "internal" && args[i+1] == "train-worker" {
			return args[i+2:], true
		}
	}
	return nil, false
}

// SetSpares sets how many worker processes are kept started ahead of their
// jobs (a job service sets it to its number of slots). Starting a worker —
// clone into fresh namespaces, exec, runtime initialisation — is most of a
// small job's fixed cost; a spare has paid it before its job arrives. Each
// spare still runs exactly one job: it is confined the same way, under its
// own uid, and learns its job (spec, limits, data) only when it is taken.
func (e *Executor) SetSpares(n int) {
	e.spareMu.Lock()
	e.want = max(n, 0)
	var extra []*proc
	if len(e.spares) > e.want {
		extra = e.spares[e.want:]
		e.spares = e.spares[:e.want:e.want]
	}
	e.spareMu.Unlock()
	for _, p := range extra {
		p.discard(e)
	}
	e.fill()
}

// take returns a live spare, or nil. It starts replacing it at once only
// when no spare is left; otherwise the replacement is started when the
// job's run ends (Run), so that starting a process (clone, exec, runtime
// start-up: CPU on a machine of few cores) does not compete with the
// training that just began, while the next job still finds a spare.
func (e *Executor) take() *proc {
	var p *proc
	var dead []*proc
	e.spareMu.Lock()
	for p == nil && len(e.spares) > 0 {
		p, e.spares = e.spares[0], e.spares[1:]
		if p.exited() {
			dead, p = append(dead, p), nil
		}
	}
	left := len(e.spares)
	e.spareMu.Unlock()
	for _, d := range dead {
		e.cfg.Log.Warn("executor: a spare worker had exited; discarded", "stderr", d.stderr.String())
		go d.discard(e)
	}
	if left == 0 {
		e.fill()
	}
	return p
}

// fill starts spares in the background until there are as many as wanted.
func (e *Executor) fill() {
	e.spareMu.Lock()
	if e.filling || e.closed || len(e.spares) >= e.want {
		e.spareMu.Unlock()
		return
	}
	e.filling = true
	e.fillers.Add(1)
	e.spareMu.Unlock()
	go func() {
		defer e.fillers.Done()
		for {
			p, err := e.spawn()
			e.spareMu.Lock()
			if err != nil || e.closed || len(e.spares) >= e.want {
				e.filling = false
				e.spareMu.Unlock()
				if err != nil {
					e.cfg.Log.Warn("executor: start a spare worker", "err", err)
				} else {
					p.discard(e)
				}
				return
			}
			e.spares = append(e.spares, p)
			done := len(e.spares) >= e.want
			if done {
				e.filling = false
			}
			e.spareMu.Unlock()
			if done {
				return
			}
		}
	}()
}

// spawn starts a worker process that waits for its spec.
func (e *Executor) spawn() (*proc, error) {
	work, err := os.MkdirTemp("", "rampart-job-")
	if err != nil {
		return nil, fmt.Errorf("executor: work dir: %w", err)
	}
	p := &proc{stderr: &tailBuffer{}, work: work}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if e.root {
		p.uid = e.takeUID()
		if err := os.Chown(work, int(p.uid), int(p.uid)); err != nil {
			p.release(e)
			return nil, fmt.Errorf("executor: work dir: %w", err)
		}
		attr.Credential = &syscall.Credential{Uid: p.uid, Gid: p.uid, Groups: []uint32{}}
		p.iso = append(p.iso, "uid:"+strconv.FormatUint(uint64(p.uid), 10))
	}
	// The command's context is the process's life: cancelling it (kill)
	// kills the process group. A job ties it to its own context and wall
	// clock when it takes the process.
	pctx, kill := context.WithCancel(context.Background())
	p.kill = kill
	var perr error
	build := func(flags uintptr) *exec.Cmd {
		cmd := exec.CommandContext(pctx, e.path, e.args...)
		cmd.Env = []string{}
		cmd.Dir = work
		a := *attr
		a.Cloneflags = flags
		cmd.SysProcAttr = &a
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 2 * time.Second
		cmd.Stderr = p.stderr
		if p.stdin, perr = cmd.StdinPipe(); perr == nil {
			p.stdout, perr = cmd.StdoutPipe()
		}
		if perr == nil {
			growPipe(p.stdin)
			growPipe(p.stdout)
		}
		return cmd
	}
	cmd, flags, err := e.start(build)
	if err == nil && perr != nil {
		kill()
		_ = cmd.Wait()
	}
	if err == nil {
		err = perr
	}
	if err != nil {
		p.release(e)
		return nil, fmt.Errorf("executor: start worker: %w", err)
	}
	p.cmd = cmd
	for _, ns := range []struct {
		f    uintptr
		name string
	}{{syscall.CLONE_NEWUSER, "userns"}, {syscall.CLONE_NEWNET, "netns"}, {syscall.CLONE_NEWIPC, "ipcns"}, {syscall.CLONE_NEWUTS, "utsns"}} {
		if flags&ns.f != 0 {
			p.iso = append(p.iso, ns.name)
		}
	}
	return p, nil
}

// pipeBytes is the capacity asked for the worker's stdin and stdout pipes
// (the kernel's default is 64 KiB): the parent can write a whole 1 MiB
// data chunk, and the child a small artifact, without waiting for the
// other side to be scheduled and read each 64 KiB. Two pipes per worker
// (2 MiB of kernel memory, counted against the user's pipe allowance).
const pipeBytes = 1 << 20

// growPipe enlarges a pipe's buffer to pipeBytes, or less if the system
// allows less (fs.pipe-max-size); it is best effort: a failure leaves the
// default size, which only costs speed.
func growPipe(f any) {
	sc, ok := f.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		for size := pipeBytes; size >= 128<<10; size /= 2 {
			if _, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size); err == nil {
				return
			}
		}
	})
}

// exited reports whether the process has ended (without reaping it).
func (p *proc) exited() bool {
	var si unix.Siginfo
	err := unix.Waitid(unix.P_PID, p.cmd.Process.Pid, &si, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != nil || si.Signo != 0
}

// release frees what the process held, after it has been waited for.
func (p *proc) release(e *Executor) {
	if p.kill != nil {
		p.kill()
	}
	_ = os.RemoveAll(p.work)
	if e.root && p.uid != 0 {
		e.dropUID(p.uid)
	}
}

// discard ends a process that never got a job.
func (p *proc) discard(e *Executor) {
	p.kill()
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
	p.release(e)
}

// Close ends the spares and removes the staged binary.
func (e *Executor) Close() error {
	e.spareMu.Lock()
	e.closed = true
	e.spareMu.Unlock()
	e.fillers.Wait() // a spare being started is discarded by its filler
	e.spareMu.Lock()
	spares := e.spares
	e.spares = nil
	e.spareMu.Unlock()
	for _, p := range spares {
		p.discard(e)
	}
	if e.stage != "" {
		return os.RemoveAll(e.stage)
	}
	return nil
}

// Result is a successful run.
type Result struct {
	Artifact  []byte
	Metrics   map[string]float64
	DPEpsilon float64
	DPDelta   float64
	// Isolation lists what the run actually got (TEN-2).
	Isolation []string
}

func (e *Executor) takeUID() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := uint32(0); ; i++ {
		if !e.uids[e.cfg.UIDBase+i] {
			e.uids[e.cfg.UIDBase+i] = true
			return e.cfg.UIDBase + i
		}
	}
}

func (e *Executor) dropUID(u uint32) {
	e.mu.Lock()
	delete(e.uids, u)
	e.mu.Unlock()
}

const allNS = syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

// start starts a command built by build, falling back to fewer namespaces
// where the kernel (or a container) refuses them; what worked is remembered.
func (e *Executor) start(build func(flags uintptr) *exec.Cmd) (*exec.Cmd, uintptr, error) {
	e.mu.Lock()
	known, flags := e.nsKnown, e.nsFlags
	e.mu.Unlock()
	if known {
		cmd := build(flags)
		return cmd, flags, cmd.Start()
	}
	attempts := []uintptr{allNS, syscall.CLONE_NEWNET, 0}
	if !e.root {
		attempts = []uintptr{syscall.CLONE_NEWUSER | allNS, syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET, 0}
	}
	var err error
	for _, f := range attempts {
		cmd := build(f)
		if f&syscall.CLONE_NEWUSER != 0 {
			cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
			cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		}
		if err = cmd.Start(); err == nil {
			e.mu.Lock()
			e.nsKnown, e.nsFlags = true, f
			e.mu.Unlock()
			if f != attempts[0] {
				e.cfg.Log.Warn("executor: some namespaces are unavailable; jobs get less isolation", "flags", f)
			}
			return cmd, f, nil
		}
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSPC) {
			return nil, 0, err
		}
	}
	return nil, 0, err
}

// Run trains one job in a confined child. data is the job's decrypted
// training data (CSV); progress is called for every report. A job-caused
// failure is a *Failure; any other error is the platform's.
func (e *Executor) Run(ctx context.Context, spec Spec, data io.Reader, lim Limits, progress func(Progress)) (*Result, error) {
	return e.RunWith(ctx, spec, data, lim, Hooks{Progress: progress})
}

// Hooks are called from Run's frame loop, in the order the child's frames
// arrive; they must not block for long (the child's output waits).
type Hooks struct {
	// Progress is called for every progress report.
	Progress func(Progress)
	// Artifact, when set, is called with the artifact's bytes as soon as
	// its frame has arrived, before the child has exited: the caller may
	// start work on them (sealing) that it undoes unless Run returns
	// this artifact in a successful Result. The bytes are the child's,
	// as untrusted as the Result's, and the run may still fail (exit
	// status, a violation, the wall clock).
	Artifact func([]byte)
	// DeferRefill leaves replacing the spare this run took to the caller,
	// who calls Refill once it has done what follows the run (storing its
	// outcome), so that starting a process — clone into new namespaces,
	// exec, runtime start-up: ~40 ms of CPU on a machine of few cores —
	// does not compete with that work. A run that finds no spare left
	// still starts refilling at once (take), so a caller that never calls
	// Refill only has its spares replaced later, not lost.
	DeferRefill bool
}

// Refill starts replacing the spares runs have taken (see
// Hooks.DeferRefill), in the background.
func (e *Executor) Refill() { e.fill() }

// RunWith is Run with hooks (see Hooks).
func (e *Executor) RunWith(ctx context.Context, spec Spec, data io.Reader, lim Limits, h Hooks) (*Result, error) {
	progress := h.Progress
	if lim.MemoryBytes <= 0 {
		lim.MemoryBytes = 2 << 30
	}
	if lim.CPUSeconds <= 0 {
		lim.CPUSeconds = 3600
	}
	if lim.Wall <= 0 {
		lim.Wall = time.Hour
	}
	if lim.Processes <= 0 {
		lim.Processes = 256
	}
	spec.MemoryBytes = lim.MemoryBytes
	p := e.take()
	if !h.DeferRefill {
		defer e.fill() // after release (deferred below): the spares a job took are replaced once it ends
	}
	if p == nil {
		var err error
		if p, err = e.spawn(); err != nil {
			return nil, err
		}
	}
	defer p.release(e)
	// The job's context and wall clock end the process from now on.
	runCtx, cancelRun := context.WithTimeout(ctx, lim.Wall)
	defer cancelRun()
	defer context.AfterFunc(runCtx, p.kill)()
	iso := slices.Clone(p.iso)
	cmd, stdin, stdout := p.cmd, p.stdin, p.stdout
	// The limits travel in the spec; the child sets them on itself before
	// it reads any data and before its seccomp filter forbids changing them
	// (the parent cannot prlimit a process of another uid without
	// CAP_SYS_RESOURCE, which containers often lack).
	spec.CPUSeconds, spec.Processes = lim.CPUSeconds, lim.Processes
	iso = append(iso, "rlimit_as", "rlimit_cpu", "rlimit_nproc")
	if seccompAvailable {
		iso = append(iso, "seccomp")
	}
	iso = append(iso, "empty_env", "private_workdir", "wall_clock")

	// Feed spec and data; a child that dies early makes this fail, which
	// the exit status explains. Data is forwarded as it is read (the child
	// parses while it arrives).
	// A read error is not the end of the data: the child is stopped
	// rather than left to train on a part of it.
	var feedErr error
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		defer stdin.Close()
		if err := writeJSONFrame(stdin, frameSpec, spec); err != nil {
			return
		}
		buf := make([]byte, dataChunk)
		for {
			n, rerr := data.Read(buf)
			if n > 0 {
				if err := writeFrame(stdin, frameData, buf[:n]); err != nil {
					return
				}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				feedErr = rerr
				p.kill()
				return
			}
		}
		_ = writeFrame(stdin, frameEnd, nil)
	}()

	res := &Result{Isolation: iso}
	var childErr *errorMsg
	gotResult, gotArtifact := false, false
	var protoErr error
	for {
		typ, b, err := readFrame(stdout)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				protoErr = err
			}
			break
		}
		switch typ {
		case frameProgress:
			var pr Progress
			if json.Unmarshal(b, &pr) == nil && progress != nil {
				progress(pr)
			}
		case frameResult:
			var r resultMsg
			if err := json.Unmarshal(b, &r); err != nil {
				protoErr = err
			}
			res.Metrics, res.DPEpsilon, res.DPDelta = r.Metrics, r.DPEpsilon, r.DPDelta
			gotResult = true
		case frameArtifact:
			if gotArtifact {
				protoErr = fmt.Errorf("%w: a second artifact", errFrame)
				break
			}
			res.Artifact = b
			gotArtifact = true
			if h.Artifact != nil {
				h.Artifact(b)
			}
		case frameError:
			var m errorMsg
			if err := json.Unmarshal(b, &m); err != nil {
				protoErr = err
			}
			childErr = &m
		default:
			protoErr = fmt.Errorf("%w: unexpected type %q", errFrame, typ)
		}
		if protoErr != nil {
			break
		}
	}
	if protoErr != nil {
		p.kill()
	}
	waitErr := cmd.Wait()
	<-feedDone
	if feedErr != nil && ctx.Err() == nil && runCtx.Err() == nil {
		return nil, fmt.Errorf("executor: read training data: %w", feedErr)
	}
	st := cmd.ProcessState
	res2, err2 := e.classify(ctx, runCtx, st, waitErr, p.stderr, lim, iso, res, childErr, protoErr, gotResult, gotArtifact)
	var f *Failure
	if errors.As(err2, &f) && st != nil {
		f.CPU = st.UserTime() + st.SystemTime()
	}
	return res2, err2
}

// classify turns how the child ended into a result or a failure.
func (e *Executor) classify(ctx, runCtx context.Context, st *os.ProcessState, waitErr error, stderr *tailBuffer, lim Limits,
	iso []string, res *Result, childErr *errorMsg, protoErr error, gotResult, gotArtifact bool) (*Result, error) {
	switch {
	case ctx.Err() != nil:
		return nil, &Failure{Isolation: iso, Kind: FailCancelled, Reason: "cancelled"}
	case runCtx.Err() != nil:
		return nil, &Failure{Isolation: iso, Kind: FailLimit, Reason: fmt.Sprintf("wall-clock limit of %s exceeded", lim.Wall)}
	}
	if st != nil && st.ExitCode() == exitCPULimit {
		return nil, &Failure{Isolation: iso, Kind: FailLimit, Reason: fmt.Sprintf("CPU-time limit of %ds exceeded", lim.CPUSeconds)}
	}
	if st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			cpu := st.UserTime() + st.SystemTime()
			switch {
			case ws.Signal() == syscall.SIGSYS:
				return nil, &Failure{Isolation: iso, Kind: FailViolation, Reason: "isolation violation: the job made a forbidden system call (network, process creation, exec or privilege change) and was stopped"}
			case ws.Signal() == syscall.SIGXCPU || (ws.Signal() == syscall.SIGKILL && cpu >= time.Duration(lim.CPUSeconds)*time.Second):
				return nil, &Failure{Isolation: iso, Kind: FailLimit, Reason: fmt.Sprintf("CPU-time limit of %ds exceeded", lim.CPUSeconds)}
			}
		}
	}
	if tail := stderr.String(); strings.Contains(tail, "out of memory") || strings.Contains(tail, "cannot allocate memory") {
		return nil, &Failure{Isolation: iso, Kind: FailLimit, Reason: fmt.Sprintf("memory limit of %d MiB exceeded", lim.MemoryBytes>>20)}
	}
	// A thread that cannot be created (its stack mapping refused) is the
	// address-space limit in nearly every case, the thread limit otherwise.
	if tail := stderr.String(); strings.Contains(tail, "pthread_create failed") || strings.Contains(tail, "newosproc") {
		return nil, &Failure{Isolation: iso, Kind: FailLimit, Reason: fmt.Sprintf("memory limit of %d MiB exceeded (the runtime could not map a new thread; thread limit %d)",
			lim.MemoryBytes>>20, lim.Processes)}
	}
	if childErr != nil {
		switch childErr.Kind {
		case kindDiverged:
			return nil, &Failure{Isolation: iso, Kind: FailDiverged, Reason: "training diverged: the loss became NaN or infinite; lower the learning rate or check the data (" + trimReason(childErr.Message) + ")"}
		case kindDenied:
			return nil, &Failure{Isolation: iso, Kind: FailViolation, Reason: "isolation violation: access denied (" + trimReason(childErr.Message) + ")"}
		case kindInvalid:
			return nil, &Failure{Isolation: iso, Kind: FailInvalid, Reason: trimReason(childErr.Message)}
		}
		return nil, &Failure{Isolation: iso, Kind: FailCrash, Reason: "worker error: " + trimReason(childErr.Message)}
	}
	if protoErr != nil {
		return nil, &Failure{Isolation: iso, Kind: FailViolation, Reason: "the worker broke the frame protocol and was stopped"}
	}
	if waitErr != nil || !gotResult || !gotArtifact {
		e.cfg.Log.Warn("executor: worker died", "err", waitErr, "stderr", stderr.String())
		return nil, &Failure{Isolation: iso, Kind: FailCrash, Reason: fmt.Sprintf("the worker process ended unexpectedly (%v)", waitErr)}
	}
	return res, nil
}

func trimReason(s string) string {
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// tailBuffer keeps the first 16 KiB and the last 32 KiB written to it (a
// child's stderr): a Go runtime fatal error states its cause first and then
// dumps every goroutine, so the head must survive a long dump.
type tailBuffer struct {
	mu   sync.Mutex
	head []byte
	tail []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if room := 16<<10 - len(t.head); room > 0 {
		k := min(room, len(p))
		t.head = append(t.head, p[:k]...)
		p = p[k:]
	}
	t.tail = append(t.tail, p...)
	if len(t.tail) > 64<<10 {
		t.tail = bytes.Clone(t.tail[len(t.tail)-32<<10:])
	}
	return n, nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.head) + string(t.tail)
}
