package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time: -X github.com/initbox/initbox/internal/cli.version=…
var (
	version = ""
	commit  = ""
)

// Version is the release version, from the linker or the module's build info.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Commit is the source revision, from the linker or VCS build info.
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// VersionString is what `initbox version` prints.
func VersionString() string {
	return fmt.Sprintf("initbox %s (commit %s, %s, %s/%s)", Version(), Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
