package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// storePack streams a pack from the server into st, checking it on the
// way: every object's declared size, and for a delta the size of the object
// it builds (read from the delta's own header), must fit in max, and so
// must their sum (0: no limit). go-git's index builder resolves every delta
// once the pack is whole, and a 16 KB pack can declare a 1 TiB delta
// target: checked here it is refused before anything inflates it, where
// go-git would spend the CPU (and ignore the context) first. The check
// inflates each object once more as it streams (go-git's scanner, bounded
// by the declared size), and the context is checked between objects.
func storePack(ctx context.Context, st storer.Storer, pack io.Reader, max int64) error {
	pw, ok := st.(storer.PackfileWriter)
	if !ok {
		return errors.New("the object store cannot take a pack")
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return err
	}
	tee := io.TeeReader(pack, w)
	err = checkPack(ctx, tee, max)
	if err == nil {
		_, err = io.Copy(io.Discard, tee) // what follows the trailer, if anything
	}
	// Closing builds the index (and resolves the deltas just checked). It
	// does not watch the context: the wait does.
	done := make(chan error, 1)
	go func() { done <- w.Close() }()
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PackLimitError is a pack whose objects would inflate past the limit.
type PackLimitError struct {
	What string
	Size int64
	Max  int64
}

func (e *PackLimitError) Error() string {
	return fmt.Sprintf("%s: the pack declares %s of %d bytes, more than --max-unpacked %d", ErrLimit, e.What, e.Size, e.Max)
}
func (e *PackLimitError) Unwrap() error { return ErrLimit }

func checkPack(ctx context.Context, r io.Reader, max int64) error {
	sc := packfile.NewScanner(r)
	_, count, err := sc.Header()
	if err != nil {
		return fmt.Errorf("reading the pack: %w", err)
	}
	over := func(what string, n int64) error {
		if max > 0 && n > max {
			return &PackLimitError{What: what, Size: n, Max: max}
		}
		return nil
	}
	var total int64
	for i := uint32(0); i < count; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		oh, err := sc.NextObjectHeader()
		if err != nil {
			return fmt.Errorf("reading the pack: %w", err)
		}
		if err := over("an object", oh.Length); err != nil {
			return err
		}
		size := oh.Length
		switch oh.Type {
		case plumbing.OFSDeltaObject, plumbing.REFDeltaObject:
			var d deltaHeader
			if _, _, err := sc.NextObject(&d); err != nil {
				return fmt.Errorf("reading the pack: %w", err)
			}
			if !d.done {
				return errors.New("reading the pack: a delta without its header")
			}
			size = d.target
			if err := over("a delta building an object", size); err != nil {
				return err
			}
		default:
			if _, _, err := sc.NextObject(io.Discard); err != nil {
				return fmt.Errorf("reading the pack: %w", err)
			}
		}
		if total += size; max > 0 && total > max {
			return &PackLimitError{What: "objects", Size: total, Max: max}
		}
	}
	if _, err := sc.Checksum(); err != nil {
		return fmt.Errorf("reading the pack: %w", err)
	}
	return nil
}

// deltaHeader takes the two sizes that begin a delta's data (git's
// varints: the base's size, then the target's) and discards the rest.
type deltaHeader struct {
	field  int // 0: the base's size, 1: the target's
	shift  uint
	target int64
	done   bool
}

func (d *deltaHeader) Write(p []byte) (int, error) {
	for _, b := range p {
		if d.done {
			break
		}
		if d.shift > 63 {
			return 0, errors.New("a delta's size does not fit in 64 bits")
		}
		if d.field == 1 {
			d.target |= int64(b&0x7f) << d.shift
		}
		d.shift += 7
		if b&0x80 == 0 {
			if d.field == 1 {
				d.done = true
				if d.target < 0 {
					return 0, errors.New("a delta's size does not fit in 63 bits")
				}
			}
			d.field++
			d.shift = 0
		}
	}
	return len(p), nil
}
