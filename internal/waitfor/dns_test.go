package waitfor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv/dnstest"
)

// A target that is never ready, for the leak test.
var _ = silentTarget("dns", func(silent) string { return "silent.test" })

// The pod-like resolv.conf of the Kubernetes docs' own failing loop: the
// other search domains answer NXDOMAIN, and the name appears later.
func TestDNSShortNameUnderPodSearchList(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	after(700*time.Millisecond, func() { s.Add(t, "myservice.default.svc.cluster.local. 5 IN A 10.96.0.10") })
	r := run(t, nil, append([]string{"dns", "myservice", "--timeout", "20s"}, flags...)...)
	r.MustExit(t, 0, `msg=ready target="dns myservice"`)
	if r.Elapsed < 700*time.Millisecond {
		t.Fatalf("ready after %s, before the record existed", r.Elapsed)
	}
	// Each probe asked the first search domain; once it answered, nothing
	// further down the list was needed.
	if n, _ := s.Queries("myservice.default.svc.cluster.local.", "A"); n < 2 {
		t.Errorf("only %d queries for the first search domain", n)
	}
}

func TestDNSNameInLaterSearchDomain(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	s.Add(t, "mydb.cluster.local. 5 IN A 10.0.0.7")
	run(t, nil, append([]string{"dns", "mydb", "--timeout", "10s"}, flags...)...).MustExit(t, 0)
	for _, earlier := range []string{"mydb.default.svc.cluster.local.", "mydb.svc.cluster.local."} {
		if n, _ := s.Queries(earlier, "A"); n == 0 {
			t.Errorf("%s was not tried first", earlier)
		}
	}
}

func TestDNSTimeoutNamesEveryNameTried(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	tl := t.TempDir() + "/termination-log"
	r := run(t, nil, append([]string{"dns", "myservice", "--timeout", "1s", "--termination-log", tl}, flags...)...)
	want := "dns myservice: NXDOMAIN for myservice.default.svc.cluster.local., myservice.svc.cluster.local., myservice.cluster.local., myservice."
	r.MustExit(t, 1, "timed out after 1s", want)
	msg := readFile(t, tl)
	if !strings.HasPrefix(msg, "waitfor: timed out after 1s: "+want) {
		t.Fatalf("termination message %q", msg)
	}
}

func TestDNSServfailThenSuccess(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:1 attempts:1")
	s.Add(t, "api.example.org. 5 IN A 192.0.2.1")
	s.ServFail("api.example.org.", 6)
	r := run(t, nil, append([]string{"dns", "api.example.org", "--timeout", "20s", "-v"}, flags...)...)
	r.MustExit(t, 0, "SERVFAIL for api.example.org.")
}

func TestDNSTruncatedAnswerRetriedOverTCP(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:1")
	var rrs []string
	for i := 1; i <= 60; i++ { // far beyond 512 bytes of A records
		rrs = append(rrs, fmt.Sprintf("peers.example.org. 5 IN A 10.1.0.%d", i))
	}
	s.Add(t, rrs...)
	run(t, nil, append([]string{"dns", "peers.example.org", "--type", "A", "--min-records", "60", "--timeout", "10s"}, flags...)...).MustExit(t, 0)
	if _, tcp := s.Queries("peers.example.org.", "A"); tcp == 0 {
		t.Fatal("no query over TCP: the truncated UDP answer was used")
	}
}

func TestDNSServerThatNeverAnswers(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5 timeout:1 attempts:1")
	s.Silent(true)
	r := run(t, nil, append([]string{"dns", "myservice", "--timeout", "1500ms", "--attempt-timeout", "500ms"}, flags...)...)
	r.MustExit(t, 1, "dns myservice: ")
	if !strings.Contains(r.Stderr, "timeout for myservice.default.svc.cluster.local.") && !strings.Contains(r.Stderr, "no answer within 500ms") {
		t.Fatalf("the reason does not say the server did not answer:\n%s", r.Stderr)
	}
	if r.Elapsed > 3*time.Second {
		t.Fatalf("a silent server held the wait for %s past its 1.5s timeout", r.Elapsed)
	}
}

// A headless Service publishes one A record per ready pod: --min-records
// waits for the StatefulSet's peers.
func TestDNSMinRecordsReachedAsRecordsAppear(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	s.Add(t, "mydb-headless.default.svc.cluster.local. 5 IN A 10.2.0.1")
	after(300*time.Millisecond, func() { s.Add(t, "mydb-headless.default.svc.cluster.local. 5 IN A 10.2.0.2") })
	after(900*time.Millisecond, func() { s.Add(t, "mydb-headless.default.svc.cluster.local. 5 IN A 10.2.0.3") })
	r := run(t, nil, append([]string{"dns", "mydb-headless", "--min-records", "3", "--timeout", "20s", "-v"}, flags...)...)
	r.MustExit(t, 0, "1 of 3 records for mydb-headless.default.svc.cluster.local")
	if r.Elapsed < 900*time.Millisecond {
		t.Fatalf("ready after %s, before the third record", r.Elapsed)
	}
}

func TestDNSSRVAndAAAAOnly(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	s.Add(t, "_postgres._tcp.mydb.default.svc.cluster.local. 5 IN SRV 0 50 5432 mydb-0.mydb.default.svc.cluster.local.")
	s.Add(t, "v6only.default.svc.cluster.local. 5 IN AAAA fd00::10")
	run(t, nil, append([]string{"dns", "_postgres._tcp.mydb", "--type", "SRV", "--expect", "mydb-0.mydb.default.svc.cluster.local", "--timeout", "5s"}, flags...)...).MustExit(t, 0)
	// The default type is "A or AAAA": an IPv6-only name is ready.
	run(t, nil, append([]string{"dns", "v6only", "--timeout", "5s"}, flags...)...).MustExit(t, 0)
	// Asked for A only, the same name is NODATA on its own domain.
	run(t, nil, append([]string{"dns", "v6only", "--type", "A", "--timeout", "1s"}, flags...)...).MustExit(t, 1, "NODATA for v6only.default.svc.cluster.local.")
}

func TestDNSExpectWaitsForTheValue(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	s.Add(t, "leader.default.svc.cluster.local. 5 IN A 10.3.0.1")
	after(500*time.Millisecond, func() {
		s.Remove("leader.default.svc.cluster.local.")
		s.Add(t, "leader.default.svc.cluster.local. 5 IN A 10.3.0.2")
	})
	r := run(t, nil, append([]string{"dns", "leader", "--expect", "10.3.0.2", "--timeout", "10s", "-v"}, flags...)...)
	r.MustExit(t, 0, `no record of leader.default.svc.cluster.local equals \"10.3.0.2\" (have 10.3.0.1)`)
}

func TestDNSRefusedIsReportedByName(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5 attempts:1")
	s.Refuse(true)
	run(t, nil, append([]string{"dns", "myservice", "--timeout", "800ms"}, flags...)...).MustExit(t, 1, "REFUSED for myservice.default.svc.cluster.local.")
}

func TestDNSHostsFileFirst(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	hosts := t.TempDir() + "/hosts"
	writeFile(t, hosts, "127.0.0.1 localhost\n10.9.9.9 mypod.sub.default.svc.cluster.local mypod\n")
	flags = append(flags, "--hosts-file", hosts) // the later flag wins
	run(t, nil, append([]string{"dns", "mypod", "--timeout", "2s"}, flags...)...).MustExit(t, 0, "attempts=1")
	if n, _ := s.Queries("mypod.default.svc.cluster.local.", "A"); n != 0 {
		t.Fatalf("asked the DNS server %d times for a name in the hosts file", n)
	}
}

// An address literal is itself, as getent ahosts says, IPv6 too (the
// resolver differential has ::1 in its matrix); one of the other family
// than --type asks is not found.
func TestDNSAddressLiterals(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "")
	for _, name := range []string{"::1", "2001:db8::7", "127.0.0.1"} {
		run(t, nil, append([]string{"dns", name, "--timeout", "2s"}, flags...)...).MustExit(t, 0, "msg=ready")
	}
	run(t, nil, append([]string{"dns", "::1", "--type", "A", "--timeout", "1s"}, flags...)...).MustExit(t, 1, "an address of another family than asked")
}
