package redact

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:hunter22@db:5432/app":                "postgres://app:REDACTED@db:5432/app",
		"host=db user=app password=hunter22 dbname=x":        "host=db user=app password=REDACTED dbname=x",
		"host=db password='hun ter\\'22' dbname=x":           "host=db password=REDACTED dbname=x",
		"https://x/?token=abc123&x=1":                        "https://x/?token=REDACTED&x=1",
		"Authorization: Bearer eyJhbGciOi":                   "Authorization: Bearer REDACTED",
		`{"user":"a","password":"p@ss"}`:                     `{"user":"a","password":"REDACTED"}`,
		"terminated by SIGTERM: tcp db:5432: refused":        "terminated by SIGTERM: tcp db:5432: refused",
		"dns myservice: NXDOMAIN for myservice.default.svc.": "dns myservice: NXDOMAIN for myservice.default.svc.",
		"tcp://db:5432": "tcp://db:5432",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSet(t *testing.T) {
	var s Set
	s.Add("", "ab", "token-value-1", "value")
	got := s.String("a token-value-1 and a value, ab stays")
	if strings.Contains(got, "token-value-1") || strings.Contains(got, " value,") || !strings.Contains(got, "ab stays") {
		t.Fatalf("got %q", got)
	}
	var nilSet *Set
	if nilSet.String("password=x") != "password=REDACTED" {
		t.Fatal("a nil Set skips the structural rules")
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p4ss@x/a?b=1":     "https://u:REDACTED@x/a?b=1",
		"https://x/a?api_key=k&b=1":  "https://x/a?api_key=REDACTED&b=1",
		"postgres://app@db/app":      "postgres://app@db/app",
		"http://x/%zz?password=leak": "http://x/%zz?password=REDACTED",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}
