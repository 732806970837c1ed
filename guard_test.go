package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// SizeBudget is the most the stripped linux/amd64 multi-call binary may
// weigh: about 60% of wait4x's 29.5 MB, with every applet inside it and
// room for the long-running modes (issue 26 set it for all of them). The
// bound users see is the image's compressed layer, at most 6,800,000 bytes
// (image.LayerBudget in internal/image, judged on the blob file). INITBOX_SIZE_BUDGET lowers
// it, to see the guard fail.
const SizeBudget = 17_500_000

func TestBinarySizeBudget(t *testing.T) {
	budget := SizeBudget
	if v := os.Getenv("INITBOX_SIZE_BUDGET"); v != "" {
		var err error
		if budget, err = strconv.Atoi(v); err != nil {
			t.Fatalf("INITBOX_SIZE_BUDGET=%q: %v", v, err)
		}
	}
	fi, err := os.Stat(testenv.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("initbox is %d bytes; budget %d (%.1f%% used)", fi.Size(), budget, 100*float64(fi.Size())/float64(budget))
	if fi.Size() > int64(budget) {
		t.Fatalf("initbox is %d bytes, over its budget of %d by %d", fi.Size(), budget, fi.Size()-int64(budget))
	}
}

// forbidden are packages that must never enter the binary: they cost
// megabytes (go-getter v1 with the AWS SDK, GCS and gRPC; a full pgx with
// its pool and types) or drag in whole SDKs. A full pgx is forbidden;
// pgconn (and what it needs) is the PostgreSQL client.
var forbidden = []struct{ path, why string }{
	{"github.com/hashicorp/go-getter", "go-getter v1 links the AWS SDK, GCS and gRPC: use github.com/hashicorp/go-getter/v2"},
	{"github.com/aws/", "the AWS SDK"},
	{"cloud.google.com/", "Google Cloud libraries"},
	{"google.golang.org/grpc", "gRPC"},
	{"k8s.io/client-go", "client-go: talk to the API with net/http"},
	{"github.com/jackc/pgx/v5", "the full pgx: use github.com/jackc/pgx/v5/pgconn"},
	{"github.com/jackc/pgx/v5/pgxpool", "the full pgx: use github.com/jackc/pgx/v5/pgconn"},
	{"github.com/jackc/pgx/v5/stdlib", "database/sql over pgx: use pgconn"},
}

// isForbidden reports whether pkg is on the list: an exact match, or below
// an entry ending in "/" (go-getter v1's subpackages, but not /v2).
func isForbidden(pkg, entry string) bool {
	if strings.HasSuffix(entry, "/") {
		return strings.HasPrefix(pkg, entry)
	}
	if pkg == entry {
		return true
	}
	return entry == "github.com/hashicorp/go-getter" && strings.HasPrefix(pkg, entry+"/") && !strings.HasPrefix(pkg, entry+"/v2")
}

func TestImportGraph(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	list := forbidden
	// INITBOX_FORBID adds entries, to see the guard fail.
	for _, extra := range strings.Fields(os.Getenv("INITBOX_FORBID")) {
		list = append(list, struct{ path, why string }{extra, "listed in INITBOX_FORBID"})
	}
	pkgs := strings.Fields(string(out))
	for _, pkg := range pkgs {
		for _, f := range list {
			if isForbidden(pkg, f.path) {
				t.Errorf("the binary imports %s: %s", pkg, f.why)
			}
		}
	}
	t.Logf("%d packages in the import graph", len(pkgs))
}

func TestIsForbidden(t *testing.T) {
	for _, tc := range []struct {
		pkg, entry string
		want       bool
	}{
		{"github.com/hashicorp/go-getter", "github.com/hashicorp/go-getter", true},
		{"github.com/hashicorp/go-getter/s3", "github.com/hashicorp/go-getter", true},
		{"github.com/hashicorp/go-getter/v2", "github.com/hashicorp/go-getter", false},
		{"github.com/hashicorp/go-getter/v2/helper/url", "github.com/hashicorp/go-getter", false},
		{"github.com/jackc/pgx/v5", "github.com/jackc/pgx/v5", true},
		{"github.com/jackc/pgx/v5/pgconn", "github.com/jackc/pgx/v5", false},
		{"github.com/aws/aws-sdk-go/aws", "github.com/aws/", true},
	} {
		if got := isForbidden(tc.pkg, tc.entry); got != tc.want {
			t.Errorf("isForbidden(%s, %s) = %v", tc.pkg, tc.entry, got)
		}
	}
}

// TestNoKnownVulnerableModules fails when the build would link a module at
// a version known to be vulnerable or unfit (there is no network for
// govulncheck here): xz before v0.5.15 (GHSA-jc7w-c686-c4v9), compress before
// v1.18, go-getter v1 (the AWS SDK, GCS and gRPC linked in).
func TestNoKnownVulnerableModules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	below := func(v, min string) bool { return semverLess(v, min) }
	// The comparison itself, on the versions named above.
	if !below("v0.5.8", "v0.5.15") || below("v0.5.17", "v0.5.15") || !below("v1.11.2", "v1.18.0") || below("v1.20.3", "v1.18.0") {
		t.Fatal("semverLess is wrong")
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" || seen[line] {
			continue
		}
		seen[line] = true
		path, version, _ := strings.Cut(line, " ")
		switch {
		case path == "github.com/ulikunitz/xz" && below(version, "v0.5.15"):
			t.Errorf("%s %s: GHSA-jc7w-c686-c4v9; want v0.5.15 or later", path, version)
		case path == "github.com/klauspost/compress" && below(version, "v1.18.0"):
			t.Errorf("%s %s: want v1.18.0 or later", path, version)
		case path == "github.com/hashicorp/go-getter":
			t.Errorf("%s %s: go-getter v1 links cloud SDKs; use github.com/hashicorp/go-getter/v2", path, version)
		}
	}
	if len(seen) < 5 {
		t.Fatalf("only %d modules listed: %s", len(seen), out)
	}
}

// semverLess compares vMAJOR.MINOR.PATCH versions (pre-release suffixes
// ignored, which only matters for versions this test does not pin).
func semverLess(a, b string) bool {
	num := func(v string) [3]int {
		var n [3]int
		v, _, _ = strings.Cut(strings.TrimPrefix(v, "v"), "-")
		for i, p := range strings.SplitN(v, ".", 3) {
			n[i], _ = strconv.Atoi(p)
		}
		return n
	}
	x, y := num(a), num(b)
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}

// TestModulesVerified: the module cache holds what go.sum says (go mod
// verify), so a tampered download fails the build's tests.
func TestModulesVerified(t *testing.T) {
	cmd := exec.Command("go", "mod", "verify")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod verify: %v\n%s", err, out)
	}
}
