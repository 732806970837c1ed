package image

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/initbox/initbox/internal/applets"
	"github.com/initbox/initbox/internal/testenv"
)

// LayerBudget is the most the compressed amd64 layer — the blob users pull
// — may weigh.
const LayerBudget = 6_800_000

// The layer budget is judged on the blob file itself, in an OCI layout
// written by the code `make image` runs (and in dist/oci, when make has
// written one): what a registry stores and a node pulls.
func TestLayerBlobBudget(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(TestSpec(t), dir); err != nil {
		t.Fatal(err)
	}
	layouts := []string{filepath.Join(dir, "oci")}
	if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), "dist/oci/index.json")); err == nil {
		layouts = append(layouts, filepath.Join(testenv.RepoRoot(), "dist/oci"))
	}
	for _, l := range layouts {
		size := amd64LayerBlob(t, l)
		t.Logf("%s: the amd64 layer blob is %d bytes; budget %d (%.1f%% used)", l, size, LayerBudget, 100*float64(size)/LayerBudget)
		if size > LayerBudget {
			t.Errorf("%s: the compressed amd64 layer is %d bytes, over its budget of %d", l, size, LayerBudget)
		}
	}
}

// amd64LayerBlob is the size of the file holding the amd64 image's layer.
func amd64LayerBlob(t *testing.T, dir string) int64 {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.Architecture != "amd64" {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil || len(m.Layers) != 1 {
			t.Fatalf("manifest: %v, %d layers", err, len(m.Layers))
		}
		fi, err := os.Stat(filepath.Join(dir, "blobs", m.Layers[0].Digest.Algorithm, m.Layers[0].Digest.Hex))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	t.Fatalf("%s has no amd64 image", dir)
	return 0
}

// Two builds of the same inputs give the same index digest, byte for
// byte; a different timestamp gives a different one.
func TestReproducible(t *testing.T) {
	spec := TestSpec(t)
	a, err := Write(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Write(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("two builds: %s and %s", a, b)
	}
	spec.Epoch = spec.Epoch.Add(time.Second)
	c, err := Write(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Fatal("the timestamp does not reach the digest: is it used at all?")
	}
}

// The image holds initbox, a hard link per applet, passwd/group for
// 65532, the CA bundle — nothing else — and runs as 65532 with both
// `command:` and `args:` forms possible.
func TestImageContentsAndConfig(t *testing.T) {
	spec := TestSpec(t)
	img, err := spec.Image("amd64")
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		line := h.Name + " " + string(h.Typeflag)
		if h.Typeflag == tar.TypeLink {
			line += " -> " + h.Linkname
		}
		if !h.ModTime.Equal(spec.Epoch) {
			t.Errorf("%s has time %s, not SOURCE_DATE_EPOCH", h.Name, h.ModTime)
		}
		got = append(got, line)
	}
	want := []string{"bin/ 5", "bin/initbox 0"}
	names := applets.Names()
	sort.Strings(names)
	for _, a := range names {
		want = append(want, "bin/"+a+" 1 -> bin/initbox")
	}
	want = append(want, "etc/ 5", "etc/group 0", "etc/passwd 0", "etc/ssl/ 5", "etc/ssl/certs/ 5", "etc/ssl/certs/ca-certificates.crt 0")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("layer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !reflect.DeepEqual(c.Entrypoint, []string{"/bin/initbox"}) || !reflect.DeepEqual(c.Cmd, []string{"help"}) ||
		!reflect.DeepEqual(c.Env, []string{"PATH=/bin"}) || cf.Architecture != "amd64" || cf.OS != "linux" {
		t.Fatalf("config %+v", c)
	}
	for _, k := range []string{"source", "version", "revision"} {
		if c.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("no %s label", k)
		}
	}
}

// images/Dockerfile copies dist/rootfs-ARCH: that tree must be the layer's,
// and the Dockerfile's configuration the Go builder's.
func TestDockerfileMatchesTheBuilder(t *testing.T) {
	spec := TestSpec(t)
	out := t.TempDir()
	if _, err := Write(spec, out); err != nil {
		t.Fatal(err)
	}
	for _, arch := range Arches {
		es, err := spec.Files(arch)
		if err != nil {
			t.Fatal(err)
		}
		tree := treeListing(t, filepath.Join(out, "rootfs-"+arch))
		if want := Listing(es); !reflect.DeepEqual(tree, want) {
			t.Fatalf("%s: dist/rootfs tree:\n%s\nlayer:\n%s", arch, strings.Join(tree, "\n"), strings.Join(want, "\n"))
		}
	}
	f, err := os.Open(filepath.Join(testenv.RepoRoot(), "images", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var instr []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			instr = append(instr, l)
		}
	}
	img, _ := spec.Image("amd64")
	cf, _ := img.ConfigFile()
	ep, _ := json.Marshal(cf.Config.Entrypoint)
	cmd, _ := json.Marshal(cf.Config.Cmd)
	want := []string{
		"FROM scratch",
		"ARG TARGETARCH",
		"COPY --link dist/rootfs-${TARGETARCH}/ /",
		"USER " + cf.Config.User,
		"ENV " + cf.Config.Env[0],
		"WORKDIR " + cf.Config.WorkingDir,
		"ENTRYPOINT " + strings.ReplaceAll(string(ep), ",", ", "),
		"CMD " + strings.ReplaceAll(string(cmd), ",", ", "),
	}
	if !reflect.DeepEqual(instr, want) {
		t.Fatalf("Dockerfile:\n%s\nwant:\n%s", strings.Join(instr, "\n"), strings.Join(want, "\n"))
	}
}

// treeListing describes a directory as Listing describes a layer; of a set
// of hard links, the first name in tar order is the file, the rest links.
func treeListing(t *testing.T, dir string) []string {
	t.Helper()
	var es []Entry
	first := map[uint64]string{}
	var paths []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	// bin/initbox sorts after bin/install: give the real file its place
	// by visiting "initbox" first, as the layer does.
	sort.SliceStable(paths, func(i, j int) bool {
		return strings.HasSuffix(paths[i], "/bin/initbox") && !strings.HasSuffix(paths[j], "/bin/initbox") && filepath.Dir(paths[i]) == filepath.Dir(paths[j])
	})
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		st := fi.Sys().(*syscall.Stat_t)
		e := Entry{Path: rel, Mode: int64(fi.Mode().Perm()), UID: 0, GID: 0}
		switch {
		case fi.IsDir():
			e.Type = tar.TypeDir
		case st.Nlink > 1 && first[st.Ino] != "":
			e.Type, e.Link = tar.TypeLink, first[st.Ino]
		default:
			e.Type = tar.TypeReg
			first[st.Ino] = rel
		}
		es = append(es, e)
	}
	return Listing(es)
}

// make push: the index and its digests arrive unchanged, here at
// go-containerregistry's in-process registry.
func TestPushPreservesDigests(t *testing.T) {
	spec := TestSpec(t)
	out := t.TempDir()
	digest, err := Write(spec, out)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	image := strings.TrimPrefix(srv.URL, "http://") + "/initbox/initbox:test"
	pushed, err := Push(filepath.Join(out, "oci"), image, true)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(image, name.Insecure)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := idx.Digest()
	if pushed != digest || got != digest {
		t.Fatalf("built %s, pushed %s, registry has %s", digest, pushed, got)
	}
	im, _ := idx.IndexManifest()
	var arches []string
	for _, m := range im.Manifests {
		arches = append(arches, m.Platform.Architecture)
		if m.ArtifactType != "" {
			t.Errorf("descriptor %s has artifactType %q", m.Digest, m.ArtifactType)
		}
		if _, err := remote.Image(ref.Context().Digest(m.Digest.String())); err != nil {
			t.Errorf("image %s: %v", m.Digest, err)
		}
	}
	if !reflect.DeepEqual(arches, Arches) {
		t.Fatalf("arches %v", arches)
	}
	var _ v1.Hash = got
}

// skopeo, an independent reader, accepts the layout.
func TestSkopeoInspect(t *testing.T) {
	testenv.RealServer(t, "skopeo")
	if _, err := exec.LookPath("skopeo"); err != nil {
		testenv.Skip(t, "skopeo is not installed (apt-get install skopeo)")
	}
	out := t.TempDir()
	if _, err := Write(TestSpec(t), out); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"latest", "amd64", "arm64"} {
		b, err := exec.Command("skopeo", "inspect", "oci:"+filepath.Join(out, "oci")+":"+tag).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", tag, err, b)
		}
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if b, err := exec.Command("skopeo", "copy", "--preserve-digests", "oci:"+filepath.Join(out, "oci")+":latest", "oci:"+dst+":latest").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy --preserve-digests: %v\n%s", err, b)
	}
}
