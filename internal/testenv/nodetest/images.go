package nodetest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// busyboxFiles is a root filesystem of Debian's static busybox: the binary,
// a symbolic link per applet, passwd and group, /tmp.
func busyboxFiles() ([]byte, error) {
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return nil, err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	epoch := time.Unix(0, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(p string, mode int64) {
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeDir, Mode: mode, ModTime: epoch})
	}
	file := func(p string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: epoch})
		tw.Write(data)
	}
	dir("bin/", 0o755)
	file("bin/busybox", 0o755, bb)
	for _, a := range strings.Fields(string(list)) {
		if a == "busybox" {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: epoch})
	}
	dir("etc/", 0o755)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nnonroot:x:65532:65532:nonroot:/nonexistent:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"))
	dir("tmp/", 0o1777)
	dir("root/", 0o700)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// archive writes a one-layer image as a docker archive named ref, which
// `ctr images import` names ref.
func (n *Node) archive(ref string, layer []byte, cfg v1.Config) string {
	n.t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer)), nil })
	if err != nil {
		n.t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		n.t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		n.t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		n.t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		n.t.Fatal(err)
	}
	p := filepath.Join(n.Dir, "images", strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		n.t.Fatal(err)
	}
	return p
}

func (n *Node) busyboxArchive() string {
	n.t.Helper()
	layer, err := busyboxFiles()
	if err != nil {
		n.t.Fatalf("busybox image: %v", err)
	}
	return n.archive(BusyboxImage, layer, v1.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}})
}

// pauseArchive is the sandbox image: busybox sleeping. containerd stops a
// sandbox with SIGKILL, so PID 1 ignoring SIGTERM does not matter.
func (n *Node) pauseArchive() string {
	n.t.Helper()
	layer, err := busyboxFiles()
	if err != nil {
		n.t.Fatalf("pause image: %v", err)
	}
	return n.archive(SandboxImage, layer, v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/bin/sleep", "2147483647"}, User: "65535:65535"})
}
