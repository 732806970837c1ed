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

	"github.com/initbox/initbox/internal/applets"
	"github.com/initbox/initbox/internal/image"
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
	spec := image.Spec{
		Binaries: map[string]string{},
		Applets:  applets.Names(),
		CABundle: *ca,
		Epoch:    epoch,
		Version:  *version,
		Revision: *revision,
		Source:   "https://github.com/initbox/initbox",
	}
	for _, arch := range image.Arches {
		spec.Binaries[arch] = filepath.Join(*bin, "linux-"+arch, "initbox")
	}
	digest, err := image.Write(spec, *out)
	if err != nil {
		return err
	}
	fmt.Printf("index %s\n", digest)
	return nil
}

func pushCmd(args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	ref := fs.String("image", "", "where to push: REGISTRY/NAME:TAG")
	oci := fs.String("oci", "dist/oci", "the OCI layout written by build")
	insecure := fs.Bool("insecure", false, "allow plain HTTP to the registry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ref == "" {
		return errors.New("push: -image REGISTRY/NAME:TAG is required (make push IMAGE=…)")
	}
	d, err := image.Push(*oci, *ref, *insecure)
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", *ref, d)
	return nil
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
