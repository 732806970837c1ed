package fetch

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"
)

// checksum is an expected digest.
type checksum struct {
	algo string // sha256, sha512, sha1, md5
	want []byte
}

var algos = map[string]func() hash.Hash{
	"sha256": sha256.New, "sha512": sha512.New, "sha1": sha1.New, "md5": md5.New,
}

// byLength names the algorithm of a bare hex digest by its length.
var byLength = map[int]string{64: "sha256", 128: "sha512", 40: "sha1", 32: "md5"}

func (c *checksum) String() string { return c.algo + ":" + hex.EncodeToString(c.want) }

// parseChecksum reads "sha256:HEX" (also sha512, sha1, md5) or a bare hex
// digest, whose length names the algorithm.
func parseChecksum(s string) (*checksum, error) {
	s = strings.TrimSpace(s)
	algo, digest, ok := strings.Cut(s, ":")
	if !ok {
		algo, digest = "", s
	}
	algo = strings.ToLower(algo)
	b, err := hex.DecodeString(strings.ToLower(digest))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("invalid checksum %q: want TYPE:HEX, e.g. sha256:9f86d08…", s)
	}
	if algo == "" {
		if algo, ok = byLength[len(digest)]; !ok {
			return nil, fmt.Errorf("invalid checksum %q: a bare digest of %d hex digits names no algorithm", s, len(digest))
		}
	}
	newHash, ok := algos[algo]
	if !ok {
		return nil, fmt.Errorf("invalid checksum %q: unknown type %q (sha256, sha512, sha1, md5)", s, algo)
	}
	if newHash().Size() != len(b) {
		return nil, fmt.Errorf("invalid checksum %q: a %s digest has %d hex digits, not %d", s, algo, 2*newHash().Size(), len(digest))
	}
	return &checksum{algo: algo, want: b}, nil
}

// fromSums finds the digest for name in a checksum file: GNU coreutils
// lines ("HEX  name", "HEX *name") or BSD lines ("SHA256 (name) = HEX").
// A line naming a path matches by its base name when nothing matches whole.
func fromSums(r io.Reader, name string) (*checksum, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	var byBase *checksum
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var algo, file, digest string
		if i := strings.Index(line, " ("); i > 0 && strings.Contains(line, ") = ") {
			algo = strings.ToLower(strings.ReplaceAll(line[:i], "-", ""))
			rest := line[i+2:]
			j := strings.LastIndex(rest, ") = ")
			file, digest = rest[:j], rest[j+4:]
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			digest, file = f[0], strings.TrimPrefix(strings.Join(f[1:], " "), "*")
		}
		spec := digest
		if algo != "" {
			spec = algo + ":" + digest
		}
		c, err := parseChecksum(spec)
		if err != nil {
			continue
		}
		file = strings.TrimPrefix(file, "./")
		if file == name {
			return c, nil
		}
		if path.Base(file) == name && byBase == nil {
			byBase = c
		}
	}
	if byBase != nil {
		return byBase, nil
	}
	return nil, fmt.Errorf("no entry for %q", name)
}

// hashers computes sha256 (always, for the log) and the expected
// checksum's algorithm while bytes stream past.
type hashers struct {
	sha256 hash.Hash
	want   *checksum
	other  hash.Hash // when want is not sha256
}

func newHashers(want *checksum) *hashers {
	h := &hashers{sha256: sha256.New(), want: want}
	if want != nil && want.algo != "sha256" {
		h.other = algos[want.algo]()
	}
	return h
}

func (h *hashers) Write(p []byte) (int, error) {
	h.sha256.Write(p)
	if h.other != nil {
		h.other.Write(p)
	}
	return len(p), nil
}

// verify compares the streamed digest with the expected one.
func (h *hashers) verify() error {
	if h.want == nil {
		return nil
	}
	got := h.sha256.Sum(nil)
	if h.other != nil {
		got = h.other.Sum(nil)
	}
	if !bytes.Equal(got, h.want.want) {
		return &mismatchError{want: h.want.String(), got: h.want.algo + ":" + hex.EncodeToString(got)}
	}
	return nil
}

func (h *hashers) sum() string { return "sha256:" + hex.EncodeToString(h.sha256.Sum(nil)) }

type mismatchError struct{ want, got string }

func (e *mismatchError) Error() string {
	return fmt.Sprintf("checksum mismatch: want %s, got %s", e.want, e.got)
}
