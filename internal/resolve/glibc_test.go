package resolve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/initbox/initbox/internal/testenv"
)

// The resolver differential: glibc's own resolver (getent -A ahosts, so
// address-configuration filtering hides nothing) and initbox's, on the same
// resolv.conf and hosts file, against DNS servers whose every answer the
// test chooses — NXDOMAIN, NODATA, SERVFAIL, REFUSED, silence, truncation —
// over a generated matrix of names, ndots, search lists and options. They
// must return the same addresses, or both fail. It runs as root in a
// network namespace of its own (nothing leaves it; the servers listen on
// 127.0.0.2 and 127.0.0.3 port 53) and a mount namespace where the case's
// files are bind-mounted over /etc/resolv.conf, /etc/hosts and
// /etc/nsswitch.conf.
func TestResolverAgainstGlibc(t *testing.T) {
	if os.Getenv("INITBOX_GLIBC_CHILD") == "1" {
		glibcChild(t)
		return
	}
	testenv.RealServer(t, "glibc's getent in a network namespace")
	if os.Geteuid() != 0 {
		testenv.Skip(t, "the resolver differential needs root (namespaces, port 53)")
	}
	for _, tool := range []string{"unshare", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, tool+" is not installed")
		}
	}
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "--",
		os.Args[0], "-test.run", "^TestResolverAgainstGlibc$", "-test.v", "-test.timeout", "15m")
	cmd.Env = append(os.Environ(), "INITBOX_GLIBC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the differential in its namespaces failed: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "agree on") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

// behaviour is what a responder does for one name.
type behaviour struct {
	kind string // a, aaaa, both, nodata, nx, servfail, refused, silent, tc
	a    net.IP
	aaaa net.IP
}

// responder answers as its table says; unknown names are NXDOMAIN.
type responder struct {
	mu    sync.Mutex
	names map[string]behaviour
	all   string // when set, the behaviour for every name (a broken server)
}

func (r *responder) set(names map[string]behaviour, all string) {
	r.mu.Lock()
	r.names, r.all = names, all
	r.mu.Unlock()
}

func (r *responder) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		return
	}
	q := req.Question[0]
	r.mu.Lock()
	b, ok := r.names[strings.ToLower(q.Name)]
	if r.all != "" {
		b, ok = behaviour{kind: r.all}, true
	}
	r.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if !ok {
		b.kind = "nx"
	}
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	addA := func() {
		if q.Qtype == dns.TypeA && b.a != nil {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: b.a})
		}
		if q.Qtype == dns.TypeAAAA && b.aaaa != nil {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 5}, AAAA: b.aaaa})
		}
	}
	switch b.kind {
	case "silent":
		return
	case "nx":
		m.Rcode = dns.RcodeNameError
	case "servfail":
		m.Rcode = dns.RcodeServerFailure
	case "refused":
		m.Rcode = dns.RcodeRefused
	case "nodata":
	case "tc":
		if !tcp {
			m.Truncated = true
		} else {
			addA()
		}
	default:
		addA()
	}
	w.WriteMsg(m)
}

// glibcCase is one row of the matrix.
type glibcCase struct {
	name        string
	resolvConf  string
	hosts       string
	names       map[string]behaviour
	second      string // the second server's behaviour for all names, "" when absent
	description string
}

func genCases(n int) []glibcCase {
	rng := rand.New(rand.NewPCG(14, 2026))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var out []glibcCase
	ip := 0
	for i := 0; i < n; i++ {
		c := glibcCase{names: map[string]behaviour{}}
		c.name = pick("db", "db", "db.ns", "a.b.c", "db.", "db.ns.", "DB", "db_x", "-db", "db.-x", "127.0.0.1", "::1", "192.0.2.250", "x.y.z.w.v")
		var conf []string
		if rng.IntN(10) == 0 {
			conf = append(conf, "nameserver not-an-address")
		}
		if c.second = pick("", "", "", "", "refused", "servfail", "silent"); c.second != "" {
			conf = append(conf, "nameserver 127.0.0.3")
		}
		conf = append(conf, "nameserver 127.0.0.2")
		search := pick("", "s1.test s2.test", "s1.test s2.test", ".", "s1.test .", "s1.test")
		if search != "" {
			conf = append(conf, "search "+search)
		}
		opts := []string{"timeout:1"}
		if rng.IntN(20) == 0 {
			opts = append(opts, "attempts:0")
		} else {
			opts = append(opts, "attempts:1")
		}
		if nd := pick("", "0", "1", "2", "5"); nd != "" {
			opts = append(opts, "ndots:"+nd)
		}
		for _, o := range []string{"no-tld-query", "edns0", "use-vc", "single-request", "rotate"} {
			if rng.IntN(8) == 0 {
				opts = append(opts, o)
			}
		}
		conf = append(conf, "options "+strings.Join(opts, " "))
		c.resolvConf = strings.Join(conf, "\n") + "\n"
		// Every name the search could try.
		base := strings.TrimSuffix(strings.ToLower(c.name), ".")
		for _, fq := range []string{base + ".", base + ".s1.test.", base + ".s2.test."} {
			kind := pick("nx", "nx", "nx", "nx", "a", "a", "a", "nodata", "nodata", "servfail", "servfail", "refused", "silent", "aaaa", "both", "tc")
			ip++
			c.names[fq] = behaviour{kind: kind, a: net.IPv4(192, 0, 2, byte(ip%250+1)).To4(), aaaa: net.ParseIP(fmt.Sprintf("2001:db8::%x", ip))}
			if kind == "aaaa" {
				c.names[fq] = behaviour{kind: kind, aaaa: net.ParseIP(fmt.Sprintf("2001:db8::%x", ip))}
			}
			if kind == "a" || kind == "tc" {
				b := c.names[fq]
				b.aaaa = nil
				c.names[fq] = b
			}
		}
		c.hosts = "127.0.0.1 localhost\n"
		if rng.IntN(6) == 0 {
			c.hosts += fmt.Sprintf("198.51.100.%d %s\n", i%250+1, pick(c.name, base, base+".", strings.ToUpper(base)))
		}
		var bs []string
		for fq, b := range c.names {
			bs = append(bs, fq+"="+b.kind)
		}
		sort.Strings(bs)
		c.description = fmt.Sprintf("%q second=%q names=%v resolv.conf=%q hosts=%q", c.name, c.second, bs, c.resolvConf, c.hosts)
		out = append(out, c)
	}
	return out
}

func glibcChild(t *testing.T) {
	// Loopback up: the namespace starts with it down.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)

	dir := t.TempDir()
	files := map[string]string{"/etc/resolv.conf": "resolv.conf", "/etc/hosts": "hosts", "/etc/nsswitch.conf": "nsswitch.conf"}
	for target, name := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("hosts: files dns\n"), 0o644)
		if err := unix.Mount(p, target, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind-mounting over %s: %v", target, err)
		}
	}
	main, second := &responder{}, &responder{}
	for _, s := range []struct {
		addr string
		r    *responder
	}{{"127.0.0.2:53", main}, {"127.0.0.3:53", second}} {
		for _, network := range []string{"udp", "tcp"} {
			srv := &dns.Server{Addr: s.addr, Net: network, Handler: dns.HandlerFunc(s.r.serve)}
			started := make(chan error, 1)
			srv.NotifyStartedFunc = func() { started <- nil }
			go func() { started <- srv.ListenAndServe() }()
			if err := <-started; err != nil {
				t.Fatalf("listening on %s/%s: %v", s.addr, network, err)
			}
			defer srv.Shutdown()
		}
	}
	cases := genCases(160)
	agree := 0
	for i, c := range cases {
		os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(c.resolvConf), 0o644)
		os.WriteFile(filepath.Join(dir, "hosts"), []byte(c.hosts), 0o644)
		main.set(c.names, "")
		second.set(nil, c.second)
		db := "ahosts"
		if i%3 == 2 {
			db = "ahostsv4" // A alone, as waitfor dns --type A asks
		}
		want := getent(t, db, c.name)
		got := initbox(t, filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts"), c.name, db == "ahostsv4")
		if got != want {
			t.Errorf("case %d (%s): %s\n  glibc   %s\n  initbox %s", i, db, c.description, want, got)
			continue
		}
		agree++
	}
	t.Logf("glibc and initbox agree on %d of %d cases", agree, len(cases))
}

// getent is glibc's answer: the sorted addresses, or "not found".
func getent(t *testing.T, db, name string) string {
	out, err := exec.Command("getent", "-A", db, "--", name).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
			return "not found"
		}
		t.Fatalf("getent %s: %v", name, err)
	}
	set := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			set[f[0]] = true
		}
	}
	return sorted(set)
}

// initbox is initbox's answer for a dns wait's default query (an address),
// or for A alone.
func initbox(t *testing.T, resolvConf, hosts, name string, v4 bool) string {
	r, err := Load(resolvConf, hosts, "")
	if err != nil {
		return "not found (" + err.Error() + ")"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA}
	if v4 {
		qtypes = qtypes[:1]
	}
	res, err := r.Lookup(ctx, name, qtypes...)
	if err != nil {
		return "not found"
	}
	set := map[string]bool{}
	for _, rr := range res.Records {
		switch rr := rr.(type) {
		case *dns.A:
			set[rr.A.String()] = true
		case *dns.AAAA:
			set[rr.AAAA.String()] = true
		}
	}
	if len(set) == 0 {
		return "not found"
	}
	return sorted(set)
}

func sorted(set map[string]bool) string {
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
