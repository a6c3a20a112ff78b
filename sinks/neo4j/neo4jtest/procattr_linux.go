package neo4jtest

import "syscall"

// procAttr puts the server in a process group of its own, so Freeze, Kill and
// cleanup reach all of it, and has the kernel SIGKILL it when the test binary
// dies without running its cleanups (a -timeout panic, a SIGKILL), so no
// private server outlives the tests. The kernel ties Pdeathsig to the thread
// that started the child; the Go runtime ends a thread only when a goroutine
// exits while locked to it with runtime.LockOSThread, which tests here do not.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
