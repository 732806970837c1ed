// Command images assembles initbox's scratch image with
// go-containerregistry — no Docker daemon — and pushes it.
//
//	go run ./images build [-out dist] [-bin bin] …   (make image)
//	go run ./images push -image REGISTRY/NAME:TAG    (make push IMAGE=…)
//
// build reads the static binaries bin/linux-amd64/initbox and
// bin/linux-arm64/initbox and writes:
//
//	dist/oci/               an OCI layout: the amd64+arm64 index tagged "latest",
//	                        each single-arch image tagged with its arch
//	dist/initbox-ARCH.tar   a docker-loadable tarball per arch (initbox:latest)
//	dist/rootfs-ARCH/       the layer's file tree, for images/Dockerfile
//
// Every timestamp is SOURCE_DATE_EPOCH (default: the commit's time), so two
// builds of one commit give the same digests.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/initbox/initbox/internal/applets"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: images build|push [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = buildCmd(os.Args[2:])
	case "push":
		err = pushCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want build or push", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func buildCmd(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	out := fs.String("out", "dist", "output directory")
	bin := fs.String("bin", "bin", "directory holding linux-ARCH/initbox")
	ca := fs.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle (PEM) for the image")
	version := fs.String("version", gitOr("describe", "--tags", "--always", "--dirty"), "image version label")
	revision := fs.String("revision", gitOr("rev-parse", "HEAD"), "image revision label")
	if err := fs.Parse(args); err != nil {
		return err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	spec := Spec{
		Binaries: map[string]string{},
		Applets:  applets.Names(),
		CABundle: *ca,
		Epoch:    epoch,
		Version:  *version,
		Revision: *revision,
		Source:   "https://github.com/initbox/initbox",
	}
	for _, arch := range Arches {
		spec.Binaries[arch] = filepath.Join(*bin, "linux-"+arch, "initbox")
	}
	digest, err := Write(spec, *out)
	if err != nil {
		return err
	}
	fmt.Printf("index %s\n", digest)
	return nil
}

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
	lp, err := layout.Write(filepath.Join(tmp, "oci"), idx0())
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

func pushCmd(args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	image := fs.String("image", "", "where to push: REGISTRY/NAME:TAG")
	oci := fs.String("oci", "dist/oci", "the OCI layout written by build")
	insecure := fs.Bool("insecure", false, "allow plain HTTP to the registry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *image == "" {
		return errors.New("push: -image REGISTRY/NAME:TAG is required (make push IMAGE=…)")
	}
	d, err := Push(*oci, *image, *insecure)
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", *image, d)
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

// sourceDateEpoch is SOURCE_DATE_EPOCH, else the commit's time, else 0.
func sourceDateEpoch() (time.Time, error) {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if v := gitOr("log", "-1", "--format=%ct"); v != "unknown" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return time.Unix(0, 0).UTC(), nil
}

func gitOr(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
