package resolve

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv/dnstest"
)

func TestParseResolvConf(t *testing.T) {
	r := &Resolver{Ndots: 1, Timeout: 5 * time.Second, Attempts: 2}
	err := r.parse(`# a pod's resolv.conf
domain ignored.example
search default.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
nameserver fd00::10 ; comment
nameserver 10.0.0.3
nameserver 10.0.0.4
options ndots:5 timeout:1 attempts:3 rotate edns0 unknown:7
`)
	if err != nil {
		t.Fatal(err)
	}
	want := &Resolver{
		Servers: []string{"10.96.0.10:53", "[fd00::10]:53", "10.0.0.3:53"},
		Search:  []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Ndots:   5, Timeout: time.Second, Attempts: 3, Rotate: true, EDNS0: true, searchSet: true,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	// As glibc: a nameserver line it cannot parse is skipped, not fatal.
	r = &Resolver{}
	if err := r.parse("nameserver not-an-ip\nnameserver 10.0.0.1\n"); err != nil || len(r.Servers) != 1 || r.Servers[0] != "10.0.0.1:53" {
		t.Fatalf("got %v %v", r.Servers, err)
	}
}

func TestNamesFollowNdots(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	os.WriteFile(p, []byte("search ns.svc.cluster.local svc.cluster.local\nnameserver 127.0.0.1\noptions ndots:2\n"), 0o644)
	r, err := Load(p, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"db":                {"db.ns.svc.cluster.local.", "db.svc.cluster.local.", "db."},
		"db.other":          {"db.other.ns.svc.cluster.local.", "db.other.svc.cluster.local.", "db.other."},
		"db.other.ns":       {"db.other.ns.", "db.other.ns.ns.svc.cluster.local.", "db.other.ns.svc.cluster.local."},
		"api.example.org.":  {"api.example.org."},
		"a.b.c.example.org": {"a.b.c.example.org.", "a.b.c.example.org.ns.svc.cluster.local.", "a.b.c.example.org.svc.cluster.local."},
	} {
		if got := r.Names(name); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("/nonexistent", "", ""); err == nil || err.Error() != "reading /nonexistent: no such file or directory" {
		t.Fatalf("got %v", err)
	}
	// --server alone is enough without a resolv.conf.
	if r, err := Load("/nonexistent", "", "127.0.0.1:5353"); err != nil || r.Servers[0] != "127.0.0.1:5353" {
		t.Fatalf("got %v %v", r, err)
	}
	if _, err := Load("/nonexistent", "", "127.0.0.1:http"); err == nil {
		t.Fatal("a named port was accepted")
	}
}

// With rotate, successive lookups start at successive servers; without it,
// the first server takes every query while it answers.
func TestRotateSpreadsQueries(t *testing.T) {
	a, b := dnstest.Start(t), dnstest.Start(t)
	for _, s := range []*dnstest.Server{a, b} {
		s.Add(t, "x.example.org. 5 IN A 192.0.2.1")
	}
	for _, rotate := range []bool{false, true} {
		r := &Resolver{Servers: []string{a.Addr, b.Addr}, Ndots: 1, Timeout: time.Second, Attempts: 1, Rotate: rotate}
		before, _ := b.Queries("x.example.org.", "A")
		for i := 0; i < 6; i++ {
			if _, err := r.Lookup(context.Background(), "x.example.org.", 1); err != nil {
				t.Fatal(err)
			}
		}
		nb, _ := b.Queries("x.example.org.", "A")
		if got := nb - before; rotate && got != 3 || !rotate && got != 0 {
			t.Errorf("rotate=%v: the second server got %d of 6 queries", rotate, got)
		}
	}
}

// SERVFAIL from the first server moves on to the next server, as res_send.
func TestServfailTriesNextServer(t *testing.T) {
	a, b := dnstest.Start(t), dnstest.Start(t)
	a.ServFail("x.example.org.", 100)
	b.Add(t, "x.example.org. 5 IN A 192.0.2.9")
	r := &Resolver{Servers: []string{a.Addr, b.Addr}, Ndots: 1, Timeout: time.Second, Attempts: 1}
	res, err := r.Lookup(context.Background(), "x.example.org.", 1)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("got %v, %v", res, err)
	}
}
