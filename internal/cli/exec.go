package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// ExitNotFound is a shell's status for a command it cannot find.
const ExitNotFound = 127

// NotFoundError is a command to exec that PATH does not have: exit 127.
type NotFoundError struct {
	Name string
	Err  error
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s: command not found (%v)", e.Name, e.Err)
}

// ExitNotExecutable is a shell's status for a command it found but cannot
// run: a directory, a file without an execute bit.
const ExitNotExecutable = 126

// NotExecutableError is a command that exists but cannot be executed.
type NotExecutableError struct {
	Name string
	Why  string
}

func (e *NotExecutableError) Error() string { return fmt.Sprintf("%s: %s", e.Name, e.Why) }

// notExecutable says why fi cannot be executed, or "".
func notExecutable(fi os.FileInfo) string {
	switch {
	case fi.IsDir():
		return "is a directory, not a command"
	case fi.Mode()&0o111 == 0:
		return "permission denied: not executable (no x bit)"
	}
	return ""
}

// lookCommand finds argv[0] as a shell would: a name with a slash as it
// is, any other in PATH (the process's, through lookupEnv).
func lookCommand(name string, lookupEnv func(string) (string, bool)) (string, error) {
	if filepath.Base(name) != name {
		fi, err := os.Stat(name)
		if err != nil {
			return "", &NotFoundError{Name: name, Err: err}
		}
		if why := notExecutable(fi); why != "" {
			return "", &NotExecutableError{Name: name, Why: why}
		}
		return name, nil
	}
	path, _ := lookupEnv("PATH")
	var found *NotExecutableError // as bash: a file in PATH without x is 126, when nothing runnable follows
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		switch {
		case err != nil || fi.IsDir():
		case notExecutable(fi) == "":
			return p, nil
		case found == nil:
			found = &NotExecutableError{Name: p, Why: notExecutable(fi)}
		}
	}
	if found != nil {
		return "", found
	}
	return "", &NotFoundError{Name: name, Err: fmt.Errorf("not in PATH %q", path)}
}
