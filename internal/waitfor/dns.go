package waitfor

import (
	"context"
	"fmt"
	"github.com/initbox/initbox/internal/neterr"
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/resolve"
)

// The dns kind, registered in the table (register).
var _ = register(&kind{
	name: "dns", rank: 10, noun: "DNS names",
	usage: "dns NAME", urlForm: "dns:NAME",
	help: `NAME resolves as the pod's own resolver would (resolv.conf search list and
		ndots, hosts file first, no cache)`,
	examples: []string{"dns myservice --timeout 5m", "dns mydb-headless --min-records 3"},
	schemes:  []string{"dns"},
	options:  func() kindOptions { return &dnsOptions{} },
})

type dnsOptions struct {
	qtype      string
	minRecords int
	expect     string
}

func (k *dnsOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.qtype, "type", "", "record `TYPE`: A, AAAA, SRV, CNAME, TXT, MX, NS (default A or AAAA)")
	fs.Int(&k.minRecords, "min-records", 1, "ready when at least `N` records answer")
	fs.String(&k.expect, "expect", "", "ready when some record equals `VALUE`")
}

// dnsTypes are the record types --type accepts.
var dnsTypes = map[string]uint16{
	"A": dns.TypeA, "AAAA": dns.TypeAAAA, "SRV": dns.TypeSRV, "CNAME": dns.TypeCNAME,
	"TXT": dns.TypeTXT, "MX": dns.TypeMX, "NS": dns.TypeNS,
}

type dnsProbe struct {
	r          *resolve.Resolver
	name       string
	qtypes     []uint16
	minRecords int
	expect     string
}

func (k *dnsOptions) check() error {
	if k.minRecords < 1 {
		return fmt.Errorf("invalid value %d for --min-records: want 1 or more", k.minRecords)
	}
	return nil
}

func (k *dnsOptions) probe(o *options, target string) (probe, error) {
	name := strings.TrimSpace(target)
	// An address is itself, as getent ahosts ::1 resolves it (an IPv6
	// literal holds the ":" a name may not).
	if _, ok := dns.IsDomainName(name); net.ParseIP(name) == nil && (!ok || strings.ContainsAny(name, " /:@")) {
		return nil, fmt.Errorf("not a valid DNS name")
	}
	p := &dnsProbe{name: name, minRecords: k.minRecords, expect: k.expect}
	if k.qtype == "" {
		p.qtypes = []uint16{dns.TypeA, dns.TypeAAAA}
	} else {
		t, ok := dnsTypes[strings.ToUpper(k.qtype)]
		if !ok {
			return nil, fmt.Errorf("invalid value %q for --type: want A, AAAA, SRV, CNAME, TXT, MX or NS", k.qtype)
		}
		p.qtypes = []uint16{t}
	}
	r, err := o.nameResolver()
	if err != nil {
		return nil, err
	}
	p.r = r
	return p, nil
}

func (p *dnsProbe) Check(ctx context.Context) error {
	res, err := p.r.Lookup(ctx, p.name, p.qtypes...)
	if err != nil {
		return neterr.Reason(err)
	}
	// With the default A-or-AAAA, a dual-stack name has both per host:
	// count the larger family, not their sum.
	n := 0
	for _, t := range p.qtypes {
		n = max(n, res.Count(t))
	}
	where := strings.TrimSuffix(res.Name, ".")
	if res.Hosts {
		where += " (hosts file)"
	}
	if n < p.minRecords {
		return fmt.Errorf("%s of %d records for %s", strconv.Itoa(n), p.minRecords, where)
	}
	if p.expect != "" {
		var have []string
		for _, rr := range res.Records {
			v := recordValue(rr)
			if strings.EqualFold(strings.TrimSuffix(v, "."), strings.TrimSuffix(p.expect, ".")) || srvTargetMatches(rr, p.expect) {
				return nil
			}
			have = append(have, v)
		}
		return fmt.Errorf("no record of %s equals %q (have %s)", where, p.expect, strings.Join(have, ", "))
	}
	return nil
}

// recordValue is the value of a record as --expect compares it.
func recordValue(rr dns.RR) string {
	switch rr := rr.(type) {
	case *dns.A:
		return rr.A.String()
	case *dns.AAAA:
		return rr.AAAA.String()
	case *dns.CNAME:
		return strings.TrimSuffix(rr.Target, ".")
	case *dns.NS:
		return strings.TrimSuffix(rr.Ns, ".")
	case *dns.MX:
		return strings.TrimSuffix(rr.Mx, ".")
	case *dns.SRV:
		return fmt.Sprintf("%s:%d", strings.TrimSuffix(rr.Target, "."), rr.Port)
	case *dns.TXT:
		return strings.Join(rr.Txt, "")
	}
	return rr.String()
}

// srvTargetMatches lets --expect name an SRV target without its port.
func srvTargetMatches(rr dns.RR, want string) bool {
	srv, ok := rr.(*dns.SRV)
	return ok && strings.EqualFold(strings.TrimSuffix(srv.Target, "."), strings.TrimSuffix(want, "."))
}
