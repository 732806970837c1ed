package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the uid and gid the image runs as (distroless' "nonroot").
const NonRoot = 65532

// Spec is everything an image is made from. Two builds from equal Specs
// give byte-identical images.
type Spec struct {
	Binaries map[string]string // GOARCH -> path of the static initbox binary
	Applets  []string          // a hard link /bin/NAME per applet
	CABundle string            // PEM bundle copied to /etc/ssl/certs/ca-certificates.crt
	Epoch    time.Time         // every timestamp (SOURCE_DATE_EPOCH)
	Version  string
	Revision string
	Source   string
}

// Entry is one file of the image's single layer.
type Entry struct {
	Path     string // without the leading "/"
	Type     byte   // tar.TypeDir, TypeReg, TypeLink
	Mode     int64
	UID, GID int
	Link     string // for hard links: the target path
	Data     []byte // regular files except the binary
	From     string // regular file read from this host path
}

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

// Files lists the layer of the image for arch, in tar order: the binary,
// a hard link per applet, /etc/passwd and /etc/group with the nonroot
// user, the CA bundle, and the directories that hold them. Nothing else:
// no shell, no /tmp, no home.
func (s Spec) Files(arch string) ([]Entry, error) {
	bin, ok := s.Binaries[arch]
	if !ok {
		return nil, fmt.Errorf("no binary for %s", arch)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the %s binary: %w (run make build)", arch, err)
	}
	ca, err := os.ReadFile(s.CABundle)
	if err != nil {
		return nil, fmt.Errorf("the CA bundle: %w (apt-get install ca-certificates)", err)
	}
	es := []Entry{
		{Path: "bin/", Type: tar.TypeDir, Mode: 0o755},
		{Path: "bin/initbox", Type: tar.TypeReg, Mode: 0o755, From: bin},
	}
	apps := append([]string(nil), s.Applets...)
	sort.Strings(apps)
	for _, a := range apps {
		es = append(es, Entry{Path: "bin/" + a, Type: tar.TypeLink, Mode: 0o755, Link: "bin/initbox"})
	}
	es = append(es,
		Entry{Path: "etc/", Type: tar.TypeDir, Mode: 0o755},
		Entry{Path: "etc/group", Type: tar.TypeReg, Mode: 0o644, Data: []byte(group)},
		Entry{Path: "etc/passwd", Type: tar.TypeReg, Mode: 0o644, Data: []byte(passwd)},
		Entry{Path: "etc/ssl/", Type: tar.TypeDir, Mode: 0o755},
		Entry{Path: "etc/ssl/certs/", Type: tar.TypeDir, Mode: 0o755},
		Entry{Path: "etc/ssl/certs/ca-certificates.crt", Type: tar.TypeReg, Mode: 0o644, Data: ca},
	)
	return es, nil
}

// layerTar writes entries as a deterministic tar stream.
func (s Spec) layerTar(es []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{
			Name: e.Path, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			ModTime: s.Epoch, Format: tar.FormatPAX, Linkname: e.Link,
		}
		data := e.Data
		if e.From != "" {
			var err error
			if data, err = os.ReadFile(e.From); err != nil {
				return nil, err
			}
		}
		if e.Type == tar.TypeReg {
			h.Size = int64(len(data))
		}
		// PAX records for times would make the tar depend on the clock's
		// sub-second part; keep the header plain.
		h.PAXRecords = nil
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image builds the single-arch image for arch.
func (s Spec) Image(arch string) (v1.Image, error) {
	es, err := s.Files(arch)
	if err != nil {
		return nil, err
	}
	data, err := s.layerTar(es)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(9))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: s.Epoch}, CreatedBy: "initbox images: /bin/initbox, a link per applet, passwd, group, CA bundle",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: s.Epoch}
	cf.Config = v1.Config{
		User:       strconv.Itoa(NonRoot) + ":" + strconv.Itoa(NonRoot),
		Env:        []string{"PATH=/bin"},
		Entrypoint: []string{"/bin/initbox"},
		Cmd:        []string{"help"},
		WorkingDir: "/",
		Labels:     s.labels(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return noArtifactType{img}, nil
}

// noArtifactType hides the artifactType go-containerregistry derives from
// the config's media type for every descriptor of an image: on an ordinary
// container image it makes "skopeo copy --preserve-digests" refuse the index.
type noArtifactType struct{ v1.Image }

func (noArtifactType) ArtifactType() (string, error) { return "", nil }

func (s Spec) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "initbox",
		"org.opencontainers.image.description": "one small static binary for Kubernetes init containers",
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.created":     s.Epoch.UTC().Format(time.RFC3339),
	}
}

// Arches are the architectures of the index, in order.
var Arches = []string{"amd64", "arm64"}

// Index builds the multi-arch index and its images.
func (s Spec) Index() (v1.ImageIndex, map[string]v1.Image, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	imgs := map[string]v1.Image{}
	var adds []mutate.IndexAddendum
	for _, arch := range Arches {
		img, err := s.Image(arch)
		if err != nil {
			return nil, nil, err
		}
		imgs[arch] = img
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch},
		}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	idx = mutate.Annotations(idx, map[string]string{
		"org.opencontainers.image.source":   s.Source,
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.revision": s.Revision,
	}).(v1.ImageIndex)
	return idx, imgs, nil
}

// Listing describes a file tree one line per entry, for comparing the
// image's layer with another tree (the Dockerfile's): path, type, mode,
// owner, and size or link target.
func Listing(es []Entry) []string {
	var out []string
	for _, e := range es {
		line := fmt.Sprintf("%s %c %04o %d:%d", "/"+path.Clean(e.Path), e.Type, e.Mode, e.UID, e.GID)
		if e.Type == tar.TypeLink {
			line += " -> /" + e.Link
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

// EmptyIndex is an OCI layout's empty starting index.
func EmptyIndex() v1.ImageIndex { return mutate.IndexMediaType(empty.Index, types.OCIImageIndex) }
