package waitfor

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// fileKind waits for a file another container writes: register's
// --ready-file (a native sidecar's startupProbe), a fetched artifact.
var fileKind = kind{
	name:    "file",
	schemes: []string{"file"},
	new:     newFile,
}

type fileProbe struct{ path string }

func newFile(_ *options, target string) (probe, error) {
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
