// Package buildinfo holds the version facts stamped into the binary by the
// linker, so every part (the version command, logs, the build_info metric)
// reports the same ones.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are set with -ldflags "-X ...": see the Makefile and the
// Dockerfile. A binary built without them reports "dev" and the VCS revision
// Go recorded, if any.
var (
	Version = "dev"
	Commit  = ""
)

// Info is the version triple every report uses.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Get returns the stamped facts, falling back to what the Go toolchain
// embedded when the linker flags were not given.
func Get() Info {
	commit := Commit
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					commit = s.Value
				}
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return Info{Version: Version, Commit: commit, GoVersion: runtime.Version()}
}

// String renders the one-line form `ragstream version` prints.
func (i Info) String() string {
	return fmt.Sprintf("ragstream %s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}
