package redact

import (
	"math/rand/v2"
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
		`Get "https://acct.blob.core.windows.net/c/b?sv=2022&sig=AbC%2Bd&se=1": EOF`:        `Get "https://acct.blob.core.windows.net/c/b?sv=2022&sig=REDACTED&se=1": EOF`,
		"https://maps.example/api?key=AIzaSyA1&q=x":                                         "https://maps.example/api?key=REDACTED&q=x",
		"https://s3/b/o?X-Amz-Signature=ab12&X-Amz-Credential=AK/1&X-Amz-Security-Token=tt": "https://s3/b/o?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED",
		"https://gcs/o?X-Goog-Signature=ff00&alg=x":                                         "https://gcs/o?X-Goog-Signature=REDACTED&alg=x",
		"https://idp/token?client_secret=cs1&client_id=app":                                 "https://idp/token?client_secret=REDACTED&client_id=app",
		"https://x/?signature=s1&token=t1&password=p1&secret=s2#frag":                       "https://x/?signature=REDACTED&token=REDACTED&password=REDACTED&secret=REDACTED#frag",
		"https://x/?monkey=1&keys=2&sigma=3":                                                "https://x/?monkey=1&keys=2&sigma=3",
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
		"https://u:p4ss@x/a?b=1":            "https://u:REDACTED@x/a?b=1",
		"https://x/a?api_key=k&b=1":         "https://x/a?api_key=REDACTED&b=1",
		"postgres://app@db/app":             "postgres://app@db/app",
		"http://x/%zz?password=leak":        "http://x/%zz?password=REDACTED",
		"https://a.blob/c?sv=1&sig=AbC%2Bd": "https://a.blob/c?sig=REDACTED&sv=1",
		"https://m/api?KEY=k1&q=x":          "https://m/api?KEY=REDACTED&q=x",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTextGuards: the guards that spare Text its regexps must never change
// what it masks. Every text of up to three fragments of secret-shaped and
// harmless pieces, and random longer ones, masks the same with the guards
// as with every pattern run.
func TestTextGuards(t *testing.T) {
	frags := []string{"", "postgres://", "app", ":", "hunter22", "@", "db:5432", "/x", "?", "&", "=", "password",
		"token=t1", " ", `"`, `{"secret":"s"}`, "Authorization: Bearer ", "AUTHORIZATION=", "proxy-authorizatioN:",
		"authorizatio", "ı", "\u212a", "'", "key", "sig=AbC", "https://u:p@h/?key=k", "\n", "tcp db:5432"}
	n := 0
	check := func(s string) {
		n++
		if got, want := Text(s), shapes(s, false); got != want {
			t.Fatalf("Text(%q) = %q, every pattern run: %q", s, got, want)
		}
	}
	for _, a := range frags {
		for _, b := range frags {
			for _, c := range frags {
				check(a + b + c)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range 4 + rng.IntN(6) {
			b.WriteString(frags[rng.IntN(len(frags))])
		}
		check(b.String())
	}
	t.Logf("%d texts", n)
}
