// Package gitsrc checks a Git commit out into a directory: the ref resolved
// with one ls-remote, only that commit fetched (shallow by default) into an
// object store staged by the caller, and its tree written by this package
// through an os.Root — never by go-git's worktree, whose default filesystem
// had a path traversal (CVE-2023-49569). Entry names that could escape or
// plant a repository (.., /, .git in any case) are refused, naming them.
//
// It speaks to go-git's transport, packfile and storage packages directly,
// not through its Repository: with that (worktree, config, submodules) git
// added 3.44 MB to the binary, this way 1.91 MB (BENCHMARKS.md). file:// is served
// in-process by go-git's own upload-pack, since go-git's file client execs
// git-upload-pack, which a scratch image does not have.
package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/initbox/initbox/internal/archive"
	"github.com/initbox/initbox/internal/atomicfile"
)

// Source is a parsed git:: source.
type Source struct {
	URL        string // what go-git dials: https://, ssh://, file://, git://
	Ref        string // ?ref=: a branch, a tag or a full commit SHA; "" is the remote's HEAD
	Depth      int    // ?depth=; 0 is the whole history
	Submodules bool   // ?submodules=1
}

var (
	shaRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{40}$`) })
	// scp-like SSH: git@host:path (go-getter's and git's own form).
	scpRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):([^/].*)$`) })
)

// Parse reads what follows git:: (or a git@host:path), without its //subdir.
// The query keys ref, depth and submodules are initbox's (go-getter's); the
// rest stays in the URL.
func Parse(raw string) (*Source, error) {
	s := &Source{Depth: 1}
	if m := scpRe().FindStringSubmatch(raw); m != nil && !strings.Contains(raw, "://") {
		raw = "ssh://" + m[1] + m[2] + "/" + m[3]
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid git URL: %v", err.(*url.Error).Err)
	}
	switch u.Scheme {
	case "https", "http", "ssh", "file", "git":
	default:
		return nil, fmt.Errorf("git over %q is not supported: use https://, ssh://, git@host:path, git:// or file://", u.Scheme)
	}
	if u.Scheme != "file" && u.Host == "" {
		return nil, errors.New("the git URL has no host")
	}
	q := u.Query()
	s.Ref = q.Get("ref")
	if v := q.Get("depth"); v != "" {
		n := 0
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != v {
			return nil, fmt.Errorf("invalid ?depth=%q: want a whole number, 0 for the whole history", v)
		}
		s.Depth = n
	}
	switch q.Get("submodules") {
	case "", "0", "false":
	case "1", "true":
		s.Submodules = true
	default:
		return nil, fmt.Errorf("invalid ?submodules=%q: want 1 or 0", q.Get("submodules"))
	}
	if strings.Contains(s.Ref, "//") {
		// go-getter's subdirectory comes before the query; after it, it is
		// part of the ref, which no ref can hold.
		return nil, fmt.Errorf("invalid ?ref=%q: a //subdir goes before the query, as in repo.git//subdir?ref=v1.2", s.Ref)
	}
	if s.Ref != "" && (strings.HasPrefix(s.Ref, "-") || strings.ContainsAny(s.Ref, " \t\n~^:?*[\\") || strings.Contains(s.Ref, "..")) {
		return nil, fmt.Errorf("invalid ?ref=%q: not a branch, tag or commit name", s.Ref)
	}
	q.Del("ref")
	q.Del("depth")
	q.Del("submodules")
	for k := range q {
		// Git's smart HTTP appends /info/refs to the URL's path: a query
		// would end up inside it, and the server answer 404 for ever.
		return nil, fmt.Errorf("invalid git URL: unknown query parameter %q (a git:: source takes ref, depth and submodules)", k)
	}
	u.RawQuery = ""
	s.URL = u.String()
	return s, nil
}

// Local reports whether the remote is a repository on this machine, read
// in place (its store is not the caller's to move).
func (r *Remote) Local() bool { return r.local != nil }

// IsSHA reports whether ref names a commit by its full SHA-1.
func IsSHA(ref string) bool { return shaRe().MatchString(ref) }

// Resolved is what a ref names on the remote now.
type Resolved struct {
	Ref    plumbing.ReferenceName // the reference fetched ("" for a SHA no ref points at)
	Commit plumbing.Hash          // the commit (a tag is peeled), when the listing says
	Tag    plumbing.Hash          // an annotated tag's own object, when the ref is one

	adv *packp.AdvRefs // the listing it came from, which Fetch builds on
}

// NoRefError is a ref the remote does not have: retrying will not help.
// Head: the remote's HEAD names Ref (or nothing, when Ref is ""), and no
// such branch exists.
type NoRefError struct {
	Ref  string
	Head bool
}

func (e *NoRefError) Error() string {
	switch {
	case e.Head && e.Ref == "":
		return "the remote has no HEAD: give ?ref="
	case e.Head:
		return fmt.Sprintf("the remote's HEAD names %s, which it does not have: give ?ref=", e.Ref)
	}
	return fmt.Sprintf("the remote has no branch or tag %q", e.Ref)
}

// RefNameError is a reference name from the remote that git would refuse:
// the server is broken or hostile, and asking again will not change it.
type RefNameError struct{ Err error }

func (e *RefNameError) Error() string { return "the remote advertises " + e.Err.Error() }
func (e *RefNameError) Unwrap() error { return e.Err }

// Remote is one repository's upload-pack service, over the transport its
// URL names.
type Remote struct {
	ep    *transport.Endpoint
	tr    transport.Transport
	auth  transport.AuthMethod
	local *filesystem.Storage // file://: the repository's own store
}

// NewRemote opens no connection yet. transports maps a scheme (https,
// ssh, git) to the transport the caller configured (its own http.Client,
// its SSH settings); file:// is served in-process.
func NewRemote(s *Source, auth transport.AuthMethod, transports map[string]transport.Transport) (*Remote, error) {
	ep, err := transport.NewEndpoint(s.URL)
	if err != nil {
		return nil, err
	}
	r := &Remote{ep: ep, auth: auth}
	if ep.Protocol == "file" {
		// Read in place: no protocol, no copy. A working tree's repository
		// is its .git.
		dir := ep.Path
		if fi, err := os.Stat(path.Join(dir, ".git")); err == nil && fi.IsDir() {
			dir = path.Join(dir, ".git")
		}
		if fi, err := os.Stat(path.Join(dir, "objects")); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a git repository", ep.Path)
		}
		r.local = filesystem.NewStorageWithOptions(osfs.New(dir), objectCache(), filesystem.Options{LargeObjectThreshold: 1 << 20})
		return r, nil
	}
	if r.tr = transports[ep.Protocol]; r.tr == nil {
		return nil, fmt.Errorf("no transport for %s://", ep.Protocol)
	}
	return r, nil
}

// objectCache is small: a checkout reads each blob once, and go-git's
// default cache (96 MiB of decoded objects) was most of the checkout's
// peak RSS in the benchmark (BENCHMARKS.md). Trees and the delta bases of
// a pack still fit.
func objectCache() cache.Object { return cache.NewObjectLRU(8 * cache.MiByte) }

// storeOptions: objects over a MiB are read from the pack as they are
// needed, not inflated whole into memory first (go-git's default for every
// object, whatever its size: a 1 GiB blob held 3.4 GB).
func storeOptions() filesystem.Options {
	return filesystem.Options{ExclusiveAccess: true, LargeObjectThreshold: 1 << 20}
}

// refs is what the remote advertises.
type refs struct {
	adv  *packp.AdvRefs
	sess transport.UploadPackSession
}

func (r *Remote) list(ctx context.Context) (*refs, error) {
	if r.local != nil {
		return r.localRefs()
	}
	// The session gets a copy of the endpoint: go-git's HTTP session moves
	// its endpoint to where the listing was redirected, and clears the
	// credentials when that is another origin — on its own copy only, so
	// the next session (the pack's POST) would otherwise go out with the
	// user's credentials to the first host again, or to the new host.
	ep := *r.ep
	sess, err := r.tr.NewUploadPackSession(&ep, r.auth)
	if err != nil {
		return nil, err
	}
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		sess.Close()
		return nil, err
	}
	if ep.Host != r.ep.Host || ep.Port != r.ep.Port || ep.Protocol != r.ep.Protocol || ep.Path != r.ep.Path {
		// Later requests go where the listing was redirected (git's
		// http.followRedirects=initial), and the credentials follow only
		// within the origin the user named.
		if !sameOrigin(r.ep, &ep) {
			r.auth = nil
			ep.User, ep.Password = "", ""
		}
		r.ep = &ep
	}
	return &refs{adv: adv, sess: sess}, nil
}

// sameOrigin: the same host and port, over the same scheme or upgraded
// from http to https on the default ports.
func sameOrigin(a, b *transport.Endpoint) bool {
	port := func(e *transport.Endpoint) int {
		switch {
		case e.Port != 0:
			return e.Port
		case e.Protocol == "https":
			return 443
		}
		return 80
	}
	if !strings.EqualFold(a.Host, b.Host) {
		return false
	}
	if a.Protocol == b.Protocol {
		return port(a) == port(b)
	}
	return a.Protocol == "http" && b.Protocol == "https" && port(a) == 80 && port(b) == 443
}

// localRefs lists a local repository as upload-pack would advertise it.
func (r *Remote) localRefs() (*refs, error) {
	adv := packp.NewAdvRefs()
	it, err := r.local.IterReferences()
	if err != nil {
		return nil, err
	}
	err = it.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil
		}
		adv.References[string(ref.Name())] = ref.Hash()
		if ref.Name().IsTag() {
			if c, _, err := commitTree(r.local, ref.Hash()); err == nil && c != ref.Hash() {
				adv.Peeled[string(ref.Name())] = c
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if head, err := r.local.Reference(plumbing.HEAD); err == nil {
		if head.Type() == plumbing.SymbolicReference {
			if h, ok := adv.References[string(head.Target())]; ok {
				adv.Head = &h
				adv.Capabilities.Add(capability.SymRef, "HEAD:"+string(head.Target()))
			}
		} else {
			h := head.Hash()
			adv.Head = &h
		}
	}
	return &refs{adv: adv, sess: nopSession{}}, nil
}

type nopSession struct{ transport.UploadPackSession }

func (nopSession) Close() error { return nil }

// Resolve asks the remote (one ls-remote) what ref names. A full SHA is
// matched against the listed refs; when none points at it, Ref is "" and the
// whole history must be fetched to find it.
func (r *Remote) Resolve(ctx context.Context, s *Source) (*Resolved, error) {
	l, err := r.list(ctx)
	if err != nil {
		return nil, err
	}
	l.sess.Close()
	res, err := resolve(l.adv, s)
	if res != nil {
		res.adv = l.adv
	}
	return res, err
}

// sortedRefs is the advertised reference names, in order, so a choice
// among several is the same every time.
func sortedRefs(adv *packp.AdvRefs) []string {
	names := make([]string, 0, len(adv.References))
	for n := range adv.References {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resolve picks what s names from the listing; the name chosen, which
// comes from the remote, must be one git accepts before anything uses it.
func resolve(adv *packp.AdvRefs, s *Source) (*Resolved, error) {
	res, err := pick(adv, s)
	if err == nil && res.Ref != "" {
		if cerr := CheckRefName(string(res.Ref)); cerr != nil {
			return nil, &RefNameError{cerr}
		}
	}
	return res, err
}

func pick(adv *packp.AdvRefs, s *Source) (*Resolved, error) {
	if adv.IsEmpty() {
		return nil, transport.ErrEmptyRemoteRepository
	}
	commitOf := func(name string) (plumbing.Hash, plumbing.Hash) {
		h := adv.References[name]
		if p, ok := adv.Peeled[name]; ok {
			return p, h // an annotated tag: the commit, the tag
		}
		return h, plumbing.ZeroHash
	}
	switch {
	case s.Ref == "":
		for _, sym := range adv.Capabilities.Get(capability.SymRef) {
			if from, to, ok := strings.Cut(sym, ":"); ok && from == "HEAD" {
				if _, ok := adv.References[to]; !ok || adv.Head == nil {
					return nil, &NoRefError{Ref: to, Head: true}
				}
				return &Resolved{Ref: plumbing.ReferenceName(to), Commit: *adv.Head}, nil
			}
		}
		if adv.Head == nil {
			return nil, &NoRefError{Head: true}
		}
		// No symref: the branch at HEAD's hash (git clone's guess too).
		for _, n := range sortedRefs(adv) {
			if strings.HasPrefix(n, "refs/heads/") && adv.References[n] == *adv.Head {
				return &Resolved{Ref: plumbing.ReferenceName(n), Commit: *adv.Head}, nil
			}
		}
		return &Resolved{Commit: *adv.Head}, nil
	case IsSHA(s.Ref):
		want := plumbing.NewHash(s.Ref)
		for _, n := range sortedRefs(adv) {
			if c, _ := commitOf(n); c == want {
				return &Resolved{Ref: plumbing.ReferenceName(n), Commit: want}, nil
			}
		}
		return &Resolved{Commit: want}, nil
	}
	for _, name := range []string{"refs/heads/" + s.Ref, "refs/tags/" + s.Ref, s.Ref} {
		if _, ok := adv.References[name]; ok {
			c, tag := commitOf(name)
			return &Resolved{Ref: plumbing.ReferenceName(name), Commit: c, Tag: tag}, nil
		}
	}
	return nil, &NoRefError{Ref: s.Ref}
}

// Store is a bare object store in a directory the caller staged.
type Store struct {
	st *filesystem.Storage
}

// Fetch brings the resolved commit into a new object store at dir: when a
// ref names it, only that ref's tip (shallow to s.Depth); otherwise every
// advertised ref, whole, to find the commit among them. The pack streams to
// disk, so memory does not grow with the repository.
//
// count, when not nil, is told of every block of the pack as it arrives; an
// error it returns (a size limit) ends the fetch. max bounds what the
// pack's objects may inflate to, in all (0: no limit; see storePack).
func (r *Remote) Fetch(ctx context.Context, s *Source, res *Resolved, dir string, max int64, count func(n int) error) (*Store, error) {
	if r.local != nil {
		return &Store{st: r.local}, nil
	}
	// The request is built on the listing Resolve read: over HTTP the pack
	// is one POST with no second listing (an ssh or git:// session reads
	// the server's advertisement itself, as its protocol requires).
	adv := res.adv
	if adv == nil {
		l, err := r.list(ctx)
		if err != nil {
			return nil, err
		}
		l.sess.Close()
		adv = l.adv
	}
	ep := *r.ep
	sess, err := r.tr.NewUploadPackSession(&ep, r.auth)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	if res.Ref != "" {
		h, ok := adv.References[string(res.Ref)]
		if !ok {
			return nil, &NoRefError{Ref: res.Ref.Short()}
		}
		req.Wants = []plumbing.Hash{h}
		if s.Depth > 0 {
			if !adv.Capabilities.Supports(capability.Shallow) {
				return nil, errors.New("the server cannot send a shallow history; give ?depth=0")
			}
			req.Capabilities.Set(capability.Shallow)
			req.Depth = packp.DepthCommits(s.Depth)
		}
	} else {
		seen := map[plumbing.Hash]bool{}
		for _, h := range adv.References {
			if !seen[h] {
				seen[h] = true
				req.Wants = append(req.Wants, h)
			}
		}
	}
	st := filesystem.NewStorageWithOptions(osfs.New(dir), objectCache(), storeOptions())
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	if len(resp.Shallows) > 0 {
		if err := st.SetShallow(resp.Shallows); err != nil {
			return nil, err
		}
	}
	// The pack comes multiplexed with the server's progress messages when
	// the request asked for side-band (NewUploadPackRequestFromCapabilities
	// does, where the server offers it).
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if count != nil {
		pack = &counter{r: pack, count: count}
	}
	if err := storePack(ctx, dir, atomicfile.ContextReader(ctx, pack), max); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ce *countError
		var pl *PackLimitError
		switch {
		case errors.As(err, &ce):
			return nil, ce.err
		case errors.As(err, &pl):
			return nil, err
		}
		return nil, fmt.Errorf("reading the pack: %w", err)
	}
	return &Store{st: st}, nil
}

// counter tells count of what passes through it.
type counter struct {
	r     io.Reader
	count func(int) error
}

// countError carries count's error through the pack parser.
type countError struct{ err error }

func (e *countError) Error() string { return e.err.Error() }
func (e *countError) Unwrap() error { return e.err }

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		if cerr := c.count(n); cerr != nil {
			// The bytes past the limit are not passed on: a reader that
			// buffers (the pack's scanner) could otherwise finish on them
			// and never see the error.
			return 0, &countError{cerr}
		}
	}
	return n, err
}

// Commit is the commit res names in the store (an annotated tag peeled),
// and its tree.
func (s *Store) Commit(res *Resolved) (commit, tree plumbing.Hash, err error) {
	h := res.Commit
	if !res.Tag.IsZero() {
		h = res.Tag
	}
	commit, tree, err = commitTree(s.st, h)
	if err != nil {
		return commit, tree, fmt.Errorf("commit %s is not in what the remote sent: %w", h, err)
	}
	return commit, tree, nil
}

// EntryError is a tree entry refused.
type EntryError struct {
	Path   string
	Reason string
}

func (e *EntryError) Error() string { return fmt.Sprintf("tree entry %q: %s", e.Path, e.Reason) }

// Stats are what a checkout wrote.
type Stats struct {
	Files int
	Bytes int64
	Index []IndexEntry // every file and symlink, for MakeGitDir
}

// MaxTreeDepth is how deeply trees may nest, git's own core.maxTreeDepth
// default (4096, since git 2.44): a deeper tree is refused, naming the
// path. Each level holds one directory descriptor while it is written.
const MaxTreeDepth = 4096

// Checkout writes the tree (its subdir, when given: a directory of the
// tree, with no link on the way) into dir, which must exist and be empty:
// file contents, the executable bit and symlinks as Git stores them.
// Everything goes through an os.Root opened on each directory this walk
// made (so each entry costs the same however deep it is), and nothing is
// written through a link. A submodule (gitlink) is left as an empty
// directory, as git clone leaves it, and returned for the caller to fill
// or not.
func (s *Store) Checkout(ctx context.Context, tree plumbing.Hash, subdir, dir string, lim archive.Limits) (Stats, []Submodule, error) {
	var st Stats
	top := tree
	if subdir != "" {
		var err error
		if tree, err = findDir(s.st, tree, subdir); err != nil {
			return st, nil, err
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, nil, err
	}
	defer root.Close()
	w := s.newWriter(ctx, lim)
	if subdir != "" {
		// The .gitattributes above the subdirectory still apply to it.
		if err := w.attrsAbove(top, splitPath(subdir)); err != nil {
			return st, nil, err
		}
		w.repoPrefix = strings.Join(splitPath(subdir), "/")
	}
	return w.run(tree, root)
}

// CheckoutRoot is Checkout into the directory root is open on: a
// submodule's, which the superproject's checkout made.
func (s *Store) CheckoutRoot(ctx context.Context, tree plumbing.Hash, root *os.Root, lim archive.Limits) (Stats, []Submodule, error) {
	return s.newWriter(ctx, lim).run(tree, root)
}

func (s *Store) newWriter(ctx context.Context, lim archive.Limits) *writer {
	w := &writer{ctx: ctx, st: s.st, lim: lim, attrs: newAttrStack()}
	w.stats.Files, w.stats.Bytes = lim.SpentFiles, lim.SpentBytes
	return w
}

func (w *writer) run(tree plumbing.Hash, root *os.Root) (Stats, []Submodule, error) {
	if err := w.tree(tree, root, "", 1); err != nil {
		return w.stats, nil, err
	}
	return w.stats, w.subs, nil
}

// attrsAbove reads the .gitattributes of tree and of each directory on
// the way down dirs, but the last (the checkout's own top).
func (w *writer) attrsAbove(tree plumbing.Hash, dirs []string) error {
	for i := range dirs {
		entries, err := readTree(w.st, tree)
		if err != nil {
			return err
		}
		if err := w.readAttrs(entries, strings.Join(dirs[:i], "/")); err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name == dirs[i] {
				tree = e.Hash
			}
		}
	}
	return nil
}

// readAttrs pushes the rules of the .gitattributes among entries, the
// directory dir's (a path from the repository's top).
func (w *writer) readAttrs(entries []entry, dir string) error {
	for _, e := range entries {
		if e.Name == ".gitattributes" && (e.Mode == filemode.Regular || e.Mode == filemode.Deprecated || e.Mode == filemode.Executable) {
			typ, r, _, err := object(w.st, e.Hash)
			if err != nil {
				return err
			}
			if typ == plumbing.BlobObject {
				w.attrs.push(r, dir)
			}
			r.Close()
		}
	}
	return nil
}

// Submodule is a gitlink met in the tree: a commit of another repository.
type Submodule struct {
	Path   string
	Commit plumbing.Hash
}

type writer struct {
	ctx        context.Context
	st         storer.EncodedObjectStorer
	lim        archive.Limits
	stats      Stats
	subs       []Submodule
	attrs      *attrStack
	repoPrefix string // where the checkout starts in the repository (//subdir)
}

// checkName refuses what git itself refuses to check out (verify_path):
// empty names, ".", "..", a "/" or NUL inside a name, and ".git" in any case
// (also with trailing dots or spaces, which some filesystems drop).
func checkName(name string) string {
	switch {
	case name == "", name == ".", name == "..":
		return "a path component that is empty, . or .."
	case strings.ContainsAny(name, "/\x00\\"):
		return "a name holding / \\ or NUL"
	case strings.EqualFold(strings.TrimRight(name, ". "), ".git"):
		return "a .git entry, which would plant a repository (hooks, config) in the checkout"
	}
	return ""
}

func (w *writer) count(p string) error {
	w.stats.Files++
	if w.lim.Files > 0 && w.stats.Files > w.lim.Files {
		return fmt.Errorf("%w: more than %d entries (at %q)", archive.ErrLimit, w.lim.Files, p)
	}
	return w.ctx.Err()
}

// index records what was written at p, with the stat data git keeps.
func (w *writer) index(p string, mode filemode.FileMode, h plumbing.Hash, fi os.FileInfo) {
	st, _ := fi.Sys().(*syscall.Stat_t)
	w.stats.Index = append(w.stats.Index, IndexEntry{Path: p, Mode: mode, Hash: h, Stat: st})
}

// tree writes the entries of t into dir, the directory prefix of the
// checkout, depth levels down.
func (w *writer) tree(t plumbing.Hash, dir *os.Root, prefix string, depth int) error {
	if depth > MaxTreeDepth {
		return &EntryError{prefix, fmt.Sprintf("trees nest more than %d deep (git's core.maxTreeDepth)", MaxTreeDepth)}
	}
	entries, err := readTree(w.st, t)
	if err != nil {
		return err
	}
	// This directory's .gitattributes applies below it, and only there.
	defer func(n int) { w.attrs.rules = w.attrs.rules[:n] }(len(w.attrs.rules))
	if err := w.readAttrs(entries, path.Join(w.repoPrefix, prefix)); err != nil {
		return err
	}
	// Names that differ only in case are different files, as git clone
	// writes them on Linux; the same name twice is a broken tree.
	seen := map[string]bool{}
	for _, e := range entries {
		p := path.Join(prefix, e.Name)
		if why := checkName(e.Name); why != "" {
			return &EntryError{p, why}
		}
		if seen[e.Name] {
			return &EntryError{p, "a second entry of the same name"}
		}
		seen[e.Name] = true
		if err := w.count(p); err != nil {
			return err
		}
		switch e.Mode {
		case filemode.Dir:
			sub, err := w.mkdir(dir, e.Name, p)
			if err != nil {
				return err
			}
			err = w.tree(e.Hash, sub, p, depth+1)
			sub.Close()
			if err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			mode := os.FileMode(0o644)
			if e.Mode == filemode.Executable {
				mode = 0o755
			}
			if err := w.file(dir, e.Name, p, e, mode); err != nil {
				return err
			}
		case filemode.Symlink:
			target, err := readBlob(w.st, e.Hash, 4096)
			if err != nil {
				return err
			}
			if err := dir.Symlink(string(target), e.Name); err != nil {
				return &EntryError{p, err.Error()}
			}
			fi, err := dir.Lstat(e.Name)
			if err != nil {
				return &EntryError{p, err.Error()}
			}
			w.index(p, e.Mode, e.Hash, fi)
		case filemode.Submodule:
			sub, err := w.mkdir(dir, e.Name, p)
			if err != nil {
				return err
			}
			fi, err := sub.Stat(".")
			sub.Close()
			if err != nil {
				return &EntryError{p, err.Error()}
			}
			w.index(p, e.Mode, e.Hash, fi)
			w.subs = append(w.subs, Submodule{Path: p, Commit: e.Hash})
		default:
			return &EntryError{p, fmt.Sprintf("an entry of mode %s", e.Mode)}
		}
	}
	return nil
}

// mkdir makes the directory name in dir and opens it: a directory this
// walk made, never one a link leads to (Mkdir fails on any entry there).
func (w *writer) mkdir(dir *os.Root, name, p string) (*os.Root, error) {
	if err := dir.Mkdir(name, 0o755); err != nil {
		return nil, &EntryError{p, err.Error()}
	}
	sub, err := dir.OpenRoot(name)
	if err != nil {
		return nil, &EntryError{p, err.Error()}
	}
	return sub, nil
}

func (w *writer) file(dir *os.Root, name, p string, e entry, mode os.FileMode) error {
	typ, r, size, err := object(w.st, e.Hash)
	if err != nil {
		return err
	}
	defer r.Close()
	if typ != plumbing.BlobObject {
		return &EntryError{p, fmt.Sprintf("names a %s, not a blob", typ)}
	}
	if w.lim.Bytes > 0 && w.stats.Bytes+size > w.lim.Bytes {
		return fmt.Errorf("%w: more than %d bytes (at %q)", archive.ErrLimit, w.lim.Bytes, p)
	}
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return &EntryError{p, err.Error()}
	}
	defer f.Close()
	// Never more than the object's own size: the store bounds a blob by
	// the size its header declares.
	var src io.Reader = atomicfile.ContextReader(w.ctx, io.LimitReader(r, size))
	if conv := w.attrs.conversion(path.Join(w.repoPrefix, p)); conv.crlf || conv.ident {
		// Converted whole, as git does: a file with these attributes is
		// text, and its size was checked against the limits above.
		b, err := io.ReadAll(src)
		if err != nil {
			return err
		}
		src = bytes.NewReader(conv.convert(b, e.Hash))
	}
	n, err := io.Copy(f, src)
	w.stats.Bytes += n
	if err != nil {
		return err
	}
	if w.lim.Bytes > 0 && w.stats.Bytes > w.lim.Bytes { // CRLF made it larger
		return fmt.Errorf("%w: more than %d bytes (at %q)", archive.ErrLimit, w.lim.Bytes, p)
	}
	if err := f.Chmod(mode); err != nil { // the umask may have narrowed it
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w.index(p, e.Mode, e.Hash, fi)
	return f.Close()
}
