package gitsrc

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/initbox/initbox/internal/archive"
)

// The most a git HTTP server's answers may hold in memory. go-git reads an
// error body whole into its message and decodes a ref advertisement whole
// (a server can send either for ever: 2.9 GB and 2.4 GB measured). The
// pack itself streams to disk under --max-size and is not capped here.
const (
	// MaxErrorBody is what an answer other than 2xx may say.
	MaxErrorBody = 4 << 10
	// MaxAdvertisement bounds the ref listing: a repository with a
	// million refs lists about 60 MB.
	MaxAdvertisement = 64 << 20
)

// ErrListingTooLarge is a ref listing past MaxAdvertisement.
var ErrListingTooLarge = fmt.Errorf("%w: the ref listing is larger than %d MiB", archive.ErrLimit, MaxAdvertisement>>20)

// CapBodies wraps a transport for git's smart HTTP so that no answer the
// caller reads whole can grow without bound: a non-2xx body is cut at
// MaxErrorBody, and a listing past MaxAdvertisement ends with an error.
func CapBodies(rt http.RoundTripper) http.RoundTripper { return capped{rt} }

type capped struct{ rt http.RoundTripper }

func (c capped) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		resp.Body = &cut{ReadCloser: resp.Body, left: MaxErrorBody}
	case strings.HasSuffix(req.URL.Path, "/info/refs"):
		resp.Body = &cut{ReadCloser: resp.Body, left: MaxAdvertisement, err: ErrListingTooLarge}
	}
	return resp, nil
}

// cut reads at most left bytes, then ends: with EOF, or with err when err
// is set and more would follow.
type cut struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *cut) Read(p []byte) (int, error) {
	if c.left <= 0 {
		if c.err == nil {
			return 0, io.EOF
		}
		var one [1]byte
		if n, _ := c.ReadCloser.Read(one[:]); n == 0 {
			return 0, io.EOF
		}
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}
