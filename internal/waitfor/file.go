package waitfor

import (
	"context"
	"errors"
	"fmt"
	"github.com/initbox/initbox/internal/cli"
	"os"
)

// fileKind waits for a file another container writes: register's
// --ready-file (a native sidecar's startupProbe), a fetched artifact.
// The file kind, registered in the table (register).
var _ = register(&kind{
	name: "file", rank: 80, noun: "files",
	usage: "file PATH", urlForm: "file:/PATH",
	help: `PATH exists and, if a regular file, is not empty (a file another container
		writes: register's --ready-file)`,
	examples: []string{"file /run/registered --timeout 1s"},
	schemes:  []string{"file"},
	options:  func() kindOptions { return fileOptions{} },
})

// fileOptions: the file kind has no flags of its own.
type fileOptions struct{}

func (fileOptions) flags(*cli.FlagSet) {}

type fileProbe struct{ path string }

func (fileOptions) probe(_ *options, target string) (probe, error) {
	if target == "" || target[0] != '/' {
		return nil, fmt.Errorf("invalid file %q: want an absolute path", target)
	}
	return &fileProbe{path: target}, nil
}

// Check: the path exists and is not empty (a writer that creates the file
// first and fills it later is not done). A directory counts once it exists.
func (p *fileProbe) Check(context.Context) error {
	fi, err := os.Stat(p.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errors.New("no such file")
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	case fi.Mode().IsRegular() && fi.Size() == 0:
		return errors.New("the file is empty")
	}
	return nil
}
