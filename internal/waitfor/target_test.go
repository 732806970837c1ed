package waitfor

import (
	"strings"
	"testing"
)

func TestSplitTargets(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "kind target|kind target", or "error: text"
	}{
		{[]string{"dns", "myservice", "mydb"}, "dns myservice|dns mydb"},
		{[]string{"tcp", "db:5432", "cache:6379"}, "tcp db:5432|tcp cache:6379"},
		{[]string{"pg", "host=db user=app"}, "postgres host=db user=app"},
		{[]string{"https", "https://x/healthz"}, "http https://x/healthz"},
		{[]string{"dns:myservice", "tcp://db:5432", "postgres://app@db/app", "https://x/healthz"},
			"dns myservice|tcp db:5432|postgres postgres://app@db/app|http https://x/healthz"},
		{[]string{"tcp:db:5432", "dns://mydb", "postgresql://db/x", "pg:host=db"}, "tcp db:5432|dns mydb|postgres postgresql://db/x|postgres host=db"},
		{[]string{"DNS:Upper"}, "dns Upper"},
		{[]string{"dns"}, "error: dns: no target given"},
		{[]string{"db:5432"}, `error: unknown target "db:5432"`},
		{[]string{"myservice"}, `error: unknown target "myservice"`},
		{[]string{"dns:"}, "error: dns:: empty target"},
		{[]string{"http:x"}, `error: invalid target "http:x"`},
	} {
		specs, err := splitTargets(tc.args)
		var got string
		if err != nil {
			got = "error: " + err.Error()
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("%q: got %q, want prefix %q", tc.args, got, tc.want)
			}
			continue
		}
		var parts []string
		for _, s := range specs {
			parts = append(parts, s.kind.name+" "+s.target)
		}
		if got = strings.Join(parts, "|"); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestParseStatuses(t *testing.T) {
	rs, err := parseStatuses("200,204, 300-399,5xx")
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]bool{200: true, 201: false, 204: true, 302: true, 399: true, 400: false, 503: true} {
		if statusOK(rs, code) != want {
			t.Errorf("status %d: got %v", code, !want)
		}
	}
	for _, bad := range []string{"", "2xx,", "99", "600", "300-200", "9xx", "abc"} {
		if _, err := parseStatuses(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no target given"},
		{[]string{"tcp", "nohostport"}, "tcp nohostport: want HOST:PORT"},
		{[]string{"tcp", "x:99999"}, `invalid port "99999"`},
		{[]string{"dns", "bad name"}, "not a valid DNS name"},
		{[]string{"dns", "x", "--type", "PTR"}, `invalid value "PTR" for --type`},
		{[]string{"dns", "x", "--min-records", "0"}, "--min-records"},
		{[]string{"tcp", "--timeout", "banana", "x:1"}, `invalid value "banana" for --timeout`},
		{[]string{"tcp", "x:1", "--interval", "2s", "--max-interval", "1s"}, "maximum interval 1s is below the interval 2s"},
		{[]string{"tcp", "x:1", "--nosuch"}, "unknown flag --nosuch"},
		{[]string{"postgres", "postgres://u:Pa55word@h:notaport/db"}, "invalid DSN"},
		{[]string{"dns", "x", "--resolv-conf", "/nonexistent/resolv.conf"}, "reading /nonexistent/resolv.conf: no such file or directory"},
	} {
		r := run(t, nil, tc.args...)
		r.MustExit(t, 2, tc.want)
		if strings.Contains(r.Stderr, "Pa55word") {
			t.Errorf("%v: the password leaked: %s", tc.args, r.Stderr)
		}
	}
}
