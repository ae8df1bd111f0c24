//go:build !(linux && amd64)

package executor

// seccompAvailable is false: this build has no seccomp filter, and jobs do
// not report "seccomp" among their isolation mechanisms.
const seccompAvailable = false

func confine() error { return nil }
