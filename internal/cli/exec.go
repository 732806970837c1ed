package cli

import (
	"errors"
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

// lookCommand finds argv[0] as a shell would: a name with a slash as it
// is, any other in PATH (the process's, through lookupEnv).
func lookCommand(name string, lookupEnv func(string) (string, bool)) (string, error) {
	if filepath.Base(name) != name {
		fi, err := os.Stat(name)
		if err != nil {
			return "", &NotFoundError{Name: name, Err: err}
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", &NotFoundError{Name: name, Err: errors.New("not an executable file")}
		}
		return name, nil
	}
	path, _ := lookupEnv("PATH")
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &NotFoundError{Name: name, Err: fmt.Errorf("not in PATH %q", path)}
}
