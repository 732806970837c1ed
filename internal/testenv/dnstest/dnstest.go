// Package dnstest runs a real DNS server (miekg/dns) on loopback, UDP and
// TCP on one port, answering from a zone the test changes while the code
// under test waits.
package dnstest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/miekg/dns"
)

// TB is the part of testing.TB the server needs, so benchmarks outside
// "go test" can run it too.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Server is an authoritative-for-everything test server: a name with no
// records is NXDOMAIN, a name with records of other types is NODATA.
type Server struct {
	Addr   string // HOST:PORT
	Port53 bool   // Addr's port is 53: a resolv.conf can name it

	mu       sync.Mutex
	records  map[string][]dns.RR // lower-case FQDN
	servfail map[string]int      // answers left to fail per FQDN
	refuse   bool
	silent   bool
	truncate bool           // every answer has TC set, over TCP too: a broken server
	queries  map[string]int // per FQDN and type, "name/TYPE"
	tcp      map[string]int
}

// Start runs a server until the test ends. It listens on port 53 of a
// random 127.0.53.x address when it may (as root), so a resolv.conf can
// point at it exactly as a pod's does; otherwise on a free port of
// 127.0.0.1, and Port53 is false.
func Start(t TB) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, servfail: map[string]int{}, queries: map[string]int{}, tcp: map[string]int{}}
	pc, ln := listen(t)
	s.Addr = pc.LocalAddr().String()
	s.Port53 = pc.LocalAddr().(*net.UDPAddr).Port == 53
	h := dns.HandlerFunc(s.serve)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	var started sync.WaitGroup
	started.Add(2)
	udp.NotifyStartedFunc = started.Done
	tcp.NotifyStartedFunc = started.Done
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	started.Wait()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return s
}

func listen(t TB) (net.PacketConn, net.Listener) {
	for i := 0; i < 50; i++ {
		host := fmt.Sprintf("127.0.53.%d", 2+rand.IntN(250))
		pc, err := net.ListenPacket("udp", host+":53")
		if err != nil {
			if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) {
				break
			}
			continue
		}
		ln, err := net.Listen("tcp", host+":53")
		if err != nil {
			pc.Close()
			continue
		}
		return pc, ln
	}
	for i := 0; i < 50; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		return pc, ln
	}
	t.Fatal("no free port for the test DNS server")
	return nil, nil
}

// Add adds records in zone-file syntax ("db.default.svc.cluster.local. 5 IN A 10.0.0.1").
func (s *Server) Add(t TB, rrs ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range rrs {
		rr, err := dns.NewRR(text)
		if err != nil {
			t.Fatalf("bad record %q: %v", text, err)
		}
		k := strings.ToLower(rr.Header().Name)
		s.records[k] = append(s.records[k], rr)
	}
}

// Remove deletes every record of name.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, strings.ToLower(dns.Fqdn(name)))
}

// ServFail makes the next n queries for name answer SERVFAIL.
func (s *Server) ServFail(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[strings.ToLower(dns.Fqdn(name))] = n
}

// TruncateAlways makes every answer truncated (TC set and no records),
// over TCP as well as UDP: a client must give up, not loop.
func (s *Server) TruncateAlways(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Silent makes the server read queries and never answer.
func (s *Server) Silent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = on
}

// Refuse makes every answer REFUSED.
func (s *Server) Refuse(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = on
}

// Queries counts the queries for name of type qtype ("A"); over TCP too.
func (s *Server) Queries(name, qtype string) (all, overTCP int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(dns.Fqdn(name)) + "/" + qtype
	return s.queries[k], s.tcp[k]
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	k := name + "/" + dns.TypeToString[q.Qtype]
	s.queries[k]++
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		s.tcp[k]++
	}
	silent, refuse, truncate := s.silent, s.refuse, s.truncate
	fail := s.servfail[name] > 0
	if fail {
		s.servfail[name]--
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch {
	case silent:
		s.mu.Unlock()
		return
	case refuse:
		m.Rcode = dns.RcodeRefused
	case fail:
		m.Rcode = dns.RcodeServerFailure
	default:
		s.answer(m, name, q.Qtype, 0)
	}
	s.mu.Unlock()
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
	}
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		m.Truncate(size)
	}
	if truncate {
		m.Answer, m.Truncated = nil, true
	}
	_ = w.WriteMsg(m)
}

// answer fills m for name/qtype, following CNAMEs; the caller holds mu.
func (s *Server) answer(m *dns.Msg, name string, qtype uint16, depth int) {
	rrs, ok := s.records[name]
	if !ok || depth > 8 {
		if depth == 0 || !ok {
			m.Rcode = dns.RcodeNameError
		}
		return
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) > 0 || qtype == dns.TypeCNAME {
		return
	}
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			m.Answer = append(m.Answer, dns.Copy(c))
			s.answer(m, strings.ToLower(c.Target), qtype, depth+1)
			return
		}
	}
}

// PodSearch is a pod's search list in the namespace "default".
var PodSearch = []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}

// ResolvConf writes a pod-like resolv.conf ("search default.svc.cluster.local
// svc.cluster.local cluster.local", options as given, "ndots:5" in a pod)
// naming the server, and returns the waitfor flags that use it: the file,
// and --server with the port when the server is not on port 53.
func (s *Server) ResolvConf(t TB, options string) (path string, flags []string) {
	t.Helper()
	host, _, _ := net.SplitHostPort(s.Addr)
	text := fmt.Sprintf("search %s\nnameserver %s\noptions %s\n", strings.Join(PodSearch, " "), host, options)
	path = filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	flags = []string{"--resolv-conf", path, "--hosts-file", ""}
	if !s.Port53 {
		flags = append(flags, "--server", s.Addr)
	}
	return path, flags
}
