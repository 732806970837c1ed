// Package resolve looks names up exactly as a pod's own resolver (glibc with
// "hosts: files dns") would: the hosts file first for addresses, then the
// nameservers of resolv.conf, expanding a short name with its search list and
// ndots, honouring timeout, attempts and rotate, and retrying over TCP when a
// UDP answer is truncated. It never caches: every Lookup asks the servers.
//
// Unlike the tools it replaces, it says why a name did not resolve, per name
// tried: "NXDOMAIN for db.default.svc.cluster.local, db.svc.cluster.local, …".
package resolve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/initbox/initbox/internal/oserr"
)

// Resolver holds a parsed resolver configuration. Build it with Load.
type Resolver struct {
	Servers   []string // host:port, in resolv.conf order
	Search    []string
	Ndots     int
	Timeout   time.Duration // per query, resolv.conf "timeout"
	Attempts  int           // rounds over all servers, resolv.conf "attempts"
	Rotate    bool
	EDNS0     bool
	UseVC     bool   // options use-vc: every query over TCP
	NoTLD     bool   // options no-tld-query: a dotless name is never asked as is
	HostsFile string // "" disables the hosts file

	next      atomic.Uint32
	searchSet bool // a search or domain line (or LOCALDOMAIN) was read
}

// Load reads resolvConf (unless server overrides the nameservers and the
// file does not exist) and returns a Resolver. server is HOST or HOST:PORT.
func Load(resolvConf, hostsFile, server string) (*Resolver, error) {
	r := &Resolver{Ndots: 1, Timeout: 5 * time.Second, Attempts: 2, HostsFile: hostsFile}
	data, err := os.ReadFile(resolvConf)
	switch {
	case err == nil:
		if err := r.parse(string(data)); err != nil {
			return nil, fmt.Errorf("reading %s: %w", resolvConf, err)
		}
	case server == "":
		return nil, fmt.Errorf("reading %s: %w", resolvConf, oserr.Reason(err))
	}
	// As glibc's res_init: LOCALDOMAIN replaces the search list, and
	// RES_OPTIONS adds options after the file's.
	if v, ok := os.LookupEnv("LOCALDOMAIN"); ok {
		r.Search = strings.Fields(v)
		r.searchSet = true
	}
	if v := os.Getenv("RES_OPTIONS"); v != "" {
		r.options(strings.Fields(v))
	}
	if !r.searchSet {
		// No search or domain line: the domain of the host's own name.
		if h, err := os.Hostname(); err == nil {
			if _, d, ok := strings.Cut(h, "."); ok && d != "" {
				r.Search = []string{d}
			}
		}
	}
	if server != "" {
		hp, err := hostPort(server, "53")
		if err != nil {
			return nil, fmt.Errorf("invalid DNS server %q: %w", server, err)
		}
		r.Servers = []string{hp}
	}
	if len(r.Servers) == 0 {
		return nil, fmt.Errorf("%s lists no nameserver", resolvConf)
	}
	return r, nil
}

func hostPort(s, defPort string) (string, error) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return "", fmt.Errorf("bad port %q", p)
		}
		return net.JoinHostPort(h, p), nil
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if s == "" {
		return "", errors.New("empty host")
	}
	return net.JoinHostPort(s, defPort), nil
}

// parse reads resolv.conf as glibc 2.36 does: the last search or domain
// line wins; at most three nameservers, a line glibc cannot parse skipped;
// the options glibc honours, with its bounds.
func (r *Resolver) parse(text string) error {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 1 {
			continue
		}
		switch f[0] {
		case "nameserver":
			// glibc skips a line it cannot parse, and keeps three.
			if len(f) > 1 && len(r.Servers) < 3 {
				addr := f[1]
				if ip := net.ParseIP(strings.SplitN(addr, "%", 2)[0]); ip != nil {
					r.Servers = append(r.Servers, net.JoinHostPort(addr, "53"))
				}
			}
		case "domain":
			if len(f) > 1 {
				r.Search, r.searchSet = []string{f[1]}, true
			}
		case "search":
			r.Search, r.searchSet = append([]string(nil), f[1:]...), true
		case "options":
			r.options(f[1:])
		}
	}
	return sc.Err()
}

// options applies resolv.conf options as glibc's res_init does: ndots up
// to 15, timeout up to 30 s, attempts up to 5 (0 included: then no query is
// ever sent), and the flags that change what is asked.
func (r *Resolver) options(opts []string) {
	for _, o := range opts {
		k, v, _ := strings.Cut(o, ":")
		n, _ := strconv.Atoi(v)
		switch k {
		case "ndots":
			r.Ndots = min(max(n, 0), 15)
		case "timeout":
			// glibc waits at least a second, whatever the option says.
			r.Timeout = time.Duration(min(max(n, 1), 30)) * time.Second
		case "attempts":
			r.Attempts = min(max(n, 0), 5)
		case "rotate":
			r.Rotate = true
		case "edns0":
			r.EDNS0 = true
		case "use-vc":
			r.UseVC = true
		case "no-tld-query":
			r.NoTLD = true
		}
	}
}

// Names returns the fully qualified names tried for name, in order, when
// each one fails with NXDOMAIN (other failures change the course: see
// Lookup).
func (r *Resolver) Names(name string) []string {
	var out []string
	r.search(name, func(fqdn string) (class, bool) {
		out = append(out, fqdn)
		return classNX, false
	})
	return out
}

// Result is a successful lookup.
type Result struct {
	Name    string   // the fully qualified name that answered ("" for the hosts file)
	Records []dns.RR // the records of the asked types, CNAMEs followed
	Hosts   bool     // answered by the hosts file
}

// Count returns the number of records of type t.
func (res *Result) Count(t uint16) int {
	n := 0
	for _, rr := range res.Records {
		if rr.Header().Rrtype == t {
			n++
		}
	}
	return n
}

// Outcome is why one fully qualified name did not answer.
type Outcome struct {
	Name   string
	Reason string // NXDOMAIN, NODATA, SERVFAIL, REFUSED, timeout, …
}

// NotFoundError says, per name tried, why a lookup failed.
type NotFoundError struct {
	Tried []Outcome
}

func (e *NotFoundError) Error() string {
	var order []string
	by := map[string][]string{}
	for _, o := range e.Tried {
		if _, ok := by[o.Reason]; !ok {
			order = append(order, o.Reason)
		}
		by[o.Reason] = append(by[o.Reason], o.Name)
	}
	parts := make([]string, 0, len(order))
	for _, reason := range order {
		parts = append(parts, reason+" for "+strings.Join(by[reason], ", "))
	}
	return strings.Join(parts, "; ")
}

// class is how one name's answer steers the search, in glibc's terms.
type class int

const (
	classNX       class = iota // NXDOMAIN (HOST_NOT_FOUND): keep going
	classNoData                // NOERROR without the records (NO_DATA): keep going
	classServFail              // SERVFAIL (TRY_AGAIN): keep going
	classOther                 // REFUSED, a timeout, …: stop the search list
	classNoServer              // no server reachable (ECONNREFUSED): stop at once
)

// search walks the names as glibc 2.36's res_search (__res_context_search)
// does, calling try for each until it returns done:
//   - a name with at least ndots dots (or a trailing dot) is asked as is
//     first; a trailing dot ends it there, and any other failure of that
//     first query goes on with the search list;
//   - in the search list, NXDOMAIN, NODATA and SERVFAIL go to the next
//     domain; anything else (REFUSED, a timeout) stops the list; no server
//     at all ends the lookup;
//   - a search domain "." (systemd-resolved's) means the name as is;
//   - a name not yet asked as is is asked last, unless no-tld-query is set
//     and it has no dot.
func (r *Resolver) search(name string, try func(fqdn string) (class, bool)) {
	dots := strings.Count(name, ".")
	trailing := strings.HasSuffix(name, ".")
	asIs := strings.TrimSuffix(name, ".") + "."
	triedAsIs, rootOnList, searched := false, false, false
	if dots >= r.Ndots || trailing {
		if _, done := try(asIs); done || trailing {
			return
		}
		triedAsIs = true
	}
	for _, d := range r.Search {
		searched = true
		d = strings.TrimPrefix(d, ".")
		fqdn := asIs
		if d == "" {
			rootOnList = true
		} else {
			fqdn = asIs + strings.TrimSuffix(d, ".") + "."
		}
		c, done := try(fqdn)
		if done || c == classNoServer {
			return
		}
		if c == classOther {
			break
		}
	}
	if (dots > 0 || !searched || !r.NoTLD) && !triedAsIs && !rootOnList {
		try(asIs)
	}
}

// Lookup resolves name for the query types (several: "any of", as A+AAAA
// for an address) as a pod's glibc would with "hosts: files dns": an IP
// address is itself; then the hosts file; a name glibc refuses as a host
// name (res_hnok: a leading '-', characters other than letters, digits, '-'
// and '_') is not looked up; then the names of search, in its order.
func (r *Resolver) Lookup(ctx context.Context, name string, qtypes ...uint16) (*Result, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("empty name")
	}
	if res := literal(name, qtypes); res != nil {
		return res, nil
	} else if net.ParseIP(strings.Trim(name, "[]")) != nil && wantsAddress(qtypes) {
		// An address of the other family: getaddrinfo fails at once, asking
		// neither the hosts file nor DNS.
		return nil, &NotFoundError{Tried: []Outcome{{Name: name, Reason: "an address of another family than asked"}}}
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("%q is not a valid DNS name", name)
	}
	if r.HostsFile != "" && wantsAddress(qtypes) {
		if res := r.fromHosts(name, qtypes); res != nil {
			return res, nil
		}
	}
	if wantsAddress(qtypes) && !hostNameOK(name) {
		return nil, &NotFoundError{Tried: []Outcome{{Name: name, Reason: "not a host name the resolver asks for (a leading -, or characters beyond letters, digits, - and _)"}}}
	}
	if r.Attempts == 0 {
		return nil, &NotFoundError{Tried: []Outcome{{Name: name, Reason: "no query sent (options attempts:0)"}}}
	}
	var (
		tried []Outcome
		found *Result
	)
	r.search(name, func(fqdn string) (class, bool) {
		if ctx.Err() != nil {
			return classOther, true
		}
		res, reason, c := r.lookupName(ctx, fqdn, qtypes)
		if res != nil {
			found = res
			return 0, true
		}
		tried = append(tried, Outcome{Name: fqdn, Reason: reason})
		return c, false
	})
	if found != nil {
		return found, nil
	}
	return nil, &NotFoundError{Tried: tried}
}

// literal answers for an IP address given as the name, as getaddrinfo
// does without asking anyone: an IPv4 address for A, an IPv6 one for AAAA.
func literal(name string, qtypes []uint16) *Result {
	ip := net.ParseIP(strings.Trim(name, "[]"))
	if ip == nil {
		return nil
	}
	res := &Result{Name: name, Hosts: true}
	res.addAddress(ip, qtypes)
	if len(res.Records) == 0 {
		return nil
	}
	return res
}

// addAddress adds ip as an A or AAAA record of res.Name, if qtypes asks for
// its family.
func (res *Result) addAddress(ip net.IP, qtypes []uint16) {
	hdr := dns.RR_Header{Name: res.Name, Class: dns.ClassINET}
	if ip4 := ip.To4(); ip4 != nil && contains(qtypes, dns.TypeA) {
		hdr.Rrtype = dns.TypeA
		res.Records = append(res.Records, &dns.A{Hdr: hdr, A: ip4})
	} else if ip.To4() == nil && contains(qtypes, dns.TypeAAAA) {
		hdr.Rrtype = dns.TypeAAAA
		res.Records = append(res.Records, &dns.AAAA{Hdr: hdr, AAAA: ip})
	}
}

// hostNameOK is glibc's res_hnok: letters, digits, '-' and '_' in every
// label, and no '-' to start the name.
func hostNameOK(name string) bool {
	if strings.HasPrefix(name, "-") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func wantsAddress(qtypes []uint16) bool {
	for _, t := range qtypes {
		if t == dns.TypeA || t == dns.TypeAAAA {
			return true
		}
	}
	return false
}

// lookupName queries one fully qualified name for all qtypes in parallel.
func (r *Resolver) lookupName(ctx context.Context, fqdn string, qtypes []uint16) (*Result, string, class) {
	type answer struct {
		msg *dns.Msg
		err error
	}
	answers := make([]answer, len(qtypes))
	var wg sync.WaitGroup
	for i, t := range qtypes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := r.query(ctx, fqdn, t)
			answers[i] = answer{m, err}
		}()
	}
	wg.Wait()

	res := &Result{Name: fqdn}
	var nx, nodata int
	var failure string
	for i, a := range answers {
		switch {
		case a.err != nil:
			if failure == "" {
				failure = a.err.Error()
			}
		case a.msg.Rcode == dns.RcodeSuccess:
			found := false
			for _, rr := range a.msg.Answer {
				if rr.Header().Rrtype == qtypes[i] {
					res.Records = append(res.Records, rr)
					found = true
				}
			}
			if !found {
				nodata++
			}
		case a.msg.Rcode == dns.RcodeNameError:
			nx++
		default:
			if failure == "" {
				failure = dns.RcodeToString[a.msg.Rcode]
				if failure == "" {
					failure = "rcode " + strconv.Itoa(a.msg.Rcode)
				}
			}
		}
	}
	if len(res.Records) > 0 {
		return res, "", 0
	}
	switch {
	case failure == "SERVFAIL":
		return nil, failure, classServFail
	case failure == errNoServer.Error():
		return nil, failure, classNoServer
	case failure != "":
		return nil, failure, classOther
	case nx == len(qtypes):
		return nil, "NXDOMAIN", classNX
	default:
		return nil, "NODATA", classNoData
	}
}

// errNoServer: every server refused the connection (ECONNREFUSED).
var errNoServer = errors.New("no server answers (connection refused)")

// query asks the servers for one name and type as glibc's res_send does:
// up to Attempts rounds over the servers, moving to the next server on a
// timeout, and on SERVFAIL, REFUSED or NOTIMP over UDP; over TCP (use-vc,
// or after a truncated UDP answer, on the same server) the answer is final
// whatever its code, as glibc's send_vc does not look at it.
func (r *Resolver) query(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	if r.EDNS0 {
		m.SetEdns0(1232, false)
	}
	var last *dns.Msg
	var lastErr error
	refused := 0
	n := len(r.Servers)
	first := 0
	if r.Rotate {
		first = int(r.next.Add(1)-1) % n
	}
	for a := 0; a < r.Attempts; a++ {
		for i := 0; i < n; i++ {
			if ctx.Err() != nil {
				if lastErr == nil && last == nil {
					lastErr = errors.New("timeout")
				}
				return r.finish(last, lastErr)
			}
			server := r.Servers[(first+i)%n]
			network := "udp"
			if r.UseVC {
				network = "tcp"
			}
			resp, err := r.exchange(ctx, m, server, network)
			if err == nil && resp.Truncated && network == "udp" {
				network = "tcp"
				resp, err = r.exchange(ctx, m, server, network)
				if err == nil && resp.Truncated {
					// A broken server: asking again cannot help, and
					// its partial answer is not the name's.
					err = errors.New("the answer is truncated even over TCP")
				}
			}
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused++
				}
				lastErr = describe(err)
				continue
			}
			if network == "tcp" {
				return resp, nil
			}
			switch resp.Rcode {
			case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeNotImplemented:
				last, lastErr = resp, nil
				continue
			}
			return resp, nil
		}
	}
	if refused == n*r.Attempts && last == nil {
		return nil, errNoServer
	}
	return r.finish(last, lastErr)
}

func (r *Resolver) finish(last *dns.Msg, err error) (*dns.Msg, error) {
	if last != nil {
		return last, nil
	}
	return nil, err
}

func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, server, network string) (*dns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: r.Timeout}
	if network == "udp" && r.EDNS0 {
		c.UDPSize = 1232
	}
	resp, _, err := c.ExchangeContext(qctx, m, server)
	return resp, err
}

// describe turns a transport error into a short reason.
func describe(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timeout")
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("cancelled")
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return fmt.Errorf("%s", unwrapSyscall(oe.Err))
	}
	return err
}

func unwrapSyscall(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// fromHosts answers from the hosts file, as glibc's "files" source: the
// name exactly as given, case-insensitively, trailing dots included (db.
// and db are different names there), no search list.
func (r *Resolver) fromHosts(name string, qtypes []uint16) *Result {
	data, err := os.ReadFile(r.HostsFile)
	if err != nil {
		return nil
	}
	want := strings.ToLower(name)
	res := &Result{Hosts: true, Name: dns.Fqdn(strings.TrimSuffix(want, "."))}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ip := net.ParseIP(f[0])
		if ip == nil {
			continue
		}
		for _, h := range f[1:] {
			if strings.ToLower(h) != want {
				continue
			}
			res.addAddress(ip, qtypes)
		}
	}
	if len(res.Records) == 0 {
		return nil
	}
	return res
}

func contains(ts []uint16, t uint16) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// LookupIP resolves host to addresses (A and AAAA), IPv4 first. A literal
// IP is returned as is. It is what tcp, http and postgres use to dial.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return []net.IP{ip}, nil
	}
	res, err := r.Lookup(ctx, host, dns.TypeA, dns.TypeAAAA)
	if err != nil {
		return nil, err
	}
	var v4, v6 []net.IP
	for _, rr := range res.Records {
		switch rr := rr.(type) {
		case *dns.A:
			v4 = append(v4, rr.A)
		case *dns.AAAA:
			v6 = append(v6, rr.AAAA)
		}
	}
	return append(v4, v6...), nil
}

// DialContext dials address (host:port) with names resolved by r, trying
// each address in turn. Its signature fits net/http and pgconn.
func (r *Resolver) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ips, err := r.LookupIP(ctx, host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var firstErr error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}
