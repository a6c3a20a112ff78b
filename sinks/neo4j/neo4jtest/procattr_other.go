//go:build unix && !linux

package neo4jtest

import "syscall"

// procAttr puts the server in a process group of its own, so Freeze, Kill and
// cleanup reach all of it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
