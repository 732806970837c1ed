package image

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Write builds spec's index and writes the layout, the tarballs and the
// rootfs trees into out, replacing earlier ones only once all are built.
func Write(spec Spec, out string) (v1.Hash, error) {
	idx, imgs, err := spec.Index()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return v1.Hash{}, err
	}
	tmp, err := os.MkdirTemp(out, ".build-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(tmp)
	lp, err := layout.Write(filepath.Join(tmp, "oci"), EmptyIndex())
	if err != nil {
		return v1.Hash{}, err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		return v1.Hash{}, err
	}
	tag, _ := name.NewTag("initbox:latest")
	outputs := []string{"oci"}
	for _, arch := range Arches {
		if err := lp.AppendImage(imgs[arch], layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": arch}),
			layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch})); err != nil {
			return v1.Hash{}, err
		}
		tarName := "initbox-" + arch + ".tar"
		if err := tarball.WriteToFile(filepath.Join(tmp, tarName), tag, imgs[arch]); err != nil {
			return v1.Hash{}, err
		}
		es, err := spec.Files(arch)
		if err != nil {
			return v1.Hash{}, err
		}
		rootfs := "rootfs-" + arch
		if err := writeTree(filepath.Join(tmp, rootfs), es); err != nil {
			return v1.Hash{}, err
		}
		outputs = append(outputs, tarName, rootfs)
	}
	for _, o := range outputs {
		if err := os.RemoveAll(filepath.Join(out, o)); err != nil {
			return v1.Hash{}, err
		}
		if err := os.Rename(filepath.Join(tmp, o), filepath.Join(out, o)); err != nil {
			return v1.Hash{}, err
		}
	}
	return idx.Digest()
}

// writeTree lays the layer's entries out as files, hard links included,
// owned as in the layer when running as root.
func writeTree(dir string, es []Entry) error {
	for _, e := range es {
		p := filepath.Join(dir, e.Path)
		switch e.Type {
		case '5': // tar.TypeDir
			if err := os.MkdirAll(p, os.FileMode(e.Mode)); err != nil {
				return err
			}
		case '0':
			data := e.Data
			if e.From != "" {
				var err error
				if data, err = os.ReadFile(e.From); err != nil {
					return err
				}
			}
			if err := os.WriteFile(p, data, os.FileMode(e.Mode)); err != nil {
				return err
			}
			if err := os.Chmod(p, os.FileMode(e.Mode)); err != nil {
				return err
			}
		case '1':
			if err := os.Link(filepath.Join(dir, e.Link), p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Push sends the index tagged "latest" in the layout at oci to image,
// preserving every digest.
func Push(oci, image string, insecure bool) (v1.Hash, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(image, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image %q: %w", image, err)
	}
	lp, err := layout.FromPath(oci)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading %s: %w (run make image)", oci, err)
	}
	root, err := lp.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	im, err := root.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] != "latest" {
			continue
		}
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			return v1.Hash{}, err
		}
		if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return v1.Hash{}, fmt.Errorf("pushing to %s: %w", image, err)
		}
		return d.Digest, nil
	}
	return v1.Hash{}, fmt.Errorf("%s has no index tagged latest", oci)
}
