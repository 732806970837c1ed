// Package oserr shortens file-system errors for messages that already name
// the path.
package oserr

import (
	"errors"
	"io/fs"
)

// Reason drops a *fs.PathError's operation and path ("open /x/y: ") and
// keeps why: "no such file or directory", "permission denied".
func Reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
