package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"

	"github.com/initbox/initbox/internal/archive"
)

// storePack streams a pack from the server into the object store at dir
// and indexes it itself, checking it on the way: every object's declared
// size, and for a delta the size of the object it builds (read from the
// delta's own header), must fit in max, and so must their sum (0: no
// limit). A 16 KB pack can declare a 1 TiB delta target; checked here it is
// refused before anything inflates it.
//
// The index is built here rather than by go-git's pack writer, whose
// parser inflates every object of the pack whole into memory once more
// after it has arrived (Parser.resolveDeltas, go-git v5.19): a 256 MiB blob
// held 271 MB. Here an object that is no delta's base streams through its
// hash as it arrives; only delta bases and deltas are held, one chain at a
// time, each bounded by max. The context is checked between objects.
func storePack(ctx context.Context, dir string, pack io.Reader, max int64) (err error) {
	packDir := filepath.Join(dir, "objects", "pack")
	if err := os.MkdirAll(packDir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(packDir, "tmp_pack_")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	tee := io.TeeReader(pack, f)
	objs, sum, err := scanPack(ctx, tee, max)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // what follows the trailer, if anything
		return err
	}
	if err := resolveDeltas(ctx, f, objs); err != nil {
		return err
	}
	w := new(idxfile.Writer)
	w.OnHeader(uint32(len(objs)))
	for _, o := range objs {
		w.Add(o.hash, uint64(o.off), o.crc)
	}
	if err := w.OnFooter(sum); err != nil {
		return err
	}
	idx, err := w.Index()
	if err != nil {
		return err
	}
	base := filepath.Join(packDir, "pack-"+sum.String())
	idxFile, err := os.OpenFile(base+".idx", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := idxfile.NewEncoder(idxFile).Encode(idx); err != nil {
		idxFile.Close()
		os.Remove(base + ".idx")
		return fmt.Errorf("writing the pack index: %w", err)
	}
	if err := idxFile.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), base+".pack")
}

// packObj is one object of a pack as the scan found it.
type packObj struct {
	off     int64
	typ     plumbing.ObjectType // for a delta, the type of what it builds (once resolved)
	delta   bool
	baseOff int64         // OFS_DELTA
	baseRef plumbing.Hash // REF_DELTA
	crc     uint32
	hash    plumbing.Hash // known at once for a whole object, after resolving for a delta
	uses    int           // deltas built on it
}

// PackLimitError is a pack whose objects would inflate past the limit.
type PackLimitError struct {
	What string
	Size int64
	Max  int64
}

func (e *PackLimitError) Error() string {
	return fmt.Sprintf("%s: the pack declares %s of %d bytes, more than --max-unpacked %d", archive.ErrLimit, e.What, e.Size, e.Max)
}
func (e *PackLimitError) Unwrap() error { return archive.ErrLimit }

// scanPack reads the pack from r (what it reads is all of the pack, in
// order), checks the declared sizes against max and hashes every whole
// object as it streams.
func scanPack(ctx context.Context, r io.Reader, max int64) ([]*packObj, plumbing.Hash, error) {
	sc := packfile.NewScanner(r)
	_, count, err := sc.Header()
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("reading the pack: %w", err)
	}
	over := func(what string, n int64) error {
		if max > 0 && n > max {
			return &PackLimitError{What: what, Size: n, Max: max}
		}
		return nil
	}
	objs := make([]*packObj, 0, min(count, 1<<20))
	var total int64
	for i := uint32(0); i < count; i++ {
		if err := ctx.Err(); err != nil {
			return nil, plumbing.ZeroHash, err
		}
		oh, err := sc.NextObjectHeader()
		if err != nil {
			return nil, plumbing.ZeroHash, fmt.Errorf("reading the pack: %w", err)
		}
		if err := over("an object", oh.Length); err != nil {
			return nil, plumbing.ZeroHash, err
		}
		o := &packObj{off: oh.Offset, typ: oh.Type}
		size := oh.Length
		switch oh.Type {
		case plumbing.OFSDeltaObject, plumbing.REFDeltaObject:
			o.delta, o.baseOff, o.baseRef = true, oh.OffsetReference, oh.Reference
			var d deltaHeader
			if _, o.crc, err = sc.NextObject(&d); err != nil {
				return nil, plumbing.ZeroHash, fmt.Errorf("reading the pack: %w", err)
			}
			if !d.done {
				return nil, plumbing.ZeroHash, errors.New("reading the pack: a delta without its header")
			}
			size = d.target
			if err := over("a delta building an object", size); err != nil {
				return nil, plumbing.ZeroHash, err
			}
		default:
			h := plumbing.NewHasher(oh.Type, oh.Length)
			n, crc, err := sc.NextObject(h)
			if err != nil {
				return nil, plumbing.ZeroHash, fmt.Errorf("reading the pack: %w", err)
			}
			if n != oh.Length {
				return nil, plumbing.ZeroHash, fmt.Errorf("reading the pack: an object of %d bytes declared %d", n, oh.Length)
			}
			o.crc, o.hash = crc, h.Sum()
		}
		if total += size; max > 0 && total > max {
			return nil, plumbing.ZeroHash, &PackLimitError{What: "objects", Size: total, Max: max}
		}
		objs = append(objs, o)
	}
	sum, err := sc.Checksum()
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("reading the pack: %w", err)
	}
	return objs, sum, nil
}

// maxDeltaChain is git's own bound on a delta chain (pack.depth's most).
const maxDeltaChain = 4095

// resolveDeltas hashes every delta of the pack in f: its base's content
// (itself perhaps a delta) patched with it. Bases used again are kept up
// to a budget; the rest is read again from the pack.
func resolveDeltas(ctx context.Context, f *os.File, objs []*packObj) error {
	byOff := make(map[int64]*packObj, len(objs))
	byHash := map[plumbing.Hash]*packObj{}
	var pending []*packObj
	for _, o := range objs {
		byOff[o.off] = o
		if o.delta {
			pending = append(pending, o)
		} else {
			byHash[o.hash] = o
		}
	}
	if len(pending) == 0 {
		return nil
	}
	base := func(o *packObj) *packObj {
		if !o.baseRef.IsZero() {
			return byHash[o.baseRef]
		}
		return byOff[o.baseOff]
	}
	for _, o := range pending {
		if b := base(o); b != nil {
			b.uses++
		}
	}
	sc := packfile.NewScanner(f)
	read := func(o *packObj) ([]byte, error) {
		if _, err := sc.SeekObjectHeader(o.off); err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if _, _, err := sc.NextObject(&b); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	const cacheBudget = 64 << 20
	cache, cached := map[int64][]byte{}, 0
	var content func(o *packObj, depth int) ([]byte, error)
	content = func(o *packObj, depth int) ([]byte, error) {
		if b, ok := cache[o.off]; ok {
			return b, nil
		}
		if depth > maxDeltaChain {
			return nil, fmt.Errorf("a delta chain longer than %d", maxDeltaChain)
		}
		data, err := read(o)
		if err != nil {
			return nil, err
		}
		if o.delta {
			b := base(o)
			if b == nil { // a REF_DELTA on a delta not hashed yet
				return nil, errMissingBase
			}
			src, err := content(b, depth+1)
			if err != nil {
				return nil, err
			}
			if data, err = packfile.PatchDelta(src, data); err != nil {
				return nil, err
			}
			o.typ = b.typ
		}
		if o.uses > 0 && cached+len(data) <= cacheBudget {
			cache[o.off], cached = data, cached+len(data)
		}
		return data, nil
	}
	// REF_DELTA bases may be deltas themselves, resolved in any order:
	// passes until none is left.
	for len(pending) > 0 {
		var left []*packObj
		for _, o := range pending {
			if err := ctx.Err(); err != nil {
				return err
			}
			data, err := content(o, 0)
			if errors.Is(err, errMissingBase) {
				left = append(left, o)
				continue
			}
			if err != nil {
				return fmt.Errorf("resolving a delta of the pack: %w", err)
			}
			o.hash = plumbing.ComputeHash(o.typ, data)
			byHash[o.hash] = o
		}
		if len(left) == len(pending) {
			return fmt.Errorf("resolving the pack: %d deltas on objects it does not hold", len(left))
		}
		pending = left
	}
	return nil
}

var errMissingBase = errors.New("the delta's base is not resolved yet")

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
